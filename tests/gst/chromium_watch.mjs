#!/usr/bin/env node
// One Chromium page joins a meeting with the web client (a bridge point)
// and, every 5 s for E2E_WATCH_MS, prints one JSON line with what its
// subscriber connection decodes per sender: {"event":"sample","t":ms,
// "streams":[{owner, kind, framesDecoded, frameWidth, ...}]}. Driven by
// tests/tests/whip_gstreamer.rs, which picks the GStreamer publisher's
// stream out of the samples. Ends with {"event":"done"}, or
// {"event":"error","reason":...} and exit code 1. The URL carries a token:
// never printed.
//
//   node chromium_watch.mjs URL

import { closeBrowsers, dumpConsoles, elapsed, inboundStats, joinMeeting, openBrowser, selfOf, watchdog } from '../e2e/lib.mjs';

const watchMs = Number(process.env.E2E_WATCH_MS || 80000);
const [url] = process.argv.slice(2);

function emit(event, fields) {
  process.stdout.write(`${JSON.stringify({ event, t: elapsed(), ...fields })}\n`);
}

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
    emit('joined', { id: self.id });
    const end = Date.now() + watchMs;
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 5000));
      emit('sample', { streams: await inboundStats(page) });
    }
    emit('done', {});
    return 0;
  } catch (e) {
    const reason = e && e.message ? e.message : String(e);
    dumpConsoles(browsers);
    emit('error', { reason });
    return 1;
  } finally {
    await closeBrowsers(browsers);
  }
}

watchdog(watchMs + 60000);

process.exitCode = await main();
