#!/usr/bin/env node
// An invitation's in-app notices ("Thông báo") on the join page, in real
// Chromium at tablet size (768x1024): a unit opens its join link; the
// notices box (#join-notices, web/assets/notices.js) becomes visible, is
// headed "Thông báo" and lists the document added after the invitation
// by its title ("Tài liệu mới: ..."), and the invitation's own notice
// ("Giấy mời họp đã được gửi."), newest first; the box is inside the
// viewport's width. No CSP violation, no page error.
//
//   node notices.mjs JOIN_URL
//
// Environment: E2E_DOC_TITLE (the document's title), CHROMIUM_PATH,
// E2E_TIMEOUT_MS (each wait, default 15000).
//
// Prints a JSON summary on stdout (last line): heading, items [{kind,
// change, text, time}], steps.

import { closeBrowsers, cspViolations, log, openBrowser, sleep, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 15000);
const summary = { ok: false, reason: null, steps: [] };

function step(name, detail) {
  summary.steps.push(name);
  log(name, detail ? JSON.stringify(detail) : '');
}

function fail(message) {
  throw new Error(message);
}

const read = () => {
  const box = document.getElementById('join-notices');
  if (!box) return { box: false };
  const r = box.getBoundingClientRect();
  const h = box.querySelector('h2');
  return {
    box: true,
    hidden: box.hidden,
    visible: !box.hidden && r.width > 0 && r.height > 0,
    right: r.right,
    width: window.innerWidth,
    heading: h ? h.textContent : null,
    items: [...box.querySelectorAll('.notice-list li')].map((li) => ({
      kind: li.dataset.kind || null,
      change: li.dataset.change || null,
      text: (li.querySelector('.notice-text') || {}).textContent || '',
      time: (li.querySelector('time') || {}).textContent || '',
    })),
  };
};

/** Reads the notices box until `ok(state)` (navigations allowed). */
async function poll(page, what, ok) {
  const end = Date.now() + waitMs;
  let last = null;
  while (Date.now() < end) {
    try {
      last = await page.evaluate(read);
      if (ok(last)) return last;
    } catch (_) {
      // The page is navigating: ask again.
    }
    await sleep(200);
  }
  fail(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
  return last;
}

async function main() {
  const [url] = process.argv.slice(2);
  if (!url) fail('usage: node notices.mjs JOIN_URL');
  const title = process.env.E2E_DOC_TITLE || '';
  if (!title) fail('E2E_DOC_TITLE is empty');
  const b = await openBrowser(0, { viewport: { width: 768, height: 1024 } });
  try {
    const { page } = b;
    page.on('pageerror', (err) => {
      process.stderr.write(`[exception] ${err.message}\n`);
      summary.page_errors = (summary.page_errors || 0) + 1;
    });
    await page.goto(url, { waitUntil: 'load', timeout: waitMs });
    const s = await poll(page, 'the notices with the document', (v) => v.visible && v.items.some((i) => i.kind === 'documents_changed'));
    summary.heading = s.heading;
    summary.items = s.items;
    if (s.heading !== 'Thông báo') fail(`heading: ${s.heading}`);
    const doc = s.items.filter((i) => i.kind === 'documents_changed');
    if (doc.length !== 1) fail(`${doc.length} document notices: ${JSON.stringify(s.items)}`);
    if (doc[0].change !== 'added' || doc[0].text !== `Tài liệu mới: ${title}`) fail(`the document notice: ${JSON.stringify(doc[0])}`);
    if (!/\d\d:\d\d/.test(doc[0].time)) fail(`the document notice's time: ${doc[0].time}`);
    const inv = s.items.filter((i) => i.kind === 'invitation');
    if (inv.length !== 1 || inv[0].text !== 'Giấy mời họp đã được gửi.') fail(`the invitation notice: ${JSON.stringify(s.items)}`);
    if (s.items.indexOf(doc[0]) > s.items.indexOf(inv[0])) fail(`not newest first: ${JSON.stringify(s.items)}`);
    if (s.right > s.width + 1) fail(`the notices overflow the tablet's width: right ${s.right} > ${s.width}`);
    step('the join page shows "Thông báo" with the new document and the invitation', { items: s.items });

    const v = await cspViolations(page);
    if (v.length) fail(`CSP violations: ${v.join('; ')}`);
    if (summary.page_errors) fail(`${summary.page_errors} page errors`);
    step('no CSP violation, no page error');
    summary.ok = true;
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  } catch (e) {
    summary.reason = e && e.message ? e.message : String(e);
    process.stderr.write(`e2e failed: ${summary.reason}\n`);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 1;
  } finally {
    await closeBrowsers([b]);
  }
}

watchdog(waitMs * 4 + 60000);

process.exitCode = await main();
