// A committee member's written opinion ("phiếu lấy ý kiến thành viên UBND"):
// the link /opinion#<token> shows the question, the deadline (counting
// down), the reminders of the secretariat and the member's answer; the
// member answers agree, disagree or other with a comment (GET /api/opinion,
// PUT /api/opinion/answer, docs/api.md "Written opinions").

import { t, errorText, hasText, applyI18n, setupLangSwitch, onLangChange, getLang } from './i18n.js';

const $ = (id) => document.getElementById(id);
const token = decodeURIComponent((window.location.hash || '').replace(/^#/, '').trim());

let view = null;
// The server's clock minus ours, in seconds (the countdown uses the server's).
let skew = 0;

function locale() {
  return getLang() === 'vi' ? 'vi-VN' : 'en-GB';
}

function when(unix) {
  return new Date(unix * 1000).toLocaleString(locale(), {
    dateStyle: 'medium',
    timeStyle: 'short',
  });
}

function nowServer() {
  return Math.floor(Date.now() / 1000) + skew;
}

/** "2 ngày 3 giờ", "5 phút", ... until `deadline`. */
function remaining(deadline) {
  let s = deadline - nowServer();
  if (s <= 0) return null;
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.max(1, Math.ceil(s / 60));
  if (d > 0) return t('opinion.leftDays', { d, h });
  if (h > 0) return t('opinion.leftHours', { h, m: m % 60 });
  return t('opinion.leftMinutes', { m });
}

function answerText(a) {
  if (!a) return t('opinion.noAnswer');
  const what = t(`opinion.${a.answer}`);
  const base = t('opinion.yourAnswer', { answer: what, at: when(a.answered_at) });
  return a.comment ? `${base} — “${a.comment}”` : base;
}

/** The text of an error code, in this page's words where they differ. */
function errText(code, message) {
  if (code && hasText(`opinion.err.${code}`)) return t(`opinion.err.${code}`);
  if (code && hasText(`error.${code}`)) return errorText(code);
  return message || t('error.unknown');
}

function showError(code, message) {
  const el = $('opinion-error');
  el.textContent = errText(code, message);
  el.hidden = false;
}

function renderCountdown() {
  if (!view) return;
  const r = view.request;
  const cd = $('opinion-countdown');
  if (r.status === 'closed') {
    cd.textContent = t('opinion.closed');
    return;
  }
  const left = remaining(r.deadline);
  cd.textContent = left ? t('opinion.left', { left }) : t('opinion.deadlinePassed');
  if (!left && view.can_answer) {
    // The deadline passed while the page was open: ask the server again.
    load();
  }
}

function render() {
  if (!view) return;
  const r = view.request;
  $('opinion-checking').hidden = true;
  $('opinion-details').hidden = false;
  $('opinion-title').textContent = r.title;
  $('opinion-question').textContent = r.question;
  $('opinion-name').textContent = view.recipient.name;
  $('opinion-deadline').textContent = when(r.deadline);
  renderCountdown();
  renderDocuments();
  const rem = $('opinion-reminders');
  const list = view.reminders || [];
  rem.hidden = list.length === 0 || !!view.recipient.answer;
  rem.textContent = '';
  for (const m of list) {
    const p = document.createElement('p');
    p.className = 'opinion-reminder';
    p.textContent = m.message
      ? t('opinion.reminderWith', { at: when(m.sent_at), message: m.message })
      : t('opinion.reminder', { at: when(m.sent_at) });
    rem.append(p);
  }
  $('opinion-current').textContent = answerText(view.recipient.answer);
  const res = $('opinion-result');
  if (r.status === 'closed' && r.outcome) {
    const o = r.outcome;
    res.textContent = t('opinion.result', {
      verdict: o.passed ? t('opinion.passed') : t('opinion.notPassed'),
      agree: o.tally.for,
      disagree: o.tally.against,
      other: o.tally.abstain,
      base: o.base,
      needed: o.needed,
    });
    res.hidden = false;
  } else {
    res.hidden = true;
  }
  const form = $('opinion-form');
  form.hidden = !view.can_answer;
  const a = view.recipient.answer;
  if (a && !form.dataset.filled) {
    const radio = form.querySelector(`input[name="opinion"][value="${a.answer}"]`);
    if (radio) radio.checked = true;
    $('opinion-comment').value = a.comment || '';
    form.dataset.filled = '1';
  }
  sync();
}

/** The request's documents, each downloaded with the member's own link
 * (GET /api/opinion/documents/{id}: the token goes in a header, so a plain
 * link cannot carry it). */
function renderDocuments() {
  const docs = view.documents || [];
  const box = $('opinion-documents');
  const list = $('opinion-documents-list');
  box.hidden = docs.length === 0;
  list.textContent = '';
  for (const d of docs) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'btn btn-secondary btn-small';
    b.dataset.documentId = d.id;
    b.textContent = t('opinion.download');
    b.addEventListener('click', () => download(d));
    const name = document.createElement('span');
    name.textContent = `${d.title} (${String(d.file_type || '').toUpperCase()}, ${Math.max(1, Math.round(d.size / 1024))} KB) `;
    li.append(name, b);
    list.append(li);
  }
}

async function download(d) {
  const err = $('opinion-documents-error');
  err.hidden = true;
  try {
    const resp = await fetch(`/api/opinion/documents/${encodeURIComponent(d.id)}`, {
      headers: { Authorization: `Bearer ${token}` },
      cache: 'no-store',
    });
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      err.textContent = errText(body.code, body.message);
      err.hidden = false;
      return;
    }
    const url = URL.createObjectURL(await resp.blob());
    const a = document.createElement('a');
    a.href = url;
    a.download = d.filename || 'tai-lieu';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (_) {
    err.textContent = errText('network');
    err.hidden = false;
  }
}

function choice() {
  const c = $('opinion-form').querySelector('input[name="opinion"]:checked');
  return c ? c.value : null;
}

function sync() {
  $('opinion-send').disabled = !choice();
}

async function load() {
  let resp;
  try {
    resp = await fetch('/api/opinion', {
      headers: { Authorization: `Bearer ${token}` },
      cache: 'no-store',
    });
  } catch (_) {
    $('opinion-checking').hidden = true;
    showError('network');
    return;
  }
  const body = await resp.json().catch(() => ({}));
  $('opinion-checking').hidden = true;
  if (!resp.ok) {
    showError(body.code, body.message);
    if (body.contact) {
      $('opinion-contact').textContent = t('opinion.contact', { contact: body.contact });
      $('opinion-contact').hidden = false;
    }
    return;
  }
  view = body;
  if (typeof body.now === 'number') skew = body.now - Math.floor(Date.now() / 1000);
  if (body.contact) {
    $('opinion-contact').textContent = t('opinion.contact', { contact: body.contact });
    $('opinion-contact').hidden = false;
  }
  render();
}

async function send(ev) {
  ev.preventDefault();
  const answer = choice();
  if (!answer) return;
  const comment = $('opinion-comment').value.trim();
  const err = $('opinion-form-error');
  err.hidden = true;
  if (answer === 'other' && !comment) {
    err.textContent = t('opinion.needComment');
    err.hidden = false;
    return;
  }
  $('opinion-send').disabled = true;
  try {
    const resp = await fetch('/api/opinion/answer', {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ answer, comment }),
      cache: 'no-store',
    });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      err.textContent = errText(body.code, body.message);
      err.hidden = false;
      await load();
      return;
    }
    view = body;
    $('opinion-current').dataset.sent = '1';
    render();
  } catch (_) {
    err.textContent = errText('network');
    err.hidden = false;
  } finally {
    sync();
  }
}

function start() {
  applyI18n(document);
  setupLangSwitch(document);
  onLangChange(render);
  $('opinion-form').addEventListener('change', sync);
  $('opinion-form').addEventListener('submit', send);
  if (!token) {
    $('opinion-checking').hidden = true;
    showError('token_invalid');
    return;
  }
  load();
  setInterval(renderCountdown, 30_000);
}

start();
