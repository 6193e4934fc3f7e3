#!/usr/bin/env node
// End to end in real Chromium: an invitee answers "Xác nhận tham dự" from
// its join page, before joining. The form shows "not answered"; choosing
// "send a substitute" shows the name and position fields; sending without
// a name is refused on the page; with a name it is sent and shown; after a
// reload the page shows the stored answer. No CSP violation.
//
//   node rsvp_page.mjs INVITATION_URL
//
// Environment: CHROMIUM_PATH, E2E_TIMEOUT_MS (each wait, default 20000),
// E2E_VERBOSE=1. Prints a JSON summary on stdout (last line); exits 0 or 1.

import { closeBrowsers, cspViolations, dumpConsoles, openBrowser, sleep, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 20000);
const [url] = process.argv.slice(2);

/** Runs `fn` in the page until it returns a truthy value. */
async function until(page, what, fn, arg) {
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    const v = await page.evaluate(fn, arg);
    if (v) return v;
    await sleep(200);
  }
  throw new Error(`${what}: not within ${waitMs} ms`);
}

const shownText = (id) => {
  const el = document.getElementById(id);
  return el && !el.closest('[hidden]') ? el.textContent : null;
};

async function main() {
  const summary = { ok: false, reason: null };
  const browsers = [];
  try {
    if (!url) throw new Error('usage: rsvp_page.mjs INVITATION_URL');
    const b = await openBrowser(0);
    browsers.push(b);
    const page = b.page;
    await page.goto(url, { waitUntil: 'load', timeout: waitMs });
    summary.before = await until(page, 'the answer form', shownText, 'rsvp-current');
    summary.legend = await page.evaluate(() => document.querySelector('#rsvp-form legend').textContent);
    await page.click('input[name="rsvp"][value="substitute"]');
    summary.fields_shown = await page.evaluate(() => !document.getElementById('rsvp-sub-fields').closest('[hidden]'));
    summary.reason_hidden = await page.evaluate(() => !!document.getElementById('rsvp-reason-field').closest('[hidden]'));
    await page.click('#rsvp-send');
    summary.missing_name = await until(page, 'the missing-name message', shownText, 'rsvp-error');
    await page.fill('#rsvp-sub-name', 'Nguyễn Văn B');
    await page.fill('#rsvp-sub-position', 'Phó Chủ tịch UBND xã');
    await page.click('#rsvp-send');
    summary.after = await until(page, 'the sent answer', () => {
      const t = document.getElementById('rsvp-current').textContent;
      return t.includes('Nguyễn Văn B') ? t : null;
    });
    await page.reload({ waitUntil: 'load', timeout: waitMs });
    summary.reloaded = await until(page, 'the stored answer', () => {
      const t = document.getElementById('rsvp-current').textContent;
      return t.includes('Nguyễn Văn B') ? t : null;
    });
    summary.checked = await page.evaluate(() => {
      const c = document.querySelector('input[name="rsvp"]:checked');
      return c ? c.value : null;
    });
    summary.csp = await cspViolations(page);

    // The secretariat's invitations tab: the answer column and the summary.
    const admin = await b.context.newPage();
    await admin.goto(`${new URL(url).origin}/admin`, { waitUntil: 'load', timeout: waitMs });
    await admin.locator('#login-username').waitFor({ state: 'visible', timeout: waitMs });
    await admin.fill('#login-username', process.env.E2E_USERNAME || '');
    await admin.fill('#login-password', process.env.E2E_PASSWORD || '');
    await admin.click('#login-button');
    await until(admin, 'the meetings list after signing in', () => !!document.querySelector('#new-meeting'));
    await admin.goto(`${new URL(url).origin}/admin#/meetings/${encodeURIComponent(process.env.E2E_MEETING || '')}/invitations`, { waitUntil: 'load', timeout: waitMs });
    summary.admin = await until(admin, 'the answers in the invitations tab', () => {
      const sum = document.getElementById('invite-answers');
      const cell = document.querySelector('#invitations-table td.invite-answer');
      return sum && cell ? { summary: sum.textContent, cell: cell.textContent, answer: cell.dataset.answer } : null;
    });
    summary.admin_csp = await cspViolations(admin);
    summary.ok = true;
  } catch (e) {
    summary.reason = e && e.message ? e.message : String(e);
    process.stderr.write(`e2e failed: ${summary.reason}\n`);
    dumpConsoles(browsers);
  } finally {
    await closeBrowsers(browsers);
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return summary.ok ? 0 : 1;
}

watchdog(waitMs * 6 + 30000);
process.exitCode = await main();
