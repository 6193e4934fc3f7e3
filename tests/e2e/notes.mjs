#!/usr/bin/env node
// A member edits and deletes its own notes in the document viewer of the
// meeting page (Chromium, tablet-sized 768x1024):
//
//  - the member opens the document from the agenda panel ("Xem"), turns to
//    page 2 and opens "Ghi chú": its own note and comment (written over
//    REST) carry "Sửa" and "Xóa"; another member's comment carries neither;
//  - "Sửa": a draft survives a page turn away and back, "Lưu thay đổi"
//    saves it (PATCH /api/notes/{id});
//  - "Xóa" asks in place; "Hủy" keeps the comment, "Xóa hẳn" deletes it
//    (DELETE /api/notes/{id});
//  - the page's Content-Security-Policy blocked nothing.
//
// The caller checks over REST what is stored afterwards.
//
//   node notes.mjs INVITATION_URL DOCUMENT_ID NOTE_ID COMMENT_ID OTHERS_COMMENT_ID
//
// Prints a JSON summary on stdout (last line) and exits 0, or the reason on
// stderr (and a summary with "ok": false) and exits 1.

import { closeBrowsers, cspViolations, dumpConsoles, joinMeeting, log, openBrowser, sleep, watchdog } from './lib.mjs';

// Generous: on a CI machine busy building, pdf.js and its worker may take
// long to load the first time.
const waitMs = Number(process.env.E2E_TIMEOUT_MS || 60000);
const summary = { ok: false, reason: null };

const view = (page) => page.evaluate(() => (window.giaoban && window.giaoban.viewer ? window.giaoban.viewer() : null));

/** Waits until `pred(viewer summary)` holds; returns the summary. */
async function until(page, what, pred) {
  const deadline = Date.now() + waitMs;
  let last = null;
  while (Date.now() < deadline) {
    last = await view(page).catch(() => null);
    if (last && pred(last)) return last;
    await sleep(50);
  }
  throw new Error(`${what}: not within ${waitMs} ms (last: ${JSON.stringify(last && { ...last, renderLog: undefined })})`);
}

/** Waits until `fn(arg)` in the page is truthy; returns it. */
async function waitDom(page, what, fn, arg) {
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    const r = await page.evaluate(fn, arg);
    if (r) return r;
    await sleep(50);
  }
  const err = await page.evaluate(() => {
    const e = document.querySelector('#doc-viewer .alert-error');
    return e && !e.hidden ? e.textContent : '';
  });
  throw new Error(`${what}: not within ${waitMs} ms${err ? ` (the viewer says: ${err})` : ''}`);
}

/** What the notes list shows: per note, its text and which buttons it has. */
const listed = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll('#doc-viewer .note-list .note')].map((li) => ({
      id: li.dataset.id,
      text: (li.querySelector('.note-body') || {}).textContent || null,
      editing: !!li.querySelector('.note-edit-text'),
      buttons: [...li.querySelectorAll('button')].map((b) => b.className.split(' ').find((c) => c.startsWith('note-'))),
    })),
  );

const click = (page, sel) => page.evaluate((s) => document.querySelector(s).click(), sel);

async function main() {
  const [url, docId, noteId, commentId, othersId] = process.argv.slice(2);
  if (!url || !docId || !noteId || !commentId || !othersId) {
    process.stderr.write('usage: node notes.mjs INVITATION_URL DOCUMENT_ID NOTE_ID COMMENT_ID OTHERS_COMMENT_ID\n');
    return 2;
  }
  const browsers = [];
  try {
    const b = await openBrowser(0, { viewport: { width: 768, height: 1024 } });
    browsers.push(b);
    const page = b.page;
    await joinMeeting(b, url);
    const viewSel = `#agenda-panel .doc[data-id="${docId}"] .doc-view`;
    await waitDom(page, 'the "Xem" button of the document', (s) => !!document.querySelector(s), viewSel);
    await click(page, viewSel);
    await until(page, 'page 1 drawn', (v) => v.documentId === docId && v.rendered.page === 1);
    await click(page, '#doc-viewer .viewer-next');
    const v2 = await until(page, 'page 2 drawn', (v) => v.rendered.page === 2 && v.notes.length >= 3);
    summary.notes_before = v2.notes;
    await page.evaluate(() => {
      document.querySelector('#doc-viewer .viewer-notes').open = true;
    });
    summary.listed_before = await listed(page);
    log('listed', JSON.stringify(summary.listed_before));
    const item = (id) => `#doc-viewer .note[data-id="${id}"]`;

    // Edit the note; the draft survives a page turn away and back.
    await click(page, `${item(noteId)} .note-edit`);
    await waitDom(page, 'the edit box', (s) => !!document.querySelector(s), `${item(noteId)} .note-edit-text`);
    await page.fill(`${item(noteId)} .note-edit-text`, 'Đã đối chiếu với Cục Thống kê');
    await click(page, '#doc-viewer .viewer-next');
    await until(page, 'page 3 drawn', (v) => v.rendered.page === 3);
    await click(page, '#doc-viewer .viewer-prev');
    await until(page, 'page 2 drawn again', (v) => v.rendered.page === 2);
    summary.draft_after_turn = await waitDom(page, 'the edit box after the turn', (s) => {
      const t = document.querySelector(s);
      return t ? t.value : null;
    }, `${item(noteId)} .note-edit-text`);
    await click(page, `${item(noteId)} .note-edit-save`);
    const edited = await until(page, 'the note edited', (v) => v.notes.some((n) => n.id === noteId && n.text === 'Đã đối chiếu với Cục Thống kê'));
    summary.edited = edited.notes.find((n) => n.id === noteId);
    summary.edited_shown = await waitDom(page, 'the edited note shown', (s) => {
      const p = document.querySelector(`${s} .note-body`);
      return p && !document.querySelector(`${s} .note-edit-text`) ? p.textContent : null;
    }, item(noteId));

    // Delete the comment: "Hủy" first keeps it, "Xóa hẳn" deletes it.
    await click(page, `${item(commentId)} .note-delete`);
    await waitDom(page, 'the delete question', (s) => !!document.querySelector(s), `${item(commentId)} .note-delete-confirm`);
    await click(page, `${item(commentId)} .note-delete-cancel`);
    summary.kept_after_cancel = await waitDom(page, 'the comment kept', (s) => !!document.querySelector(`${s} .note-delete`), item(commentId));
    await click(page, `${item(commentId)} .note-delete`);
    await waitDom(page, 'the delete question again', (s) => !!document.querySelector(s), `${item(commentId)} .note-delete-confirm`);
    await click(page, `${item(commentId)} .note-delete-confirm`);
    await until(page, 'the comment deleted', (v) => !v.notes.some((n) => n.id === commentId));
    summary.listed_after = await listed(page);
    summary.error = (await view(page)).error;
    const v = await cspViolations(page);
    if (v.length) throw new Error(`the meeting page broke the CSP: ${v.join('; ')}`);
    summary.ok = true;
    return 0;
  } catch (e) {
    summary.reason = e && e.stack ? e.stack : String(e);
    process.stderr.write(`notes.mjs: ${summary.reason}\n`);
    dumpConsoles(browsers);
    return 1;
  } finally {
    await closeBrowsers(browsers);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  }
}

watchdog(Number(process.env.E2E_WATCHDOG_MS || 240000));
process.exitCode = await main();
