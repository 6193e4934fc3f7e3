#!/usr/bin/env node
// Documents on the participants' meeting page never run in the app's origin,
// in Chromium (playwright-core) or Firefox ESR (puppeteer-core):
//
//  - the agenda panel shows each document's icon from the type the server
//    verified (`file_type`), not from the file name;
//  - there is no "Open" button; "Tải về" downloads: the page calls no
//    window.open, stays where it was, no other page of the app's origin and
//    no blob: page opens (Firefox may show the saved PDF from its file: URL
//    in its own viewer: another origin), and the blob it saves is re-typed
//    application/octet-stream;
//  - a withdrawn document is listed as withdrawn, without a download button;
//  - in /admin, the secretary replaces a document through its "Thay thế"
//    form: the old one is shown replaced, the new one with its verified type;
//  - neither page's Content-Security-Policy blocked anything.
//
//   E2E_BROWSER=chromium|firefox E2E_USERNAME=… E2E_PASSWORD=… \
//     node documents.mjs INVITATION_URL MEETING_ID DOCUMENT_ID REPLACEMENT_FILE
//
// DOCUMENT_ID is the document to replace, in the invitation's meeting.
//
// Prints a JSON summary on stdout (last line) and exits 0, or the reason on
// stderr (and a summary with "ok": false) and exits 1.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeBrowsers, cspViolations, dumpConsoles, log, openBrowser, sleep, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 15000);
const kind = process.env.E2E_BROWSER === 'firefox' ? 'firefox' : 'chromium';
const summary = { ok: false, reason: null, browser: kind };

/** Records what the page does with documents: window.open calls and saved blobs' types. */
const SPY = `(() => {
  window.__opened = [];
  window.__blobTypes = [];
  const open = window.open;
  window.open = function (...args) {
    window.__opened.push(String(args[0] || ''));
    return open.apply(window, args);
  };
  const create = URL.createObjectURL;
  URL.createObjectURL = function (obj) {
    if (obj && typeof obj.type === 'string') window.__blobTypes.push(obj.type);
    return create.call(URL, obj);
  };
})();`;

async function main() {
  const [url, mid, replaceId, replacementFile] = process.argv.slice(2);
  if (!url || !mid || !replaceId || !replacementFile) {
    process.stderr.write('usage: E2E_BROWSER=chromium|firefox E2E_USERNAME=… E2E_PASSWORD=… node documents.mjs INVITATION_URL MEETING_ID DOCUMENT_ID FILE\n');
    return 2;
  }
  const browsers = [];
  const downloads = mkdtempSync(join(tmpdir(), 'giaoban-e2e-downloads-'));
  try {
    // Firefox saves into a temp folder (removed at the end), not ~/Downloads.
    const firefoxPrefs = { 'browser.download.folderList': 2, 'browser.download.dir': downloads, 'browser.download.useDownloadDir': true };
    const b = await openBrowser(0, { browser: kind, initScript: SPY, firefoxPrefs });
    browsers.push(b);
    const page = b.page;
    await page.goto(url, { waitUntil: 'load', timeout: waitMs });
    // Wait for the agenda with its three documents.
    const deadline = Date.now() + waitMs;
    let docs = null;
    while (Date.now() < deadline) {
      docs = await page.evaluate(() => {
        const a = window.giaoban && window.giaoban.agenda && window.giaoban.agenda();
        if (!a || !a.length) return null;
        const d = a.flatMap((i) => i.documents);
        return d.length >= 3 ? d : null;
      });
      if (docs) break;
      await sleep(100);
    }
    if (!docs) throw new Error(`the agenda with three documents did not show within ${waitMs} ms`);
    summary.documents = await page.evaluate(() =>
      [...document.querySelectorAll('#agenda-panel .doc')].map((li) => ({
        title: li.querySelector('.doc-title').textContent,
        icon: li.querySelector('.doc-icon').textContent,
        type: li.querySelector('.doc-icon').dataset.type,
        withdrawn: li.dataset.withdrawn === 'true',
        download_buttons: li.querySelectorAll('.doc-download').length,
        open_buttons: li.querySelectorAll('.doc-open').length,
      })),
    );
    log('documents', JSON.stringify(summary.documents));

    // Download each document that may be downloaded.
    const urlBefore = page.url();
    const countPages = async () => (b.kind === 'firefox' ? (await b.browser.pages()).length : b.context.pages().length);
    const pagesBefore = await countPages();
    const n = await page.evaluate(() => document.querySelectorAll('#agenda-panel .doc .doc-download').length);
    for (let i = 0; i < n; i++) {
      await page.evaluate((k) => document.querySelectorAll('#agenda-panel .doc .doc-download')[k].click(), i);
      // The fetch and the save finish quickly on loopback.
      const until = Date.now() + waitMs;
      while (Date.now() < until) {
        const saved = await page.evaluate(() => window.__blobTypes.length);
        if (saved > i) break;
        await sleep(100);
      }
    }
    await sleep(500);
    summary.after_download = await page.evaluate(() => ({
      opened: window.__opened,
      blob_types: window.__blobTypes,
      alerts: [...document.querySelectorAll('#agenda-panel .alert-error')].map((a) => a.textContent),
    }));
    summary.after_download.same_url = page.url() === urlBefore;
    summary.after_download.new_pages = (await countPages()) - pagesBefore;
    const all = b.kind === 'firefox' ? await b.browser.pages() : b.context.pages();
    summary.after_download.page_urls = all.map((p) => p.url());
    // Firefox opens a downloaded PDF in its own viewer from the file it
    // saved (a file: URL, another origin): allowed. Never a page of ours
    // besides the meeting page, never a blob: page (a blob URL has our origin).
    const origin = new URL(url).origin;
    summary.after_download.same_origin_pages = all.filter((p) => p.url().startsWith(`${origin}/`)).length;
    summary.after_download.blob_pages = all.filter((p) => p.url().startsWith('blob:')).length;
    log('after download', JSON.stringify(summary.after_download));

    const v = await cspViolations(page);
    if (v.length) throw new Error(`the page broke the CSP: ${v.join('; ')}`);

    // ---- the secretary replaces a document in /admin ------------------------
    const firefox = b.kind === 'firefox';
    const fill = (sel, text) => (firefox ? page.$eval(sel, (el, t) => { el.value = t; el.dispatchEvent(new Event('input', { bubbles: true })); }, text) : page.fill(sel, text));
    const click = (sel) => (firefox ? page.click(sel) : page.locator(sel).click());
    const waitFor = async (what, fn, arg) => {
      const end = Date.now() + waitMs;
      while (Date.now() < end) {
        const r = await page.evaluate(fn, arg);
        if (r) return r;
        await sleep(100);
      }
      const alerts = await page.evaluate(() => [...document.querySelectorAll('.alert-error')].filter((a) => !a.hidden).map((a) => a.textContent));
      throw new Error(`${what}: not within ${waitMs} ms${alerts.length ? ` (page shows: ${alerts.join(' | ')})` : ''}`);
    };
    await page.goto(`${origin}/admin`, { waitUntil: 'load', timeout: waitMs });
    await waitFor('the login form', () => !!document.getElementById('login-username') && !document.getElementById('login-screen').hidden);
    await fill('#login-username', process.env.E2E_USERNAME || '');
    await fill('#login-password', process.env.E2E_PASSWORD || '');
    await click('#login-button');
    await waitFor('the meetings list', () => !!document.querySelector('#new-meeting'));
    await page.evaluate((m) => {
      location.hash = `#/meetings/${m}/agenda`;
    }, mid);
    const sel = `#agenda-list .doc[data-id="${replaceId}"]`;
    await waitFor('the document in the agenda tab', (s2) => !!document.querySelector(s2), sel);
    await click(`${sel} .doc-replace > summary`);
    if (firefox) {
      const input = await page.$(`${sel} .replace-form [name=file]`);
      await input.uploadFile(replacementFile);
    } else {
      await page.setInputFiles(`${sel} .replace-form [name=file]`, replacementFile);
    }
    await fill(`${sel} .replace-form [name=reason]`, 'Sửa số liệu');
    await click(`${sel} .replace-form [type=submit]`);
    summary.replaced = await waitFor('the replaced document and its replacement', (id) => {
      const old = document.querySelector(`#agenda-list .doc[data-id="${id}"]`);
      if (!old || old.dataset.withdrawn !== 'true') return null;
      const note = old.querySelector('.doc-withdrawn-note');
      const fresh = [...document.querySelectorAll('#agenda-list .doc')].filter((d) => d.dataset.withdrawn !== 'true' && d.dataset.id !== id);
      return {
        note: note ? note.textContent : '',
        old_manage_forms: old.querySelectorAll('.doc-replace, .doc-withdraw').length,
        in_force: fresh.map((d) => ({ title: d.querySelector('.doc-title').textContent, type: d.querySelector('.doc-icon').dataset.type })),
      };
    }, replaceId);
    log('replaced', JSON.stringify(summary.replaced));
    const va = await cspViolations(page);
    if (va.length) throw new Error(`the admin page broke the CSP: ${va.join('; ')}`);
    summary.ok = true;
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  } catch (e) {
    summary.reason = e && e.message ? e.message : String(e);
    process.stderr.write(`e2e failed: ${summary.reason}\n`);
    dumpConsoles(browsers);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 1;
  } finally {
    await closeBrowsers(browsers);
    rmSync(downloads, { recursive: true, force: true });
  }
}

watchdog(waitMs * 6 + 60000);

process.exitCode = await main();
