// The committee's comments on the meeting's documents, for the secretariat
// ("Góp ý của thành viên"): under each document of the agenda tab, its
// comments with author, page and time; above the agenda, how many there
// are and a CSV of them all, made here from what the page already read.
// REST (docs/api.md, "Notes and comments on documents"):
// GET /api/documents/{id}/notes, which gives a staff account the comments
// only (private notes are never readable by anyone but their author).
// Strings in i18n.js (`comments.*`).

import { el, formatTime, saveBlob, toDate } from './documents.js';
import { t } from './i18n.js';

/**
 * Reads the comments of every document of `items` (the agenda with its
 * `documents`); sets `doc.comments` to the list (by page, then time), or
 * to null when they could not be read. `api(method, path)` is the admin
 * page's authenticated call.
 */
export async function loadComments(items, api) {
  const docs = items.flatMap((i) => (Array.isArray(i.documents) ? i.documents : []));
  await Promise.all(
    docs.map(async (doc) => {
      try {
        const r = await api('GET', `/api/documents/${encodeURIComponent(doc.id)}/notes`);
        const notes = r && Array.isArray(r.notes) ? r.notes : [];
        doc.comments = notes
          .filter((n) => n.kind === 'comment')
          .sort((a, b) => (a.page || 0) - (b.page || 0) || (a.created_at || 0) - (b.created_at || 0));
      } catch (_) {
        doc.comments = null;
      }
    }),
  );
}

/** One comment: page, author, time (and whether the page may have changed), then the text. */
function commentItem(c) {
  const meta = [t('comments.page', { page: c.page }), c.author_name || '', formatTime(c.created_at)];
  if (c.updated_at && c.created_at && c.updated_at !== c.created_at) meta.push(t('comments.edited', { time: formatTime(c.updated_at) }));
  return el(
    'li',
    { class: 'comment', dataset: { id: c.id, page: String(c.page), stale: c.stale ? 'true' : 'false' } },
    el(
      'p',
      { class: 'comment-meta small' },
      el('strong', { class: 'comment-page', text: meta[0] }),
      el('span', { class: 'comment-author', text: meta[1] }),
      el('time', { class: 'comment-time muted', datetime: isoOf(c.created_at), text: meta.slice(2).join(' · ') }),
      c.stale ? el('span', { class: 'comment-stale', text: t('comments.stale', { version: c.version }) }) : null,
    ),
    el('p', { class: 'comment-text', text: c.text }),
  );
}

function isoOf(v) {
  const d = toDate(v);
  return d ? d.toISOString() : '';
}

/** Under a document: "Góp ý của thành viên (N)", opened on click. */
export function commentsBlock(doc) {
  const list = doc.comments;
  if (list === undefined) return null;
  const n = Array.isArray(list) ? list.length : 0;
  const box = el('details', { class: 'doc-comments', dataset: { count: String(n) } });
  box.append(el('summary', { text: list === null ? t('comments.title') : t('comments.titleCount', { n }) }));
  if (list === null) box.append(el('p', { class: 'muted small', text: t('comments.error') }));
  else if (n === 0) box.append(el('p', { class: 'muted small', text: t('comments.none') }));
  else box.append(el('ol', { class: 'comment-list' }, list.map(commentItem)));
  return box;
}

/** A CSV cell that a spreadsheet neither splits nor runs as a formula. */
function cell(v) {
  let s = String(v ?? '');
  if (/^[=@\t\r]/.test(s) || (/^[+-]/.test(s) && !/^[+-][\d ]/.test(s))) s = `'${s}`;
  return /[",;\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** "2026-12-14 09:05" in the browser's time zone. */
function csvTime(v) {
  const d = toDate(v);
  if (!d) return '';
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** Every comment of the meeting as CSV (UTF-8 with BOM, for spreadsheets). */
export function commentsCsv(items) {
  const rows = [['agenda_item', 'document', 'document_id', 'version', 'page', 'author', 'text', 'created_at', 'updated_at', 'document_changed']];
  for (const item of items) {
    for (const doc of Array.isArray(item.documents) ? item.documents : []) {
      for (const c of Array.isArray(doc.comments) ? doc.comments : []) {
        rows.push([item.title, doc.title, doc.id, c.version, c.page, c.author_name, c.text, csvTime(c.created_at), csvTime(c.updated_at), c.stale ? 'yes' : 'no']);
      }
    }
  }
  return `\uFEFF${rows.map((r) => r.map(cell).join(',')).join('\r\n')}\r\n`;
}

/** Above the agenda: how many comments on how many documents, and the CSV of them. */
export function commentsSummary(meeting, items) {
  const docs = items.flatMap((i) => (Array.isArray(i.documents) ? i.documents : []));
  const commented = docs.filter((d) => Array.isArray(d.comments) && d.comments.length > 0);
  const n = commented.reduce((s, d) => s + d.comments.length, 0);
  const csv = el(
    'button',
    {
      type: 'button',
      class: 'btn btn-secondary btn-small',
      id: 'comments-csv',
      disabled: n === 0,
      onclick: () => {
        const blob = new Blob([commentsCsv(items)], { type: 'text/csv;charset=utf-8' });
        saveBlob(blob, `gop-y-${meeting.id}.csv`);
      },
    },
    t('comments.csv'),
  );
  return el(
    'div',
    { class: 'comments-summary', id: 'comments-summary' },
    el('p', { class: 'small', text: n ? t('comments.summary', { n, docs: commented.length }) : t('comments.summaryNone') }),
    csv,
  );
}
