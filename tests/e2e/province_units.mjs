#!/usr/bin/env node
// Preparing a province-wide meeting in real Chromium, as a clerk of the
// secretariat (issue 22): sign in, open "Điểm cầu", choose the province's
// list of 150 units (CSV with BOM, semicolons, Vietnamese level names),
// preview it (a name already registered is flagged), tick "import the
// duplicates anyway", confirm; then on the meeting's invitations tab click
// "Mời tất cả xã/phường/đặc khu" once and download the links as CSV. Counts
// the clicks (and file choices) the clerk needed; no CSP violation.
//
//   node province_units.mjs BASE_URL MEETING_ID CSV_FILE
//
// Environment: E2E_USERNAME, E2E_PASSWORD (a secretary), CHROMIUM_PATH,
// E2E_TIMEOUT_MS (each wait, default 15000), E2E_VERBOSE=1.
//
// Prints a JSON summary on stdout (last line): steps, clicks, invited,
// exported_rows; exits 0 when every step passed.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CSP_WATCH, FLAGS, cspViolations, executablePath, log, verbose, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 15000);
const summary = { ok: false, reason: null, steps: [], clicks: 0 };

function step(name, detail) {
  summary.steps.push(name);
  log(name, detail ? JSON.stringify(detail) : '');
}

function fail(message) {
  throw new Error(message);
}

async function main() {
  const [base, meetingId, csvFile] = process.argv.slice(2);
  if (!base || !meetingId || !csvFile) fail('usage: node province_units.mjs BASE_URL MEETING_ID CSV_FILE');
  const userDataDir = mkdtempSync(join(tmpdir(), 'giaoban-units-e2e-'));
  let browser = null;
  try {
    browser = await chromium.launch({
      executablePath,
      ignoreDefaultArgs: true,
      args: [...FLAGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe'],
      timeout: 20000,
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
    await context.addInitScript(CSP_WATCH);
    const page = await context.newPage();
    page.on('console', (msg) => {
      if (verbose) process.stderr.write(`[console ${msg.type()}] ${msg.text()}\n`);
    });
    page.on('pageerror', (err) => {
      process.stderr.write(`[exception] ${err.message}\n`);
      summary.page_errors = (summary.page_errors || 0) + 1;
    });
    const click = async (selector) => {
      summary.clicks += 1;
      await page.click(selector, { timeout: waitMs });
    };

    await page.goto(`${base}/admin`, { waitUntil: 'load', timeout: waitMs });
    await page.locator('#login-username').waitFor({ state: 'visible', timeout: waitMs });
    await page.fill('#login-username', process.env.E2E_USERNAME || '');
    await page.fill('#login-password', process.env.E2E_PASSWORD || '');
    await click('#login-button');
    await page.locator('.admin-nav a[data-nav="bridge-points"]').waitFor({ state: 'visible', timeout: waitMs });
    await click('.admin-nav a[data-nav="bridge-points"]');
    await page.locator('#unit-import-file').waitFor({ timeout: waitMs });
    const levels = await page.$$eval('#bridge-point-form select[name=level] option', (os) => os.map((o) => o.value));
    if (levels.includes('district')) fail(`a new unit is offered "district": ${levels}`);
    if ((await page.inputValue('#bridge-point-form select[name=level]')) !== 'commune') fail('the default level is not commune');
    step('the bridge point form offers today\'s levels, commune by default', { levels });

    summary.clicks += 1; // choosing the file
    await page.setInputFiles('#unit-import-file', csvFile);
    await click('#unit-import-preview');
    await page.locator('#unit-import-result .import-duplicates li').first().waitFor({ timeout: waitMs });
    const dups = await page.$$eval('#unit-import-result .import-duplicates li', (li) => li.map((x) => x.textContent));
    if (dups.length !== 1 || !dups[0].includes('đã có trong danh sách')) fail(`duplicates shown: ${dups}`);
    if (!(await page.isDisabled('#unit-import-confirm'))) fail('confirm enabled before accepting duplicates');
    const rowsBefore = await page.$$eval('#bridge-points-table tbody tr', (r) => r.length);
    if (rowsBefore !== 1) fail(`the preview wrote: ${rowsBefore} rows`);
    step('the preview flags the registered name and writes nothing', { duplicates: dups });

    await click('#unit-import-allow');
    const label = await page.textContent('#unit-import-confirm');
    if (!label.includes('150')) fail(`confirm button: ${label}`);
    await click('#unit-import-confirm');
    await page.waitForFunction(() => document.querySelectorAll('#bridge-points-table tbody tr').length === 151, null, { timeout: waitMs });
    const wards = await page.$$eval('#bridge-points-table .level-ward', (x) => x.length);
    if (wards !== 5) fail(`${wards} wards shown`);
    step('imports 150 units in one go', { label });

    await page.goto(`${base}/admin#/meetings/${encodeURIComponent(meetingId)}/invitations`, { waitUntil: 'load', timeout: waitMs });
    summary.clicks += 1; // opening the meeting's invitations tab
    await page.locator('#invite-group-communes').waitFor({ timeout: waitMs });
    const text = (await page.textContent('#invite-group-communes')).trim();
    if (text !== 'Mời tất cả xã/phường/đặc khu') fail(`button text: ${text}`);
    await click('#invite-group-communes');
    await page.waitForFunction(() => document.querySelectorAll('#invitations-table tbody tr').length >= 146, null, { timeout: waitMs });
    summary.invited = await page.$$eval('#invitations-table tbody tr', (r) => r.length);
    step('invites every commune, ward and special zone in one click', { invited: summary.invited });

    const [download] = await Promise.all([page.waitForEvent('download', { timeout: waitMs }), click('#invite-export')]);
    const csv = readFileSync(await download.path(), 'utf8').replace(/^\uFEFF/, '');
    const lines = csv.trim().split(/\r?\n/);
    if (lines[0] !== 'name,level,code,operator_phone,link,expires,short_code') fail(`CSV header: ${lines[0]}`);
    summary.exported_rows = lines.length - 1;
    if (summary.exported_rows !== summary.invited) fail(`CSV has ${summary.exported_rows} rows, the page ${summary.invited}`);
    if (!lines.slice(1).every((l) => l.includes('/join#'))) fail('a row without a link');
    // Each row ends with its short code, as printed (ABCD-EFGH).
    if (!lines.slice(1).every((l) => /,[A-Z0-9]{4}-[A-Z0-9]{4}$/.test(l))) fail('a row without a short code');
    step('downloads the links as CSV', { name: download.suggestedFilename(), rows: summary.exported_rows });

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
    if (browser) await browser.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

watchdog(waitMs * 10 + 60000);

process.exitCode = await main();
