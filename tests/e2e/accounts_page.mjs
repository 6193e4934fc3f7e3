#!/usr/bin/env node
// The accounts page of the admin pages (#/accounts) in real Chromium: an
// admin signs in, opens "Tài khoản" from the menu, disables and enables
// another account, sets it a new password, ends its sessions, changes their
// own password (the page keeps working with the new token), then signs out,
// which ends the token on the server too; no CSP violation, no page error.
//
//   node accounts_page.mjs BASE_URL
//
// Environment: E2E_USERNAME, E2E_PASSWORD (an admin account), E2E_OTHER (the
// username of another account), E2E_OTHER_PASSWORD (the new password to set
// for it), E2E_NEW_PASSWORD (the admin's new password), CHROMIUM_PATH,
// E2E_TIMEOUT_MS (each wait, default 15000), E2E_VERBOSE=1.
//
// Prints a JSON summary on stdout (last line); exits 0 when every step passed.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CSP_WATCH, FLAGS, cspViolations, executablePath, log, watchdog } from './lib.mjs';

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
  if (!base) fail('usage: node accounts_page.mjs BASE_URL');
  const other = process.env.E2E_OTHER || '';
  const userDataDir = mkdtempSync(join(tmpdir(), 'giaoban-accounts-e2e-'));
  let browser = null;
  try {
    browser = await chromium.launch({
      executablePath,
      ignoreDefaultArgs: true,
      args: [...FLAGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe'],
      timeout: 20000,
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.addInitScript(CSP_WATCH);
    const page = await context.newPage();
    page.on('pageerror', (err) => {
      process.stderr.write(`[exception] ${err.message}\n`);
      summary.page_errors = (summary.page_errors || 0) + 1;
    });
    const toastSays = async (text) =>
      page.waitForFunction((t) => !document.getElementById('toast').hidden && document.getElementById('toast').textContent.includes(t), text, { timeout: waitMs });
    const rowActive = async (want) =>
      page.waitForFunction(
        ([u, w]) => {
          const b = document.querySelector(`#accounts-table tr[data-username="${u}"] [data-active]`);
          return b && b.dataset.active === w;
        },
        [other, String(want)],
        { timeout: waitMs },
      );
    const confirm = async () => {
      await page.locator('#confirm-ok').waitFor({ state: 'visible', timeout: waitMs });
      await page.click('#confirm-ok');
    };
    const token = async () => page.evaluate(() => JSON.parse(sessionStorage.getItem('giaoban.staff') || '{}').token || '');
    const meStatus = async (t) => page.evaluate(async (tok) => (await fetch('/api/auth/me', { headers: { authorization: `Bearer ${tok}` } })).status, t);

    await page.goto(`${base}/admin`, { waitUntil: 'load', timeout: waitMs });
    await page.locator('#login-username').waitFor({ state: 'visible', timeout: waitMs });
    await page.fill('#login-username', process.env.E2E_USERNAME || '');
    await page.fill('#login-password', process.env.E2E_PASSWORD || '');
    await page.click('#login-button');
    const nav = page.locator('.admin-nav a[data-nav="accounts"]');
    await nav.waitFor({ state: 'visible', timeout: waitMs });
    const navText = (await nav.textContent()).trim();
    if (navText !== 'Tài khoản') fail(`menu entry: ${navText}`);
    await nav.click();
    await rowActive(true);
    step('the admin opens the accounts from the menu');

    await page.click(`#accounts-table tr[data-username="${other}"] button[aria-label="Khóa: ${other}"]`);
    await confirm();
    await rowActive(false);
    await toastSays('Đã khóa tài khoản');
    step('disables an account');

    await page.click(`#accounts-table tr[data-username="${other}"] button[aria-label="Mở khóa: ${other}"]`);
    await rowActive(true);
    step('enables it again');

    await page.click(`#accounts-table tr[data-username="${other}"] button[aria-label="Đặt lại mật khẩu: ${other}"]`);
    const reset = page.locator('#reset-password-form');
    await reset.waitFor({ state: 'visible', timeout: waitMs });
    await reset.locator('[name=password]').fill('ngắn');
    await reset.locator('[name=again]').fill('ngắn');
    await reset.locator('button[type=submit]').click();
    await page.waitForFunction(() => (document.querySelector('#reset-password-form .alert-error') || {}).textContent?.includes('ít nhất 8'), null, { timeout: waitMs });
    await reset.locator('[name=password]').fill(process.env.E2E_OTHER_PASSWORD || '');
    await reset.locator('[name=again]').fill(process.env.E2E_OTHER_PASSWORD || '');
    await reset.locator('button[type=submit]').click();
    await toastSays('Đã đặt mật khẩu mới');
    step('sets it a new password (a short one is refused first)');

    await page.click(`#accounts-table tr[data-username="${other}"] button[aria-label="Kết thúc mọi phiên: ${other}"]`);
    await confirm();
    await toastSays('Đã kết thúc mọi phiên');
    step('ends its sessions');

    const before = await token();
    const own = page.locator('#own-password-form');
    await own.locator('[name=old_password]').fill('sai-mật-khẩu-rồi');
    await own.locator('[name=new_password]').fill(process.env.E2E_NEW_PASSWORD || '');
    await own.locator('[name=again]').fill(process.env.E2E_NEW_PASSWORD || '');
    await own.locator('button[type=submit]').click();
    await page.waitForFunction(() => (document.querySelector('#own-password-form .alert-error') || {}).dataset?.code === 'wrong_password', null, { timeout: waitMs });
    await own.locator('[name=old_password]').fill(process.env.E2E_PASSWORD || '');
    await own.locator('button[type=submit]').click();
    await toastSays('Đã đổi mật khẩu');
    const after = await token();
    if (!after || after === before) fail('the session kept its old token');
    if ((await meStatus(before)) !== 401) fail('the token from before the change still works');
    if ((await meStatus(after)) !== 200) fail('the new token does not work');
    await page.click('.admin-nav a[data-nav="meetings"]');
    await page.locator('#view h1').waitFor({ timeout: waitMs });
    if (!(await page.isHidden('#login-screen'))) fail('signed out after the change');
    step('changes their own password; the page goes on with the new token');

    await page.click('#logout-button');
    await page.locator('#login-username').waitFor({ state: 'visible', timeout: waitMs });
    // The logout request is sent as the page leaves; give it a moment.
    let status = 0;
    for (let i = 0; i < 50 && status !== 401; i++) {
      status = await meStatus(after);
      if (status !== 401) await new Promise((r) => setTimeout(r, 100));
    }
    if (status !== 401) fail(`the token still works after signing out (${status})`);
    step('signing out ends the token on the server');

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
