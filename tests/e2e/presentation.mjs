#!/usr/bin/env node
// A synchronized presentation on the meeting page, in real browsers:
//
//  - the chair sets the current agenda item and presents its PDF from the
//    agenda panel ("Trình bày"); two participants' viewers (pdf.js in a
//    canvas) open it at the presenter's page;
//  - the chair turns pages (and zooms once): both follow; the delay from
//    the click to each follower's drawn page is measured;
//  - participant B browses away ("xem tự do"), does not follow the next
//    turn, and jumps back with "Về trang người trình bày";
//  - a late joiner lands on the presenter's page;
//  - no page's Content-Security-Policy blocked anything (the pdf.js worker
//    is same-origin), and a follower's private note on a page is saved.
//
//   E2E_A_BROWSER=chromium|firefox node presentation.mjs CHAIR_URL A_URL B_URL LATE_URL DOCUMENT_ID ITEM_ID
//
// Participant A runs in E2E_A_BROWSER (default chromium); the others in
// Chromium. A's screen is tablet-sized (768x1024). E2E_SHOTS=DIR saves
// screenshots of the chair's and A's pages while presenting. Prints a JSON summary
// on stdout (last line) and exits 0, or the reason on stderr and exits 1.

import { closeBrowsers, cspViolations, dumpConsoles, joinMeeting, log, openBrowser, sleep, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 20000);
const aKind = process.env.E2E_A_BROWSER === 'firefox' ? 'firefox' : 'chromium';
const summary = { ok: false, reason: null, a_browser: aKind, delays_ms: { a: [], b: [] } };

const view = (page) => page.evaluate(() => (window.giaoban && window.giaoban.viewer ? window.giaoban.viewer() : null));

/** Waits until `pred(viewer summary)` holds on `page`; returns the summary. */
async function until(page, what, pred, ms = waitMs) {
  const deadline = Date.now() + ms;
  let last = null;
  while (Date.now() < deadline) {
    last = await view(page).catch(() => null);
    if (last && pred(last)) return last;
    await sleep(20);
  }
  throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(last && { ...last, renderLog: undefined })})`);
}

/** The time on a page's clock (all pages run on this machine). */
const clock = (page) => page.evaluate(() => performance.timeOrigin + performance.now());

async function main() {
  const [chairUrl, aUrl, bUrl, lateUrl, docId, itemId] = process.argv.slice(2);
  if (!chairUrl || !aUrl || !bUrl || !lateUrl || !docId || !itemId) {
    process.stderr.write('usage: node presentation.mjs CHAIR_URL A_URL B_URL LATE_URL DOCUMENT_ID ITEM_ID\n');
    return 2;
  }
  const browsers = [];
  try {
    const chairB = await openBrowser(0, { viewport: { width: 1280, height: 800 } });
    browsers.push(chairB);
    const aB = await openBrowser(1, { browser: aKind, viewport: { width: 768, height: 1024 } });
    browsers.push(aB);
    const bB = await openBrowser(2, { viewport: { width: 1280, height: 800 } });
    browsers.push(bB);
    const chair = chairB.page;
    const a = aB.page;
    const b = bB.page;

    await joinMeeting(chairB, chairUrl);
    await chair.waitForFunction(() => window.giaoban && window.giaoban.state === 'connected', null, { timeout: waitMs });
    await chair.evaluate((id) => window.giaoban.client.setCurrentItem(id), itemId);
    await Promise.all([joinMeeting(aB, aUrl), joinMeeting(bB, bUrl)]);
    log('three pages joined');

    // The chair presents from the agenda panel.
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline) {
      const n = await chair.evaluate(
        (id) => document.querySelectorAll(`#agenda-panel .doc[data-id="${id}"] .doc-present`).length,
        docId,
      );
      if (n > 0) break;
      await sleep(50);
    }
    await chair.evaluate((id) => document.querySelector(`#agenda-panel .doc[data-id="${id}"] .doc-present`).click(), docId);
    // The first opening loads pdf.js (1.7 MB of script) in each page: on a
    // busy machine that alone takes seconds, so it gets three waits.
    const first = (p) =>
      until(p, 'the presented document on page 1', (v) => v.documentId === docId && v.rendered.page === 1 && v.following, 3 * waitMs);
    const [c0, a0, b0] = await Promise.all([first(chair), first(a), first(b)]);
    summary.pages = c0.pages;
    summary.canvas = { chair: c0.canvas, a: a0.canvas, b: b0.canvas };
    log(`presenting: ${c0.pages} pages`);

    // The chair turns pages; both follow. The delay: from the click to the
    // page drawn in each follower's canvas.
    const turn = async (target) => {
      const t0 = await clock(chair);
      await chair.evaluate(() => document.querySelector('#doc-viewer .viewer-next').click());
      const got = await Promise.all(
        [a, b].map((p) => until(p, `follow to page ${target}`, (v) => v.rendered.page === target && v.following)),
      );
      return got.map((v) => {
        const drawn = v.renderLog.filter((r) => r.page === target).pop();
        return Math.round((drawn ? drawn.at : v.rendered.at) - t0);
      });
    };
    for (let page = 2; page <= 4; page++) {
      const [da, db] = await turn(page);
      summary.delays_ms.a.push(da);
      summary.delays_ms.b.push(db);
      log(`page ${page}: A ${da} ms, B ${db} ms`);
    }
    // E2E_SHOTS=DIR saves what the chair (desktop) and A (tablet) see.
    if (process.env.E2E_SHOTS) {
      await chair.screenshot({ path: `${process.env.E2E_SHOTS}/presentation-chair.png` });
      await a.screenshot({ path: `${process.env.E2E_SHOTS}/presentation-a-${aKind}.png` });
    }
    // A zoom follows too.
    await chair.evaluate(() => document.querySelector('#doc-viewer .viewer-zoom-in').click());
    const zoomed = await until(a, 'follow the zoom', (v) => v.zoom > 100 && v.rendered.zoom === v.zoom);
    summary.zoom_followed = zoomed.zoom;

    // B browses away, misses a turn, and comes back with one click.
    await b.evaluate(() => document.querySelector('#doc-viewer .viewer-prev').click());
    const away = await until(b, 'B browses back to page 3', (v) => v.rendered.page === 3 && !v.following && v.backVisible);
    await turn5(chair);
    await until(a, 'A follows to page 5', (v) => v.rendered.page === 5);
    await sleep(300);
    const stayed = await view(b);
    await b.evaluate(() => document.querySelector('#doc-viewer .viewer-back').click());
    const back = await until(b, 'B back on the presenter page', (v) => v.rendered.page === 5 && v.following && !v.backVisible);
    summary.browse = { away_page: away.page, stayed_page: stayed.page, stayed_following: stayed.following, back_page: back.page };

    // A writes a private note on its page.
    await a.evaluate(() => {
      document.querySelector('#doc-viewer .viewer-notes').open = true;
      document.querySelector('#doc-viewer .note-text').value = 'Số liệu trang 5 cần đối chiếu';
      document.querySelector('#doc-viewer .note-save').click();
    });
    const noted = await until(a, 'the note saved', (v) => v.notes.some((n) => n.page === 5 && n.mine));
    summary.note = noted.notes.find((n) => n.page === 5);

    // A late joiner lands on the presenter's page.
    const lateB = await openBrowser(3, { viewport: { width: 1024, height: 768 } });
    browsers.push(lateB);
    const tLate = Date.now();
    await joinMeeting(lateB, lateUrl);
    const late = await until(lateB.page, 'the late joiner on the presenter page', (v) => v.rendered.page === 5 && v.following);
    summary.late = { page: late.page, presenter_page: late.presenterPage, ms_from_join_click: Date.now() - tLate };

    // The chair stops: the followers' viewers close.
    await chair.evaluate(() => document.querySelector('#doc-viewer .viewer-stop').click());
    await until(a, 'A closes after the stop', (v) => !v.open && !v.presenting);

    summary.csp = {};
    for (const [name, br] of [['chair', chairB], ['a', aB], ['b', bB], ['late', lateB]]) {
      summary.csp[name] = await cspViolations(br.page);
    }
    const all = [...summary.delays_ms.a, ...summary.delays_ms.b];
    summary.delay_max_ms = Math.max(...all);
    summary.delay_median_ms = all.sort((x, y) => x - y)[Math.floor(all.length / 2)];
    summary.ok = true;
    return 0;
  } catch (e) {
    summary.reason = String(e && e.stack ? e.stack : e);
    process.stderr.write(`presentation.mjs: ${summary.reason}\n`);
    dumpConsoles(browsers);
    return 1;
  } finally {
    await closeBrowsers(browsers);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  }
}

/** The chair turns to page 5 (from 4). */
async function turn5(chair) {
  await chair.evaluate(() => document.querySelector('#doc-viewer .viewer-next').click());
}

watchdog(Number(process.env.E2E_WATCHDOG_MS || 240000));
process.exitCode = await main();
