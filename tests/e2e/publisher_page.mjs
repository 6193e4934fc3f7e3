#!/usr/bin/env node
// One Chromium page joins a meeting with the web client (fake camera and
// microphone, simulcast q/h/f) and stays for E2E_HOLD_MS, publishing; the
// test's own clients subscribe to it.
//
//   node publisher_page.mjs URL
//
// Prints a JSON summary (the participant id, its publisher connection state)
// on stdout and exits 0, or the reason on stderr and exits 1. The URL carries
// a token: never printed.

import { closeBrowsers, dumpConsoles, elapsed, joinMeeting, log, openBrowser, selfOf, watchdog } from './lib.mjs';

const holdMs = Number(process.env.E2E_HOLD_MS || 20000);
const [url] = process.argv.slice(2);

async function main() {
  const browsers = [];
  try {
    browsers.push(await openBrowser(0));
    const { page } = browsers[0];
    await joinMeeting(browsers[0], url);
    let self = null;
    const deadline = Date.now() + 20000;
    while (!self && Date.now() < deadline) {
      self = await selfOf(page);
      if (!self) await new Promise((r) => setTimeout(r, 200));
    }
    if (!self) throw new Error('the page did not join');
    log(`joined as ${self.id}; holding ${holdMs} ms`);
    await new Promise((r) => setTimeout(r, holdMs));
    const publisher = await page.evaluate(() => (window.giaoban.publisher ? window.giaoban.publisher.connectionState : null));
    process.stdout.write(`${JSON.stringify({ ok: true, elapsed_ms: elapsed(), self, publisher })}\n`);
    return 0;
  } catch (e) {
    const reason = e && e.message ? e.message : String(e);
    process.stderr.write(`e2e failed: ${reason}\n`);
    dumpConsoles(browsers);
    process.stdout.write(`${JSON.stringify({ ok: false, reason })}\n`);
    return 1;
  } finally {
    await closeBrowsers(browsers);
  }
}

watchdog(holdMs + 90000);

process.exitCode = await main();
