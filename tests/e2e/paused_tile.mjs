#!/usr/bin/env node
// The web client shows a tile whose video the server holds back (last-N,
// `video_paused`) with the participant's name and a note, not a frozen frame.
// One browser joins a meeting where two other participants publish (the test
// runs them); with `media.last_n = 1` one of their tiles must be paused. The
// script then writes E2E_SIGNAL_DIR/phase1, the test makes the paused one
// speak, and the other tile must become the paused one.
//
//   node paused_tile.mjs URL FIRST_ID SECOND_ID
//
// Prints a JSON summary on stdout and exits 0, or the reason on stderr (and a
// summary with "ok": false) and exits 1. The URL carries a token: never printed.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeBrowsers, dumpConsoles, elapsed, joinMeeting, log, openBrowser, watchdog } from './lib.mjs';

const timeoutMs = Number(process.env.E2E_TIMEOUT_MS || 30000);
const [url, firstId, secondId] = process.argv.slice(2);

/** The tiles of the two publishers as the page shows them. */
async function probe(page) {
  return page.evaluate(() => {
    const g = window.giaoban;
    return g.tiles().map((t) => {
      const el = document.querySelector(`.tile[data-participant-id="${CSS.escape(t.self ? 'self' : t.id)}"]`);
      const note = el ? el.querySelector('.tile-paused') : null;
      const video = el ? el.querySelector('.tile-video') : null;
      return {
        id: t.id,
        name: t.name,
        paused: t.videoPaused,
        note: note && !note.hidden ? note.textContent : null,
        videoHidden: video ? video.hidden : null,
        shownName: el ? el.querySelector('.tile-name').textContent : null,
      };
    });
  });
}

/** Waits until `want(tiles)` holds; returns the tiles. */
async function until(page, what, want) {
  const deadline = Date.now() + timeoutMs;
  let tiles = [];
  for (;;) {
    tiles = await probe(page);
    if (want(tiles)) return tiles;
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}: ${JSON.stringify(tiles)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const pausedOnly = (tiles, id, other) => {
  const a = tiles.find((t) => t.id === id);
  const b = tiles.find((t) => t.id === other);
  return !!a && !!b && a.paused && !!a.note && a.videoHidden && !b.paused && !b.note;
};

async function main() {
  const browsers = [];
  const phases = {};
  try {
    browsers.push(await openBrowser(0));
    const { page } = browsers[0];
    await joinMeeting(browsers[0], url);
    log('joined');
    phases.first = await until(page, 'the second publisher paused', (t) => pausedOnly(t, secondId, firstId));
    log('phase 1: the later publisher is paused');
    writeFileSync(join(process.env.E2E_SIGNAL_DIR, 'phase1'), 'ok');
    phases.second = await until(page, 'the first publisher paused', (t) => pausedOnly(t, firstId, secondId));
    log('phase 2: the speaker is shown, the other paused');
    process.stdout.write(`${JSON.stringify({ ok: true, elapsed_ms: elapsed(), phases })}\n`);
    return 0;
  } catch (e) {
    const reason = e && e.message ? e.message : String(e);
    process.stderr.write(`e2e failed: ${reason}\n`);
    dumpConsoles(browsers);
    process.stdout.write(`${JSON.stringify({ ok: false, reason, phases })}\n`);
    return 1;
  } finally {
    await closeBrowsers(browsers);
  }
}

watchdog(3 * timeoutMs + 60000);

process.exitCode = await main();
