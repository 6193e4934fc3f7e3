#!/usr/bin/env node
// The document viewer's speed on a scanned report (a benchmark, not a
// test: nothing fails on a slow figure). Run by tests/src/bin/viewerbench.rs
// (docs/performance.md, "The document viewer on a scanned report").
//
// In headless Chromium, a member joins the meeting, opens the document
// from the agenda panel ("Xem") and turns every page with "Trang sau":
//
//  - first page: from the click to page 1 drawn in the canvas (fetching
//    the whole PDF, loading pdf.js and its worker, parsing, decoding the
//    first image, drawing); `downloaded_ms`: when the PDF was downloaded;
//  - each turn: from the click to the page drawn;
//  - per page, what the canvas shows (mean grey level 0-255 and the share
//    of dark pixels on a 64x90 sample) and the viewer's error, if any: a
//    JPEG 2000 or JBIG2 page that pdf.js could not decode is blank or in
//    error.
//
//   E2E_VIEWPORT=1280x800 node viewer_bench.mjs INVITATION_URL DOCUMENT_ID
//
// Prints a JSON summary on stdout (last line).

import { closeBrowsers, dumpConsoles, joinMeeting, log, openBrowser, sleep, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 120000);
const [vw, vh] = (process.env.E2E_VIEWPORT || '1280x800').split('x').map(Number);
// E2E_SHOTS=DIR saves the canvas of the pages in E2E_SHOT_PAGES (e.g. "25,26").
const shotPages = (process.env.E2E_SHOT_PAGES || '').split(',').filter(Boolean).map(Number);
const summary = { ok: false, reason: null, viewport: `${vw}x${vh}`, pages: [] };

const view = (page) => page.evaluate(() => (window.giaoban && window.giaoban.viewer ? window.giaoban.viewer() : null));
const clock = (page) => page.evaluate(() => performance.timeOrigin + performance.now());

async function until(page, what, pred) {
  const deadline = Date.now() + waitMs;
  let last = null;
  while (Date.now() < deadline) {
    last = await view(page).catch(() => null);
    if (last && pred(last)) return last;
    await sleep(10);
  }
  throw new Error(`${what}: not within ${waitMs} ms (last: ${JSON.stringify(last && { ...last, renderLog: undefined })})`);
}

/** What the canvas shows: mean grey level and share of dark pixels, on a small copy. */
const canvasStats = (page) =>
  page.evaluate(() => {
    const src = document.querySelector('#doc-viewer .viewer-canvas');
    const c = document.createElement('canvas');
    c.width = 64;
    c.height = 90;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(src, 0, 0, c.width, c.height);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let sum = 0;
    let dark = 0;
    for (let i = 0; i < d.length; i += 4) {
      const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
      sum += y;
      if (y < 128) dark += 1;
    }
    const n = d.length / 4;
    return { mean: Math.round(sum / n), dark: Math.round((dark / n) * 1000) / 1000 };
  });

/** When page `n` was drawn (the viewer's own clock), after `since`. */
function drawnAt(v, n, since) {
  const r = v.renderLog.filter((e) => e.page === n && e.at >= since).pop();
  return r ? r.at : v.rendered.at;
}

async function main() {
  const [url, docId] = process.argv.slice(2);
  if (!url || !docId) {
    process.stderr.write('usage: node viewer_bench.mjs INVITATION_URL DOCUMENT_ID\n');
    return 2;
  }
  const browsers = [];
  try {
    const b = await openBrowser(0, { viewport: { width: vw, height: vh } });
    browsers.push(b);
    const page = b.page;
    await joinMeeting(b, url);
    const sel = `#agenda-panel .doc[data-id="${docId}"] .doc-view`;
    const end = Date.now() + waitMs;
    while (Date.now() < end && !(await page.evaluate((s) => !!document.querySelector(s), sel))) await sleep(50);
    await sleep(500); // the join's own work settles before the clock starts
    const t0 = await clock(page);
    await page.evaluate((s) => document.querySelector(s).click(), sel);
    const first = await until(page, 'page 1 drawn', (v) => v.documentId === docId && v.rendered.page === 1);
    summary.first_page_ms = Math.round(drawnAt(first, 1, t0) - t0);
    // The PDF's download, from the page's resource timing.
    summary.downloaded_ms = await page.evaluate((since) => {
      const r = performance.getEntriesByType('resource').filter((e) => e.name.includes('/content')).pop();
      return r ? Math.round(performance.timeOrigin + r.responseEnd - since) : null;
    }, t0);
    summary.page_count = first.pages;
    summary.pages.push({ page: 1, ms: summary.first_page_ms, ...(await canvasStats(page)), error: first.error });
    log(`page 1 after ${summary.first_page_ms} ms (${first.pages} pages)`);
    for (let n = 2; n <= first.pages; n++) {
      const t = await clock(page);
      await page.evaluate(() => document.querySelector('#doc-viewer .viewer-next').click());
      const v = await until(page, `page ${n} drawn`, (x) => x.rendered.page === n || (x.error && x.page === n));
      const ms = Math.round(drawnAt(v, n, t) - t);
      summary.pages.push({ page: n, ms, ...(await canvasStats(page)), error: v.error });
      if (process.env.E2E_SHOTS && shotPages.includes(n)) {
        await page.locator('#doc-viewer .viewer-canvas').screenshot({ path: `${process.env.E2E_SHOTS}/viewer-page-${n}.png` });
      }
      log(`page ${n}: ${ms} ms`);
    }
    const turns = summary.pages.slice(1).map((p) => p.ms).sort((x, y) => x - y);
    const q = (f) => turns[Math.min(turns.length - 1, Math.floor(f * turns.length))];
    summary.turn_ms = { n: turns.length, median: q(0.5), p90: q(0.9), max: turns[turns.length - 1], mean: Math.round(turns.reduce((s, x) => s + x, 0) / turns.length) };
    summary.canvas = (await view(page)).canvas;
    summary.ok = true;
    return 0;
  } catch (e) {
    summary.reason = String(e && e.stack ? e.stack : e);
    process.stderr.write(`viewer_bench.mjs: ${summary.reason}\n`);
    dumpConsoles(browsers);
    return 1;
  } finally {
    await closeBrowsers(browsers);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  }
}

watchdog(Number(process.env.E2E_WATCHDOG_MS || 900000));
process.exitCode = await main();
