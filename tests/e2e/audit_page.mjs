#!/usr/bin/env node
// The audit log page of the admin pages (#/audit) in real Chromium: an admin
// signs in, opens "Nhật ký kiểm toán" from the menu, sees the log newest
// first, pages with "Xem thêm", filters by an action prefix, checks the
// chain ("toàn vẹn"), and downloads a CSV export; no CSP violation.
//
//   node audit_page.mjs BASE_URL
//
// Environment: E2E_USERNAME, E2E_PASSWORD (an admin account), CHROMIUM_PATH,
// E2E_TIMEOUT_MS (each wait, default 15000), E2E_VERBOSE=1.
//
// Prints a JSON summary on stdout (last line); exits 0 when every step passed.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CSP_WATCH, FLAGS, cspViolations, executablePath, log, verbose, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 15000);
const summary = { ok: false, reason: null, steps: [] };

function step(name, detail) {
  summary.steps.push(name);
  log(name, detail ? JSON.stringify(detail) : '');
}

function fail(message) {
  throw new Error(message);
}

async function main() {
  const base = process.argv[2];
  if (!base) fail('usage: node audit_page.mjs BASE_URL');
  const userDataDir = mkdtempSync(join(tmpdir(), 'giaoban-audit-e2e-'));
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

    await page.goto(`${base}/admin`, { waitUntil: 'load', timeout: waitMs });
    await page.locator('#login-username').waitFor({ state: 'visible', timeout: waitMs });
    await page.fill('#login-username', process.env.E2E_USERNAME || '');
    await page.fill('#login-password', process.env.E2E_PASSWORD || '');
    await page.click('#login-button');
    const nav = page.locator('.admin-nav a[data-nav="audit"]');
    await nav.waitFor({ state: 'visible', timeout: waitMs });
    const navText = (await nav.textContent()).trim();
    if (navText !== 'Nhật ký kiểm toán') fail(`menu entry: ${navText}`);
    await nav.click();
    step('the admin opens the audit log from the menu');

    await page.locator('#audit-rows tr').first().waitFor({ timeout: waitMs });
    const seqs = async () => page.$$eval('#audit-rows tr', (rows) => rows.map((r) => Number(r.dataset.seq)));
    const first = await seqs();
    if (first.length !== 50) fail(`first page has ${first.length} rows, expected 50`);
    if (first.some((s, i) => i > 0 && s >= first[i - 1])) fail('rows not newest first');
    await page.click('#audit-more');
    await page.waitForFunction(() => document.querySelectorAll('#audit-rows tr').length > 50, null, { timeout: waitMs });
    const all = await seqs();
    const max = all[0];
    if (all.length !== max || all[all.length - 1] !== 1) fail(`after "more": ${all.length} rows for ${max} entries`);
    if (await page.isVisible('#audit-more')) fail('"more" still shown on the last page');
    step('pages newest first, "more" loads the rest', { rows: all.length });

    await page.fill('#audit-filter-action', 'meeting.*');
    await page.click('#audit-apply');
    await page.waitForFunction(
      () => {
        const rows = [...document.querySelectorAll('#audit-rows tr')];
        return rows.length > 0 && rows.every((r) => r.dataset.action.startsWith('meeting.'));
      },
      null,
      { timeout: waitMs },
    );
    while (await page.isVisible('#audit-more')) {
      const n = await page.$$eval('#audit-rows tr', (rows) => rows.length);
      await page.click('#audit-more');
      await page.waitForFunction((k) => document.querySelectorAll('#audit-rows tr').length > k, n, { timeout: waitMs });
    }
    const filtered = await page.$$eval('#audit-rows tr', (rows) => rows.length);
    if (!(await page.$$eval('#audit-rows tr', (rows) => rows.every((r) => r.dataset.action.startsWith('meeting.'))))) fail('a row outside the filter');
    step('filters by an action prefix', { rows: filtered });

    await page.click('#audit-verify');
    await page.waitForFunction(() => document.getElementById('audit-verify-result').textContent.includes('toàn vẹn'), null, { timeout: waitMs });
    step('the integrity check says the log is intact');

    const [download] = await Promise.all([page.waitForEvent('download', { timeout: waitMs }), page.click('#audit-export-csv')]);
    const path = await download.path();
    const csv = readFileSync(path, 'utf8');
    const lines = csv.trim().split(/\r?\n/);
    if (lines[0] !== 'seq,id,at,at_utc,actor,action,target_type,target_id,detail,hash') fail(`CSV header: ${lines[0]}`);
    if (lines.length - 1 !== filtered) fail(`CSV has ${lines.length - 1} rows, the page ${filtered}`);
    if (!download.suggestedFilename().endsWith('.csv')) fail(`download name ${download.suggestedFilename()}`);
    step('exports the filtered rows as CSV', { name: download.suggestedFilename(), rows: lines.length - 1 });

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
