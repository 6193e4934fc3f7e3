// The secretariat pages (/admin): login, meetings, a meeting's details and
// status, its agenda with documents and their signatures, its participants
// and invitation links, and the registry of bridge points. Hash routes:
//
//   #/meetings                       the list (filter by status, search)
//   #/meetings/new                   create
//   #/meetings/ID[/info|agenda|participants|invitations|live|attendance|votes]
//                                    (attendance and votes: admin-record.js)
//   #/meetings/ID/print              its links to print: QR and short codes
//                                    (unit-groups.js)
//   #/bridge-points
//   #/accounts                       my password, sign out everywhere; for
//                                    admins every account (disable, enable,
//                                    reset password, end sessions, create)
//   #/audit                          admins: the audit log (audit.js)
//   #/opinions[/ID]                  written opinion ballots (opinions-admin.js)
//
// The REST calls are in api.js, the document helpers in documents.js, the
// strings in i18n.js. For tests, `window.giaobanAdmin` exposes the state.

import { ApiError, apiBlob, apiRequest, apiUpload } from './api.js';
import { attendanceTab, pollsTab } from './admin-record.js';
import { auditView } from './audit.js';
import { minutesTab } from './admin-minutes.js';
import { opinionView, opinionsView } from './opinions-admin.js';
import { leavePrintView, printLinksView, savedGroupInvite, unitGroupsCard } from './unit-groups.js';
import {
  ACCEPT_ATTR,
  downloadDocument,
  el,
  fileIcon,
  formatSize,
  formatTime,
  isWithdrawn,
  saveBlob,
  signatureBadge,
  signatureOf,
  toDate,
  withdrawnNote,
} from './documents.js';
import { applyI18n, hasText, onLangChange, roleText, setupLangSwitch, t } from './i18n.js';
// The notice of conclusions and the documents' deadline on a meeting's page.
import { deadlinesSection, documentsDeadlineBox } from './admin-notice.js';
// The committee's comments per document, for the secretariat.
import { commentsBlock, commentsSummary, loadComments } from './admin-comments.js';

const $ = (id) => document.getElementById(id);
const SESSION_KEY = 'giaoban.staff';

export const MEETING_STATUSES = ['draft', 'scheduled', 'in_progress', 'ended', 'archived'];
const MEETING_KINDS = ['regular', 'thematic', 'extraordinary'];
/** Bridge point levels, in display order; `district` only on units stored before 1 July 2025. */
const LEVELS = ['province', 'department', 'commune', 'ward', 'special_zone', 'other', 'district'];
/** The levels a new unit may have. */
const NEW_LEVELS = LEVELS.filter((l) => l !== 'district');
const PARTICIPANT_ROLES = ['chair', 'member', 'secretary', 'delegate', 'observer', 'bridge_operator'];
/** The roles of an invitation (what the meeting page knows a guest as). */
const INVITE_ROLES = ['chair', 'member', 'secretary', 'bridge', 'delegate', 'observer'];
/** The invitation role for a participant's role. */
const inviteRoleOf = (role) => (role === 'bridge_operator' ? 'bridge' : INVITE_ROLES.includes(role) ? role : 'delegate');
const ACCESS = ['everyone', 'committee', 'named'];
/** The status changes offered from each status (docs/api.md; the server has the last word). */
const TRANSITIONS = {
  draft: ['scheduled', 'ended'],
  scheduled: ['in_progress', 'draft', 'ended'],
  in_progress: ['ended'],
  ended: ['archived'],
  archived: [],
};

const state = {
  token: '',
  user: null,
  route: null,
  /** Invitation id → URL, for links created in this session (the list may not carry them). */
  inviteUrls: new Map(),
  /** What the current view shows (for re-rendering on a language switch). */
  render: null,
  /** The element to focus after the next render (a `data-focus` key). */
  focusKey: null,
};

// ---- session --------------------------------------------------------------------

function loadSession() {
  try {
    const s = JSON.parse(window.sessionStorage.getItem(SESSION_KEY) || 'null');
    if (s && typeof s.token === 'string' && s.token) {
      state.token = s.token;
      state.user = s.user || null;
    }
  } catch (_) {
    // No stored session.
  }
}

function saveSession() {
  try {
    if (state.token) window.sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token: state.token, user: state.user }));
    else window.sessionStorage.removeItem(SESSION_KEY);
  } catch (_) {
    // Not kept across reloads, still works.
  }
}

function logout(expired) {
  // Signing out ends the token on the server too (best effort).
  if (!expired && state.token) apiRequest('POST', '/api/auth/logout', { token: state.token }).catch(() => {});
  state.token = '';
  state.user = null;
  saveSession();
  showLogin(expired ? 'session_expired' : null);
}

/** A staff API call; a refused token goes back to the login screen. */
async function api(method, path, body) {
  try {
    return await apiRequest(method, path, { token: state.token, body });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401 && state.token) {
      logout(true);
    }
    throw e;
  }
}

// ---- errors, toasts, confirmation ---------------------------------------------------

/** The text of an API error, in the page's language. */
export function apiErrorText(e) {
  const code = e && e.code ? e.code : 'unknown';
  // The server's (English) detail helps with these: which field, which name.
  if (hasText(`error.${code}`) && ['invalid_input', 'conflict'].includes(code) && e.message && e.message !== code) {
    return `${t(`error.${code}`)} (${e.message})`;
  }
  if (hasText(`error.${code}`)) return t(`error.${code}`);
  const msg = e && e.message && e.message !== code ? ` (${e.message})` : '';
  return `${t('error.unknown')}${msg}`;
}

function showAlert(container, e) {
  let box = container.querySelector(':scope > .alert-error');
  if (!box) {
    box = el('div', { class: 'alert alert-error', role: 'alert' });
    container.prepend(box);
  }
  box.textContent = typeof e === 'string' ? e : apiErrorText(e);
  box.dataset.code = e && e.code ? e.code : '';
  box.hidden = false;
  return box;
}

function clearAlert(container) {
  const box = container.querySelector(':scope > .alert-error');
  if (box) box.hidden = true;
}

let toastTimer = null;
function toast(text) {
  const box = $('toast');
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.hidden = true;
  }, 3500);
}

/** Asks for confirmation in a modal dialog; resolves true on OK. */
function confirmDialog(title, text, okLabel, danger) {
  const dialog = $('confirm-dialog');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  const ok = $('confirm-ok');
  ok.textContent = okLabel || t('action.confirm');
  ok.className = danger ? 'btn btn-danger' : 'btn btn-primary';
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener('close', done);
      resolve(dialog.returnValue === 'ok');
    };
    dialog.returnValue = 'cancel';
    dialog.addEventListener('close', done);
    if (typeof dialog.showModal === 'function') dialog.showModal();
    else resolve(window.confirm(`${title}\n${text}`));
  });
}

async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) {
    // Fall back below.
  }
  const area = el('textarea', { class: 'visually-hidden', readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch (_) {
    ok = false;
  }
  area.remove();
  return ok;
}

// ---- small builders ---------------------------------------------------------------

function statusBadge(status) {
  return el('span', { class: `status-badge status-${status}`, dataset: { status }, text: t(`mstatus.${status}`) });
}

function field(labelKey, input, hintKey) {
  return el(
    'label',
    { class: 'field' },
    el('span', { text: t(labelKey) }),
    input,
    hintKey ? el('small', { class: 'muted', text: t(hintKey) }) : null,
  );
}

function select(name, values, labelOf, current, extra) {
  const s = el('select', { name, ...(extra || {}) });
  for (const v of values) {
    const o = el('option', { value: v, text: labelOf(v) });
    if (String(v) === String(current ?? '')) o.selected = true;
    s.append(o);
  }
  return s;
}

function button(labelKey, onclick, cls, extra) {
  return el('button', { type: 'button', class: cls || 'btn btn-secondary', onclick, ...(extra || {}) }, t(labelKey));
}

function iconButton(symbol, label, onclick, extra) {
  return el(
    'button',
    { type: 'button', class: 'btn btn-icon', 'aria-label': label, title: label, onclick, ...(extra || {}) },
    el('span', { 'aria-hidden': 'true', text: symbol }),
  );
}

/** A `datetime-local` value for an API time. */
function toLocalInput(v) {
  const d = toDate(v);
  if (!d) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** An API time (Unix seconds) for a `datetime-local` value, or null. */
function fromLocalInput(v) {
  if (!v) return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : Math.floor(d.getTime() / 1000);
}

function durationText(minutes) {
  const m = Math.max(0, Math.round(Number(minutes) || 0));
  const h = Math.floor(m / 60);
  if (h === 0) return t('duration.minutes', { m });
  if (m % 60 === 0) return t('duration.hours', { h });
  return t('duration.hoursMinutes', { h, m: m % 60 });
}

function listOf(v, key) {
  if (Array.isArray(v)) return v;
  if (v && Array.isArray(v[key])) return v[key];
  if (v && Array.isArray(v.items)) return v.items;
  return [];
}

function formData(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) out[k] = typeof v === 'string' ? v.trim() : v;
  return out;
}

function focusAfterRender() {
  const key = state.focusKey;
  state.focusKey = null;
  if (key) {
    const target = document.querySelector(`[data-focus="${CSS.escape(key)}"]`);
    if (target && !target.disabled) {
      target.focus();
      return;
    }
  }
}

// ---- routing ----------------------------------------------------------------------

/** The tabs of a meeting, in order. */
const MEETING_TABS = ['info', 'agenda', 'participants', 'invitations', 'live', 'attendance', 'votes', 'minutes'];

function parseRoute() {
  const parts = window.location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'bridge-points') return { name: 'bridge-points' };
  if (parts[0] === 'accounts') return { name: 'accounts' };
  if (parts[0] === 'audit') return { name: 'audit' };
  if (parts[0] === 'opinions') return parts[1] ? { name: 'opinion', id: parts[1] } : { name: 'opinions' };
  if (parts[0] === 'meetings' && parts[1] === 'new') return { name: 'meeting-new' };
  if (parts[0] === 'meetings' && parts[1] && parts[2] === 'print') return { name: 'print', id: parts[1] };
  if (parts[0] === 'meetings' && parts[1]) {
    const tab = MEETING_TABS.includes(parts[2]) ? parts[2] : 'info';
    return { name: 'meeting', id: parts[1], tab };
  }
  return { name: 'meetings' };
}

/** What the saved groups and the printed links (unit-groups.js) use of this page. */
function groupCtx() {
  return { api, toast, showAlert, clearAlert, confirm: confirmDialog, route, go };
}

/** What the written opinion pages (opinions-admin.js) use of this page. */
function opinionCtx() {
  return { api, user: () => state.user, showAlert, clearAlert, toast, go, copyText, confirm: confirmDialog };
}

function go(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

async function route() {
  if (!state.token) {
    showLogin(null);
    return;
  }
  const prev = state.route;
  state.route = parseRoute();
  for (const a of document.querySelectorAll('.admin-nav a')) {
    const navName = state.route.name === 'opinion' ? 'opinions' : state.route.name;
    const on = a.dataset.nav === (['bridge-points', 'accounts', 'audit', 'opinions'].includes(navName) ? navName : 'meetings');
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const view = $('view');
  if (state.route.name !== 'print') leavePrintView();
  const samePage = prev && prev.name === state.route.name && prev.id === state.route.id;
  if (!samePage) view.textContent = '';
  try {
    if (state.route.name === 'bridge-points') await bridgePointsView(view);
    else if (state.route.name === 'accounts') await accountsView(view);
    else if (state.route.name === 'audit') await auditView(view, { api, token: () => state.token, showAlert, clearAlert });
    else if (state.route.name === 'opinions') await opinionsView(view, opinionCtx());
    else if (state.route.name === 'opinion') await opinionView(view, state.route.id, opinionCtx());
    else if (state.route.name === 'meeting-new') await meetingNewView(view);
    else if (state.route.name === 'print') await printLinksView(view, state.route.id, groupCtx());
    else if (state.route.name === 'meeting') await meetingView(view, state.route.id, state.route.tab);
    else await meetingsView(view);
  } catch (e) {
    if (!state.token) return;
    view.textContent = '';
    view.append(el('h1', { text: t('admin.title') }));
    showAlert(view, e);
  }
  if (!samePage) {
    const h = view.querySelector('h1');
    if (h) {
      h.tabIndex = -1;
      h.focus({ preventScroll: true });
    }
  }
  focusAfterRender();
}

// ---- login -----------------------------------------------------------------------

function showLogin(code) {
  $('app-screen').hidden = true;
  $('user-box').hidden = true;
  $('login-screen').hidden = false;
  const err = $('login-error');
  err.hidden = !code;
  err.textContent = code ? apiErrorText({ code }) : '';
  $('login-username').focus();
}

/** Whether the account prepares meetings (an operator only reads). */
function canPrepare() {
  return !!state.user && (state.user.role === 'admin' || state.user.role === 'secretary');
}

function showApp() {
  $('login-screen').hidden = true;
  $('app-screen').hidden = false;
  document.body.classList.toggle('read-only', !canPrepare());
  $('user-box').hidden = !state.user;
  const nav = document.querySelector('.admin-nav');
  if (nav && !nav.querySelector('[data-nav="accounts"]')) {
    nav.append(el('a', { href: '#/accounts', dataset: { nav: 'accounts', i18n: 'nav.accounts' }, text: t('nav.accounts') }));
  }
  const auditLink = nav && nav.querySelector('[data-nav="audit"]');
  if (nav && state.user && state.user.role === 'admin' && !auditLink) {
    nav.append(el('a', { href: '#/audit', dataset: { nav: 'audit', i18n: 'nav.audit' }, text: t('nav.audit') }));
  } else if (auditLink && !(state.user && state.user.role === 'admin')) {
    auditLink.remove();
  }
  if (state.user) {
    $('user-name').textContent = state.user.display_name || state.user.username || '';
    $('user-role').textContent = t(`staffrole.${state.user.role}`);
  }
}

async function onLogin(ev) {
  ev.preventDefault();
  const username = $('login-username').value.trim();
  const password = $('login-password').value;
  const err = $('login-error');
  if (!username || !password) {
    err.textContent = t('login.missing');
    err.hidden = false;
    return;
  }
  $('login-button').disabled = true;
  try {
    const r = await apiRequest('POST', '/api/auth/login', { body: { username, password } });
    state.token = r.token;
    state.user = r.user || null;
    saveSession();
    $('login-password').value = '';
    err.hidden = true;
    showApp();
    state.route = null;
    await route();
  } catch (e) {
    err.textContent = apiErrorText(e);
    err.dataset.code = e.code || '';
    err.hidden = false;
    $('login-password').select();
  } finally {
    $('login-button').disabled = false;
  }
}

// ---- meetings list ---------------------------------------------------------------------

const listFilter = { status: '', q: '' };

async function meetingsView(view) {
  const meetings = listOf(await api('GET', '/api/meetings'), 'meetings');
  view.textContent = '';
  const head = el(
    'div',
    { class: 'view-head' },
    el('h1', { text: t('meetings.title') }),
    el('a', { class: 'btn btn-primary prepare-only', href: '#/meetings/new', id: 'new-meeting' }, t('meetings.new')),
  );
  const statusSelect = select('status', ['', ...MEETING_STATUSES], (s) => (s ? t(`mstatus.${s}`) : t('meetings.allStatuses')), listFilter.status, {
    id: 'meeting-filter-status',
  });
  const search = el('input', { type: 'search', id: 'meeting-filter-q', value: listFilter.q, placeholder: t('meetings.search') });
  const filters = el(
    'div',
    { class: 'filters', role: 'search' },
    field('meetings.filterStatus', statusSelect),
    field('meetings.filterText', search),
  );
  const tableBox = el('div', { class: 'table-box' });
  const draw = () => {
    const q = listFilter.q.toLocaleLowerCase('vi');
    const shown = meetings
      .filter((m) => !listFilter.status || m.status === listFilter.status)
      .filter((m) => !q || `${m.title} ${m.location || ''}`.toLocaleLowerCase('vi').includes(q))
      .sort((a, b) => (toDate(b.starts_at)?.getTime() || 0) - (toDate(a.starts_at)?.getTime() || 0));
    tableBox.textContent = '';
    if (shown.length === 0) {
      tableBox.append(el('p', { class: 'muted empty', text: meetings.length ? t('meetings.noMatch') : t('meetings.empty') }));
      return;
    }
    const rows = shown.map((m) =>
      el(
        'tr',
        { dataset: { id: m.id } },
        el('td', {}, el('a', { href: `#/meetings/${encodeURIComponent(m.id)}`, class: 'row-link' }, m.title)),
        el('td', { text: t(`mkind.${m.kind}`) }),
        el('td', { text: formatTime(m.starts_at) }),
        el('td', { class: 'col-optional', text: m.location || '' }),
        el('td', {}, statusBadge(m.status)),
      ),
    );
    tableBox.append(
      el(
        'table',
        { class: 'data-table', id: 'meetings-table' },
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            el('th', { scope: 'col', text: t('meeting.field.title') }),
            el('th', { scope: 'col', text: t('meeting.field.kind') }),
            el('th', { scope: 'col', text: t('meeting.field.startsAt') }),
            el('th', { scope: 'col', class: 'col-optional', text: t('meeting.field.location') }),
            el('th', { scope: 'col', text: t('meeting.field.status') }),
          ),
        ),
        el('tbody', {}, rows),
      ),
    );
  };
  statusSelect.addEventListener('change', () => {
    listFilter.status = statusSelect.value;
    draw();
  });
  search.addEventListener('input', () => {
    listFilter.q = search.value.trim();
    draw();
  });
  view.append(head, filters, tableBox);
  draw();
}

// ---- meeting: create and edit -------------------------------------------------------------

function meetingForm(m, onSubmit, submitKey) {
  const form = el(
    'form',
    { class: 'card form-grid', id: 'meeting-form', novalidate: true },
    field('meeting.field.title', el('input', { name: 'title', required: true, maxlength: 300, value: m.title || '' })),
    field('meeting.field.kind', select('kind', MEETING_KINDS, (k) => t(`mkind.${k}`), m.kind || 'regular')),
    field('meeting.field.startsAt', el('input', { name: 'starts_at', type: 'datetime-local', required: true, value: toLocalInput(m.starts_at) })),
    field('meeting.field.endsAt', el('input', { name: 'ends_at', type: 'datetime-local', value: toLocalInput(m.ends_at) })),
    field('meeting.field.location', el('input', { name: 'location', maxlength: 300, value: m.location || '' })),
    el('div', { class: 'form-actions prepare-only' }, el('button', { type: 'submit', class: 'btn btn-primary' }, t(submitKey))),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = formData(form);
    if (!d.title) {
      showAlert(form, t('form.titleRequired'));
      return;
    }
    const startsAt = fromLocalInput(d.starts_at);
    if (!startsAt) {
      showAlert(form, t('form.startRequired'));
      return;
    }
    const endsAt = fromLocalInput(d.ends_at);
    if (endsAt && endsAt <= startsAt) {
      showAlert(form, t('form.endBeforeStart'));
      return;
    }
    // A start more than a day ago is most often a typo in the year or month.
    const changed = startsAt !== m.starts_at;
    if (changed && startsAt < Date.now() / 1000 - 86400) {
      const ok = await confirmDialog(t('form.pastStartTitle'), t('form.pastStart', { when: formatTime(startsAt) }), t('form.pastStartOk'));
      if (!ok) return;
    }
    clearAlert(form);
    const body = { title: d.title, kind: d.kind, starts_at: startsAt, ends_at: endsAt, location: d.location || '' };
    const submit = form.querySelector('[type=submit]');
    submit.disabled = true;
    try {
      await onSubmit(body);
    } catch (e) {
      showAlert(form, e);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

async function meetingNewView(view) {
  view.textContent = '';
  const now = new Date();
  now.setDate(now.getDate() + 1);
  now.setHours(8, 0, 0, 0);
  const later = new Date(now.getTime() + 2 * 3600 * 1000);
  view.append(
    el('p', { class: 'breadcrumb' }, el('a', { href: '#/meetings' }, t('meetings.back'))),
    el('h1', { text: t('meetings.new') }),
    meetingForm({ kind: 'regular', starts_at: now.getTime(), ends_at: later.getTime() }, async (body) => {
      const m = await api('POST', '/api/meetings', body);
      toast(t('meeting.created'));
      go(`#/meetings/${encodeURIComponent(m.id)}/agenda`);
    }, 'meetings.create'),
  );
}

async function meetingView(view, id, tab) {
  const m = await api('GET', `/api/meetings/${encodeURIComponent(id)}`);
  const meeting = m && m.meeting ? m.meeting : m;
  view.textContent = '';
  const tabs = el('nav', { class: 'tabs', 'aria-label': t('meeting.sections') });
  for (const k of MEETING_TABS) {
    const a = el('a', { href: `#/meetings/${encodeURIComponent(id)}/${k}`, dataset: { tab: k } }, t(`meeting.tab.${k}`));
    if (k === tab) a.setAttribute('aria-current', 'page');
    tabs.append(a);
  }
  const body = el('section', { class: 'tab-body', id: `tab-${tab}` });
  view.append(
    el('p', { class: 'breadcrumb' }, el('a', { href: '#/meetings' }, t('meetings.back'))),
    el(
      'div',
      { class: 'view-head meeting-head' },
      el('h1', { id: 'meeting-title', text: meeting.title }),
      statusBadge(meeting.status),
    ),
    el('p', { class: 'muted meeting-when' }, [t(`mkind.${meeting.kind}`), formatTime(meeting.starts_at), meeting.location].filter(Boolean).join(' · ')),
    tabs,
    body,
  );
  if (tab === 'agenda') await agendaTab(body, meeting);
  else if (tab === 'participants') await participantsTab(body, meeting);
  else if (tab === 'invitations') await invitationsTab(body, meeting);
  else if (tab === 'live') await liveTab(body, meeting);
  else if (tab === 'minutes') {
    const ctx = { api, token: () => state.token, showAlert, clearAlert, toast, confirmDialog, canSeal: canPrepare() };
    await minutesTab(body, meeting, ctx);
  }
  else if (tab === 'attendance' || tab === 'votes') {
    const ctx = { api, token: () => state.token, showAlert, clearAlert, toast, canMark: canPrepare() };
    await (tab === 'attendance' ? attendanceTab : pollsTab)(body, meeting, ctx);
  }
  else {
    const participants = listOf(await api('GET', `/api/meetings/${encodeURIComponent(meeting.id)}/participants`), 'participants');
    infoTab(body, meeting, participants);
  }
}

function infoTab(body, meeting, participants) {
  const form = meetingForm(meeting, async (patch) => {
    const chair = form.querySelector('[name=chair_participant_id]');
    if (chair) patch.chair_participant_id = chair.value || null;
    await api('PATCH', `/api/meetings/${encodeURIComponent(meeting.id)}`, patch);
    toast(t('meeting.saved'));
    route();
  }, 'action.save');
  // The chair is one of the meeting's participants (chairs first).
  const chairs = [...participants].sort((a, b) => (b.role === 'chair') - (a.role === 'chair'));
  form.querySelector('.form-actions').before(
    field(
      'meeting.field.chair',
      select('chair_participant_id', ['', ...chairs.map((p) => p.id)], (id) => {
        if (!id) return t(participants.length ? 'meeting.noChair' : 'meeting.noParticipants');
        const p = participants.find((x) => x.id === id);
        return `${p.name}${p.position ? ` – ${p.position}` : ''}`;
      }, meeting.chair_participant_id || ''),
    ),
  );
  const statusBox = el(
    'section',
    { class: 'card status-box', 'aria-labelledby': 'status-heading' },
    el('h2', { id: 'status-heading', text: t('meeting.statusTitle') }),
    el('p', {}, t('meeting.statusNow'), ' ', statusBadge(meeting.status)),
    el('ol', { class: 'lifecycle' }, MEETING_STATUSES.map((s) => el('li', { class: s === meeting.status ? 'current' : '', text: t(`mstatus.${s}`) }))),
  );
  const actions = el('div', { class: 'form-actions prepare-only' });
  for (const next of TRANSITIONS[meeting.status] || []) {
    // Ending a meeting that never started: it is called off.
    const label = next === 'ended' && meeting.status !== 'in_progress' ? 'transition.calledOff' : `transition.${next}`;
    actions.append(
      button(label, async () => {
        const freezes = next === 'ended' || next === 'archived';
        const question = t('transition.confirm', { title: meeting.title, from: t(`mstatus.${meeting.status}`), to: t(`mstatus.${next}`) });
        const ok = await confirmDialog(
          t(label),
          freezes ? `${question} ${t('transition.freezes')}` : question,
          t(label),
          next === 'ended' || next === 'archived',
        );
        if (!ok) return;
        try {
          await api('POST', `/api/meetings/${encodeURIComponent(meeting.id)}/status`, { status: next });
          toast(t('meeting.statusChanged', { status: t(`mstatus.${next}`) }));
          route();
        } catch (e) {
          showAlert(statusBox, e);
        }
      }, next === 'draft' ? 'btn btn-secondary' : next === 'ended' && meeting.status !== 'in_progress' ? 'btn btn-danger-outline' : 'btn btn-primary', { dataset: { transition: next } }),
    );
  }
  if (!actions.childElementCount) actions.append(el('p', { class: 'muted', text: t('meeting.noTransition') }));
  statusBox.append(actions, copyMeetingBox(meeting));
  body.append(el('div', { class: 'two-col' }, form, statusBox));
  // The notice of conclusions and the documents' deadline (admin-notice.js).
  body.append(deadlinesSection(meeting, deadlineCtx()));
}

/** What admin-notice.js needs from this page. */
function deadlineCtx() {
  return { api, token: () => state.token, showAlert, clearAlert, toast, confirmDialog, canPrepare: canPrepare() };
}

/** "Sao chép cuộc họp": a new draft with this meeting's agenda and
 * participants at a new time; then offers to invite the same groups. */
function copyMeetingBox(meeting) {
  const copyForm = el(
    'form',
    { class: 'form-grid', id: 'copy-meeting-form', novalidate: true },
    field('meeting.copy.title', el('input', { name: 'title', required: true, maxlength: 300, value: meeting.title })),
    field('meeting.copy.startsAt', el('input', { name: 'starts_at', type: 'datetime-local', required: true })),
    el('p', { class: 'muted', text: t('meeting.copy.hint') }),
    el('div', { class: 'form-actions' }, el('button', { type: 'submit', class: 'btn btn-primary', id: 'copy-meeting-submit' }, t('meeting.copy.submit'))),
  );
  copyForm.hidden = true;
  const open = button('meeting.copy.open', () => {
    copyForm.hidden = !copyForm.hidden;
  }, 'btn btn-secondary', { id: 'copy-meeting' });
  copyForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = formData(copyForm);
    if (!d.title) {
      showAlert(copyForm, t('form.titleRequired'));
      return;
    }
    const startsAt = fromLocalInput(d.starts_at);
    if (!startsAt) {
      showAlert(copyForm, t('form.startRequired'));
      return;
    }
    if (startsAt < Date.now() / 1000 - 86400) {
      const ok = await confirmDialog(t('form.pastStartTitle'), t('form.pastStart', { when: formatTime(startsAt) }), t('form.pastStartOk'));
      if (!ok) return;
    }
    clearAlert(copyForm);
    const submit = copyForm.querySelector('[type=submit]');
    submit.disabled = true;
    let copy;
    try {
      copy = await api('POST', `/api/meetings/${encodeURIComponent(meeting.id)}/copy`, { title: d.title, starts_at: startsAt });
    } catch (e) {
      showAlert(copyForm, e);
      submit.disabled = false;
      return;
    }
    toast(t('meeting.copy.done', { title: copy.title }));
    go(`#/meetings/${encodeURIComponent(copy.id)}/info`);
    const levels = copy.invited_levels || [];
    const groups = copy.invited_groups || [];
    if (!levels.length && !groups.length) return;
    const names = [...levels.map((l) => t(`level.${l}`)), ...groups.map((g) => g.name)].join(', ');
    const again = await confirmDialog(t('meeting.copy.reinviteTitle'), t('meeting.copy.reinvite', { levels: names }), t('meeting.copy.reinviteOk', { levels: names }));
    if (!again) return;
    try {
      const mid = encodeURIComponent(copy.id);
      const made = levels.length ? listOf(await api('POST', `/api/meetings/${mid}/invitations/group`, { levels }), 'invitations') : [];
      for (const g of groups) made.push(...listOf(await api('POST', `/api/meetings/${mid}/invitations/unit-group`, { group_id: g.id }), 'invitations'));
      for (const inv of made) if (inv.url) state.inviteUrls.set(inv.id, inv.url);
      toast(made.length ? t('invite.group.done', { n: made.length }) : t('invite.group.none'));
      go(`#/meetings/${encodeURIComponent(copy.id)}/invitations`);
    } catch (e) {
      toast(e.message || String(e));
    }
  });
  return el(
    'div',
    { class: 'copy-meeting prepare-only' },
    el('h3', { text: t('meeting.copy.heading') }),
    open,
    copyForm,
  );
}

// ---- agenda -------------------------------------------------------------------------

async function loadAgenda(meetingId) {
  const items = listOf(await api('GET', `/api/meetings/${encodeURIComponent(meetingId)}/agenda`), 'items');
  items.sort((a, b) => (a.position ?? a.order ?? 0) - (b.position ?? b.order ?? 0));
  await Promise.all(
    items.map(async (item) => {
      if (Array.isArray(item.documents)) return;
      item.documents = listOf(await api('GET', `/api/agenda/${encodeURIComponent(item.id)}/documents`), 'documents');
    }),
  );
  return items;
}

async function agendaTab(body, meeting) {
  const [items, participants, conclusions] = await Promise.all([
    loadAgenda(meeting.id),
    api('GET', `/api/meetings/${encodeURIComponent(meeting.id)}/participants`).then((r) => listOf(r, 'participants')),
    api('GET', `/api/meetings/${encodeURIComponent(meeting.id)}/conclusions`).then((r) => listOf(r, 'conclusions')),
  ]);
  const concluded = new Map(conclusions.map((c) => [c.agenda_item_id, c]));
  for (const item of items) item.conclusion = concluded.get(item.id) || null;
  await loadComments(items, api);
  body.textContent = '';
  const total = items.reduce((s, i) => s + (Number(i.duration_minutes) || 0), 0);
  body.append(
    el(
      'div',
      { class: 'agenda-summary' },
      el('h2', { text: t('agenda.title') }),
      el('p', { id: 'agenda-total', class: 'agenda-total' }, t('agenda.total', { n: items.length, duration: durationText(total) })),
    ),
    documentsDeadlineBox(meeting, deadlineCtx()),
    commentsSummary(meeting, items),
  );
  const list = el('ol', { class: 'agenda-list', id: 'agenda-list' });
  items.forEach((item, index) => list.append(agendaItem(item, index, items, meeting, participants)));
  if (items.length === 0) body.append(el('p', { class: 'muted empty', text: t('agenda.empty') }));
  const add = agendaItemForm(meeting, null);
  add.classList.add('prepare-only');
  body.append(list, add);
}

function agendaItemForm(meeting, item) {
  const editing = !!item;
  const form = el(
    'form',
    { class: editing ? 'agenda-edit form-grid' : 'card form-grid agenda-add', id: editing ? `agenda-edit-${item.id}` : 'agenda-add', novalidate: true },
    editing ? null : el('h3', { class: 'form-title', text: t('agenda.add') }),
    field('agenda.field.title', el('input', { name: 'title', required: true, maxlength: 500, value: item ? item.title : '' })),
    field('agenda.field.presenter', el('input', { name: 'presenter', maxlength: 200, value: item ? item.presenter || '' : '' })),
    field('agenda.field.duration', el('input', { name: 'duration_minutes', type: 'number', min: 0, max: 1440, step: 5, value: item ? item.duration_minutes ?? '' : 15 })),
    el(
      'div',
      { class: 'form-actions' },
      editing ? button('action.cancel', () => route(), 'btn btn-secondary') : null,
      el('button', { type: 'submit', class: 'btn btn-primary' }, t(editing ? 'action.save' : 'agenda.addButton')),
    ),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = formData(form);
    if (!d.title) {
      showAlert(form, t('form.titleRequired'));
      return;
    }
    const minutes = d.duration_minutes === '' ? 0 : Number(d.duration_minutes);
    if (!Number.isFinite(minutes) || minutes < 0) {
      showAlert(form, t('form.badDuration'));
      return;
    }
    const payload = { title: d.title, presenter: d.presenter || '', duration_minutes: Math.round(minutes) };
    try {
      if (editing) await api('PATCH', `/api/agenda/${encodeURIComponent(item.id)}`, payload);
      else await api('POST', `/api/meetings/${encodeURIComponent(meeting.id)}/agenda`, payload);
      toast(t(editing ? 'agenda.saved' : 'agenda.added'));
      if (!editing) state.focusKey = 'agenda-add-title';
      route();
    } catch (e) {
      showAlert(form, e);
    }
  });
  form.querySelector('[name=title]').dataset.focus = editing ? `agenda-edit-title-${item.id}` : 'agenda-add-title';
  return form;
}

/** An item's conclusion ("kết luận"): a text area with save for accounts
 *  that prepare meetings (until the meeting is archived; empty clears it),
 *  the text for the others. */
function conclusionBlock(item, meeting) {
  const text = item.conclusion ? item.conclusion.text : '';
  const id = `conclusion-${item.id}`;
  const box = el('section', { class: 'agenda-conclusion', dataset: { item: item.id } }, el('h4', { text: t('conclusion.title') }));
  if (!canPrepare() || meeting.status === 'archived') {
    box.append(el('p', { class: text ? 'conclusion-text' : 'conclusion-text muted', text: text || t('conclusion.none') }));
    return box;
  }
  const area = el('textarea', { id, name: 'text', rows: 4, maxlength: 20000, placeholder: t('conclusion.placeholder'), 'aria-label': t('conclusion.field', { title: item.title }), dataset: { focus: id } });
  area.value = text;
  const status = el('span', { class: 'muted small conclusion-status', 'aria-live': 'polite' });
  area.addEventListener('input', () => {
    status.textContent = t('conclusion.unsaved');
  });
  const form = el(
    'form',
    { class: 'conclusion-form', novalidate: true },
    area,
    el('small', { class: 'muted', text: t('conclusion.hint') }),
    el('div', { class: 'form-actions' }, status, el('button', { type: 'submit', class: 'btn btn-primary btn-small conclusion-save' }, t('conclusion.save'))),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearAlert(box);
    if ([...area.value.trim()].length > 20000) {
      showAlert(box, t('conclusion.tooLong'));
      return;
    }
    try {
      const c = await api('PUT', `/api/agenda/${encodeURIComponent(item.id)}/conclusion`, { text: area.value });
      item.conclusion = c && c.text ? c : null;
      area.value = item.conclusion ? item.conclusion.text : '';
      status.textContent = '';
      toast(t(item.conclusion ? 'conclusion.saved' : 'conclusion.cleared'));
    } catch (e) {
      showAlert(box, e && e.code === 'meeting_frozen' ? t('conclusion.frozen') : e);
    }
  });
  box.append(form);
  return box;
}

async function moveItem(meeting, items, index, delta, which) {
  const target = index + delta;
  if (target < 0 || target >= items.length) return;
  const ids = items.map((i) => i.id);
  [ids[index], ids[target]] = [ids[target], ids[index]];
  await api('PUT', `/api/meetings/${encodeURIComponent(meeting.id)}/agenda/order`, { item_ids: ids });
  // Keep the keyboard on the moved item: its same button, or the other one
  // when it reached an end of the list.
  const moved = items[index].id;
  const atEnd = (delta < 0 && target === 0) || (delta > 0 && target === items.length - 1);
  state.focusKey = `${atEnd ? (which === 'up' ? 'down' : 'up') : which}-${moved}`;
  toast(t('agenda.moved'));
  route();
}

function agendaItem(item, index, items, meeting, participants) {
  const li = el('li', { class: 'agenda-item card', dataset: { id: item.id } });
  const moveUp = iconButton('↑', t('agenda.moveUp', { title: item.title }), () => moveItem(meeting, items, index, -1, 'up').catch((e) => showAlert(li, e)), {
    dataset: { focus: `up-${item.id}`, action: 'up' },
    disabled: index === 0,
  });
  const moveDown = iconButton('↓', t('agenda.moveDown', { title: item.title }), () => moveItem(meeting, items, index, 1, 'down').catch((e) => showAlert(li, e)), {
    dataset: { focus: `down-${item.id}`, action: 'down' },
    disabled: index === items.length - 1,
  });
  const editBox = el('div', { class: 'agenda-edit-box' });
  const edit = button('action.edit', () => {
    editBox.textContent = '';
    editBox.append(agendaItemForm(meeting, item));
    editBox.querySelector('input').focus();
  }, 'btn btn-secondary btn-small', { 'aria-label': t('agenda.editItem', { title: item.title }) });
  const del = button('action.delete', async () => {
    const ok = await confirmDialog(t('agenda.deleteTitle'), t('agenda.deleteConfirm', { title: item.title }), t('action.delete'), true);
    if (!ok) return;
    try {
      await api('DELETE', `/api/agenda/${encodeURIComponent(item.id)}`);
      toast(t('agenda.deleted'));
      route();
    } catch (e) {
      showAlert(li, e);
    }
  }, 'btn btn-danger-outline btn-small', { 'aria-label': t('agenda.deleteItem', { title: item.title }) });
  const meta = [item.presenter ? t('agenda.presenter', { name: item.presenter }) : null, durationText(item.duration_minutes)].filter(Boolean).join(' · ');
  li.append(
    el(
      'div',
      { class: 'agenda-head' },
      el('span', { class: 'agenda-num', 'aria-hidden': 'true', text: String(index + 1) }),
      el('div', { class: 'agenda-main' }, el('h3', { class: 'agenda-title', text: item.title }), el('p', { class: 'muted agenda-meta', text: meta })),
      el('div', { class: 'agenda-actions prepare-only' }, moveUp, moveDown, edit, del),
    ),
    editBox,
    conclusionBlock(item, meeting),
    documentsBlock(item, participants),
  );
  return li;
}

// ---- documents ---------------------------------------------------------------------------

function latestVersion(doc) {
  const versions = Array.isArray(doc.versions) ? doc.versions : [];
  return versions.reduce((best, v) => (!best || (v.version || 0) > (best.version || 0) ? v : best), null);
}

function docButtons(doc, v) {
  const name = v.filename || doc.title;
  const dl = button('doc.download', async (ev) => {
    try {
      await downloadDocument(doc.id, v.version, state.token, name);
    } catch (e) {
      showAlert(ev.target.closest('.doc, .doc-version') || $('view'), e);
    }
  }, 'btn btn-secondary btn-small doc-download', { 'aria-label': t('doc.downloadNamed', { name, version: v.version }) });
  return [dl];
}

/** Withdraw: asks for the reason (required, kept in the record). */
function withdrawForm(doc) {
  const reason = el('input', { name: 'reason', maxlength: 1000, required: true });
  const form = el(
    'form',
    { class: 'upload-form withdraw-form form-grid', novalidate: true },
    field('doc.withdrawReasonLabel', reason, 'doc.withdrawHelp'),
    el('div', { class: 'form-actions' }, el('button', { type: 'submit', class: 'btn btn-danger' }, t('doc.withdrawSubmit'))),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = reason.value.trim();
    if (!text) {
      showAlert(form, t('doc.withdrawNoReason'));
      return;
    }
    const ok = await confirmDialog(t('doc.withdrawTitle'), t('doc.withdrawConfirm', { title: doc.title }), t('doc.withdrawSubmit'), true);
    if (!ok) return;
    try {
      await api('POST', `/api/documents/${encodeURIComponent(doc.id)}/withdraw`, { reason: text });
      toast(t('doc.withdrawDone', { title: doc.title }));
      route();
    } catch (e) {
      showAlert(form, e);
    }
  });
  return el('details', { class: 'doc-withdraw prepare-only' }, el('summary', { class: 'btn btn-danger-outline btn-small' }, t('doc.withdrawAction')), form);
}

/** Replace: a new file (and optionally title, reason) takes the document's place. */
function replaceForm(doc) {
  const progress = progressBar();
  const fileInput = el('input', { type: 'file', name: 'file', accept: ACCEPT_ATTR, required: true });
  const titleInput = el('input', { name: 'title', maxlength: 300, value: doc.title });
  const reason = el('input', { name: 'reason', maxlength: 1000 });
  const form = el(
    'form',
    { class: 'upload-form replace-form form-grid', novalidate: true },
    field('upload.file', fileInput, 'upload.formats'),
    field('upload.title', titleInput),
    field('doc.replaceReasonLabel', reason),
    el('div', { class: 'form-actions' }, progress.bar, progress.label, el('button', { type: 'submit', class: 'btn btn-primary' }, t('doc.replaceSubmit'))),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const file = fileInput.files && fileInput.files[0];
    if (!file) {
      showAlert(form, t('upload.noFile'));
      return;
    }
    const fd = new FormData();
    fd.append('title', titleInput.value.trim() || doc.title);
    fd.append('reason', reason.value.trim());
    fd.append('file', file, file.name);
    const r = await sendUpload(form, `/api/documents/${encodeURIComponent(doc.id)}/replace`, fd, file, progress);
    if (r) {
      toast(t('doc.replaceDone', { title: doc.title }));
      route();
    }
  });
  return el('details', { class: 'doc-replace prepare-only' }, el('summary', { class: 'btn btn-secondary btn-small' }, t('doc.replaceAction')), form);
}

function documentsBlock(item, participants) {
  const box = el('div', { class: 'docs' });
  const docs = Array.isArray(item.documents) ? item.documents : [];
  if (docs.length > 0) {
    box.append(
      el(
        'ul',
        { class: 'doc-list' },
        docs.map((doc) => documentCard(doc, participants, docs)),
      ),
    );
  } else {
    box.append(el('p', { class: 'muted small', text: t('doc.none') }));
  }
  box.append(uploadForm(item, participants));
  return box;
}

function accessText(doc, participants) {
  if (doc.access !== 'named') return t(`access.${doc.access}`);
  const ids = Array.isArray(doc.participant_ids) ? doc.participant_ids : [];
  const names = ids.map((id) => (participants.find((p) => p.id === id) || {}).name).filter(Boolean);
  return names.length ? `${t('access.named')}: ${names.join(', ')}` : t('access.named');
}

function documentCard(doc, participants, siblings) {
  const v = latestVersion(doc);
  const withdrawn = isWithdrawn(doc);
  const li = el('li', { class: withdrawn ? 'doc doc-withdrawn' : 'doc', dataset: { id: doc.id, withdrawn: withdrawn ? 'true' : 'false' } });
  li.append(
    el(
      'div',
      { class: 'doc-head' },
      fileIcon(v),
      el(
        'div',
        { class: 'doc-main' },
        el('h4', { class: 'doc-title', text: doc.title }),
        el(
          'p',
          { class: 'muted small' },
          [v ? `${v.filename} · ${formatSize(v.size)} · ${t('doc.version', { n: v.version })}` : '', accessText(doc, participants)].filter(Boolean).join(' · '),
        ),
        withdrawnNote(doc, siblings),
      ),
      el('div', { class: 'doc-actions' }, v ? docButtons(doc, v) : null),
    ),
  );
  if (!withdrawn) li.append(el('div', { class: 'doc-manage prepare-only' }, replaceForm(doc), withdrawForm(doc)));
  if (v) li.append(signatureBadge(signatureOf(v)));
  const comments = commentsBlock(doc);
  if (comments) li.append(comments);
  const versions = Array.isArray(doc.versions) ? [...doc.versions].sort((a, b) => (b.version || 0) - (a.version || 0)) : [];
  const versionList = el(
    'ol',
    { class: 'version-list' },
    versions.map((ver) =>
      el(
        'li',
        { class: 'doc-version', dataset: { version: ver.version } },
        el(
          'div',
          { class: 'version-line' },
          el('strong', { text: t('doc.version', { n: ver.version }) }),
          el('span', { class: 'muted small', text: `${ver.filename} · ${formatSize(ver.size)} · ${formatTime(ver.uploaded_at)}` }),
          el('span', { class: 'version-actions' }, docButtons(doc, ver)),
        ),
        el('code', { class: 'sha small', title: 'SHA-256', text: ver.sha256 ? `SHA-256 ${ver.sha256}` : '' }),
        signatureBadge(signatureOf(ver)),
      ),
    ),
  );
  li.append(
    el(
      'details',
      { class: 'versions' },
      el('summary', { text: t('doc.versions', { n: versions.length }) }),
      versionList,
      withdrawn ? null : versionUploadForm(doc),
    ),
  );
  return li;
}

function progressBar() {
  const bar = el('progress', { max: 100, value: 0, class: 'upload-progress', hidden: true });
  const label = el('span', { class: 'muted small upload-label', 'aria-live': 'polite' });
  return { bar, label };
}

function uploadErrorText(e, file) {
  if (e && (e.code === 'upload_too_large' || e.status === 413)) {
    const name = file ? file.name : '';
    const size = file ? formatSize(file.size) : '';
    // The server's message names its limit in bytes.
    const m = /(\d+)\s*bytes/.exec(e.message || '');
    if (m) return t('error.upload_too_large_limit', { name, size, limit: formatSize(Number(m[1])) });
    return t('error.upload_too_large_named', { name, size });
  }
  return apiErrorText(e);
}

async function sendUpload(form, path, fd, file, progress) {
  const submit = form.querySelector('[type=submit]');
  submit.disabled = true;
  progress.bar.hidden = false;
  progress.bar.value = 0;
  progress.label.textContent = t('upload.sending', { percent: 0 });
  clearAlert(form);
  try {
    const doc = await apiUpload(path, {
      token: state.token,
      form: fd,
      onProgress: (loaded, total) => {
        const pct = total ? Math.round((loaded * 100) / total) : 0;
        progress.bar.value = pct;
        progress.label.textContent = pct >= 100 ? t('upload.checking') : t('upload.sending', { percent: pct });
      },
    });
    progress.label.textContent = t('upload.done');
    return doc;
  } catch (e) {
    if (e.status === 401) logout(true);
    progress.bar.hidden = true;
    progress.label.textContent = '';
    showAlert(form, uploadErrorText(e, file)).dataset.code = e.code || '';
    return null;
  } finally {
    submit.disabled = false;
  }
}

function uploadForm(item, participants) {
  const progress = progressBar();
  const named = el(
    'fieldset',
    { class: 'named-list', hidden: true },
    el('legend', { text: t('upload.namedWho') }),
    participants.length
      ? participants.map((p) =>
          el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'participant', value: p.id }), ` ${p.name} (${roleText(p.role)})`),
        )
      : el('p', { class: 'muted small', text: t('upload.noParticipants') }),
  );
  const accessRadios = el(
    'fieldset',
    { class: 'radio-row' },
    el('legend', { text: t('upload.access') }),
    ACCESS.map((a) => el('label', { class: 'check' }, el('input', { type: 'radio', name: 'access', value: a, checked: a === 'everyone' }), ` ${t(`access.${a}`)}`)),
  );
  const fileInput = el('input', { type: 'file', name: 'file', accept: ACCEPT_ATTR, required: true });
  const titleInput = el('input', { name: 'title', maxlength: 300 });
  fileInput.addEventListener('change', () => {
    const f = fileInput.files && fileInput.files[0];
    if (f && !titleInput.value) titleInput.value = f.name.replace(/\.(pdf|docx?|xlsx?|pptx?|od[tsp])$/i, '');
  });
  const form = el(
    'form',
    { class: 'upload-form form-grid', novalidate: true },
    field('upload.file', fileInput, 'upload.formats'),
    field('upload.title', titleInput),
    accessRadios,
    named,
    el('div', { class: 'form-actions' }, progress.bar, progress.label, el('button', { type: 'submit', class: 'btn btn-primary' }, t('upload.submit'))),
  );
  accessRadios.addEventListener('change', () => {
    named.hidden = form.querySelector('[name=access]:checked').value !== 'named';
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const file = fileInput.files && fileInput.files[0];
    if (!file) {
      showAlert(form, t('upload.noFile'));
      return;
    }
    const access = form.querySelector('[name=access]:checked').value;
    const ids = [...form.querySelectorAll('[name=participant]:checked')].map((c) => c.value);
    if (access === 'named' && ids.length === 0) {
      showAlert(form, t('upload.pickSomeone'));
      return;
    }
    const fd = new FormData();
    fd.append('title', titleInput.value.trim() || file.name);
    fd.append('access', access);
    if (access === 'named') fd.append('participant_ids', JSON.stringify(ids));
    fd.append('file', file, file.name);
    const doc = await sendUpload(form, `/api/agenda/${encodeURIComponent(item.id)}/documents`, fd, file, progress);
    if (doc) {
      toast(t('upload.uploaded', { title: doc.title || file.name }));
      route();
    }
  });
  return el(
    'details',
    { class: 'doc-upload prepare-only', dataset: { item: item.id } },
    el('summary', { class: 'btn btn-secondary btn-small' }, t('upload.add')),
    form,
  );
}

function versionUploadForm(doc) {
  const progress = progressBar();
  const fileInput = el('input', { type: 'file', name: 'file', accept: ACCEPT_ATTR, required: true });
  const form = el(
    'form',
    { class: 'upload-form version-upload prepare-only', novalidate: true },
    field('upload.newVersion', fileInput),
    el('div', { class: 'form-actions' }, progress.bar, progress.label, el('button', { type: 'submit', class: 'btn btn-secondary' }, t('upload.submitVersion'))),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const file = fileInput.files && fileInput.files[0];
    if (!file) {
      showAlert(form, t('upload.noFile'));
      return;
    }
    const fd = new FormData();
    fd.append('file', file, file.name);
    const r = await sendUpload(form, `/api/documents/${encodeURIComponent(doc.id)}/versions`, fd, file, progress);
    if (r) {
      toast(t('upload.versionUploaded', { title: doc.title }));
      route();
    }
  });
  return form;
}

// ---- participants ------------------------------------------------------------------------

async function participantsTab(body, meeting) {
  const [participants, points] = await Promise.all([
    api('GET', `/api/meetings/${encodeURIComponent(meeting.id)}/participants`).then((r) => listOf(r, 'participants')),
    api('GET', '/api/bridge-points').then((r) => listOf(r, 'bridge_points')),
  ]);
  body.textContent = '';
  const pointName = (id) => (points.find((b) => b.id === id) || {}).name || '';
  const formBox = el('div', { class: 'form-box' });
  const showForm = (p) => {
    formBox.textContent = '';
    formBox.append(participantForm(meeting, points, p));
    if (p) formBox.querySelector('input').focus();
  };
  body.append(el('h2', { text: t('participants.title') }));
  if (participants.length === 0) body.append(el('p', { class: 'muted empty', text: t('participants.empty') }));
  else {
    body.append(
      el(
        'div',
        { class: 'table-box' },
        el(
          'table',
          { class: 'data-table', id: 'participants-table' },
          el(
            'thead',
            {},
            el(
              'tr',
              {},
              ['participant.name', 'participant.position', 'participant.role', 'participant.voting', 'participant.bridgePoint', 'table.actions'].map((k) =>
                el('th', { scope: 'col', class: k === 'table.actions' ? 'prepare-only' : null, text: t(k) }),
              ),
            ),
          ),
          el(
            'tbody',
            {},
            participants.map((p) =>
              el(
                'tr',
                { dataset: { id: p.id } },
                el('td', { text: p.name }),
                el('td', { text: p.position || '' }),
                el('td', {}, el('span', { class: 'role-badge', text: roleText(p.role) })),
                el('td', { text: p.voting ? t('common.yes') : t('common.no') }),
                el('td', { text: pointName(p.bridge_point_id) }),
                el(
                  'td',
                  { class: 'row-actions prepare-only' },
                  button('action.edit', () => showForm(p), 'btn btn-secondary btn-small', { 'aria-label': t('participants.editNamed', { name: p.name }) }),
                  button('action.delete', async (ev) => {
                    const ok = await confirmDialog(t('participants.deleteTitle'), t('participants.deleteConfirm', { name: p.name }), t('action.delete'), true);
                    if (!ok) return;
                    try {
                      await api('DELETE', `/api/participants/${encodeURIComponent(p.id)}`);
                      toast(t('participants.deleted'));
                      route();
                    } catch (e) {
                      showAlert(body, e);
                      ev.target.focus();
                    }
                  }, 'btn btn-danger-outline btn-small', { 'aria-label': t('participants.deleteNamed', { name: p.name }) }),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }
  body.append(formBox);
  showForm(null);
}

function participantForm(meeting, points, p) {
  const editing = !!p;
  const form = el(
    'form',
    { class: 'card form-grid prepare-only', id: 'participant-form', novalidate: true },
    el('h3', { class: 'form-title', text: t(editing ? 'participants.edit' : 'participants.add') }),
    field('participant.name', el('input', { name: 'name', required: true, maxlength: 200, value: p ? p.name : '' })),
    field('participant.position', el('input', { name: 'position', maxlength: 200, value: p ? p.position || '' : '' })),
    field('participant.role', select('role', PARTICIPANT_ROLES, (r) => roleText(r), p ? p.role : 'member')),
    field('participant.bridgePoint', select('bridge_point_id', ['', ...points.map((b) => b.id)], (id) => (id ? (points.find((b) => b.id === id) || {}).name : t('participant.noBridgePoint')), p ? p.bridge_point_id || '' : '')),
    el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'voting', checked: p ? !!p.voting : false }), ` ${t('participant.votingLabel')}`),
    el(
      'div',
      { class: 'form-actions' },
      editing ? button('action.cancel', () => route(), 'btn btn-secondary') : null,
      el('button', { type: 'submit', class: 'btn btn-primary' }, t(editing ? 'action.save' : 'participants.addButton')),
    ),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = formData(form);
    if (!d.name) {
      showAlert(form, t('form.nameRequired'));
      return;
    }
    const payload = {
      name: d.name,
      position: d.position || '',
      role: d.role,
      voting: form.querySelector('[name=voting]').checked,
      bridge_point_id: d.bridge_point_id || null,
    };
    try {
      if (editing) await api('PATCH', `/api/participants/${encodeURIComponent(p.id)}`, payload);
      else await api('POST', `/api/meetings/${encodeURIComponent(meeting.id)}/participants`, payload);
      toast(t(editing ? 'participants.saved' : 'participants.added'));
      route();
    } catch (e) {
      showAlert(form, e);
    }
  });
  return form;
}

// ---- invitations -------------------------------------------------------------------------

function inviteStatus(inv) {
  if (['active', 'revoked', 'expired'].includes(inv.state)) return inv.state;
  if (inv.revoked_at) return 'revoked';
  const exp = toDate(inv.expires_at);
  if (exp && exp.getTime() < Date.now()) return 'expired';
  return 'active';
}

function copyButton(url, name) {
  return button('invite.copy', async (ev) => {
    const ok = await copyText(url);
    toast(ok ? t('invite.copied') : t('invite.copyFailed'));
    if (ok) ev.target.dataset.copied = 'true';
  }, 'btn btn-primary btn-small', { 'aria-label': t('invite.copyNamed', { name }), dataset: { url } });
}

/** A warning paragraph for a link base the server flagged (`url_warning`), or null. */
function linkWarning(kind) {
  if (kind !== 'local_only' && kind !== 'insecure') return null;
  return el('p', { class: 'alert alert-warn link-warning', dataset: { warning: kind }, role: 'alert', text: t(`invite.warn.${kind}`) });
}

// ---- the live roster (the operator's view) ------------------------------------------

/** How often the Live tab reads the roster again while it is shown. */
const LIVE_REFRESH_MS = 5000;

/** Unix seconds as dd/mm/yyyy hh:mm:ss (a replacement's moment, to the second). */
function secondsTime(unix) {
  const d = toDate(unix);
  if (!d) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getDate())}/${p(d.getMonth() + 1)}/${d.getFullYear()} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * The Live tab: who is connected now (GET /api/meetings/{id}/live), the WHEP
 * players, and the sessions a new join with the same invitation replaced (a
 * copied link kicks the real bridge point: the operator must see it). Reads
 * again every LIVE_REFRESH_MS while the tab is on the page.
 */
async function liveTab(body, meeting) {
  const path = `/api/meetings/${encodeURIComponent(meeting.id)}/live`;
  const updated = el('p', { class: 'muted live-updated', id: 'live-updated' });
  const content = el('div', { id: 'live-content' });
  body.append(el('h2', { text: t('meeting.tab.live') }), el('p', { class: 'muted', text: t('live.help') }), updated, content);
  // The operator's dashboard: every expected point's link, alerts, the text channel.
  const desk = el('a', { class: 'btn btn-secondary', id: 'live-desk-link', href: `/operator?meeting=${encodeURIComponent(meeting.id)}`, target: '_blank', rel: 'noopener', text: t('desk.openDashboard') });
  body.insertBefore(el('p', {}, desk), updated);
  let seen = -1; // replacements shown last time (-1: none yet)
  const tick = async () => {
    if (!body.isConnected || !state.token) return;
    try {
      const roster = await api('GET', path);
      if (!body.isConnected) return;
      clearAlert(body);
      seen = renderLive(content, roster || {}, seen);
      updated.textContent = t('live.updated', { time: secondsTime(Date.now()).slice(11) });
    } catch (e) {
      if (!body.isConnected || !state.token) return;
      showAlert(body, t('live.failed', { error: apiErrorText(e) }));
    }
    if (body.isConnected) setTimeout(tick, LIVE_REFRESH_MS);
  };
  await tick();
}

/** Fills the Live tab's lists; returns how many replacements it shows. */
function renderLive(box, roster, seen) {
  const participants = Array.isArray(roster.participants) ? roster.participants : [];
  const viewers = Array.isArray(roster.viewers) ? roster.viewers : [];
  const replacements = (Array.isArray(roster.replacements) ? [...roster.replacements] : []).sort((a, b) => (b.at || 0) - (a.at || 0));
  const table = (id, heads, rows) =>
    el(
      'div',
      { class: 'table-box' },
      el('table', { class: 'data-table', id }, el('thead', {}, el('tr', {}, heads.map((k) => el('th', { scope: 'col', text: t(k) })))), el('tbody', {}, rows)),
    );
  const kindText = (k) => (hasText(`live.kind.${k}`) ? t(`live.kind.${k}`) : k || '');
  box.textContent = '';
  if (replacements.length > 0) {
    // Announced (role alert) only when a new one appears, not every refresh.
    const more = seen >= 0 && replacements.length > seen;
    box.append(el('p', { class: 'alert alert-warn', id: 'live-replaced-alert', role: more ? 'alert' : null, text: t('live.replacedAlert', { n: replacements.length }) }));
  }
  box.append(el('h3', { text: t('live.participants', { n: participants.length }) }));
  if (participants.length === 0) box.append(el('p', { class: 'muted empty', id: 'live-no-participants', text: t('live.noParticipants') }));
  else {
    box.append(
      table(
        'live-participants',
        ['live.name', 'participant.role', 'live.kind', 'live.since', 'live.media'],
        participants.map((p) =>
          el(
            'tr',
            { dataset: { id: p.id || '', kind: p.kind || '', invitationId: p.invitation_id || '' } },
            el('td', { text: p.name || '' }),
            el('td', {}, el('span', { class: 'role-badge', text: roleText(p.role) })),
            el('td', { text: kindText(p.kind) }),
            el('td', { text: formatTime(p.joined_at) }),
            el('td', { text: [t('live.tracks', { n: p.tracks || 0 }), p.audio_muted ? t('live.micOff') : null, p.video_muted ? t('live.camOff') : null].filter(Boolean).join(' · ') }),
          ),
        ),
      ),
    );
  }
  box.append(el('h3', { text: t('live.viewers', { n: viewers.length }) }));
  if (viewers.length === 0) box.append(el('p', { class: 'muted empty', id: 'live-no-viewers', text: t('live.noViewers') }));
  else {
    box.append(
      table(
        'live-viewers',
        ['live.name', 'participant.role', 'live.kind', 'live.since'],
        viewers.map((v) =>
          el(
            'tr',
            { dataset: { id: v.id || '', kind: 'viewer', invitationId: v.invitation_id || '' } },
            el('td', { text: v.name || '' }),
            el('td', {}, el('span', { class: 'role-badge', text: roleText(v.role) })),
            el('td', { text: kindText('viewer') }),
            el('td', { text: formatTime(v.joined_at) }),
          ),
        ),
      ),
    );
  }
  const section = el('section', { class: replacements.length > 0 ? 'live-replacements has-replacements' : 'live-replacements' });
  section.append(el('h3', { text: t('live.replacements', { n: replacements.length }) }));
  if (replacements.length === 0) section.append(el('p', { class: 'muted empty', id: 'live-no-replacements', text: t('live.noReplacements') }));
  else {
    section.append(
      el('p', { class: 'muted', text: t('live.replacementsHelp') }),
      table(
        'live-replacements',
        ['live.at', 'live.invitation', 'live.oldSession', 'live.newSession'],
        replacements.map((r) =>
          el(
            'tr',
            { class: 'live-replacement', dataset: { invitationId: r.invitation_id || '' } },
            el('td', { text: secondsTime(r.at) }),
            el('td', { text: r.name || '' }),
            el('td', {}, el('code', { text: r.old_participant_id || '' })),
            el('td', {}, el('code', { text: r.new_participant_id || '' })),
          ),
        ),
      ),
    );
  }
  box.append(section);
  return replacements.length;
}

/** An invitee's answer in words: attend, absent (reason), substitute (name, position). */
function answerText(a) {
  if (!a) return t('invite.ans.none');
  if (a.answer === 'absent') return `${t('invite.ans.absent')}: ${a.reason}`;
  if (a.answer === 'substitute') {
    const who = a.substitute_position ? `${a.substitute_name}, ${a.substitute_position}` : a.substitute_name;
    return `${t('invite.ans.substitute')}: ${who}`;
  }
  return t('invite.ans.attend');
}

async function invitationsTab(body, meeting) {
  const [invitations, participants, points, groups] = await Promise.all([
    api('GET', `/api/meetings/${encodeURIComponent(meeting.id)}/invitations`).then((r) => listOf(r, 'invitations')),
    api('GET', `/api/meetings/${encodeURIComponent(meeting.id)}/participants`).then((r) => listOf(r, 'participants')),
    api('GET', '/api/bridge-points').then((r) => listOf(r, 'bridge_points')),
    api('GET', '/api/unit-groups').then((r) => listOf(r, 'groups')),
  ]);
  body.textContent = '';
  const pointName = (id) => (points.find((b) => b.id === id) || {}).name || '';
  body.append(el('h2', { text: t('invite.title') }), el('p', { class: 'muted', text: t('invite.help') }));
  body.append(inviteGroupBar(body, meeting, invitations, groups));
  const flagged = invitations.find((i) => i.url_warning);
  const warning = flagged ? linkWarning(flagged.url_warning) : null;
  if (warning) body.append(warning);
  const early = invitations.filter((i) => i.expires_before_meeting).length;
  if (early > 0) body.append(el('p', { class: 'alert alert-warn', id: 'invite-early', role: 'alert', text: t('invite.warn.early', { n: early }) }));
  // The invitees' answers (PUT /api/invitation/answer), revoked links aside.
  const live = invitations.filter((i) => i.state !== 'revoked');
  if (live.length > 0) {
    const answered = live.filter((i) => i.answer).length;
    const subs = live.filter((i) => i.answer && i.answer.answer === 'substitute').length;
    body.append(el('p', { class: 'muted', id: 'invite-answers', role: 'status', text: t('invite.answersSummary', { n: answered, m: live.length - answered, k: subs }) }));
  }
  // The invitations' e-mail: sent, waiting, failed, units without an
  // address (admin-mail.js, loaded when the tab opens).
  const mailBox = el('p', { class: 'muted', id: 'invite-mail', role: 'status' });
  body.append(mailBox);
  import('./admin-mail.js').then((m) => m.fillMailLine(mailBox, meeting, { api, toast, showAlert, canPrepare: canPrepare() }));
  const created = el('div', { id: 'invite-created', 'aria-live': 'polite' });
  body.append(created);
  if (invitations.length === 0) body.append(el('p', { class: 'muted empty', text: t('invite.empty') }));
  else {
    body.append(
      el(
        'div',
        { class: 'table-box' },
        el(
          'table',
          { class: 'data-table', id: 'invitations-table' },
          el(
            'thead',
            {},
            el('tr', {}, ['invite.name', 'participant.role', 'participant.bridgePoint', 'invite.expires', 'invite.status', 'invite.answer', 'table.actions'].map((k) => el('th', { scope: 'col', class: k === 'table.actions' ? 'prepare-only' : null, text: t(k) }))),
          ),
          el(
            'tbody',
            {},
            invitations.map((inv) => {
              const st = inviteStatus(inv);
              const url = inv.url || state.inviteUrls.get(inv.id) || null;
              return el(
                'tr',
                { dataset: { id: inv.id, status: st } },
                el('td', {}, inv.name, inv.email ? el('small', { class: 'muted invite-email', text: ` <${inv.email}>` }) : null),
                el('td', {}, el('span', { class: 'role-badge', text: roleText(inv.role) })),
                el('td', { text: pointName(inv.bridge_point_id) }),
                el(
                  'td',
                  {},
                  formatTime(inv.expires_at),
                  inv.expires_before_meeting ? el('span', { class: 'status-badge invite-expired expires-early', text: t('invite.expiresEarly') }) : null,
                ),
                el('td', {}, el('span', { class: `status-badge invite-${st}`, text: t(`invite.st.${st}`) })),
                el('td', { class: 'invite-answer', dataset: { answer: (inv.answer && inv.answer.answer) || '' } }, answerText(inv.answer)),
                el(
                  'td',
                  { class: 'row-actions prepare-only' },
                  url && st === 'active' ? copyButton(url, inv.name) : null,
                  st === 'active'
                    ? button('invite.revoke', async () => {
                        const ok = await confirmDialog(t('invite.revokeTitle'), t('invite.revokeConfirm', { name: inv.name }), t('invite.revoke'), true);
                        if (!ok) return;
                        try {
                          await api('POST', `/api/invitations/${encodeURIComponent(inv.id)}/revoke`);
                          toast(t('invite.revoked'));
                          route();
                        } catch (e) {
                          showAlert(body, e);
                        }
                      }, 'btn btn-danger-outline btn-small', { 'aria-label': t('invite.revokeNamed', { name: inv.name }) })
                    : null,
                ),
              );
            }),
          ),
        ),
      ),
    );
  }
  body.append(invitationForm(meeting, participants, points, created));
}

/** One-step invitations of whole groups of units, and the CSV of links. */
function inviteGroupBar(body, meeting, invitations, groups) {
  const mid = encodeURIComponent(meeting.id);
  const group = (levels) => async () => {
    try {
      const made = listOf(await api('POST', `/api/meetings/${mid}/invitations/group`, { levels }), 'invitations');
      for (const inv of made) if (inv.url) state.inviteUrls.set(inv.id, inv.url);
      toast(made.length ? t('invite.group.done', { n: made.length }) : t('invite.group.none'));
      route();
    } catch (e) {
      showAlert(body, e);
    }
  };
  const exportLinks = async () => {
    try {
      const { blob, filename } = await apiBlob(`/api/meetings/${mid}/invitations/export`, { token: state.token });
      saveBlob(blob, filename || 'invitation-links.csv');
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) logout(true);
      else showAlert(body, e);
    }
  };
  const active = invitations.some((i) => inviteStatus(i) === 'active');
  return el(
    'div',
    { class: 'form-actions invite-group-bar prepare-only', id: 'invite-group-bar' },
    button('invite.group.communes', group(['commune', 'ward', 'special_zone']), 'btn btn-primary', { id: 'invite-group-communes' }),
    button('invite.group.departments', group(['department']), 'btn btn-secondary', { id: 'invite-group-departments' }),
    savedGroupInvite(groupCtx(), meeting, groups || [], (made) => {
      for (const inv of made) if (inv.url) state.inviteUrls.set(inv.id, inv.url);
    }),
    button('invite.export', exportLinks, 'btn btn-secondary', { id: 'invite-export', title: t('invite.exportHint'), disabled: !active }),
    el('a', { class: `btn btn-secondary${active ? '' : ' disabled'}`, id: 'invite-print', href: `#/meetings/${mid}/print`, title: t('print.hint') }, t('print.open')),
  );
}

function invitationForm(meeting, participants, points, created) {
  const participantSelect = select('participant_id', ['', ...participants.map((p) => p.id)], (id) => {
    if (!id) return t('invite.noParticipant');
    const p = participants.find((x) => x.id === id);
    return `${p.name} (${roleText(p.role)})`;
  }, '');
  const nameInput = el('input', { name: 'name', required: true, maxlength: 200 });
  const roleSelect = select('role', INVITE_ROLES, (r) => roleText(r), 'bridge');
  const pointSelect = select('bridge_point_id', ['', ...points.map((b) => b.id)], (id) => (id ? (points.find((b) => b.id === id) || {}).name : t('participant.noBridgePoint')), '');
  participantSelect.addEventListener('change', () => {
    const p = participants.find((x) => x.id === participantSelect.value);
    if (!p) return;
    nameInput.value = p.name;
    roleSelect.value = inviteRoleOf(p.role);
    pointSelect.value = p.bridge_point_id || '';
  });
  const expiresInput = el('input', { name: 'expires_at', type: 'datetime-local' });
  const emailInput = el('input', { name: 'email', type: 'email', maxlength: 254, autocomplete: 'off' });
  pointSelect.addEventListener('change', () => {
    const b = points.find((x) => x.id === pointSelect.value);
    if (b && !nameInput.value) nameInput.value = b.name;
  });
  const form = el(
    'form',
    { class: 'card form-grid prepare-only', id: 'invitation-form', novalidate: true },
    el('h3', { class: 'form-title', text: t('invite.add') }),
    field('invite.forParticipant', participantSelect),
    field('invite.name', nameInput),
    field('participant.role', roleSelect),
    field('participant.bridgePoint', pointSelect),
    field('invite.expiresAt', expiresInput, 'invite.expiresHint'),
    field('invite.email', emailInput, 'invite.emailHint'),
    el('div', { class: 'form-actions' }, el('button', { type: 'submit', class: 'btn btn-primary' }, t('invite.create'))),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = formData(form);
    if (!d.name) {
      showAlert(form, t('form.nameRequired'));
      return;
    }
    const payload = { name: d.name, role: d.role };
    if (d.participant_id) payload.participant_id = d.participant_id;
    if (d.bridge_point_id) payload.bridge_point_id = d.bridge_point_id;
    if (d.email) payload.email = d.email.trim();
    const expiresAt = fromLocalInput(d.expires_at);
    if (expiresAt) payload.expires_at = expiresAt;
    try {
      const inv = await api('POST', `/api/meetings/${encodeURIComponent(meeting.id)}/invitations`, payload);
      let url = inv.url;
      if (!url && inv.token) url = `${window.location.origin}/join#${inv.token}`;
      if (url) state.inviteUrls.set(inv.id, url);
      await route();
      const box = $('invite-created');
      if (box && url) {
        box.append(
          el(
            'div',
            { class: 'alert alert-ok invite-new' },
            el('p', { text: t('invite.createdFor', { name: d.name }) }),
            linkWarning(inv.url_warning),
            el('div', { class: 'copy-row' }, el('input', { class: 'invite-url', readonly: true, value: url, 'aria-label': t('invite.link'), onfocus: (e) => e.target.select() }), copyButton(url, d.name)),
          ),
        );
        box.querySelector('.invite-url').focus();
      }
    } catch (e) {
      showAlert(form, e);
    }
  });
  return form;
}

// ---- bridge points --------------------------------------------------------------------------

async function bridgePointsView(view) {
  const points = listOf(await api('GET', '/api/bridge-points'), 'bridge_points');
  view.textContent = '';
  const formBox = el('div', { class: 'form-box' });
  const showForm = (b) => {
    formBox.textContent = '';
    formBox.append(bridgePointForm(b));
    if (b) formBox.querySelector('input').focus();
  };
  view.append(el('div', { class: 'view-head' }, el('h1', { text: t('bridge.title') })), el('p', { class: 'muted', text: t('bridge.help') }));
  const order = (b) => LEVELS.indexOf(b.level);
  const sorted = [...points].sort((a, b) => order(a) - order(b) || String(a.name).localeCompare(String(b.name), 'vi'));
  if (sorted.length === 0) view.append(el('p', { class: 'muted empty', text: t('bridge.empty') }));
  else {
    view.append(
      el(
        'div',
        { class: 'table-box' },
        el(
          'table',
          { class: 'data-table', id: 'bridge-points-table' },
          el('thead', {}, el('tr', {}, ['bridge.name', 'bridge.level', 'bridge.code', 'bridge.operatorPhone', 'bridge.contact', 'table.actions'].map((k) => el('th', { scope: 'col', class: k === 'table.actions' ? 'prepare-only' : null, text: t(k) })))),
          el(
            'tbody',
            {},
            sorted.map((b) =>
              el(
                'tr',
                { dataset: { id: b.id } },
                el('td', {}, b.name, b.active === false ? el('span', { class: 'status-badge invite-revoked inactive-badge', text: t('bridge.inactive') }) : null),
                el('td', {}, el('span', { class: `level-badge level-${b.level}`, text: t(`level.${b.level}`) })),
                el('td', { text: b.code || '' }),
                el('td', { text: b.operator_phone || '' }),
                el('td', { text: b.contact || '' }),
                el('td', { class: 'row-actions prepare-only' }, button('action.edit', () => showForm(b), 'btn btn-secondary btn-small', { 'aria-label': t('bridge.editNamed', { name: b.name }) })),
              ),
            ),
          ),
        ),
      ),
    );
  }
  view.append(formBox, unitImportCard());
  showForm(null);
  view.append(await unitGroupsCard(groupCtx(), points));
}

/** Importing the province's list of units: choose a CSV, preview (errors, duplicates), confirm. */
function unitImportCard() {
  const fileInput = el('input', { type: 'file', name: 'file', accept: '.csv,text/csv', id: 'unit-import-file' });
  const result = el('div', { id: 'unit-import-result', 'aria-live': 'polite' });
  const card = el(
    'section',
    { class: 'card form-grid prepare-only', id: 'unit-import' },
    el('h3', { class: 'form-title', text: t('bridge.import.title') }),
    el('p', { class: 'muted', text: t('bridge.import.help') }),
    field('bridge.import.file', fileInput),
    el('div', { class: 'form-actions' }, button('bridge.import.preview', () => send(true), 'btn btn-secondary', { id: 'unit-import-preview' })),
    result,
  );
  const post = async (query) => {
    const file = fileInput.files && fileInput.files[0];
    let resp;
    try {
      resp = await fetch(`/api/bridge-points/import${query}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${state.token}`, 'Content-Type': 'text/csv', Accept: 'application/json' },
        body: file,
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'network', String(e));
    }
    const v = await resp.json().catch(() => null);
    if (resp.status === 401) logout(true);
    // 409 and 422 carry the report: shown like a preview.
    if (resp.ok || ((resp.status === 409 || resp.status === 422) && v && v.errors)) return v;
    throw new ApiError(resp.status, (v && v.code) || 'unknown', v && v.message);
  };
  const send = async (preview, allowDuplicates) => {
    clearAlert(card);
    if (!fileInput.files || !fileInput.files[0]) {
      showAlert(card, t('bridge.import.noFile'));
      return;
    }
    try {
      const q = preview ? '?dry_run=true' : allowDuplicates ? '?allow_duplicates=true' : '';
      const report = await post(q);
      if (report.imported) {
        toast(t('bridge.import.done', { n: report.created.length }));
        route();
        return;
      }
      showReport(report);
    } catch (e) {
      showAlert(card, e);
    }
  };
  const showReport = (r) => {
    result.textContent = '';
    const fieldName = (f) => t(f === 'code' ? 'bridge.code' : 'bridge.name');
    result.append(el('p', { text: t('bridge.import.summary', { rows: r.rows, valid: r.valid }) }));
    if (r.ignored_columns && r.ignored_columns.length) result.append(el('p', { class: 'muted', text: t('bridge.import.ignored', { cols: r.ignored_columns.join(', ') }) }));
    if (r.errors.length) {
      result.append(
        el('p', { class: 'alert alert-error', role: 'alert', text: t('bridge.import.errors') }),
        el('ul', { class: 'import-errors' }, r.errors.map((e) => el('li', { text: t('bridge.import.lineError', { line: e.line, message: e.message }) }))),
      );
    }
    const allow = el('input', { type: 'checkbox', name: 'allow_duplicates', id: 'unit-import-allow' });
    if (r.duplicates.length) {
      result.append(
        el('p', { class: 'alert alert-warn', role: 'alert', text: t('bridge.import.duplicates') }),
        el(
          'ul',
          { class: 'import-duplicates' },
          r.duplicates.map((d) =>
            el('li', {
              text: d.same_as_line
                ? t('bridge.import.dupFile', { line: d.line, field: fieldName(d.field), value: d.value, other: d.same_as_line })
                : t('bridge.import.dupRegistry', { line: d.line, field: fieldName(d.field), value: d.value }),
            }),
          ),
        ),
        el('label', { class: 'check' }, allow, ` ${t('bridge.import.allowDuplicates')}`),
      );
    }
    if (!r.errors.length) {
      const go = button('bridge.import.confirm', () => send(false, allow.checked), 'btn btn-primary', { id: 'unit-import-confirm' });
      go.textContent = t('bridge.import.confirm', { n: r.valid });
      if (r.duplicates.length) {
        go.disabled = true;
        allow.addEventListener('change', () => {
          go.disabled = !allow.checked;
        });
      }
      result.append(el('div', { class: 'form-actions' }, go));
    }
  };
  fileInput.addEventListener('change', () => {
    result.textContent = '';
  });
  return card;
}

function bridgePointForm(b) {
  const editing = !!b;
  const form = el(
    'form',
    { class: 'card form-grid prepare-only', id: 'bridge-point-form', novalidate: true },
    el('h3', { class: 'form-title', text: t(editing ? 'bridge.edit' : 'bridge.add') }),
    field('bridge.name', el('input', { name: 'name', required: true, maxlength: 200, value: b ? b.name : '' })),
    field('bridge.level', select('level', b && b.level === 'district' ? LEVELS : NEW_LEVELS, (l) => t(`level.${l}`), b ? b.level : 'commune'), b && b.level === 'district' ? 'bridge.districtOld' : null),
    field('bridge.code', el('input', { name: 'code', maxlength: 64, value: b ? b.code || '' : '' })),
    field('bridge.operatorPhone', el('input', { name: 'operator_phone', type: 'tel', maxlength: 64, value: b ? b.operator_phone || '' : '' })),
    field('bridge.email', el('input', { name: 'email', type: 'email', maxlength: 254, value: b ? b.email || '' : '' })),
    field('bridge.contact', el('input', { name: 'contact', maxlength: 300, value: b ? b.contact || '' : '' }), 'bridge.contactHint'),
    editing ? el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'active', checked: b.active !== false }), ` ${t('bridge.activeLabel')}`) : null,
    el(
      'div',
      { class: 'form-actions' },
      editing ? button('action.cancel', () => route(), 'btn btn-secondary') : null,
      el('button', { type: 'submit', class: 'btn btn-primary' }, t(editing ? 'action.save' : 'bridge.addButton')),
    ),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = formData(form);
    if (!d.name) {
      showAlert(form, t('form.nameRequired'));
      return;
    }
    const payload = { name: d.name, level: d.level, contact: d.contact || '', code: d.code || '', operator_phone: d.operator_phone || '', email: d.email || '' };
    if (editing) payload.active = form.querySelector('[name=active]').checked;
    try {
      if (editing) await api('PATCH', `/api/bridge-points/${encodeURIComponent(b.id)}`, payload);
      else await api('POST', '/api/bridge-points', payload);
      toast(t(editing ? 'bridge.saved' : 'bridge.added'));
      route();
    } catch (e) {
      showAlert(form, e);
    }
  });
  return form;
}

// ---- accounts --------------------------------------------------------------------------

/** Checks a new password and its repetition; the error text, or null. */
function newPasswordProblem(pw, again) {
  if ([...pw].length < 8) return t('accounts.tooShort');
  if (again !== undefined && pw !== again) return t('accounts.mismatch');
  return null;
}

async function accountsView(view) {
  const isAdmin = !!state.user && state.user.role === 'admin';
  const users = isAdmin ? listOf(await api('GET', '/api/users'), 'users') : [];
  view.textContent = '';
  view.append(el('div', { class: 'view-head' }, el('h1', { text: t('accounts.title') })));
  view.append(ownPasswordForm());
  if (!isAdmin) return;
  view.append(el('h2', { text: t('accounts.all') }), el('p', { class: 'muted', text: t('accounts.help') }));
  const formBox = el('div', { class: 'form-box' });
  const sorted = [...users].sort((a, b) => String(a.username).localeCompare(String(b.username), 'vi'));
  const act = async (u, what) => {
    const name = u.display_name || u.username;
    const path = `/api/users/${encodeURIComponent(u.id)}/${what}`;
    if (what === 'disable' && !(await confirmDialog(t('accounts.disableConfirmTitle'), t('accounts.disableConfirmText', { name }), t('accounts.disable'), true))) return;
    if (what === 'revoke-sessions' && !(await confirmDialog(t('accounts.revokeConfirmTitle'), t('accounts.revokeConfirmText', { name }), t('accounts.revoke'), true))) return;
    try {
      await api('POST', path);
      if (u.id === state.user.id && what !== 'enable') {
        logout(true);
        return;
      }
      toast(t({ disable: 'accounts.disabledToast', enable: 'accounts.enabledToast', 'revoke-sessions': 'accounts.revokedToast' }[what]));
      state.focusKey = `account-${what === 'disable' ? 'enable' : what === 'enable' ? 'disable' : what}-${u.id}`;
      route();
    } catch (e) {
      showAlert(view, e);
    }
  };
  const showReset = (u) => {
    formBox.textContent = '';
    formBox.append(resetPasswordForm(u, () => (formBox.textContent = '')));
    formBox.querySelector('input').focus();
  };
  view.append(
    el(
      'div',
      { class: 'table-box' },
      el(
        'table',
        { class: 'data-table', id: 'accounts-table' },
        el('thead', {}, el('tr', {}, ['accounts.username', 'accounts.displayName', 'accounts.role', 'accounts.status', 'table.actions'].map((k) => el('th', { scope: 'col', text: t(k) })))),
        el(
          'tbody',
          {},
          sorted.map((u) =>
            el(
              'tr',
              { dataset: { id: u.id, username: u.username } },
              el('td', {}, u.username, u.id === state.user.id ? el('span', { class: 'muted', text: ` ${t('accounts.you')}` }) : null),
              el('td', { text: u.display_name || '' }),
              el('td', { text: t(`staffrole.${u.role}`) }),
              el('td', {}, el('span', { class: `status-badge ${u.active ? 'invite-active' : 'invite-revoked'}`, dataset: { active: String(!!u.active) }, text: t(u.active ? 'accounts.active' : 'accounts.disabled') })),
              el(
                'td',
                { class: 'row-actions' },
                u.active
                  ? button('accounts.disable', () => act(u, 'disable'), 'btn btn-danger btn-small', { dataset: { focus: `account-disable-${u.id}` }, 'aria-label': `${t('accounts.disable')}: ${u.username}` })
                  : button('accounts.enable', () => act(u, 'enable'), 'btn btn-secondary btn-small', { dataset: { focus: `account-enable-${u.id}` }, 'aria-label': `${t('accounts.enable')}: ${u.username}` }),
                button('accounts.resetPassword', () => showReset(u), 'btn btn-secondary btn-small', { 'aria-label': `${t('accounts.resetPassword')}: ${u.username}` }),
                button('accounts.revoke', () => act(u, 'revoke-sessions'), 'btn btn-secondary btn-small', { dataset: { focus: `account-revoke-sessions-${u.id}` }, 'aria-label': `${t('accounts.revoke')}: ${u.username}` }),
              ),
            ),
          ),
        ),
      ),
    ),
    formBox,
    newAccountForm(),
  );
}

/** Change my own password; the answer's token replaces the session's. */
function ownPasswordForm() {
  const form = el(
    'form',
    { class: 'card form-grid', id: 'own-password-form', novalidate: true },
    el('h3', { class: 'form-title', text: t('accounts.mine') }),
    field('accounts.oldPassword', el('input', { type: 'password', name: 'old_password', autocomplete: 'current-password', required: true })),
    field('accounts.newPassword', el('input', { type: 'password', name: 'new_password', autocomplete: 'new-password', required: true, minlength: 8 }), 'accounts.passwordHint'),
    field('accounts.repeatPassword', el('input', { type: 'password', name: 'again', autocomplete: 'new-password', required: true })),
    el(
      'div',
      { class: 'form-actions' },
      button('accounts.signOutEverywhere', async () => {
        if (!(await confirmDialog(t('accounts.revokeConfirmTitle'), t('accounts.signOutEverywhereText'), t('accounts.signOutEverywhere'), true))) return;
        try {
          await api('POST', `/api/users/${encodeURIComponent(state.user.id)}/revoke-sessions`);
          logout(true);
        } catch (e) {
          showAlert(form, e);
        }
      }, 'btn btn-secondary', { id: 'sign-out-everywhere' }),
      el('button', { type: 'submit', class: 'btn btn-primary' }, t('accounts.change')),
    ),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const oldPw = String(fd.get('old_password') || '');
    const pw = String(fd.get('new_password') || '');
    const problem = oldPw ? newPasswordProblem(pw, String(fd.get('again') || '')) : t('login.missing');
    if (problem) {
      showAlert(form, problem);
      return;
    }
    try {
      const r = await api('POST', '/api/auth/password', { old_password: oldPw, new_password: pw });
      state.token = r.token;
      state.user = r.user || state.user;
      saveSession();
      form.reset();
      clearAlert(form);
      toast(t('accounts.changedToast'));
    } catch (e) {
      showAlert(form, e);
    }
  });
  return form;
}

/** An admin sets a new password for `u`. */
function resetPasswordForm(u, close) {
  const form = el(
    'form',
    { class: 'card form-grid', id: 'reset-password-form', novalidate: true },
    el('h3', { class: 'form-title', text: t('accounts.resetTitle', { name: u.username }) }),
    field('accounts.newPassword', el('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 8 }), 'accounts.resetHint'),
    field('accounts.repeatPassword', el('input', { type: 'password', name: 'again', autocomplete: 'new-password', required: true })),
    el('div', { class: 'form-actions' }, button('action.cancel', close, 'btn btn-secondary'), el('button', { type: 'submit', class: 'btn btn-primary' }, t('accounts.resetPassword'))),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const pw = String(fd.get('password') || '');
    const problem = newPasswordProblem(pw, String(fd.get('again') || ''));
    if (problem) {
      showAlert(form, problem);
      return;
    }
    try {
      await api('POST', `/api/users/${encodeURIComponent(u.id)}/password`, { password: pw });
      if (u.id === state.user.id) {
        logout(true);
        return;
      }
      toast(t('accounts.resetToast'));
      close();
    } catch (e) {
      showAlert(form, e);
    }
  });
  return form;
}

function newAccountForm() {
  const form = el(
    'form',
    { class: 'card form-grid', id: 'new-account-form', novalidate: true },
    el('h3', { class: 'form-title', text: t('accounts.create') }),
    field('accounts.username', el('input', { name: 'username', required: true, maxlength: 64, autocomplete: 'off' }), 'accounts.usernameHint'),
    field('accounts.displayName', el('input', { name: 'display_name', required: true, maxlength: 200 })),
    field('accounts.role', select('role', ['secretary', 'operator', 'admin'], (r) => t(`staffrole.${r}`), 'secretary')),
    field('accounts.password', el('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 8 }), 'accounts.passwordHint'),
    el('div', { class: 'form-actions' }, el('button', { type: 'submit', class: 'btn btn-primary' }, t('accounts.createButton'))),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = formData(form);
    const password = String(new FormData(form).get('password') || '');
    const problem = !d.username || !d.display_name ? t('form.nameRequired') : newPasswordProblem(password);
    if (problem) {
      showAlert(form, problem);
      return;
    }
    try {
      await api('POST', '/api/users', { username: d.username, display_name: d.display_name, role: d.role, password });
      toast(t('accounts.created'));
      route();
    } catch (e) {
      showAlert(form, e);
    }
  });
  return form;
}

// ---- start -------------------------------------------------------------------------------

async function main() {
  setupLangSwitch(document);
  applyI18n(document);
  onLangChange(() => {
    if (state.user) $('user-role').textContent = t(`staffrole.${state.user.role}`);
    if (state.token) route();
  });
  $('login-form').addEventListener('submit', onLogin);
  $('logout-button').addEventListener('click', () => logout(false));
  window.addEventListener('hashchange', () => route());
  loadSession();
  if (!state.token) {
    showLogin(null);
    return;
  }
  // Check the stored token (and refresh the user) before showing anything.
  try {
    const me = await apiRequest('GET', '/api/auth/me', { token: state.token });
    state.user = me && me.user ? me.user : me;
    saveSession();
  } catch (e) {
    if (e.status === 401) {
      logout(true);
      return;
    }
  }
  showApp();
  await route();
}

// For tests and debugging.
window.giaobanAdmin = {
  get user() {
    return state.user;
  },
  get route() {
    return state.route;
  },
};

main();
