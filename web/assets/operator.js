// The operator's live dashboard (issue 23), /operator?meeting=<id>: every
// expected bridge point of a meeting (its invitations) with its link now,
// its latest pre-meeting check, the alerts, and the text channel with the
// points. Polls GET /api/meetings/{id}/dashboard every 2 s (see
// signaling/src/api/techdesk.rs for why polling). Beside the client's own
// figures, the "Máy chủ" column shows what the media server measured of
// the point (received and sent kbit/s, loss of what it sends); a stale
// point whose media still reaches the server says so.
//
// 150+ rows stay cheap: one <tr> per invitation, kept between polls; a
// poll writes only the cells whose text changed and moves rows only when
// the order changed.
//
// For tests, `window.giaobanDesk` exposes the last answer.

import { apiRequest } from './api.js';
import { applyI18n, setupLangSwitch, t, onLangChange } from './i18n.js';

const $ = (id) => document.getElementById(id);
const SESSION_KEY = 'giaoban.staff';
const POLL_MS = 2000;
const CHAT_POLL_MS = 3000;

const state = {
  token: '',
  meetingId: '',
  data: null,
  rows: new Map(),
  order: [],
  sort: 'severity',
  desc: false,
  filter: '',
  stateFilter: '',
  chatTo: null,
  chatAfter: 0,
  names: new Map(),
  timer: null,
  chatTimer: null,
};

function loadToken() {
  try {
    const s = JSON.parse(window.sessionStorage.getItem(SESSION_KEY) || 'null');
    if (s && typeof s.token === 'string') state.token = s.token;
  } catch (_) {
    state.token = '';
  }
}

function hhmm(unix) {
  if (!unix) return '—';
  const d = new Date(unix * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

function ago(unix, now) {
  if (!unix) return '—';
  const s = Math.max(0, now - unix);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m`;
}

const num = (v, digits = 0) => (v === null || v === undefined ? '—' : Number(v).toFixed(digits));

function lossOf(r) {
  if (!r) return null;
  const a = r.loss_in_percent;
  const b = r.loss_out_percent;
  if (a === null || a === undefined) return b === undefined ? null : b;
  if (b === null || b === undefined) return a;
  return Math.max(a, b);
}

function checkText(c) {
  if (!c) return t('desk.check.none');
  if (c.ready) return `${t('desk.check.ready')} (${hhmm(c.created_at)})`;
  return `${c.problems.map((p) => t(`check.problem.${p}`)).join(', ')} (${hhmm(c.created_at)})`;
}

/** The server's figures of a point, short ("↓512 ↑1400 · 0,3 %"), and in full for the cell's title. */
function serverText(s) {
  if (!s) return ['—', ''];
  const short = `↓${num(s.received_kbps)} ↑${num(s.sent_kbps)}${s.loss_in_percent === null || s.loss_in_percent === undefined ? '' : ` · ${num(s.loss_in_percent, 1)} %`}`;
  const full = t('desk.serverDetail', {
    in: num(s.received_kbps),
    out: num(s.sent_kbps),
    loss: num(s.loss_in_percent, 1),
    lossOut: num(s.loss_out_percent, 1),
    rtt: num(s.rtt_ms),
    nacks: s.nacks,
    plis: s.keyframe_requests,
    asked: s.keyframes_asked,
    last: s.last_media_secs === null || s.last_media_secs === undefined ? '—' : `${s.last_media_secs}s`,
    layers: s.layers.length ? s.layers.map((l) => l || '1').join(' ') : '—',
    path: s.path ? s.path.toUpperCase() : '—',
  });
  return [short, full];
}

/** The cells of a point, as text (and sort keys). */
function cellsOf(p, now) {
  const r = p.report || {};
  const s = p.server;
  const loss = lossOf(p.report);
  // Reports stopped, but the server still gets its media: the link is
  // likely fine, the page's reporting is not.
  const flowing = p.state === 'stale' && s && s.media_flowing;
  const stateText = flowing ? `${t('desk.state.stale')} · ${t('desk.mediaFlows')}` : t(`desk.state.${p.state}`);
  const layer = r.video_height_in || r.video_height_out ? `${r.video_height_out || '—'}↑ ${r.video_height_in || '—'}↓` : '—';
  return {
    severity: [stateText, p.severity],
    name: [p.name, p.name.toLowerCase()],
    since: [p.since ? hhmm(p.since) : '—', p.since || 0],
    path: [r.path ? r.path.toUpperCase() : '—', r.path || ''],
    in: [num(r.bitrate_in_kbps), r.bitrate_in_kbps ?? -1],
    out: [num(r.bitrate_out_kbps), r.bitrate_out_kbps ?? -1],
    loss: [num(loss, 1), loss ?? -1],
    rtt: [num(r.rtt_ms), r.rtt_ms ?? -1],
    jitter: [num(r.jitter_ms), r.jitter_ms ?? -1],
    level: [r.audio_level === undefined || r.audio_level === null ? '—' : String(Math.round(r.audio_level * 100)), r.audio_level ?? -1],
    layer: [layer, r.video_height_in || 0],
    seen: [ago(p.last_seen, now), p.last_seen || 0],
    browser: [r.browser || '—', r.browser || ''],
    check: [checkText(p.check), p.check ? (p.check.ready ? 1 : 0) : -1],
    server: [serverText(s)[0], s ? s.received_kbps ?? -1 : -2],
  };
}

const COLUMNS = ['severity', 'name', 'since', 'path', 'in', 'out', 'loss', 'server', 'rtt', 'jitter', 'level', 'layer', 'seen', 'browser', 'check'];

function makeRow(p) {
  const tr = document.createElement('tr');
  tr.dataset.invitation = p.invitation_id;
  for (const c of COLUMNS) {
    const td = document.createElement('td');
    td.dataset.col = c;
    tr.appendChild(td);
  }
  const nameCell = tr.children[COLUMNS.indexOf('name')];
  nameCell.classList.add('desk-name');
  nameCell.tabIndex = 0;
  nameCell.addEventListener('click', () => showHistory(p.invitation_id));
  const td = document.createElement('td');
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'btn btn-small btn-secondary';
  b.textContent = '✉';
  b.setAttribute('aria-label', t('desk.writeTo'));
  b.addEventListener('click', () => chooseChat(p.invitation_id));
  td.appendChild(b);
  tr.appendChild(td);
  return { tr, cells: [...tr.children].slice(0, COLUMNS.length), keys: {}, point: p };
}

function visible(p) {
  if (state.stateFilter === 'problems' && (p.state === 'ok' || (p.state === 'absent' && (!p.check || p.check.ready)))) return false;
  if (state.stateFilter && state.stateFilter !== 'problems' && p.state !== state.stateFilter) return false;
  if (state.filter && !p.name.toLowerCase().includes(state.filter)) return false;
  return true;
}

function render() {
  const d = state.data;
  if (!d) return;
  const now = d.now;
  const seen = new Set();
  for (const p of d.points) {
    seen.add(p.invitation_id);
    state.names.set(p.invitation_id, p.name);
    let row = state.rows.get(p.invitation_id);
    if (!row) {
      row = makeRow(p);
      state.rows.set(p.invitation_id, row);
    }
    row.point = p;
    const cells = cellsOf(p, now);
    COLUMNS.forEach((c, i) => {
      const [text, key] = cells[c];
      if (row.cells[i].textContent !== text) row.cells[i].textContent = text;
      row.keys[c] = key;
    });
    if (row.tr.dataset.state !== p.state) row.tr.dataset.state = p.state;
    const lossy = (lossOf(p.report) ?? 0) >= d.settings.loss_alert_percent;
    row.cells[COLUMNS.indexOf('loss')].classList.toggle('bad', lossy);
    row.cells[COLUMNS.indexOf('rtt')].classList.toggle('bad', (p.report?.rtt_ms ?? 0) >= d.settings.rtt_alert_ms);
    row.cells[COLUMNS.indexOf('check')].classList.toggle('bad', !!p.check && !p.check.ready);
    const serverCell = row.cells[COLUMNS.indexOf('server')];
    const title = serverText(p.server)[1];
    if (serverCell.title !== title) serverCell.title = title;
    serverCell.classList.toggle('bad', (p.server?.loss_in_percent ?? 0) >= d.settings.loss_alert_percent || p.state === 'no_media');
  }
  for (const [id, row] of state.rows) {
    if (!seen.has(id)) {
      row.tr.remove();
      state.rows.delete(id);
    }
  }
  const rows = [...state.rows.values()].filter((r) => visible(r.point));
  const dir = state.desc ? -1 : 1;
  rows.sort((a, b) => {
    const x = a.keys[state.sort];
    const y = b.keys[state.sort];
    if (x < y) return -dir;
    if (x > y) return dir;
    return a.keys.name < b.keys.name ? -1 : 1;
  });
  const order = rows.map((r) => r.tr.dataset.invitation);
  const body = $('desk-rows');
  if (order.join('|') !== state.order.join('|') || body.children.length !== order.length) {
    const frag = document.createDocumentFragment();
    for (const r of rows) frag.appendChild(r.tr);
    body.replaceChildren(frag);
    state.order = order;
  }
  const counts = Object.entries(d.counts)
    .sort()
    .map(([k, v]) => `${t(`desk.state.${k}`)}: ${v}`)
    .join(' · ');
  $('desk-counts').textContent = `${d.points.length} ${t('desk.points')} — ${counts}`;
  const alerts = $('desk-alerts');
  const items = d.alerts.slice(0, 50).map((a) => {
    const li = document.createElement('li');
    li.dataset.kind = a.kind;
    li.textContent = `${hhmm(a.at)} ${a.name || ''}: ${t(`desk.alert.${a.kind}`)}${a.detail ? ` (${a.detail})` : ''}`;
    return li;
  });
  alerts.replaceChildren(...items);
}

async function poll() {
  if (!state.meetingId) return;
  try {
    state.data = await apiRequest('GET', `/api/meetings/${encodeURIComponent(state.meetingId)}/dashboard`, { token: state.token });
    $('desk-error').hidden = true;
    render();
    state.polls = (state.polls || 0) + 1;
    if (state.historyOf && state.polls % 3 === 0) showHistory(state.historyOf);
  } catch (e) {
    if (e.code === 'unauthorized') return showLogin();
    $('desk-error').textContent = `${t('desk.error')} (${e.code})`;
    $('desk-error').hidden = false;
  }
}

/** The point's history (loss and round-trip time, last 5 minutes) as two lines. */
async function showHistory(invitationId) {
  state.historyOf = invitationId;
  $('desk-history-card').hidden = false;
  $('desk-history-name').textContent = state.names.get(invitationId) || '';
  let samples = [];
  try {
    const r = await apiRequest('GET', `/api/meetings/${encodeURIComponent(state.meetingId)}/link-history/${encodeURIComponent(invitationId)}`, { token: state.token });
    samples = r.samples || [];
  } catch (_) {
    samples = [];
  }
  const svg = $('desk-history-chart');
  const ns = 'http://www.w3.org/2000/svg';
  svg.replaceChildren();
  if (samples.length > 1) {
    const t0 = samples[0].at;
    const span = Math.max(1, samples[samples.length - 1].at - t0);
    const maxRtt = Math.max(100, ...samples.map((s) => s.rtt_ms || 0));
    const maxLoss = Math.max(10, ...samples.map((s) => s.loss_percent || 0));
    const line = (key, max, cls) => {
      const pts = samples
        .filter((s) => s[key] !== null && s[key] !== undefined)
        .map((s) => `${((s.at - t0) / span) * 300},${80 - (s[key] / max) * 76}`)
        .join(' ');
      const pl = document.createElementNS(ns, 'polyline');
      pl.setAttribute('points', pts);
      pl.setAttribute('class', cls);
      svg.appendChild(pl);
    };
    line('loss_percent', maxLoss, 'chart-loss');
    line('rtt_ms', maxRtt, 'chart-rtt');
    $('desk-history-legend').textContent = `${t('desk.col.loss')} (≤ ${maxLoss.toFixed(0)}) · ${t('desk.col.rtt')} (≤ ${maxRtt}) · ${samples.length}`;
  } else {
    $('desk-history-legend').textContent = t('desk.noHistory');
  }
}

function chooseChat(invitationId) {
  state.chatTo = invitationId;
  $('desk-to').textContent = invitationId ? state.names.get(invitationId) || invitationId : t('desk.toAll');
  $('desk-chat-input').focus();
}

async function pollChat() {
  if (!state.meetingId) return;
  try {
    const r = await apiRequest('GET', `/api/meetings/${encodeURIComponent(state.meetingId)}/tech-messages?after=${state.chatAfter}`, { token: state.token });
    const list = $('desk-messages');
    for (const m of r.messages) {
      state.chatAfter = Math.max(state.chatAfter, m.seq);
      const li = document.createElement('li');
      li.className = m.sender === 'operator' ? 'from-operator' : 'from-point';
      const to = m.sender === 'operator'
        ? `→ ${m.invitation_id ? state.names.get(m.invitation_id) || '' : t('desk.toAll')}`
        : '';
      li.textContent = `${hhmm(m.created_at)} ${m.author} ${to}: ${m.text}`;
      list.appendChild(li);
    }
    if (r.messages.length) list.scrollTop = list.scrollHeight;
  } catch (_) {
    // The next poll tries again.
  }
}

async function sendChat(ev) {
  ev.preventDefault();
  const input = $('desk-chat-input');
  const text = input.value.trim();
  if (!text) return;
  const body = { text };
  if (state.chatTo) body.invitation_id = state.chatTo;
  try {
    await apiRequest('POST', `/api/meetings/${encodeURIComponent(state.meetingId)}/tech-messages`, { token: state.token, body });
    input.value = '';
    await pollChat();
  } catch (e) {
    $('desk-error').textContent = `${t('desk.error')} (${e.code})`;
    $('desk-error').hidden = false;
  }
}

function selectMeeting(id) {
  state.meetingId = id;
  state.rows.clear();
  state.order = [];
  state.chatAfter = 0;
  $('desk-rows').replaceChildren();
  $('desk-messages').replaceChildren();
  const url = new URL(window.location.href);
  url.searchParams.set('meeting', id);
  window.history.replaceState(null, '', url);
  poll();
  pollChat();
}

async function showDesk() {
  $('desk-login').hidden = true;
  $('desk').hidden = false;
  let meetings = [];
  try {
    const r = await apiRequest('GET', '/api/meetings', { token: state.token });
    meetings = Array.isArray(r) ? r : r.meetings || r.items || [];
  } catch (e) {
    if (e.code === 'unauthorized') return showLogin();
  }
  const wanted = new URLSearchParams(window.location.search).get('meeting') || '';
  const sel = $('desk-meeting');
  sel.replaceChildren(
    ...meetings
      .filter((m) => !['archived', 'cancelled'].includes(m.status) || m.id === wanted)
      .map((m) => {
        const o = document.createElement('option');
        o.value = m.id;
        o.textContent = `${m.title} (${m.status})`;
        return o;
      }),
  );
  if (wanted && ![...sel.options].some((o) => o.value === wanted)) {
    const o = document.createElement('option');
    o.value = wanted;
    o.textContent = wanted;
    sel.prepend(o);
  }
  if (wanted) sel.value = wanted;
  sel.onchange = () => selectMeeting(sel.value);
  chooseChat(null);
  if (sel.value) selectMeeting(sel.value);
  clearInterval(state.timer);
  clearInterval(state.chatTimer);
  state.timer = setInterval(poll, POLL_MS);
  state.chatTimer = setInterval(pollChat, CHAT_POLL_MS);
}

function showLogin() {
  $('desk').hidden = true;
  $('desk-login').hidden = false;
}

async function login(ev) {
  ev.preventDefault();
  try {
    const r = await apiRequest('POST', '/api/auth/login', { body: { username: $('desk-username').value, password: $('desk-password').value } });
    state.token = r.token;
    try {
      window.sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token: r.token, user: r.user || null }));
    } catch (_) {
      // Kept in memory only.
    }
    $('desk-password').value = '';
    showDesk();
  } catch (e) {
    $('desk-login-error').textContent = `${t('desk.error')} (${e.code})`;
    $('desk-login-error').hidden = false;
  }
}

function main() {
  setupLangSwitch(document);
  applyI18n(document);
  onLangChange(render);
  $('desk-login-form').addEventListener('submit', login);
  $('desk-chat-form').addEventListener('submit', sendChat);
  $('desk-to-all').addEventListener('click', () => chooseChat(null));
  $('desk-filter').addEventListener('input', (ev) => {
    state.filter = ev.target.value.trim().toLowerCase();
    render();
  });
  $('desk-state').addEventListener('change', (ev) => {
    state.stateFilter = ev.target.value;
    render();
  });
  for (const th of document.querySelectorAll('#desk-table th[data-sort]')) {
    th.addEventListener('click', () => {
      if (state.sort === th.dataset.sort) state.desc = !state.desc;
      else {
        state.sort = th.dataset.sort;
        state.desc = false;
      }
      render();
    });
  }
  loadToken();
  if (state.token) showDesk();
  else showLogin();
}

window.giaobanDesk = {
  get data() {
    return state.data;
  },
  row(invitationId) {
    const r = state.rows.get(invitationId);
    return r ? Object.fromEntries(COLUMNS.map((c, i) => [c, r.cells[i].textContent])) : null;
  },
};

main();
