#!/usr/bin/env node
// The secretariat reads the committee's comments per document in /admin
// (Chromium, tablet-sized 768x1024):
//
//  - the secretary logs in and opens the meeting's "Chương trình" tab;
//  - under each document, "Góp ý của thành viên (N)" lists its comments
//    with page, author and time (the comments were written over REST; a
//    member's private note is never among them);
//  - above the agenda, the count and "Tải góp ý (CSV)": the CSV it saves;
//  - nothing is wider than the tablet's screen, and the page's
//    Content-Security-Policy blocked nothing.
//
//   E2E_USERNAME=… E2E_PASSWORD=… node comments_admin.mjs BASE_URL MEETING_ID
//
// Prints a JSON summary on stdout (last line) and exits 0, or the reason on
// stderr (and a summary with "ok": false) and exits 1.

import { closeBrowsers, cspViolations, dumpConsoles, log, openBrowser, sleep, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 30000);
const summary = { ok: false, reason: null };

/** Keeps the blobs the page saves (the CSV), to read them back. */
const SPY = `(() => {
  window.__blobs = [];
  const create = URL.createObjectURL;
  URL.createObjectURL = function (obj) {
    if (obj instanceof Blob) window.__blobs.push(obj);
    return create.call(URL, obj);
  };
})();`;

async function main() {
  const [base, mid] = process.argv.slice(2);
  if (!base || !mid) {
    process.stderr.write('usage: E2E_USERNAME=… E2E_PASSWORD=… node comments_admin.mjs BASE_URL MEETING_ID\n');
    return 2;
  }
  const browsers = [];
  try {
    const b = await openBrowser(0, { viewport: { width: 768, height: 1024 }, initScript: SPY });
    browsers.push(b);
    const page = b.page;
    const waitFor = async (what, fn, arg) => {
      const end = Date.now() + waitMs;
      while (Date.now() < end) {
        const r = await page.evaluate(fn, arg);
        if (r) return r;
        await sleep(100);
      }
      const alerts = await page.evaluate(() => [...document.querySelectorAll('.alert-error')].filter((a) => !a.hidden).map((a) => a.textContent));
      throw new Error(`${what}: not within ${waitMs} ms${alerts.length ? ` (page shows: ${alerts.join(' | ')})` : ''}`);
    };
    await page.goto(`${base}/admin`, { waitUntil: 'load', timeout: waitMs });
    await waitFor('the login form', () => !!document.getElementById('login-username') && !document.getElementById('login-screen').hidden);
    await page.fill('#login-username', process.env.E2E_USERNAME || '');
    await page.fill('#login-password', process.env.E2E_PASSWORD || '');
    await page.locator('#login-button').click();
    await waitFor('the meetings list', () => !!document.querySelector('#new-meeting'));
    await page.evaluate((m) => {
      location.hash = `#/meetings/${m}/agenda`;
    }, mid);
    await waitFor('the agenda with the comments', () => document.querySelectorAll('#agenda-list .doc .doc-comments').length > 0 && !!document.getElementById('comments-summary'));
    // Open every document's comments, as the secretary would.
    await page.evaluate(() => {
      for (const d of document.querySelectorAll('#agenda-list .doc-comments')) d.open = true;
    });
    summary.documents = await page.evaluate(() =>
      [...document.querySelectorAll('#agenda-list .doc')].map((li) => {
        const box = li.querySelector('.doc-comments');
        return {
          id: li.dataset.id,
          title: li.querySelector('.doc-title').textContent,
          heading: box ? box.querySelector('summary').textContent : null,
          comments: box
            ? [...box.querySelectorAll('.comment')].map((c) => ({
                page: Number(c.dataset.page),
                page_text: c.querySelector('.comment-page').textContent,
                author: c.querySelector('.comment-author').textContent,
                time: c.querySelector('.comment-time').textContent,
                datetime: c.querySelector('.comment-time').getAttribute('datetime'),
                text: c.querySelector('.comment-text').textContent,
                stale: c.dataset.stale === 'true',
              }))
            : null,
        };
      }),
    );
    log('documents', JSON.stringify(summary.documents));
    summary.summary_text = await page.evaluate(() => document.querySelector('#comments-summary p').textContent);
    // Tablet width: nothing runs off the screen.
    summary.layout = await page.evaluate(() => {
      const w = document.documentElement.clientWidth;
      const comments = [...document.querySelectorAll('#agenda-list .comment')];
      return {
        viewport: w,
        page_scroll_width: document.documentElement.scrollWidth,
        comments_overflowing: comments.filter((c) => c.getBoundingClientRect().right > w + 1).length,
        csv_button_visible: (() => {
          const r = document.getElementById('comments-csv').getBoundingClientRect();
          return r.width > 0 && r.right <= w + 1;
        })(),
      };
    });
    if (process.env.E2E_SHOTS) await page.screenshot({ path: `${process.env.E2E_SHOTS}/comments-admin.png`, fullPage: true });
    // The CSV of every comment.
    await page.locator('#comments-csv').click();
    const saved = await waitFor('the CSV saved', async () => {
      const blobs = window.__blobs || [];
      if (!blobs.length) return null;
      const b = blobs[blobs.length - 1];
      // text() drops a byte order mark: read the first bytes apart.
      return { head: [...new Uint8Array(await b.slice(0, 3).arrayBuffer())], text: await b.text() };
    });
    summary.csv = saved.text;
    summary.csv_head = saved.head;
    const v = await cspViolations(page);
    if (v.length) throw new Error(`the admin page broke the CSP: ${v.join('; ')}`);
    summary.ok = true;
    return 0;
  } catch (e) {
    summary.reason = e && e.stack ? e.stack : String(e);
    process.stderr.write(`comments_admin.mjs: ${summary.reason}\n`);
    dumpConsoles(browsers);
    return 1;
  } finally {
    await closeBrowsers(browsers);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  }
}

watchdog(Number(process.env.E2E_WATCHDOG_MS || 150000));
process.exitCode = await main();
