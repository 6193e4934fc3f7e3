#!/usr/bin/env node
// Saved groups and printed links in real Chromium, as a clerk of the
// secretariat (issue 22): sign in, on "Điểm cầu" save a group of units
// ("Khối kinh tế": a name, three units ticked after filtering), open the
// meeting's invitations, invite the saved group in one step, open "In mã
// tham dự và mã QR": one card per invitation with its QR code and short
// code. Saves a PNG of every card's QR code as Chromium drew it (the Rust
// test decodes them with an independent decoder), checks the print layout
// (two cards a row, no admin chrome, a card never split) and prints the
// page to PDF (A4). No CSP violation, no page error.
//
//   node print_links.mjs BASE_URL MEETING_ID OUT_DIR
//
// Environment: E2E_USERNAME, E2E_PASSWORD (a secretary), CHROMIUM_PATH,
// E2E_TIMEOUT_MS (each wait, default 15000), E2E_GROUP_UNITS (the names of
// the units to put in the group, separated by "|").
//
// Prints a JSON summary on stdout (last line): clicks, invited (names),
// cards [{name, short_code, url, png}], print_columns, pdf (its path).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CSP_WATCH, FLAGS, cspViolations, executablePath, log, watchdog } from './lib.mjs';

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
  const [base, meetingId, outDir] = process.argv.slice(2);
  if (!base || !meetingId || !outDir) fail('usage: node print_links.mjs BASE_URL MEETING_ID OUT_DIR');
  const units = (process.env.E2E_GROUP_UNITS || '').split('|').filter(Boolean);
  if (units.length === 0) fail('E2E_GROUP_UNITS is empty');
  const userDataDir = mkdtempSync(join(tmpdir(), 'giaoban-print-e2e-'));
  let browser = null;
  try {
    browser = await chromium.launch({
      executablePath,
      ignoreDefaultArgs: true,
      args: [...FLAGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe'],
      timeout: 20000,
    });
    // Twice the pixels: each QR module is several pixels wide in the shots.
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 2 });
    await context.addInitScript(CSP_WATCH);
    const page = await context.newPage();
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

    // Save a group of units.
    await click('.admin-nav a[data-nav="bridge-points"]');
    await page.locator('#unit-group-form').waitFor({ timeout: waitMs });
    await page.fill('#unit-group-name', 'Khối kinh tế');
    for (const name of units) {
      await page.fill('#unit-group-form .unit-group-filter', name);
      const box = page.locator('#unit-group-form .unit-group-unit:not([hidden]) input[type=checkbox]');
      if ((await box.count()) !== 1) fail(`the filter "${name}" shows ${await box.count()} units`);
      summary.clicks += 1;
      await box.check({ timeout: waitMs });
    }
    const chosen = (await page.textContent('#unit-group-form .unit-group-count')).trim();
    if (!chosen.includes(String(units.length))) fail(`count shown: ${chosen}`);
    await click('#unit-group-save');
    await page.waitForFunction(() => [...document.querySelectorAll('#unit-groups-table .unit-group-name')].some((td) => td.textContent === 'Khối kinh tế'), null, { timeout: waitMs });
    step('saves the group "Khối kinh tế"', { units, chosen });

    // Invite it in one step.
    await page.goto(`${base}/admin#/meetings/${encodeURIComponent(meetingId)}/invitations`, { waitUntil: 'load', timeout: waitMs });
    summary.clicks += 1; // opening the meeting's invitations tab
    await page.locator('#invite-saved-group').waitFor({ timeout: waitMs });
    const before = await page.$$eval('#invitations-table tbody tr', (r) => r.length);
    const option = await page.$eval('#invite-saved-group-select', (s) => s.options[s.selectedIndex].textContent);
    if (!option.startsWith('Khối kinh tế')) fail(`the group offered: ${option}`);
    await click('#invite-saved-group');
    await page.waitForFunction((n) => document.querySelectorAll('#invitations-table tbody tr').length === n, before + units.length, { timeout: waitMs });
    summary.invited = await page.$$eval('#invitations-table tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
    for (const name of units) if (!summary.invited.includes(name)) fail(`${name} was not invited`);
    step('invites the saved group in one click', { before, after: summary.invited.length });

    // The printable page.
    await click('#invite-print');
    await page.locator('#print-cards .print-card').first().waitFor({ timeout: waitMs });
    await page.waitForFunction(() => [...document.querySelectorAll('.print-qr')].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: waitMs });
    const cards = page.locator('#print-cards .print-card');
    const n = await cards.count();
    if (n !== summary.invited.length) fail(`${n} cards for ${summary.invited.length} invitations`);
    summary.cards = [];
    for (let i = 0; i < n; i += 1) {
      const card = cards.nth(i);
      const png = join(outDir, `qr-${i}.png`);
      writeFileSync(png, await card.locator('.print-qr').screenshot({ timeout: waitMs }));
      summary.cards.push({
        name: (await card.locator('.print-name').textContent()).trim(),
        short_code: (await card.locator('.print-code').textContent()).trim(),
        url: await card.getAttribute('data-url'),
        png,
      });
    }
    step('shows one card per invitation with its QR code and short code', { cards: n });

    // On paper: two cards a row, nothing of the admin page, A4.
    await page.emulateMedia({ media: 'print' });
    const layout = await page.evaluate(() => {
      const boxes = [...document.querySelectorAll('.print-card')].map((c) => c.getBoundingClientRect());
      const hidden = (sel) => {
        const e = document.querySelector(sel);
        return !e || getComputedStyle(e).display === 'none';
      };
      return {
        columns: new Set(boxes.map((b) => Math.round(b.left))).size,
        chrome_hidden: hidden('.topbar') && hidden('.admin-nav') && hidden('.print-toolbar'),
      };
    });
    summary.print_columns = layout.columns;
    if (layout.columns !== 2) fail(`${layout.columns} columns on paper`);
    if (!layout.chrome_hidden) fail('the admin chrome is printed');
    summary.pdf = join(outDir, 'links.pdf');
    await page.pdf({ path: summary.pdf, format: 'A4', printBackground: true, preferCSSPageSize: true });
    await page.emulateMedia({ media: 'screen' });
    step('prints two cards a row on A4', layout);

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
