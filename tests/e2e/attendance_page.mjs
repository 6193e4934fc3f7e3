#!/usr/bin/env node
// The secretariat's record of a meeting in real Chromium at a portrait
// tablet's width (768 px): the secretary opens "Điểm danh", sees the joined
// bridge point present with its declared leader, marks a member "vắng có lý
// do" with a note, and the summary changes (absent - 1, excused + 1);
// downloads the CSV; opens "Biểu quyết" and sees the closed named vote
// with its outcome and ballots. Nothing wider than the screen, no CSP
// violation, no page error.
//
//   node attendance_page.mjs BASE_URL MEETING_ID
//
// Environment: E2E_USERNAME, E2E_PASSWORD (a secretary account),
// E2E_BRIDGE_INVITATION (the joined bridge point's invitation id),
// E2E_LEADER (the leader it declared), E2E_MEMBER_INVITATION (the member to
// excuse), E2E_POLL_ID (a closed named poll), CHROMIUM_PATH, E2E_TIMEOUT_MS
// (each wait, default 15000), E2E_VERBOSE=1, E2E_SHOTS (a folder: full-page
// screenshots of both tabs go there).
//
// Prints a JSON summary on stdout (last line); exits 0 when every step passed.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CSP_WATCH, FLAGS, cspViolations, executablePath, log, watchdog, verbose } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 15000);
const summary = { ok: false, reason: null, steps: [] };

function step(name, detail) {
  summary.steps.push(name);
  log(name, detail ? JSON.stringify(detail) : '');
}

function fail(message) {
  throw new Error(message);
}

function env(name) {
  const v = process.env[name];
  if (!v) fail(`${name} is not set`);
  return v;
}

/** The summary's numbers, by `data-stat`. */
async function stats(page) {
  return page.$$eval('#attendance-summary .att-stat', (boxes) =>
    Object.fromEntries(boxes.map((b) => [b.dataset.stat, b.querySelector('.att-num').textContent.trim()])),
  );
}

/** Fails when the page scrolls sideways. */
async function fitsWidth(page, what) {
  const w = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  if (w.scroll > w.inner) fail(`${what}: the page is ${w.scroll} px wide on a ${w.inner} px screen`);
}

async function main() {
  const [base, meetingId] = process.argv.slice(2);
  if (!base || !meetingId) fail('usage: node attendance_page.mjs BASE_URL MEETING_ID');
  const bridgeInv = env('E2E_BRIDGE_INVITATION');
  const leader = env('E2E_LEADER');
  const memberInv = env('E2E_MEMBER_INVITATION');
  const pollId = env('E2E_POLL_ID');
  const userDataDir = mkdtempSync(join(tmpdir(), 'giaoban-attendance-e2e-'));
  let browser = null;
  try {
    browser = await chromium.launch({
      executablePath,
      ignoreDefaultArgs: true,
      args: [...FLAGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe'],
      timeout: 20000,
    });
    const context = await browser.newContext({ viewport: { width: 768, height: 1024 }, acceptDownloads: true });
    await context.addInitScript(CSP_WATCH);
    const page = await context.newPage();
    page.on('console', (msg) => {
      if (verbose) process.stderr.write(`[console ${msg.type()}] ${msg.text()}\n`);
    });
    page.on('pageerror', (err) => {
      process.stderr.write(`[exception] ${err.message}\n`);
      summary.page_errors = (summary.page_errors || 0) + 1;
    });

    await page.goto(`${base}/admin#/meetings/${encodeURIComponent(meetingId)}`, { waitUntil: 'load', timeout: waitMs });
    await page.locator('#login-username').waitFor({ state: 'visible', timeout: waitMs });
    await page.fill('#login-username', process.env.E2E_USERNAME || '');
    await page.fill('#login-password', process.env.E2E_PASSWORD || '');
    await page.click('#login-button');
    const tab = page.locator('.tabs a[data-tab="attendance"]');
    await tab.waitFor({ state: 'visible', timeout: waitMs });
    const tabText = (await tab.textContent()).trim();
    if (tabText !== 'Điểm danh') fail(`tab: ${tabText}`);
    await tab.click();
    step('the secretary opens the attendance tab', { tab: tabText });

    // The joined bridge point: present (connected), with its leader.
    const bridgeRow = page.locator(`#attendance-table tr[data-invitation-id="${bridgeInv}"]`);
    await bridgeRow.waitFor({ timeout: waitMs });
    const bridge = await bridgeRow.evaluate((r) => ({ present: r.dataset.present, state: r.dataset.state, declared: r.querySelector('.att-declared').textContent, text: r.textContent }));
    if (bridge.present !== 'true' || bridge.state !== 'connected') fail(`bridge row: ${JSON.stringify(bridge)}`);
    if (!bridge.declared.includes(leader)) fail(`declared: ${bridge.declared}, expected ${leader}`);
    if (!bridge.text.includes('Đang kết nối')) fail(`bridge row text: ${bridge.text}`);
    step('the joined bridge point is present with its declared leader', { declared: bridge.declared });

    const before = await stats(page);
    if (before.excused !== '0') fail(`excused before: ${JSON.stringify(before)}`);
    await fitsWidth(page, 'attendance tab');

    // Mark the member excused with a note.
    const memberRow = page.locator(`#attendance-table tr[data-invitation-id="${memberInv}"]`);
    const mstate = await memberRow.getAttribute('data-state');
    if (mstate !== 'absent') fail(`member row state: ${mstate}`);
    await memberRow.locator('button[data-action="excused"]').click();
    const note = memberRow.locator('.att-mark-form input[name="note"]');
    await note.waitFor({ timeout: waitMs });
    await note.fill('Đi công tác, được Chủ tịch đồng ý');
    await fitsWidth(page, 'the mark form');
    await memberRow.locator('.att-mark-form .att-save').click();
    await page.waitForFunction(
      (inv) => {
        const r = document.querySelector(`#attendance-table tr[data-invitation-id="${inv}"]`);
        return r && r.dataset.mark === 'excused' && r.dataset.state === 'excused';
      },
      memberInv,
      { timeout: waitMs },
    );
    const after = await stats(page);
    if (Number(after.excused) !== Number(before.excused) + 1) fail(`excused: ${before.excused} -> ${after.excused}`);
    if (Number(after.absent) !== Number(before.absent) - 1) fail(`absent: ${before.absent} -> ${after.absent}`);
    const noteText = await memberRow.locator('.att-note').textContent();
    if (!noteText.includes('Đi công tác')) fail(`note: ${noteText}`);
    step('the secretary marks a member excused and the summary changes', { before, after });
    if (process.env.E2E_SHOTS) await page.screenshot({ path: join(process.env.E2E_SHOTS, 'attendance-768.png'), fullPage: true });

    // The refresh (10 s) keeps the mark.
    const stamp = await page.textContent('#attendance-updated');
    await page.waitForFunction((s) => document.getElementById('attendance-updated').textContent !== s, stamp, { timeout: 15000 });
    if ((await memberRow.getAttribute('data-mark')) !== 'excused') fail('the mark is gone after the refresh');
    step('the tab refreshes by itself');

    const [download] = await Promise.all([page.waitForEvent('download', { timeout: waitMs }), page.click('#attendance-csv')]);
    const csv = readFileSync(await download.path(), 'utf8').replace(/^\uFEFF/, '');
    const lines = csv.trim().split(/\r?\n/);
    if (!lines[0].startsWith('name,role,unit,level,present,mark,note,leader')) fail(`CSV header: ${lines[0]}`);
    if (!lines.some((l) => l.includes(leader))) fail('the CSV lacks the leader');
    if (!lines.some((l) => l.includes('excused'))) fail('the CSV lacks the mark');
    step('downloads the attendance as CSV', { rows: lines.length - 1 });

    // The votes tab: the closed named vote, its outcome and ballots.
    await page.click('.tabs a[data-tab="votes"]');
    const card = page.locator(`.poll-card[data-poll-id="${pollId}"]`);
    await card.waitFor({ timeout: waitMs });
    const poll = await card.evaluate((c) => ({
      status: c.dataset.status,
      passed: c.dataset.passed,
      result: c.querySelector('.poll-result') ? c.querySelector('.poll-result').textContent : '',
      tally: [...c.querySelectorAll('.poll-tally li')].map((li) => `${li.dataset.choice}=${li.querySelector('strong').textContent}`),
      ballots: [...c.querySelectorAll('.poll-ballots tbody tr')].map((r) => r.dataset.choice),
      how: c.querySelector('.poll-how') ? c.querySelector('.poll-how').textContent : '',
    }));
    if (poll.status !== 'closed' || poll.passed !== 'true' || poll.result !== 'Thông qua') fail(`poll: ${JSON.stringify(poll)}`);
    if (poll.tally.join(',') !== 'for=2,against=0,abstain=0') fail(`tally: ${poll.tally}`);
    if (poll.ballots.length !== 2 || poll.ballots.some((c) => c !== 'for')) fail(`ballots: ${poll.ballots}`);
    if (!poll.how.includes('Túc số')) fail(`how: ${poll.how}`);
    await fitsWidth(page, 'votes tab');
    if (process.env.E2E_SHOTS) await page.screenshot({ path: join(process.env.E2E_SHOTS, 'votes-768.png'), fullPage: true });
    step('the votes tab shows the outcome and the ballots', poll);

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
