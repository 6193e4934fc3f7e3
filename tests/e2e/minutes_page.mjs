#!/usr/bin/env node
// The secretariat's minutes tab ("Biên bản") in real Chromium: the
// secretary signs in, opens the meeting's "Biên bản" tab, opens the minutes
// (a sandboxed frame with the poll in it), clicks "Đóng dấu biên bản",
// confirms, and sees version 1 in the list of sealed versions; downloads
// it (the bytes go to E2E_OUT). No CSP violation, no page error.
//
//   node minutes_page.mjs BASE_URL MEETING_ID
//
// Environment: E2E_USERNAME, E2E_PASSWORD (a secretary account), E2E_OUT
// (where the downloaded sealed PDF is written), E2E_EXPECT (a text the
// minutes must show), CHROMIUM_PATH, E2E_TIMEOUT_MS (each wait, default
// 15000), E2E_VERBOSE=1.
//
// Prints a JSON summary on stdout (last line); exits 0 when every step passed.

import { copyFileSync } from 'node:fs';
import { staffPageCheck, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 15000);

async function main() {
  const [base, meetingId] = process.argv.slice(2);
  if (!base || !meetingId) throw new Error('usage: node minutes_page.mjs BASE_URL MEETING_ID');
  const path = `/admin#/meetings/${encodeURIComponent(meetingId)}/minutes`;
  return staffPageCheck({ name: 'minutes', base, path, waitMs }, async ({ page, step, fail, env }) => {
    const out = env('E2E_OUT');
    const expect = env('E2E_EXPECT');
    const tab = page.locator('.tabs a[data-tab="minutes"]');
    await tab.waitFor({ state: 'visible', timeout: waitMs });
    const tabText = (await tab.textContent()).trim();
    if (tabText !== 'Biên bản') fail(`tab: ${tabText}`);
    await page.locator('#minutes-none').waitFor({ timeout: waitMs });
    step('the secretary opens the minutes tab: nothing sealed yet', { tab: tabText });

    await page.click('#minutes-open');
    const frame = page.locator('#minutes-frame');
    await frame.waitFor({ timeout: waitMs });
    const shown = await page.frameLocator('#minutes-frame').locator('body').textContent({ timeout: waitMs });
    if (!shown.includes('BIÊN BẢN') || !shown.includes(expect)) fail(`the minutes do not show ${expect}: ${shown.slice(0, 400)}`);
    step('opens the minutes: they list the vote');

    await page.click('#minutes-seal');
    await page.locator('#confirm-dialog[open]').waitFor({ timeout: waitMs });
    const question = await page.textContent('#confirm-text');
    await page.click('#confirm-ok');
    const row = page.locator('#minutes-versions-table tbody tr[data-version="1"]');
    await row.waitFor({ timeout: waitMs });
    const rowText = (await row.textContent()).trim();
    if (!rowText.includes('Bản 1')) fail(`row: ${rowText}`);
    step('seals the minutes after a confirmation: version 1 is listed', { question, row: rowText });

    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: waitMs }),
      row.locator('button[data-version="1"]').click(),
    ]);
    copyFileSync(await download.path(), out);
    step('downloads the sealed version', { name: download.suggestedFilename() });
  });
}

watchdog(waitMs * 8 + 60000);

process.exitCode = await main();
