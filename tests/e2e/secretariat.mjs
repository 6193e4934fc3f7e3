#!/usr/bin/env node
// End-to-end test of the secretariat pages and the participants' agenda in
// real Chromium:
//
//  1. the secretary signs in at /admin (a wrong password first: the error is
//     shown in Vietnamese), creates a meeting, adds an agenda item, uploads a
//     signed PDF and sees the badge "Hợp lệ" with the signer's name;
//  2. schedules the meeting (confirmation dialog) and creates an invitation;
//  3. a participant opens the invitation link: the agenda panel shows the item
//     and the document marked valid, and downloads exactly the uploaded bytes;
//  4. the participant joins; the secretary adds a second item; the panel
//     shows it without a reload (the server's `agenda_changed` push);
//  5. the secretary uploads a tampered copy as a new version of the document:
//     both pages show "Không hợp lệ" for it, and two versions are listed;
//  6. the secretary withdraws the document with a reason: the participant's
//     panel shows it withdrawn, without a download button;
//  7. the Live tab (the operator's roster) listed the joined participant;
//     a copied link joins with the same invitation and replaces it: the tab
//     shows the replacement (old and new session) by itself, highlighted.
//
// Uploaded files never open as pages of this origin: an HTML file named
// bao-cao.pdf is refused with a Vietnamese message, the participant's panel
// has no "Open" button, a download opens no page, and the file icon shows
// the type the server verified.
//
//   node secretariat.mjs BASE_URL SIGNED_PDF TAMPERED_PDF
//
// Environment: E2E_USERNAME, E2E_PASSWORD (the staff account; never printed),
// CHROMIUM_PATH (default /usr/bin/chromium), E2E_TIMEOUT_MS (each wait,
// default 15000), E2E_SCREENSHOT_DIR (PNGs of the pages, desktop 1280x800
// and tablet 768x1024), E2E_VERBOSE=1 (browser console on stderr).
//
// Prints a JSON summary on stdout (last line) and exits 0, or prints the
// reason on stderr (and a summary with "ok": false) and exits 1.

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { chromium } from 'playwright-core';
import { CSP_WATCH, FLAGS, cspViolations, executablePath, log, verbose, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 15000);
const shotDir = process.env.E2E_SCREENSHOT_DIR || '';
const summary = { ok: false, reason: null, steps: [] };

function step(name, detail) {
  summary.steps.push(name);
  log(name, detail ? JSON.stringify(detail) : '');
}

function fail(message) {
  throw new Error(message);
}

async function shot(page, name) {
  if (!shotDir) return;
  await page.screenshot({ path: join(shotDir, `${name}.png`), fullPage: true });
}

/** Waits for `fn` (run in the page) to return a truthy value; returns it. */
async function until(page, what, fn, arg) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout: waitMs, polling: 100 });
    return await handle.jsonValue();
  } catch (e) {
    const alerts = await page
      .locator('.alert-error:visible')
      .allTextContents()
      .catch(() => []);
    fail(`${what}: not within ${waitMs} ms${alerts.length ? ` (page shows: ${alerts.join(' | ')})` : ''}`);
  }
  return null;
}

function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

async function main() {
  const [base, pdfPath, tamperedPath] = process.argv.slice(2);
  const username = process.env.E2E_USERNAME;
  const password = process.env.E2E_PASSWORD;
  if (!base || !pdfPath || !tamperedPath || !username || !password) {
    process.stderr.write('usage: E2E_USERNAME=… E2E_PASSWORD=… node secretariat.mjs BASE_URL SIGNED_PDF TAMPERED_PDF\n');
    return 2;
  }
  const pdf = readFileSync(pdfPath);
  const pdfSha = sha256(pdf);
  const meetingTitle = `Giao ban thử nghiệm ${new Date().toISOString().slice(0, 16)}`;
  const itemTitle = 'Báo cáo tình hình kinh tế - xã hội tháng 11';
  const item2Title = 'Kết luận của Chủ tịch UBND tỉnh';
  const docTitle = 'Báo cáo số 123/BC-UBND';
  const guest = 'UBND huyện Cư Jút';

  const userDataDir = mkdtempSync(join(tmpdir(), 'giaoban-e2e-secretariat-'));
  const consoleLines = [];
  let browser = null;
  try {
    browser = await chromium.launch({
      executablePath,
      ignoreDefaultArgs: true,
      args: [...FLAGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe'],
      timeout: 20000,
    });
    const newPage = async (name, viewport) => {
      const context = await browser.newContext({ viewport, acceptDownloads: true });
      await context.addInitScript(CSP_WATCH);
      const page = await context.newPage();
      page.on('console', (msg) => {
        const line = `[${name} ${msg.type()}] ${msg.text()}`;
        consoleLines.push(line);
        if (verbose) process.stderr.write(`${line}\n`);
      });
      page.on('pageerror', (err) => {
        const line = `[${name} exception] ${err.message}`;
        consoleLines.push(line);
        process.stderr.write(`${line}\n`);
        summary.page_errors = (summary.page_errors || 0) + 1;
      });
      return page;
    };

    // ---- 1. the secretary -------------------------------------------------
    const admin = await newPage('admin', { width: 1280, height: 800 });
    await admin.goto(`${base}/admin`, { waitUntil: 'load', timeout: waitMs });
    await admin.locator('#login-username').waitFor({ state: 'visible', timeout: waitMs });
    summary.lang = await admin.evaluate(() => document.documentElement.lang);
    await admin.fill('#login-username', username);
    await admin.fill('#login-password', `${password}-sai`);
    await admin.click('#login-button');
    const wrong = await until(admin, 'an error for a wrong password', () => {
      const e = document.getElementById('login-error');
      return e && !e.hidden && e.textContent ? { code: e.dataset.code, text: e.textContent } : null;
    });
    summary.wrong_password = wrong;
    step('wrong password refused', wrong);
    await shot(admin, 'admin-login-error');

    await admin.fill('#login-password', password);
    await admin.click('#login-button');
    await until(admin, 'the meetings list after signing in', () => !!document.querySelector('#new-meeting'));
    summary.user = await admin.evaluate(() => window.giaobanAdmin.user);
    step('signed in', { role: summary.user && summary.user.role });

    await admin.click('#new-meeting');
    await admin.locator('#meeting-form').waitFor({ timeout: waitMs });
    await admin.fill('#meeting-form [name=title]', meetingTitle);
    await admin.selectOption('#meeting-form [name=kind]', 'regular');
    await admin.fill('#meeting-form [name=location]', 'Phòng họp số 1, UBND tỉnh');
    await admin.click('#meeting-form [type=submit]');
    await until(admin, 'the agenda tab of the new meeting', () => !!document.getElementById('agenda-add'));
    const meetingId = await admin.evaluate(() => window.giaobanAdmin.route && window.giaobanAdmin.route.id);
    summary.meeting_id = meetingId;
    step('meeting created', { meetingId });

    await admin.fill('#agenda-add [name=title]', itemTitle);
    await admin.fill('#agenda-add [name=presenter]', 'Sở Kế hoạch và Đầu tư');
    await admin.fill('#agenda-add [name=duration_minutes]', '30');
    await admin.click('#agenda-add [type=submit]');
    await until(admin, 'the new agenda item', (title) =>
      [...document.querySelectorAll('#agenda-list .agenda-title')].some((h) => h.textContent === title), itemTitle);
    summary.agenda_total = await admin.locator('#agenda-total').textContent();
    step('agenda item added', { total: summary.agenda_total });

    const item = admin.locator('#agenda-list .agenda-item').filter({ hasText: itemTitle });
    await item.locator('.doc-upload > summary').click();
    // HTML with a script, named like a PDF: refused, with a clear message.
    await item.locator('.doc-upload .upload-form [name=file]').setInputFiles({
      name: 'bao-cao.pdf',
      mimeType: 'application/pdf',
      buffer: Buffer.from('<!doctype html><script>window.opener && window.opener.postMessage(sessionStorage.getItem("giaoban.staff"), "*")</script>'),
    });
    await item.locator('.doc-upload .upload-form [type=submit]').click();
    summary.refused_upload = await until(admin, 'the refusal of HTML named bao-cao.pdf', () => {
      const a = document.querySelector('.doc-upload .upload-form > .alert-error');
      return a && !a.hidden && a.dataset.code ? { code: a.dataset.code, text: a.textContent } : null;
    });
    step('HTML named bao-cao.pdf refused', summary.refused_upload);
    await item.locator('.doc-upload .upload-form [name=file]').setInputFiles(pdfPath);
    await item.locator('.doc-upload .upload-form [name=title]').fill(docTitle);
    await item.locator('.doc-upload .upload-form [name=access][value=everyone]').check();
    await item.locator('.doc-upload .upload-form [type=submit]').click();
    const badge = await until(admin, 'the uploaded document with its signature badge', (title) => {
      for (const d of document.querySelectorAll('#agenda-list .doc')) {
        if (d.querySelector('.doc-title').textContent !== title) continue;
        const sig = d.querySelector(':scope > .sig');
        if (!sig) return null;
        return {
          status: sig.dataset.status,
          badge: sig.querySelector('.sig-badge').textContent,
          signer: (sig.querySelector('.sig-who') || {}).textContent || '',
          sha256: (d.querySelector('.sha') || {}).textContent || '',
        };
      }
      return null;
    }, docTitle);
    summary.admin_badge = badge;
    step('signed PDF uploaded', badge);
    await admin.locator('#agenda-list .doc .sig > summary').first().click();
    await shot(admin, 'admin-agenda-desktop');
    await admin.setViewportSize({ width: 768, height: 1024 });
    await shot(admin, 'admin-agenda-tablet');
    await admin.setViewportSize({ width: 1280, height: 800 });

    // Schedule the meeting: the button asks for confirmation first.
    await admin.click('[data-tab=info]');
    await admin.locator('[data-transition=scheduled]').click();
    await admin.locator('#confirm-dialog[open]').waitFor({ timeout: waitMs });
    await admin.click('#confirm-ok');
    await until(admin, 'the meeting scheduled', () => {
      const b = document.querySelector('.meeting-head .status-badge');
      return b && b.dataset.status === 'scheduled';
    });
    step('meeting scheduled');
    // Start it: before the start a delegate would wait on a waiting screen.
    await admin.locator('[data-transition=in_progress]').click();
    await admin.locator('#confirm-dialog[open]').waitFor({ timeout: waitMs });
    await admin.click('#confirm-ok');
    await until(admin, 'the meeting started', () => {
      const b = document.querySelector('.meeting-head .status-badge');
      return b && b.dataset.status === 'in_progress';
    });
    step('meeting started');

    await admin.click('[data-tab=invitations]');
    await admin.locator('#invitation-form').waitFor({ timeout: waitMs });
    await admin.fill('#invitation-form [name=name]', guest);
    await admin.selectOption('#invitation-form [name=role]', 'delegate');
    await admin.click('#invitation-form [type=submit]');
    const inviteUrl = await until(admin, 'the new invitation link', () => {
      const i = document.querySelector('#invite-created .invite-url');
      return i && i.value ? i.value : null;
    });
    summary.invitation_listed = await admin.evaluate((name) =>
      [...document.querySelectorAll('#invitations-table tbody tr')].some((tr) => tr.textContent.includes(name)), guest);
    step('invitation created');
    await shot(admin, 'admin-invitations');

    // ---- 3. the participant -------------------------------------------------
    const guestPage = await newPage('participant', { width: 1024, height: 768 });
    await guestPage.goto(inviteUrl, { waitUntil: 'load', timeout: waitMs });
    const seen = await until(guestPage, 'the agenda and its document on the meeting page', (title) => {
      const a = window.giaoban.agenda();
      if (!a) return null;
      const it = a.find((i) => i.title === title);
      return it && it.documents.length > 0 && it.documents[0].status ? a : null;
    }, itemTitle);
    summary.participant_agenda = seen;
    step('participant sees the agenda', seen);
    await shot(guestPage, 'participant-join');

    const [download] = await Promise.all([
      guestPage.waitForEvent('download', { timeout: waitMs }),
      guestPage.locator('#agenda-panel .doc .doc-download').first().click(),
    ]);
    const got = readFileSync(await download.path());
    summary.download = { filename: download.suggestedFilename(), size: got.length, sha256_matches: sha256(got) === pdfSha };
    step('participant downloaded the document', summary.download);

    // The document never opens as a page of this origin: no "Open", a
    // download opens no page and leaves the page where it was, and the icon
    // shows the verified type.
    const pagesBefore = guestPage.context().pages().length;
    const urlBefore = guestPage.url();
    const [again] = await Promise.all([
      guestPage.waitForEvent('download', { timeout: waitMs }),
      guestPage.locator('#agenda-panel .doc .doc-download').first().click(),
    ]);
    await again.path();
    await guestPage.waitForTimeout(300);
    summary.opened = await guestPage.evaluate(() => {
      const d = document.querySelector('#agenda-panel .doc');
      const icon = d && d.querySelector('.doc-icon');
      return {
        open_buttons: document.querySelectorAll('.doc-open').length,
        icon_type: icon ? icon.dataset.type : null,
        icon_text: icon ? icon.textContent : null,
      };
    });
    summary.opened.new_pages = guestPage.context().pages().length - pagesBefore;
    summary.opened.same_url = guestPage.url() === urlBefore;
    summary.opened.download_name = again.suggestedFilename();
    step('the download opened no page', summary.opened);

    // ---- 4. live update ------------------------------------------------------
    await until(guestPage, 'the Join button', () => {
      const b = document.getElementById('join-button');
      return b && !b.hidden && !b.disabled;
    });
    await guestPage.click('#join-button');
    await until(guestPage, 'joined the meeting', () => !!(window.giaoban.client && window.giaoban.client.self));
    await guestPage.click('#agenda-button');
    await until(guestPage, 'the agenda side panel', () => !document.getElementById('agenda-panel').hidden);
    step('participant joined, agenda panel open');
    summary.guest_id = await guestPage.evaluate(() => window.giaoban.client.self.id);

    // The operator's Live tab lists the joined participant (GET .../live).
    await admin.click('[data-tab=live]');
    summary.live_tab = await until(admin, 'the participant on the Live tab', (name) => {
      const row = [...document.querySelectorAll('#live-participants tbody tr')].find((r) => r.cells[0].textContent === name);
      return row
        ? {
            id: row.dataset.id,
            kind: row.dataset.kind,
            cells: [...row.cells].map((c) => c.textContent),
            tab: document.querySelector('[data-tab=live]').textContent,
            updated: document.getElementById('live-updated').textContent,
            replacements: document.querySelectorAll('#live-replacements tbody tr').length,
          }
        : null;
    }, guest);
    step('the Live tab shows the participant', summary.live_tab);
    await shot(admin, 'admin-live');

    await admin.click('[data-tab=agenda]');
    await admin.locator('#agenda-add').waitFor({ timeout: waitMs });
    await admin.fill('#agenda-add [name=title]', item2Title);
    await admin.fill('#agenda-add [name=duration_minutes]', '10');
    await admin.click('#agenda-add [type=submit]');
    await until(admin, 'the second agenda item', (title) =>
      [...document.querySelectorAll('#agenda-list .agenda-title')].some((h) => h.textContent === title), item2Title);
    const live = await until(guestPage, 'the second item pushed to the participant', (title) => {
      const a = window.giaoban.agenda();
      return a && a.some((i) => i.title === title) ? a.map((i) => i.title) : null;
    }, item2Title);
    summary.live_update = { titles: live, notice: await guestPage.locator('#agenda-panel .agenda-notice').textContent() };
    step('agenda change pushed', summary.live_update);
    await shot(guestPage, 'participant-meeting');

    // ---- 5. a new version, tampered ------------------------------------------------
    const doc = admin.locator('#agenda-list .doc').filter({ hasText: docTitle });
    await doc.locator('.versions > summary').click();
    await doc.locator('.version-upload [name=file]').setInputFiles(tamperedPath);
    await doc.locator('.version-upload [type=submit]').click();
    const v2 = await until(admin, 'the tampered version with its badge', (title) => {
      for (const d of document.querySelectorAll('#agenda-list .doc')) {
        if (d.querySelector('.doc-title').textContent !== title) continue;
        const versions = d.querySelectorAll('.doc-version');
        const sig = d.querySelector(':scope > .sig');
        if (versions.length < 2 || !sig) return null;
        return {
          status: sig.dataset.status,
          badge: sig.querySelector('.sig-badge').textContent,
          versions: versions.length,
          reasons: [...sig.querySelectorAll('.sig-reasons li')].map((li) => li.textContent),
        };
      }
      return null;
    }, docTitle);
    summary.admin_new_version = v2;
    step('tampered version uploaded', v2);
    const guestV2 = await until(guestPage, 'the new version pushed to the participant', (title) => {
      const a = window.giaoban.agenda() || [];
      for (const it of a) for (const d of it.documents) if (d.title === title && d.status !== 'valid') return d;
      return null;
    }, docTitle);
    summary.participant_new_version = guestV2;
    step('participant sees the new version', guestV2);
    await admin.locator('#agenda-list .doc .sig > summary').first().click();
    await shot(admin, 'admin-new-version');

    // ---- 6. withdraw ---------------------------------------------------------------
    const reason = 'Gửi nhầm bản dự thảo';
    await doc.locator('.doc-withdraw > summary').click();
    await doc.locator('.withdraw-form [name=reason]').fill(reason);
    await doc.locator('.withdraw-form [type=submit]').click();
    await admin.locator('#confirm-dialog[open]').waitFor({ timeout: waitMs });
    await admin.click('#confirm-ok');
    summary.admin_withdrawn = await until(admin, 'the document marked withdrawn', (title) => {
      for (const d of document.querySelectorAll('#agenda-list .doc')) {
        if (d.querySelector('.doc-title').textContent !== title) continue;
        const note = d.querySelector('.doc-withdrawn-note');
        return d.dataset.withdrawn === 'true' && note ? { note: note.textContent, withdraw_buttons: d.querySelectorAll('.doc-withdraw').length } : null;
      }
      return null;
    }, docTitle);
    step('document withdrawn', summary.admin_withdrawn);
    summary.participant_withdrawn = await until(guestPage, 'the withdrawal pushed to the participant', (title) => {
      for (const li of document.querySelectorAll('#agenda-panel .doc')) {
        if (li.querySelector('.doc-title').textContent !== title || li.dataset.withdrawn !== 'true') continue;
        return {
          note: (li.querySelector('.doc-withdrawn-note') || {}).textContent || '',
          download_buttons: li.querySelectorAll('.doc-download').length,
        };
      }
      return null;
    }, docTitle);
    step('participant sees it withdrawn', summary.participant_withdrawn);
    await shot(guestPage, 'participant-withdrawn');

    // ---- 7. a copied link replaces the participant: the Live tab says so -----------
    await admin.click('[data-tab=live]');
    await admin.locator('#live-updated').waitFor({ timeout: waitMs });
    const copied = await newPage('copied-link', { width: 1024, height: 768 });
    await copied.goto(inviteUrl, { waitUntil: 'load', timeout: waitMs });
    await until(copied, 'the Join button of the copied link', () => {
      const b = document.getElementById('join-button');
      return b && !b.hidden && !b.disabled;
    });
    await copied.click('#join-button');
    summary.copied_id = await until(copied, 'the copied link joined', () => window.giaoban.client && window.giaoban.client.self && window.giaoban.client.self.id);
    // The Live tab reads the roster again by itself (every 5 s): no click.
    summary.live_replacement = await until(admin, 'the replacement on the Live tab', (name) => {
      const row = [...document.querySelectorAll('#live-replacements tbody tr.live-replacement')].find((r) => r.cells[1].textContent === name);
      const alert = document.getElementById('live-replaced-alert');
      return row && alert
        ? { cells: [...row.cells].map((c) => c.textContent), alert: alert.textContent, background: getComputedStyle(row.cells[0]).backgroundColor }
        : null;
    }, guest);
    step('the Live tab shows the replacement', summary.live_replacement);
    await admin.setViewportSize({ width: 768, height: 1024 });
    await shot(admin, 'admin-live-replaced-tablet');
    summary.live_tablet_overflow = await admin.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    await admin.setViewportSize({ width: 1280, height: 800 });

    // The server's Content-Security-Policy blocked nothing either page needed.
    for (const [name, p] of [['admin', admin], ['participant', guestPage], ['copied-link', copied]]) {
      const v = await cspViolations(p);
      if (v.length) fail(`the ${name} page broke the CSP: ${v.join('; ')}`);
    }
    step('no CSP violation on the admin and participant pages');
    summary.expected = { meeting: meetingTitle, item: itemTitle, item2: item2Title, document: docTitle, pdf_sha256: pdfSha, pdf_name: basename(pdfPath), reason };
    summary.ok = true;
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  } catch (e) {
    summary.reason = e && e.message ? e.message : String(e);
    process.stderr.write(`e2e failed: ${summary.reason}\n`);
    for (const line of consoleLines.slice(-40)) process.stderr.write(`${line}\n`);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 1;
  } finally {
    if (browser) await browser.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

watchdog(waitMs * 20 + 60000);

process.exitCode = await main();
