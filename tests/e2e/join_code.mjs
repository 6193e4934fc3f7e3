#!/usr/bin/env node
// A bridge point that got its short code ("mã tham dự") by phone types it
// on the join page, in Chromium (playwright-core) or Firefox ESR
// (puppeteer-core): /join without a link shows "Nhập mã tham dự" and whom
// to call; a wrong code is refused with a message; the right one (typed as
// heard: lower case, a space) opens the invitation, which shows the
// meeting's time, place and status before joining. No CSP violation.
//
//   E2E_BROWSER=chromium|firefox node join_code.mjs BASE_URL CODE
//
// Environment: E2E_EXPECT_NAME (the invitation's name), E2E_EXPECT_PLACE
// (the meeting's place), E2E_EXPECT_CONTACT (server.contact),
// E2E_TIMEOUT_MS (each wait, default 15000).
//
// Prints a JSON summary on stdout (last line).

import { closeBrowsers, cspViolations, log, openBrowser, sleep, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 15000);
const kind = process.env.E2E_BROWSER === 'firefox' ? 'firefox' : 'chromium';
const summary = { ok: false, reason: null, browser: kind, steps: [] };

function step(name, detail) {
  summary.steps.push(name);
  log(name, detail ? JSON.stringify(detail) : '');
}

function fail(message) {
  throw new Error(message);
}

/** Reads the page (`read`) until `ok(state)` (navigations allowed). */
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
    await sleep(150);
  }
  fail(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
  return last;
}

const read = () => {
  const $ = (id) => document.getElementById(id);
  const shown = (id) => !!$(id) && !$(id).hidden;
  return {
    hash: window.location.hash.length > 1,
    code_form: shown('code-form'),
    code_error: shown('code-error') ? { code: $('code-error').dataset.code, text: $('code-error').textContent } : null,
    invite_error: shown('invite-error') ? $('invite-error').textContent : null,
    contact: shown('invite-contact') ? $('invite-contact').textContent : null,
    details: shown('invite-details'),
    name: $('invite-name') ? $('invite-name').textContent : null,
    when: $('invite-when') ? $('invite-when').textContent : null,
    where: $('invite-where') ? $('invite-where').textContent : null,
    status: $('invite-status') && !$('invite-status').hidden ? $('invite-status').textContent : null,
  };
};

async function main() {
  const [base, code] = process.argv.slice(2);
  if (!base || !code) fail('usage: E2E_BROWSER=chromium|firefox node join_code.mjs BASE_URL CODE');
  const b = await openBrowser(0, { browser: kind });
  try {
    const { page } = b;
    await page.goto(`${base}/join`, { waitUntil: 'load', timeout: waitMs });
    let s = await poll(page, 'the code form and the contact', (v) => v.code_form && v.contact);
    if (!s.invite_error || !s.invite_error.includes('mã tham dự')) fail(`the message without a link: ${s.invite_error}`);
    const contact = process.env.E2E_EXPECT_CONTACT || '';
    if (contact && !s.contact.includes(contact)) fail(`contact shown: ${s.contact}`);
    step('the join page without a link asks for the code and names whom to call', { message: s.invite_error, contact: s.contact });

    await page.type('#code-input', 'zzzz zzzz');
    await page.click('#code-submit');
    s = await poll(page, 'the wrong code refused', (v) => v.code_error);
    if (s.code_error.code !== 'invitation_not_found') fail(`wrong code: ${JSON.stringify(s.code_error)}`);
    step('a wrong code is refused', s.code_error);

    await page.evaluate(() => {
      document.getElementById('code-input').value = '';
    });
    await page.type('#code-input', code);
    await page.click('#code-submit');
    s = await poll(page, 'the invitation of the code', (v) => v.hash && v.details && v.name);
    const name = process.env.E2E_EXPECT_NAME || '';
    if (name && s.name !== name) fail(`invitation opened: ${s.name}`);
    if (!s.when || s.when === '—' || !/\d\d\/\d\d\/\d{4} \d\d:\d\d/.test(s.when)) fail(`the meeting's time: ${s.when}`);
    const place = process.env.E2E_EXPECT_PLACE || '';
    if (place && s.where !== place) fail(`the meeting's place: ${s.where}`);
    if (!s.status) fail('no status shown');
    if (s.code_form) fail('the code form stays after the code worked');
    summary.name = s.name;
    summary.when = s.when;
    summary.where = s.where;
    summary.status = s.status;
    step('the right code opens the invitation, with the time, place and status', { name: s.name, when: s.when, where: s.where, status: s.status });

    const v = await cspViolations(page);
    if (v.length) fail(`CSP violations: ${v.join('; ')}`);
    step('no CSP violation');
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

watchdog(waitMs * 8 + 60000);

process.exitCode = await main();
