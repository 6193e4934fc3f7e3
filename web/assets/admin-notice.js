// Deadlines on a meeting's page for the secretariat: the notice of
// conclusions ("Thông báo kết luận": open the HTML, download the PDF, the
// countdown to its due date, "Đã ban hành") and the documents' deadline
// (with a warning when documents were sent after it). REST (docs/api.md,
// "Working days and deadlines"): GET /api/meetings/{id}/notice (HTML),
// .../notice.pdf, GET and POST .../notice/status,
// GET .../documents-deadline. Strings in i18n.js (`notice.*`, `docdl.*`).

import { apiBlob } from './api.js';
import { el, formatTime, saveBlob } from './documents.js';
import { t } from './i18n.js';

/** "2026-01-16" as "16/01/2026". */
function dayText(ymd) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(ymd || ''));
  return m ? `${m[3]}/${m[2]}/${m[1]}` : '';
}

/**
 * The countdown: `{text, cls}` for `working_days_left` (0 on the day,
 * negative past it) and whether it is late.
 */
export function countdown(left, late) {
  if (left === null || left === undefined) return { text: t('deadline.none'), cls: 'muted' };
  if (late) {
    const n = Math.max(1, -left);
    return { text: t('deadline.overdue', { n }), cls: 'deadline-overdue' };
  }
  if (left === 0) return { text: t('deadline.today'), cls: 'deadline-soon' };
  return { text: t('deadline.left', { n: left }), cls: left <= 1 ? 'deadline-soon' : 'deadline-ok' };
}

/**
 * The two cards. `ctx`: { api(method, path, body), token(), showAlert(box, e),
 * clearAlert(box), toast(text), confirmDialog(title, text, ok), canPrepare }.
 * Returns the element; it fills itself.
 */
export function deadlinesSection(meeting, ctx) {
  const box = el('div', { class: 'two-col deadlines', id: 'meeting-deadlines' });
  const notice = el('section', { class: 'card notice-box', id: 'notice-box', 'aria-labelledby': 'notice-heading' });
  const docs = el('section', { class: 'card docdl-box', id: 'documents-deadline-box', 'aria-labelledby': 'docdl-heading' });
  box.append(notice, docs);
  fillNotice(notice, meeting, ctx);
  fillDocumentsDeadline(docs, meeting, ctx);
  return box;
}

async function fillNotice(box, meeting, ctx) {
  const mid = encodeURIComponent(meeting.id);
  const path = `/api/meetings/${mid}/notice`;
  let st;
  try {
    st = await ctx.api('GET', `${path}/status`);
  } catch (e) {
    box.textContent = '';
    box.append(el('h2', { id: 'notice-heading', text: t('notice.title') }));
    ctx.showAlert(box, e);
    return;
  }
  box.textContent = '';
  box.append(el('h2', { id: 'notice-heading', text: t('notice.title') }));
  const due = el('p', { class: 'notice-due', id: 'notice-due' });
  if (st.due_date) {
    due.append(t('notice.due', { date: dayText(st.due_date), n: st.due_working_days }), ' ');
  }
  if (st.issued) {
    const who = String(st.issued.issued_by || '').replace(/^user:/, '');
    box.append(
      due,
      el(
        'p',
        { class: 'alert alert-ok', id: 'notice-issued' },
        st.issued.number
          ? t('notice.issuedNumber', { at: formatTime(st.issued.issued_at), number: st.issued.number })
          : t('notice.issuedAt', { at: formatTime(st.issued.issued_at) }),
        who ? ` ${t('notice.issuedBy', { who })}` : '',
      ),
    );
  } else {
    const c = countdown(st.working_days_left, st.overdue);
    due.append(el('strong', { class: c.cls, id: 'notice-countdown', text: c.text }));
    box.append(due);
  }

  const view = el('div', { class: 'notice-view', id: 'notice-view' });
  view.hidden = true;
  const open = el('button', { type: 'button', class: 'btn btn-secondary', id: 'notice-open' }, t('notice.open'));
  open.addEventListener('click', async () => {
    if (!view.hidden) {
      view.hidden = true;
      view.textContent = '';
      return;
    }
    try {
      const { blob } = await apiBlob(path, { token: ctx.token() });
      // This page's Content-Security-Policy (inherited by the frame) allows
      // style sheets from the server only: the same rules, as an asset.
      const html = (await blob.text()).replace(/<style>[\s\S]*?<\/style>/, '<link rel="stylesheet" href="/assets/document.css">');
      // A frame without scripts, in an origin of its own: the page is
      // shown, nothing in it runs or reaches this page.
      const frame = el('iframe', { class: 'notice-frame', id: 'notice-frame', sandbox: '', title: t('notice.title') });
      frame.srcdoc = html;
      view.textContent = '';
      view.append(frame);
      view.hidden = false;
    } catch (e) {
      ctx.showAlert(box, e);
    }
  });
  const pdf = el('button', { type: 'button', class: 'btn btn-secondary', id: 'notice-pdf' }, t('notice.pdf'));
  pdf.addEventListener('click', async () => {
    try {
      const { blob, filename } = await apiBlob(`${path}.pdf`, { token: ctx.token() });
      saveBlob(blob, filename || 'thong-bao-ket-luan.pdf');
    } catch (e) {
      ctx.showAlert(box, e);
    }
  });
  const actions = el('div', { class: 'form-actions' }, open, pdf);
  if (ctx.canPrepare) {
    const ended = meeting.status === 'ended' || meeting.status === 'archived';
    if (!st.issued) {
      const number = el('input', { name: 'number', id: 'notice-number', maxlength: 30, placeholder: t('notice.numberPlaceholder') });
      const mark = el('button', { type: 'button', class: 'btn btn-primary', id: 'notice-issue', disabled: !ended }, t('notice.issue'));
      mark.addEventListener('click', async () => {
        const ok = await ctx.confirmDialog(t('notice.issue'), t('notice.issueConfirm', { title: meeting.title }), t('notice.issue'));
        if (!ok) return;
        try {
          await ctx.api('POST', `${path}/status`, { issued: true, number: number.value.trim() });
          ctx.toast(t('notice.issuedToast'));
          fillNotice(box, meeting, ctx);
        } catch (e) {
          ctx.showAlert(box, e);
        }
      });
      actions.append(el('label', { class: 'field notice-number' }, el('span', { text: t('notice.number') }), number), mark);
      if (!ended) actions.append(el('p', { class: 'muted', text: t('notice.afterEnd') }));
    } else {
      const undo = el('button', { type: 'button', class: 'btn btn-danger-outline', id: 'notice-unissue' }, t('notice.unissue'));
      undo.addEventListener('click', async () => {
        const ok = await ctx.confirmDialog(t('notice.unissue'), t('notice.unissueConfirm'), t('notice.unissue'));
        if (!ok) return;
        try {
          await ctx.api('POST', `${path}/status`, { issued: false });
          fillNotice(box, meeting, ctx);
        } catch (e) {
          ctx.showAlert(box, e);
        }
      });
      actions.append(undo);
    }
  }
  box.append(actions, view);
}

/** The documents' deadline alone (the agenda tab): a box that fills itself. */
export function documentsDeadlineBox(meeting, ctx) {
  const box = el('section', { class: 'docdl-box docdl-agenda', id: 'agenda-documents-deadline' });
  fillDocumentsDeadline(box, meeting, ctx);
  return box;
}

async function fillDocumentsDeadline(box, meeting, ctx) {
  let d;
  try {
    d = await ctx.api('GET', `/api/meetings/${encodeURIComponent(meeting.id)}/documents-deadline`);
  } catch (e) {
    box.textContent = '';
    box.append(el('h2', { id: 'docdl-heading', text: t('docdl.title') }));
    ctx.showAlert(box, e);
    return;
  }
  box.textContent = '';
  box.append(el('h2', { id: 'docdl-heading', text: t('docdl.title') }));
  box.append(documentsDeadlineLine(d));
  if (d.missed) {
    box.append(
      el(
        'div',
        { class: 'alert alert-error', id: 'docdl-missed', role: 'alert' },
        el('p', { text: t('docdl.missed', { n: d.late.length }) }),
        el(
          'ul',
          {},
          d.late.map((x) => el('li', {}, `${x.title} (${t(x.version > 1 ? 'docdl.version' : 'docdl.added', { v: x.version })} ${formatTime(x.uploaded_at)})`)),
        ),
      ),
    );
  }
}

/** "Hạn gửi tài liệu: 14/01/2026 (3 ngày làm việc trước cuộc họp) · còn 2 ngày làm việc". */
export function documentsDeadlineLine(d) {
  const p = el('p', { class: 'docdl-line', id: 'docdl-line' });
  if (!d.deadline) {
    p.append(el('span', { class: 'muted', text: t('docdl.noDate') }));
    return p;
  }
  p.append(t('docdl.deadline', { date: dayText(d.deadline), n: d.working_days_before, kind: t(`mkind.${d.kind}`) }), ' ');
  const c = d.working_days_left < 0
    ? { text: t('docdl.passed'), cls: d.missed ? 'deadline-overdue' : 'muted' }
    : countdown(d.working_days_left, false);
  p.append(el('strong', { class: d.missed ? 'deadline-overdue' : c.cls, id: 'docdl-countdown', text: c.text }));
  return p;
}
