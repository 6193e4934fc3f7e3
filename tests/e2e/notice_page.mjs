#!/usr/bin/env node
// The notice of conclusions and the documents' deadline on a meeting's
// page in real Chromium: the secretary signs in, opens the meeting (an
// ended one whose notice is overdue), sees the due date and "Quá hạn ... ngày
// làm việc" in red, and the documents' deadline missed with the late
// document named; opens the notice (a sandboxed frame, styled by
// /assets/document.css: the Liberation Serif / Times family applies) with
// the conclusion in it; downloads the PDF; marks the notice issued with a
// number after a confirmation and sees "Đã ban hành". No CSP violation, no
// page error.
//
//   node notice_page.mjs BASE_URL MEETING_ID
//
// Environment: E2E_USERNAME, E2E_PASSWORD (a secretary account), E2E_EXPECT
// (a text the notice must show), E2E_LATE (the late document's title),
// E2E_OUT (where the downloaded PDF is written), CHROMIUM_PATH,
// E2E_TIMEOUT_MS (each wait, default 15000), E2E_VERBOSE=1.
//
// Prints a JSON summary on stdout (last line); exits 0 when every step passed.

import { copyFileSync } from 'node:fs';
import { staffPageCheck, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 15000);

async function main() {
  const [base, meetingId] = process.argv.slice(2);
  if (!base || !meetingId) throw new Error('usage: node notice_page.mjs BASE_URL MEETING_ID');
  const path = `/admin#/meetings/${encodeURIComponent(meetingId)}/info`;
  return staffPageCheck({ name: 'notice', base, path, waitMs }, async ({ page, step, fail, env }) => {
    const expect = env('E2E_EXPECT');
    const late = env('E2E_LATE');
    const out = env('E2E_OUT');

    const countdown = page.locator('#notice-countdown');
    await countdown.waitFor({ timeout: waitMs });
    const due = (await page.textContent('#notice-due')).trim();
    const cd = (await countdown.textContent()).trim();
    const cls = await countdown.getAttribute('class');
    const color = await countdown.evaluate((n) => getComputedStyle(n).color);
    if (!/^Quá hạn \d+ ngày làm việc$/.test(cd)) fail(`countdown: ${cd}`);
    if (!cls.includes('deadline-overdue') || color !== 'rgb(198, 40, 40)') fail(`not red: ${cls} ${color}`);
    if (!due.includes('Hạn ban hành: 17/01/2026')) fail(`due: ${due}`);
    step('the notice is overdue, in red', { due, color });

    const missed = page.locator('#docdl-missed');
    await missed.waitFor({ timeout: waitMs });
    const missedText = (await missed.textContent()).trim();
    if (!missedText.includes(late)) fail(`late documents: ${missedText}`);
    const line = (await page.textContent('#docdl-line')).trim();
    if (!line.includes('06/01/2026')) fail(`documents' deadline: ${line}`);
    step("the documents' deadline is missed, the late document named", { line, missed: missedText });

    await page.click('#notice-open');
    await page.locator('#notice-frame').waitFor({ timeout: waitMs });
    const body = page.frameLocator('#notice-frame').locator('body');
    const shown = await body.textContent({ timeout: waitMs });
    if (!shown.includes('THÔNG BÁO') || !shown.includes(expect)) fail(`the notice does not show ${expect}: ${shown.slice(0, 400)}`);
    // The style sheet applied (linked, the inline one being refused by the page's policy).
    const font = await body.evaluate((b) => getComputedStyle(b).fontFamily);
    if (!/Times New Roman/.test(font)) fail(`the notice is not styled: font ${font}`);
    step('opens the notice: styled, the conclusion in it', { font });

    const [download] = await Promise.all([page.waitForEvent('download', { timeout: waitMs }), page.click('#notice-pdf')]);
    copyFileSync(await download.path(), out);
    step('downloads the PDF', { name: download.suggestedFilename() });

    await page.fill('#notice-number', '12');
    await page.click('#notice-issue');
    await page.locator('#confirm-dialog[open]').waitFor({ timeout: waitMs });
    await page.click('#confirm-ok');
    const issued = page.locator('#notice-issued');
    await issued.waitFor({ timeout: waitMs });
    const issuedText = (await issued.textContent()).trim();
    if (!issuedText.startsWith('Đã ban hành lúc') || !issuedText.includes('số 12')) fail(`issued: ${issuedText}`);
    if (await page.locator('#notice-countdown').count()) fail('the countdown is still shown');
    step('marks it issued after a confirmation', { issued: issuedText });
  });
}

watchdog(waitMs * 8 + 60000);

process.exitCode = await main();
