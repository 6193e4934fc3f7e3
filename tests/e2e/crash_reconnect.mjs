#!/usr/bin/env node
// The web client after a server crash: one browser joins with an invitation
// URL, prints {"event": "joined", ...} on stdout, then, without any user
// action, must go through a lost connection (the test SIGKILLs and restarts
// the server), reconnect by itself, join again (a new participant id) and
// show the participant named OTHER_NAME (who reconnected too).
//
//   node crash_reconnect.mjs URL OTHER_NAME
//
// Prints a JSON summary as its last stdout line and exits 0, or 1 with the
// reason on stderr. The URL carries a token: it is never printed.
//
// Environment: CHROMIUM_PATH, E2E_TIMEOUT_MS (default 90000: how long to
// wait for the reconnection after joining), E2E_VERBOSE=1.

import { closeBrowsers, dumpConsoles, joinMeeting, log, openBrowser, selfOf, sleep, watchdog } from './lib.mjs';

const [url, otherName] = process.argv.slice(2);
const timeoutMs = Number(process.env.E2E_TIMEOUT_MS || 90000);
watchdog(timeoutMs + 60000);

const summary = { ok: false, states: [], selfBefore: null, selfAfter: null, tiles: [] };
const browsers = [];
try {
  if (!url || !otherName) throw new Error('usage: crash_reconnect.mjs URL OTHER_NAME');
  const b = await openBrowser(0);
  browsers.push(b);
  await joinMeeting(b, url);
  const t0 = Date.now();
  while (Date.now() - t0 < 20000) {
    summary.selfBefore = await selfOf(b.page);
    if (summary.selfBefore) break;
    await sleep(100);
  }
  if (!summary.selfBefore) throw new Error('the page did not join');
  process.stdout.write(`${JSON.stringify({ event: 'joined', self: summary.selfBefore.id })}\n`);
  log('joined; waiting for the crash and the reconnection');
  let lost = false;
  const t1 = Date.now();
  for (;;) {
    if (Date.now() - t1 > timeoutMs) throw new Error(`no reconnection within ${timeoutMs} ms (states: ${summary.states.join(' ')})`);
    const s = await b.page.evaluate(() => window.giaoban.state);
    if (summary.states[summary.states.length - 1] !== s) summary.states.push(s);
    if (s !== 'connected') lost = true;
    const self = await selfOf(b.page);
    if (lost && s === 'connected' && self && self.id !== summary.selfBefore.id) {
      summary.selfAfter = self;
      summary.tiles = await b.page.evaluate(() => window.giaoban.tiles());
      if (summary.tiles.some((t) => !t.self && t.name === otherName)) break;
    }
    await sleep(200);
  }
  summary.ok = true;
  log(`reconnected as a new participant; sees ${otherName}`);
} catch (e) {
  process.stderr.write(`e2e failed: ${e.message}\n`);
  dumpConsoles(browsers);
}
await closeBrowsers(browsers);
process.stdout.write(`${JSON.stringify(summary)}\n`);
process.exit(summary.ok ? 0 : 1);
