#!/usr/bin/env node
// End to end in real Chromium: a committee member answers a written opinion
// request ("phiếu lấy ý kiến") from its link /opinion#<token>. The page
// shows the question, the deadline counting down and the secretariat's
// reminder; "other" without a comment is refused on the page; with one it
// is sent and shown, the form goes away (no changes allowed), and stays so
// after a reload. Then the secretariat's page #/opinions/ID shows the
// answer and who has not answered. No CSP violation.
//
//   node opinion_page.mjs OPINION_URL
//
// Environment: CHROMIUM_PATH, E2E_TIMEOUT_MS (each wait, default 20000),
// E2E_USERNAME, E2E_PASSWORD, E2E_OPINION (the request id), E2E_VERBOSE=1.
// Prints a JSON summary on stdout (last line); exits 0 or 1.

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
  return el && !el.closest('[hidden]') && el.textContent ? el.textContent : null;
};

async function main() {
  const summary = { ok: false, reason: null };
  const browsers = [];
  try {
    if (!url) throw new Error('usage: opinion_page.mjs OPINION_URL');
    const b = await openBrowser(0);
    browsers.push(b);
    const page = b.page;
    await page.goto(url, { waitUntil: 'load', timeout: waitMs });
    summary.before = await until(page, 'the answer form', shownText, 'opinion-current');
    summary.question = await page.evaluate(() => document.getElementById('opinion-question').textContent);
    summary.countdown = await page.evaluate(() => document.getElementById('opinion-countdown').textContent);
    summary.reminder = await until(page, 'the reminder', shownText, 'opinion-reminders');
    summary.legend = await page.evaluate(() => document.querySelector('#opinion-form legend').textContent);
    await page.click('input[name="opinion"][value="other"]');
    await page.click('#opinion-send');
    summary.missing_comment = await until(page, 'the missing-comment message', shownText, 'opinion-form-error');
    await page.fill('#opinion-comment', 'Đề nghị bổ sung nguồn kinh phí');
    await page.click('#opinion-send');
    summary.after = await until(page, 'the sent answer', () => {
      const t = document.getElementById('opinion-current').textContent;
      return t.includes('Ý kiến khác') ? t : null;
    });
    summary.form_hidden_after = await page.evaluate(() => document.getElementById('opinion-form').hidden);
    await page.reload({ waitUntil: 'load', timeout: waitMs });
    summary.reloaded = await until(page, 'the stored answer', () => {
      const t = document.getElementById('opinion-current').textContent;
      return t.includes('kinh phí') ? t : null;
    });
    summary.form_hidden_reloaded = await page.evaluate(() => document.getElementById('opinion-form').hidden);
    summary.csp = await cspViolations(page);

    // The secretariat's page of the request.
    const admin = await b.context.newPage();
    const origin = new URL(url).origin;
    await admin.goto(`${origin}/admin`, { waitUntil: 'load', timeout: waitMs });
    await admin.locator('#login-username').waitFor({ state: 'visible', timeout: waitMs });
    await admin.fill('#login-username', process.env.E2E_USERNAME || '');
    await admin.fill('#login-password', process.env.E2E_PASSWORD || '');
    await admin.click('#login-button');
    await until(admin, 'the meetings list after signing in', () => !!document.querySelector('#new-meeting'));
    await admin.goto(`${origin}/admin#/opinions`, { waitUntil: 'load', timeout: waitMs });
    summary.admin_list = await until(admin, 'the list of requests', () => {
      const row = document.querySelector('#opinion-table tbody tr');
      return row ? row.textContent : null;
    });
    await admin.goto(`${origin}/admin#/opinions/${encodeURIComponent(process.env.E2E_OPINION || '')}`, { waitUntil: 'load', timeout: waitMs });
    summary.admin = await until(admin, 'the answers of the request', () => {
      const na = document.getElementById('opinion-not-answered');
      const cell = document.querySelector('#opinion-recipients tr[data-name="Nguyễn Văn A"] td.opinion-answer');
      return na && cell ? { not_answered: na.textContent, answer: cell.textContent, tally: document.getElementById('opinion-tally').textContent } : null;
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
