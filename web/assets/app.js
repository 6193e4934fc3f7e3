// The join page: invitation check, camera/microphone preview, the waiting
// screen before the start, the meeting (a main view: the pinned participant,
// else the floor holder, else the chair; a paginated grid of the others; our
// own camera small in a corner), raising a hand, a bridge point's roll call,
// and the chair's console (chair-console.js). The protocol lives in
// protocol.js, the strings in i18n.js.
//
// For tests, `window.giaoban` exposes the client and its peer connections.

import { applyI18n, errorText, onLangChange, roleText, setupLangSwitch, t, getLang } from './i18n.js';
import { formatTime, toDate } from './documents.js';
import { GiaobanClient, HAND_KINDS, fetchInvitation } from './protocol.js';
import { AgendaPanel } from './agenda-panel.js';
import { ChairConsole } from './chair-console.js';
import { VoteBoard } from './vote.js';
import { TechPanel, addCheckLink, startLinkReports } from './techdesk.js';
import { setupRsvp } from './rsvp.js';
import { setupNotices } from './notices.js';
import { setupCodeEntry } from './join-code.js';

const $ = (id) => document.getElementById(id);

const ICONS = {
  mic: '<path d="M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z"/><path d="M5 11a7 7 0 0 0 14 0M12 18v3M8 21h8"/>',
  micOff:
    '<path d="M9 9v3a3 3 0 0 0 5.1 2.1M15 10V6a3 3 0 0 0-5.7-1.3"/><path d="M5 11a7 7 0 0 0 11.5 5.4M19 11a7 7 0 0 1-.6 2.8M12 18v3M8 21h8"/><path d="M3 3l18 18"/>',
  cam: '<rect x="2.5" y="6" width="13" height="12" rx="2"/><path d="M15.5 10.5l6-3.5v10l-6-3.5z"/>',
  camOff:
    '<path d="M9 6h4.5a2 2 0 0 1 2 2v3.5M15.5 15.5V16a2 2 0 0 1-2 2h-9a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2"/><path d="M15.5 10.5l6-3.5v10l-4-2.3"/><path d="M3 3l18 18"/>',
  agenda: '<path d="M9 6h11M9 12h11M9 18h11"/><path d="M4 6h.01M4 12h.01M4 18h.01" stroke-width="3"/>',
  leave:
    '<path d="M1.5 15c5.8-5.8 15.2-5.8 21 0l-2.8 2.8-3.9-1.9v-3a11.5 11.5 0 0 0-7.6 0v3l-3.9 1.9z" fill="currentColor"/>',
  hand: '<path d="M8 13V5.5a1.5 1.5 0 0 1 3 0V11M11 10.5V4a1.5 1.5 0 0 1 3 0v6.5M14 10.5V5.5a1.5 1.5 0 0 1 3 0V14"/><path d="M17 8.5a1.5 1.5 0 0 1 3 0V15a7 7 0 0 1-7 7h-1a7 7 0 0 1-5.6-2.8L3.2 15.9a1.6 1.6 0 0 1 2.4-2.1L8 16"/>',
  pin: '<path d="M9 4h6l-1 5 3 3v2H7v-2l3-3z"/><path d="M12 14v7"/>',
  fullscreen: '<path d="M4 9V4h5M15 4h5v5M20 15v5h-5M9 20H4v-5"/>',
  fullscreenExit: '<path d="M9 4v5H4M20 9h-5V4M15 20v-5h5M4 15h5v5"/>',
  console: '<path d="M4 5h16M4 12h10M4 19h16"/><circle cx="18" cy="12" r="2"/>',
  attendance: '<rect x="5" y="4" width="14" height="17" rx="2"/><path d="M9 4V2.5h6V4M8.5 12.5l2.5 2.5 4.5-5"/>',
};

/** Tiles per page of the grid of the others (a main view beside or above it). */
const PAGE_SIZE_WIDE = 12;
const PAGE_SIZE_NARROW = 9;
const PAGE_SIZE_BESIDE_MAIN = 6;

function icon(name) {
  return `<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">${ICONS[name]}</svg>`;
}

function initials(name) {
  const words = String(name || '')
    .trim()
    .split(/\s+/)
    .filter((w) => w.length > 0);
  if (words.length === 0) return '?';
  const picked = words.length === 1 ? words : words.slice(-2);
  return picked.map((w) => w[0].toLocaleUpperCase('vi')).join('');
}

// ---- state ------------------------------------------------------------------

const state = {
  token: '',
  invitation: null,
  inviteError: null,
  /** Who to call when the invitation does not work (server.contact). */
  inviteContact: null,
  localStream: new MediaStream(),
  mediaError: null,
  muted: { audio: false, video: false },
  devices: { audio: '', video: '' },
  client: null,
  joining: false,
  mediaReady: Promise.resolve(),
  connState: 'idle',
  connCode: null,
  rttMs: null,
  screen: 'join',
  endReason: null, // {kind: 'left'} | {kind: 'error', code}
  self: null,
  meeting: null,
  tiles: new Map(), // participant id (or 'self') → tile
  trackKinds: new Map(), // track_id → {kind, participantId}
  pausedVideo: new Set(), // video track ids the server holds back (last-N)
  trackOwner: new Map(), // MediaStreamTrack → participant id
  banner: null,
  agenda: null, // the AgendaPanel, once the invitation is known
  agendaOpen: false, // the panel beside the tiles (meeting screen)
  /** `meeting_state`: {status, locked, floor: {participant_id, since}|null, current_item_id, join_muted}. */
  meetingState: null,
  /** The speaking queue (`hands`): [{participant_id, name, kind, since}]. */
  hands: [],
  /** The participant pinned to the main view on this page (overrides the floor), or null. */
  pinned: null,
  /** The page of the grid shown (0-based). */
  gridPage: 0,
  /** `{meeting, agenda}` while the meeting has not started. */
  waiting: null,
  /** The chair's console (chair and secretary), once joined. */
  console: null,
  consoleOpen: false,
  handMenuOpen: false,
  /** Our last roll call {leader, attendees} (bridge points), or null. */
  declared: null,
  /** Why the chair removed us (`removed`). */
  removedReason: null,
  /** Live votes (vote.js): the voting card, the banner, the last result. */
  votes: null,
};

// ---- media ------------------------------------------------------------------

function mediaErrorKey(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'media.denied';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'media.notFound';
    case 'NotReadableError':
    case 'AbortError':
      return 'media.busy';
    default:
      return 'media.failed';
  }
}

function constraints(kind) {
  const id = state.devices[kind];
  if (kind === 'audio') {
    return { echoCancellation: true, noiseSuppression: true, autoGainControl: true, ...(id ? { deviceId: { exact: id } } : {}) };
  }
  return { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 }, ...(id ? { deviceId: { exact: id } } : {}) };
}

function setLocalTrack(kind, track) {
  const stream = state.localStream;
  for (const old of kind === 'audio' ? stream.getAudioTracks() : stream.getVideoTracks()) {
    stream.removeTrack(old);
    old.stop();
  }
  if (track) {
    track.enabled = !state.muted[kind];
    stream.addTrack(track);
  }
}

/** Opens the selected camera and microphone (each on its own if both fail). */
async function openMedia(kinds) {
  state.mediaError = null;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    state.mediaError = 'media.insecure';
    renderJoin();
    return;
  }
  const want = kinds || ['audio', 'video'];
  let firstError = null;
  const got = new Set();
  try {
    const c = {};
    for (const k of want) c[k] = constraints(k);
    const s = await navigator.mediaDevices.getUserMedia(c);
    for (const tr of s.getTracks()) {
      setLocalTrack(tr.kind, tr);
      got.add(tr.kind);
    }
  } catch (err) {
    firstError = err;
    if (want.length > 1) {
      for (const k of want) {
        try {
          const s = await navigator.mediaDevices.getUserMedia({ [k]: constraints(k) });
          for (const tr of s.getTracks()) {
            setLocalTrack(tr.kind, tr);
            got.add(tr.kind);
          }
        } catch (_) {
          // reported below
        }
      }
    }
  }
  if (got.size === 0 && firstError) state.mediaError = mediaErrorKey(firstError);
  else if (got.size < want.length) state.mediaError = 'media.partial';
  await fillDeviceSelects();
  startMeter();
  renderJoin();
  renderSelfTile();
}

async function fillDeviceSelects() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch (_) {
    return;
  }
  const current = {
    audio: (state.localStream.getAudioTracks()[0] || {}).getSettings?.().deviceId || state.devices.audio,
    video: (state.localStream.getVideoTracks()[0] || {}).getSettings?.().deviceId || state.devices.video,
  };
  for (const [kind, selectId, devKind] of [
    ['audio', 'mic-select', 'audioinput'],
    ['video', 'camera-select', 'videoinput'],
  ]) {
    const select = $(selectId);
    const list = devices.filter((d) => d.kind === devKind && d.deviceId);
    select.textContent = '';
    if (list.length === 0) {
      const opt = document.createElement('option');
      opt.value = '';
      opt.textContent = t('join.noDevice');
      select.append(opt);
      select.disabled = true;
      continue;
    }
    select.disabled = false;
    list.forEach((d, i) => {
      const opt = document.createElement('option');
      opt.value = d.deviceId;
      opt.textContent = d.label || t('join.device', { n: i + 1 });
      if (d.deviceId === current[kind]) opt.selected = true;
      select.append(opt);
    });
  }
}

// Microphone level: an analyser on the local audio track.
let meter = null;
function startMeter() {
  const track = state.localStream.getAudioTracks()[0];
  if (meter) {
    meter.source.disconnect();
    meter = meter.ctx ? { ctx: meter.ctx } : null;
  }
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!track || !Ctx) return;
  try {
    const ctx = (meter && meter.ctx) || new Ctx();
    const source = ctx.createMediaStreamSource(new MediaStream([track]));
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 512;
    source.connect(analyser);
    meter = { ctx, source, analyser, buf: new Uint8Array(analyser.fftSize) };
  } catch (_) {
    meter = null;
    return;
  }
  if (!meterLoopRunning) {
    meterLoopRunning = true;
    requestAnimationFrame(meterLoop);
  }
}
let meterLoopRunning = false;
function meterLoop() {
  if (!meter || !meter.analyser) {
    meterLoopRunning = false;
    return;
  }
  meter.analyser.getByteTimeDomainData(meter.buf);
  let sum = 0;
  for (const v of meter.buf) {
    const x = (v - 128) / 128;
    sum += x * x;
  }
  const rms = Math.sqrt(sum / meter.buf.length);
  const level = state.muted.audio ? 0 : Math.min(100, Math.round(rms * 400));
  const bar = $('mic-meter-bar');
  bar.style.width = `${level}%`;
  bar.parentElement.setAttribute('aria-valuenow', String(level));
  const selfTile = state.tiles.get('self');
  if (selfTile) selfTile.el.classList.toggle('speaking', level > 12);
  requestAnimationFrame(meterLoop);
}

// ---- join screen ------------------------------------------------------------

/**
 * An observer only watches and listens: the server refuses its `publish`
 * and `mute`, so the page asks for no camera or microphone and shows no
 * mic/cam buttons. The invitation says the role before joining; `joined`
 * (or `resumed`) says it again.
 */
function isObserver() {
  const role = (state.self && state.self.role) || (state.invitation && state.invitation.role);
  return role === 'observer';
}

/** A time as the admin pages write it (dd/mm/yyyy hh:mm), or ''. */
function formatExpiry(unix) {
  return unix ? formatTime(unix) : '';
}

/** The meeting's planned time: "14/12/2026 08:00 – 11:30", or a dash. */
function meetingWhen(m) {
  if (!m.starts_at) return '—';
  const start = formatTime(m.starts_at);
  if (!m.ends_at) return start;
  const end = formatTime(m.ends_at);
  // Same day: only the end's time.
  return end.slice(0, 10) === start.slice(0, 10) ? `${start} – ${end.slice(11)}` : `${start} – ${end}`;
}

function renderControlButton(btn, kind, muted) {
  const on = kind === 'audio' ? 'mic' : 'cam';
  const label = t(`meeting.${on}.${muted ? 'on' : 'off'}`);
  btn.innerHTML = `${icon(muted ? `${on}Off` : on)}<span class="ctl-label"></span>`;
  btn.querySelector('.ctl-label').textContent = label;
  btn.setAttribute('aria-label', label);
  btn.title = label;
  btn.classList.toggle('off', muted);
  const hasTrack = kind === 'audio' ? state.localStream.getAudioTracks().length > 0 : state.localStream.getVideoTracks().length > 0;
  btn.disabled = !hasTrack;
}

function renderJoin() {
  const inv = state.invitation;
  $('invite-checking').hidden = !!(inv || state.inviteError);
  const err = $('invite-error');
  err.hidden = !state.inviteError;
  err.textContent = state.inviteError ? errorText(state.inviteError) : '';
  const contact = (inv && inv.contact) || state.inviteContact;
  $('invite-contact').hidden = !contact;
  $('invite-contact').textContent = contact ? t('join.contact', { contact }) : '';
  $('invite-details').hidden = !inv;
  // No usable invitation: no preview, only the message.
  $('join-screen').classList.toggle('join-failed', !!state.inviteError);
  document.querySelector('.join-preview').hidden = !!state.inviteError;
  $('join-form').hidden = !inv;
  if (inv) {
    $('invite-title').textContent = inv.meeting.title;
    $('invite-when').textContent = meetingWhen(inv.meeting);
    const st = inv.meeting.status;
    $('invite-status').hidden = !st;
    $('invite-status').textContent = st ? t(`mstatus.${st}`) : '';
    $('invite-status').dataset.status = st || '';
    $('invite-where').textContent = inv.meeting.location || '—';
    $('invite-name').textContent = inv.name;
    $('invite-role').textContent = roleText(inv.role);
    $('invite-expires').textContent = formatExpiry(inv.expires_at);
    $('topbar-title').removeAttribute('data-i18n');
    if (state.screen === 'join') $('topbar-title').textContent = inv.meeting.title;
  }
  // An observer: no device choice, no level meter, no preview buttons; a note.
  const observer = isObserver();
  $('observer-note').hidden = !observer;
  for (const id of ['camera-select', 'mic-select']) $(id).closest('.field').hidden = observer;
  document.querySelector('.join-form .meter').hidden = observer;
  document.querySelector('.controls-preview').hidden = observer;
  const merr = $('media-error');
  merr.hidden = !state.mediaError;
  merr.textContent = state.mediaError ? t(state.mediaError) : '';
  $('retry-media').hidden = !state.mediaError || state.mediaError === 'media.insecure';
  $('join-button').disabled = !inv || state.screen !== 'join' || state.joining;

  const video = $('preview-video');
  const vt = state.localStream.getVideoTracks()[0];
  const showVideo = !!vt && !state.muted.video;
  // No invitation, no preview: an empty stream would hold the page's load
  // event for ever.
  if (!state.inviteError && video.srcObject !== state.localStream) video.srcObject = state.localStream;
  video.hidden = !showVideo;
  $('preview-placeholder').hidden = showVideo;
  $('preview-initials').textContent = inv ? initials(inv.name) : '';
  const ph = $('preview-placeholder-text');
  ph.dataset.i18n = observer ? 'join.observerPreview' : vt ? 'join.previewOff' : state.mediaError ? 'meeting.noMedia' : 'join.mediaStarting';
  ph.textContent = t(ph.dataset.i18n);
  renderControlButton($('preview-mic'), 'audio', state.muted.audio);
  renderControlButton($('preview-cam'), 'video', state.muted.video);
}

function toggleMute(kind) {
  if (isObserver()) return;
  const muted = !state.muted[kind];
  state.muted[kind] = muted;
  if (state.client) state.client.setMuted(kind, muted);
  else {
    for (const tr of kind === 'audio' ? state.localStream.getAudioTracks() : state.localStream.getVideoTracks()) {
      tr.enabled = !muted;
    }
  }
  if (meter && meter.ctx && meter.ctx.state === 'suspended') meter.ctx.resume().catch(() => {});
  renderJoin();
  renderControls();
  renderSelfTile();
}

// ---- meeting screen -----------------------------------------------------------

function showScreen(name) {
  state.screen = name;
  $('join-screen').hidden = name !== 'join';
  $('waiting-screen').hidden = name !== 'waiting';
  $('meeting-screen').hidden = name !== 'meeting';
  $('end-screen').hidden = name !== 'end';
  document.body.classList.toggle('page-light', name !== 'meeting');
  document.body.classList.toggle('page-dark', name === 'meeting');
  if (name !== 'meeting' && document.fullscreenElement && document.exitFullscreen) document.exitFullscreen().catch(() => {});
  placeAgenda();
  if (name === 'meeting') arrangeTiles();
}

/** The agenda panel: a card of the join screen, a side panel of the meeting. */
function placeAgenda() {
  const panel = $('agenda-panel');
  if (!state.agenda) {
    panel.hidden = true;
    return;
  }
  const inMeeting = state.screen === 'meeting';
  const home = inMeeting ? $('meeting-body') : $('join-screen');
  if (panel.parentElement !== home) home.append(panel);
  panel.classList.toggle('join-agenda', !inMeeting);
  panel.classList.toggle('side-agenda', inMeeting);
  panel.hidden = state.screen === 'end' || state.screen === 'waiting' || (inMeeting && !state.agendaOpen);
  $('agenda-close').hidden = !inMeeting;
  renderAgendaButton();
}

function renderAgendaButton() {
  const btn = $('agenda-button');
  btn.hidden = !state.agenda;
  const label = t(state.agendaOpen ? 'agenda.panelHide' : 'agenda.panelShow');
  btn.innerHTML = `${icon('agenda')}<span class="ctl-label"></span>`;
  btn.querySelector('.ctl-label').textContent = t('agenda.panelShow');
  btn.setAttribute('aria-label', label);
  btn.title = label;
  btn.setAttribute('aria-pressed', String(state.agendaOpen));
}

function toggleAgenda(open) {
  state.agendaOpen = open === undefined ? !state.agendaOpen : open;
  // One side panel at a time: the stage keeps its room on a tablet.
  if (state.agendaOpen && state.consoleOpen) toggleConsole(false, true);
  placeAgenda();
  layoutTiles();
  if (state.agendaOpen) $('agenda-heading').focus();
  else $('agenda-button').focus();
}

/** A control button: its icon, its (short) label, a longer accessible name. */
function setCtl(btn, iconName, label, longLabel) {
  btn.innerHTML = `${icon(iconName)}<span class="ctl-label"></span>`;
  btn.querySelector('.ctl-label').textContent = label;
  btn.setAttribute('aria-label', longLabel || label);
  btn.title = longLabel || label;
}

/** Whether our own track of `kind` is blocked by the chair. */
function selfBlocked(kind) {
  return !!(state.self && state.self[`${kind}_blocked`]);
}

function isModerator() {
  const role = state.self && state.self.role;
  return role === 'chair' || role === 'secretary';
}

/** Our place in the speaking queue (1-based) and the request, or null. */
function ownHand() {
  if (!state.self) return null;
  const i = state.hands.findIndex((h) => h.participant_id === state.self.id);
  return i < 0 ? null : { place: i + 1, of: state.hands.length, kind: state.hands[i].kind || 'speak' };
}

function renderControls() {
  renderControlButton($('mic-button'), 'audio', state.muted.audio);
  renderControlButton($('cam-button'), 'video', state.muted.video);
  // Blocked by the chair: the button says so (a self-unmute would not be heard).
  for (const [kind, id] of [['audio', 'mic-button'], ['video', 'cam-button']]) {
    const btn = $(id);
    const blocked = selfBlocked(kind);
    btn.classList.toggle('blocked', blocked);
    if (blocked) {
      setCtl(btn, kind === 'audio' ? 'micOff' : 'camOff', t(`meeting.${kind}Blocked.short`), t(`meeting.${kind}Blocked`));
      btn.classList.add('off');
      btn.disabled = true;
    }
  }
  $('mic-button').hidden = isObserver();
  $('cam-button').hidden = isObserver();
  const leave = $('leave-button');
  setCtl(leave, 'leave', t('meeting.leave'));
  renderAgendaButton();
  renderHandControls();
  // The chair's console: chair and secretary.
  const cbtn = $('console-button');
  cbtn.hidden = !(isModerator() && state.console);
  setCtl(cbtn, 'console', t('chair.button'), t(state.consoleOpen ? 'chair.hide' : 'chair.show'));
  cbtn.setAttribute('aria-pressed', String(state.consoleOpen));
  // The roll call: bridge points.
  const abtn = $('attendance-button');
  abtn.hidden = !(state.self && state.self.role === 'bridge');
  setCtl(abtn, 'attendance', t('attendance.button'), t('attendance.title'));
  abtn.classList.toggle('declared', !!state.declared);
  const fbtn = $('fullscreen-button');
  fbtn.hidden = !document.fullscreenEnabled;
  const full = !!document.fullscreenElement;
  setCtl(fbtn, full ? 'fullscreenExit' : 'fullscreen', t(full ? 'meeting.fullscreenExit' : 'meeting.fullscreen'));
  fbtn.setAttribute('aria-pressed', String(full));
  renderBlockedNotice();
}

/** The raise-hand button, its menu of kinds, our place in the queue. */
function renderHandControls() {
  const btn = $('hand-button');
  // Everybody but an observer may ask to speak (request_floor).
  btn.hidden = isObserver() || !state.self;
  const mine = ownHand();
  const floor = hasFloor();
  setCtl(btn, 'hand', t(mine ? 'hand.raised' : 'hand.raise'), mine ? t('hand.placeLong', { place: mine.place, of: mine.of, kind: t(`hand.kind.${mine.kind}`) }) : t('hand.raise'));
  btn.classList.toggle('raised', !!mine);
  btn.setAttribute('aria-expanded', String(state.handMenuOpen));
  const menu = $('hand-menu');
  menu.hidden = !state.handMenuOpen || btn.hidden;
  $('hand-lower').hidden = !mine;
  for (const b of menu.querySelectorAll('.hand-kind')) {
    b.textContent = t(`hand.kind.${b.dataset.kind}`);
    b.setAttribute('aria-checked', String(!!mine && mine.kind === b.dataset.kind));
    b.classList.toggle('current', !!mine && mine.kind === b.dataset.kind);
  }
  const status = $('hand-status');
  status.hidden = !mine && !floor;
  status.dataset.place = mine ? String(mine.place) : '';
  status.classList.toggle('has-floor', floor);
  status.textContent = floor ? t('hand.youHaveFloor') : mine ? t('hand.place', { place: mine.place, of: mine.of, kind: t(`hand.kind.${mine.kind}`) }) : '';
}

/** Whether we hold the floor. */
function hasFloor() {
  const f = state.meetingState && state.meetingState.floor;
  return !!(f && state.self && f.participant_id === state.self.id);
}

/** "Bạn đang bị chủ tọa tắt micro": a line above the stage while blocked. */
function renderBlockedNotice() {
  const box = $('blocked-notice');
  const audio = selfBlocked('audio');
  const video = selfBlocked('video');
  box.hidden = !(audio || video) || state.screen !== 'meeting';
  const parts = [];
  if (audio) parts.push(t('meeting.audioBlocked'));
  if (video) parts.push(t('meeting.videoBlocked'));
  if (audio && !ownHand()) parts.push(t('meeting.blockedHint'));
  box.textContent = parts.join(' · ');
  box.dataset.audio = String(audio);
  box.dataset.video = String(video);
}

function toggleHandMenu(open) {
  state.handMenuOpen = open === undefined ? !state.handMenuOpen : open;
  renderHandControls();
  if (state.handMenuOpen) {
    const first = $('hand-menu').querySelector('.hand-kind');
    if (first) first.focus();
  }
}

async function raiseHand(kind) {
  toggleHandMenu(false);
  if (!state.client) return;
  try {
    await state.client.raiseHand(kind);
  } catch (e) {
    showBannerCode(e.code);
  }
}

async function lowerHand() {
  toggleHandMenu(false);
  if (!state.client) return;
  try {
    await state.client.lowerHand();
  } catch (e) {
    showBannerCode(e.code);
  }
}

/** A refused request: its error in the banner for a few seconds. */
let bannerTimer = null;
function showBannerCode(code) {
  if (!code || code === 'disconnected') return;
  state.banner = { code, transient: true };
  renderBanner();
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => {
    if (state.banner && state.banner.transient) {
      state.banner = null;
      renderBanner();
    }
  }, 6000);
}

function toggleFullscreen() {
  if (document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
  } else if (document.documentElement.requestFullscreen) {
    document.documentElement.requestFullscreen().catch(() => {});
  }
}

function renderStatus() {
  const el = $('conn-status');
  el.hidden = state.screen !== 'meeting' && state.connState === 'idle';
  if (state.connState === 'idle') return;
  el.dataset.state = state.connState;
  let text = t(`status.${state.connState}`);
  if (state.connState === 'connected' && state.rttMs !== null) text += ` · ${t('meeting.rtt', { ms: state.rttMs })}`;
  el.querySelector('.conn-text').textContent = text;
}

function renderBanner() {
  const b = $('meeting-banner');
  const banner = state.banner;
  b.hidden = !banner;
  b.textContent = !banner ? '' : banner.code ? errorText(banner.code) : t(banner.key);
}

function createTile(id, isSelf) {
  const el = document.createElement('article');
  el.className = 'tile';
  if (isSelf) el.classList.add('tile-self');
  el.dataset.participantId = id;
  el.innerHTML = `
    <video class="tile-video" autoplay playsinline muted></video>
    <div class="placeholder"><span class="initials"></span><span class="placeholder-text tile-paused" hidden></span></div>
    <audio class="tile-audio" autoplay></audio>
    <div class="tile-badges">
      <span class="tile-floor" hidden></span>
      <span class="tile-hand" hidden>${icon('hand')}<span class="tile-hand-text"></span></span>
    </div>
    <button type="button" class="tile-pin" aria-pressed="false">${icon('pin')}</button>
    <div class="tile-label">
      <span class="role-badge tile-role"></span>
      <span class="tile-nameline"><span class="tile-mic" hidden>${icon('micOff')}</span><span class="tile-name"></span></span>
    </div>`;
  const tile = {
    id,
    isSelf,
    el,
    video: el.querySelector('.tile-video'),
    audio: el.querySelector('.tile-audio'),
    placeholder: el.querySelector('.placeholder'),
    participant: { id, name: '', role: '', audio_muted: false, video_muted: false },
    videoTrack: null,
    audioTrack: null,
  };
  if (isSelf) tile.video.classList.add('mirror');
  const pin = el.querySelector('.tile-pin');
  if (isSelf) pin.remove();
  else pin.addEventListener('click', () => togglePin(id));
  state.tiles.set(id, tile);
  if (isSelf) $('self-view').append(el);
  else $('tiles').append(el);
  arrangeTiles();
  return tile;
}

function renderTile(tile) {
  const p = tile.participant;
  const pid = tile.isSelf ? (state.self ? state.self.id : null) : tile.id;
  const name = tile.isSelf ? `${p.name} (${t('meeting.you')})` : p.name;
  tile.el.querySelector('.tile-name').textContent = name;
  tile.el.querySelector('.tile-role').textContent = roleText(p.role);
  tile.el.querySelector('.initials').textContent = initials(p.name);
  tile.el.setAttribute('aria-label', `${name}, ${roleText(p.role)}`);
  const mic = tile.el.querySelector('.tile-mic');
  // Muted by itself, or blocked by the chair (not heard either way).
  const blocked = tile.isSelf ? selfBlocked('audio') : !!p.audio_blocked;
  mic.hidden = !p.audio_muted && !blocked;
  mic.classList.toggle('blocked', blocked);
  const micText = blocked ? t('tile.audioBlocked') : t('meeting.micMuted');
  mic.title = micText;
  mic.setAttribute('aria-label', micText);
  // The floor and a raised hand.
  const floor = state.meetingState && state.meetingState.floor;
  const hasTheFloor = !!(floor && pid && floor.participant_id === pid);
  const floorBadge = tile.el.querySelector('.tile-floor');
  floorBadge.hidden = !hasTheFloor;
  floorBadge.textContent = hasTheFloor ? t('tile.floor') : '';
  tile.el.classList.toggle('has-floor', hasTheFloor);
  const hi = pid ? state.hands.findIndex((h) => h.participant_id === pid) : -1;
  const hand = tile.el.querySelector('.tile-hand');
  hand.hidden = hi < 0;
  tile.el.dataset.hand = hi < 0 ? '' : state.hands[hi].kind || 'speak';
  hand.querySelector('.tile-hand-text').textContent = hi < 0 ? '' : `${hi + 1} · ${t(`hand.kind.${state.hands[hi].kind || 'speak'}`)}`;
  const pin = tile.el.querySelector('.tile-pin');
  if (pin) {
    const pinned = state.pinned === tile.id;
    const label = t(pinned ? 'tile.unpin' : 'tile.pin', { name: p.name });
    pin.setAttribute('aria-pressed', String(pinned));
    pin.setAttribute('aria-label', label);
    pin.title = label;
  }
  const vt = tile.videoTrack;
  // Video the server holds back (last-N) shows the name, not a frozen frame.
  const paused = !tile.isSelf && !p.video_muted && isVideoPaused(tile.id);
  const pausedText = tile.el.querySelector('.tile-paused');
  pausedText.hidden = !paused;
  pausedText.textContent = paused ? t('meeting.videoPaused') : '';
  tile.el.classList.toggle('video-paused', paused);
  const showVideo = !!vt && vt.readyState === 'live' && !p.video_muted && !paused && (tile.isSelf || !vt.muted);
  tile.video.hidden = !showVideo;
  tile.placeholder.hidden = showVideo;
  tile.el.classList.toggle('no-video', !showVideo);
}

function isVideoPaused(participantId) {
  for (const trackId of state.pausedVideo) {
    const info = state.trackKinds.get(trackId);
    if (info && info.participantId === participantId) return true;
  }
  return false;
}

function ensureTile(id, participant) {
  let tile = state.tiles.get(id);
  if (!tile) tile = createTile(id, false);
  if (participant) tile.participant = { ...tile.participant, ...participant };
  renderTile(tile);
  return tile;
}

function removeTile(id) {
  const tile = state.tiles.get(id);
  if (!tile) return;
  tile.video.srcObject = null;
  tile.audio.srcObject = null;
  tile.el.remove();
  state.tiles.delete(id);
  if (state.pinned === id) state.pinned = null;
  for (const [track, owner] of state.trackOwner) if (owner === id) state.trackOwner.delete(track);
  arrangeTiles();
  renderCount();
  if (state.console) state.console.participantsChanged();
}

function renderSelfTile() {
  const tile = state.tiles.get('self');
  if (!tile) return;
  const vt = state.localStream.getVideoTracks()[0] || null;
  tile.videoTrack = vt;
  if (tile.video.srcObject !== state.localStream) tile.video.srcObject = state.localStream;
  tile.participant.audio_muted = state.muted.audio;
  tile.participant.video_muted = state.muted.video;
  renderTile(tile);
}

function renderCount() {
  // Bridge points are the invitations with role bridge; the chair, members
  // and the secretariat are counted among those connected, not as points.
  const total = state.tiles.size;
  const points = [...state.tiles.values()].filter((tile) => tile.participant.role === 'bridge').length;
  const count = t('meeting.participants', { points, total });
  const title = state.meeting ? state.meeting.title : '';
  $('topbar-title').textContent = title ? `${title} · ${count}` : count;
}

const watchedTracks = new WeakSet();

function attachTrack(tile, track) {
  const prevOwner = state.trackOwner.get(track);
  if (prevOwner && prevOwner !== tile.id) {
    const prev = state.tiles.get(prevOwner);
    if (prev) detachKind(prev, track.kind, track);
  }
  state.trackOwner.set(track, tile.id);
  if (track.kind === 'video') {
    tile.videoTrack = track;
    tile.video.srcObject = new MediaStream([track]);
    tile.video.play().catch(() => {});
  } else {
    tile.audioTrack = track;
    tile.audio.srcObject = new MediaStream([track]);
    tile.audio.play().catch(() => {});
  }
  if (!watchedTracks.has(track)) {
    // A receiver's track can move to another participant (the server reuses
    // a transceiver): always re-render the tile that owns it now.
    watchedTracks.add(track);
    const rerender = () => {
      const owner = state.tiles.get(state.trackOwner.get(track));
      if (owner) renderTile(owner);
    };
    track.addEventListener('mute', rerender);
    track.addEventListener('unmute', rerender);
    track.addEventListener('ended', rerender);
  }
  renderTile(tile);
}

function detachKind(tile, kind, onlyTrack) {
  if (kind === 'video' && tile.videoTrack && (!onlyTrack || tile.videoTrack === onlyTrack)) {
    tile.videoTrack = null;
    tile.video.srcObject = null;
  }
  if (kind === 'audio' && tile.audioTrack && (!onlyTrack || tile.audioTrack === onlyTrack)) {
    tile.audioTrack = null;
    tile.audio.srcObject = null;
  }
  renderTile(tile);
}

/**
 * Who is in the main view: the participant pinned on this page, else the
 * floor holder, else the (first) chair; never ourselves (our own camera
 * stays small). Null: no main view, only the grid.
 */
function mainId() {
  if (state.pinned && state.tiles.has(state.pinned)) return state.pinned;
  const floor = state.meetingState && state.meetingState.floor;
  if (floor && floor.participant_id && state.tiles.has(floor.participant_id)) return floor.participant_id;
  for (const [id, tile] of state.tiles) if (!tile.isSelf && tile.participant.role === 'chair') return id;
  return null;
}

/** Tiles per page: fewer beside (or under) a main view, where the grid is small. */
function pageSize(hasMain) {
  const stage = $('stage');
  if (hasMain) return PAGE_SIZE_BESIDE_MAIN;
  return stage.clientWidth >= 1100 && stage.clientWidth >= stage.clientHeight ? PAGE_SIZE_WIDE : PAGE_SIZE_NARROW;
}

/** The others in the grid, in order (the main view's participant is not among them). */
function gridTiles(main) {
  return [...state.tiles.values()].filter((tile) => !tile.isSelf && tile.id !== main);
}

/**
 * Puts each tile where it belongs: the main view, the grid (only the tiles of
 * the current page are shown), or the corner (ourselves); then sizes the grid.
 */
function arrangeTiles() {
  const stage = $('stage');
  const mainBox = $('main-view');
  const grid = $('tiles');
  const main = mainId();
  const others = gridTiles(main);
  const size = pageSize(!!main);
  const pages = Math.max(1, Math.ceil(others.length / size));
  state.gridPage = Math.min(Math.max(0, state.gridPage), pages - 1);
  const first = state.gridPage * size;
  const moved = [];
  const mainTile = main ? state.tiles.get(main) : null;
  if (mainTile && mainTile.el.parentElement !== mainBox) {
    mainBox.textContent = '';
    mainBox.append(mainTile.el);
    moved.push(mainTile);
  }
  if (!mainTile) mainBox.textContent = '';
  others.forEach((tile, i) => {
    if (grid.children[i] !== tile.el) {
      grid.insertBefore(tile.el, grid.children[i] || null);
      moved.push(tile);
    }
    tile.el.hidden = i < first || i >= first + size;
  });
  if (mainTile) mainTile.el.hidden = false;
  for (const tile of state.tiles.values()) {
    tile.el.classList.toggle('tile-main', tile === mainTile);
  }
  // A moved video element keeps playing, but make sure.
  for (const tile of moved) if (tile.video.srcObject) tile.video.play().catch(() => {});
  mainBox.hidden = !mainTile;
  stage.classList.toggle('has-main', !!mainTile);
  stage.classList.toggle('has-grid', others.length > 0);
  stage.classList.toggle('has-self', state.tiles.has('self'));
  stage.classList.toggle('portrait', stage.clientHeight > stage.clientWidth);
  $('grid-wrap').hidden = others.length === 0;
  $('stage-empty').hidden = !!mainTile || others.length > 0 || state.screen !== 'meeting';
  const pager = $('grid-pager');
  pager.hidden = pages <= 1;
  $('grid-page').textContent = t('grid.page', { page: state.gridPage + 1, pages });
  $('grid-prev').disabled = state.gridPage === 0;
  $('grid-next').disabled = state.gridPage >= pages - 1;
  layoutTiles();
}

function turnPage(delta) {
  state.gridPage += delta;
  arrangeTiles();
}

function togglePin(id) {
  state.pinned = state.pinned === id ? null : id;
  arrangeTiles();
  for (const tile of state.tiles.values()) renderTile(tile);
}

/** Chooses the number of columns that gives the largest 16:9 tiles. */
function layoutTiles() {
  const container = $('tiles');
  const main = mainId();
  const others = gridTiles(main);
  const onPage = others.filter((tile) => !tile.el.hidden);
  const n = Math.max(1, onPage.length);
  const cs = window.getComputedStyle(container);
  const w = container.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  const h = container.clientHeight - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom);
  if (!(w > 0) || !(h > 0)) {
    sendQualities(main, others, 0);
    return;
  }
  const gap = 8;
  // Wide tiles on a landscape screen; on a portrait one (a tablet held
  // upright) squarer tiles fill the height better (the video is cropped).
  const aspects = w >= h ? [16 / 9, 4 / 3] : [16 / 9, 4 / 3, 1];
  let best = { area: 0, cols: 1, tw: w, th: h };
  for (const aspect of aspects) {
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      let tw = (w - gap * (cols - 1)) / cols;
      let th = tw / aspect;
      if (th * rows + gap * (rows - 1) > h) {
        th = (h - gap * (rows - 1)) / rows;
        tw = th * aspect;
      }
      // A squarer tile must be clearly larger to be worth the cropping.
      const area = tw * th * (aspect === 16 / 9 ? 1.15 : 1);
      if (area > best.area) best = { area, cols, tw, th };
    }
  }
  container.style.setProperty('--cols', String(best.cols));
  container.style.setProperty('--tile-w', `${Math.floor(best.tw)}px`);
  container.style.setProperty('--tile-h', `${Math.floor(best.th)}px`);
  sendQualities(main, others, best.th);
}

/**
 * Asks the server for the simulcast layer that fits the grid's tiles
 * (`tileHeight` CSS pixels), the main view's in full, nothing of the tiles
 * on other pages of the grid.
 */
function sendQualities(main, others, tileHeight) {
  if (!state.client) return;
  const px = tileHeight * (window.devicePixelRatio || 1);
  const by = new Map();
  if (main) by.set(main, 'high');
  for (const tile of others) if (tile.el.hidden) by.set(tile.id, 'off');
  state.client.setVideoQuality(px >= 480 ? 'high' : px >= 200 ? 'medium' : 'low', by);
}

// ---- client events --------------------------------------------------------------

function onJoined(d) {
  state.self = d.self;
  state.meeting = d.meeting;
  state.meetingState = d.meetingState || null;
  state.hands = [];
  state.waiting = null;
  state.banner = null;
  if (state.screen === 'waiting') showScreen('meeting');
  for (const id of [...state.tiles.keys()]) if (id !== 'self') removeTile(id);
  state.trackKinds.clear();
  state.pausedVideo.clear();
  state.trackOwner.clear();
  const selfTile = state.tiles.get('self') || createTile('self', true);
  selfTile.participant = { ...d.self, audio_muted: state.muted.audio, video_muted: state.muted.video };
  renderSelfTile();
  for (const p of d.participants) ensureTile(p.id, p);
  for (const tr of d.tracks) state.trackKinds.set(tr.track_id, { kind: tr.kind, participantId: tr.participant_id });
  renderCount();
  renderBanner();
  // An open vote comes again with `vote_opened`, right after `joined`.
  state.votes.joined();
  setupConsole();
  renderControls();
  arrangeTiles();
  applyCurrentItem();
  // Changes pushed while the socket was down were missed: read it again.
  if (state.agenda && state.agenda.items) state.agenda.reload();
  // A bridge point's roll call: asked once on entering (it can be edited later).
  if (d.self && d.self.role === 'bridge' && !state.declared) openAttendance();
}

// ---- the live meeting: state, hands, blocks -------------------------------------

function onMeetingState(st) {
  // The floor holder becomes the main view, unless this page pinned someone
  // (the pin stays until it is undone; the holder's tile says "speaking").
  state.meetingState = st;
  arrangeTiles();
  for (const tile of state.tiles.values()) renderTile(tile);
  renderControls();
  applyCurrentItem();
  if (state.console) state.console.setMeetingState(st);
}

function onHands(queue) {
  state.hands = queue;
  for (const tile of state.tiles.values()) renderTile(tile);
  renderHandControls();
  renderBlockedNotice();
  if (state.console) state.console.setQueue(queue);
}

function onMediaBlocked(d) {
  if (state.self && d.participantId === state.self.id) {
    state.self = { ...state.self, audio_blocked: d.audio_blocked, video_blocked: d.video_blocked };
    renderSelfTile();
    renderControls();
  } else {
    const tile = state.tiles.get(d.participantId);
    if (tile) {
      tile.participant.audio_blocked = d.audio_blocked;
      tile.participant.video_blocked = d.video_blocked;
      renderTile(tile);
    }
  }
  if (state.console) state.console.participantsChanged();
}

/** The agenda panel marks the item under discussion. */
function applyCurrentItem() {
  if (state.agenda && typeof state.agenda.setCurrentItem === 'function') {
    state.agenda.setCurrentItem((state.meetingState && state.meetingState.current_item_id) || null);
  }
}

// ---- the chair's console ----------------------------------------------------------

/** Builds the console once we know we are chair or secretary (after `joined`). */
function setupConsole() {
  if (!isModerator()) {
    if (state.console) {
      state.console.stop();
      state.console = null;
      state.consoleOpen = false;
      $('chair-panel').hidden = true;
    }
    return;
  }
  if (state.console && state.console.client === state.client) {
    state.console.setMeetingState(state.meetingState);
    state.console.setQueue(state.hands);
    state.console.refreshAttendance();
    return;
  }
  if (state.console) state.console.stop();
  state.console = new ChairConsole({
    root: $('chair-panel'),
    client: state.client,
    token: state.token,
    meetingId: (state.meeting && state.meeting.id) || state.invitation.meeting.id,
    role: state.self.role,
    participants: () =>
      [...state.tiles.values()].filter((tile) => !tile.isSelf).map((tile) => ({ ...tile.participant, id: tile.id })),
    agendaItems: () => (state.agenda && state.agenda.items ? state.agenda.items : null),
    askReason,
    confirmEnd,
    votes: state.votes,
    onClose: () => toggleConsole(false),
  });
  state.console.setMeetingState(state.meetingState);
  state.console.start();
  // Open at the start on a screen wide enough for it beside the stage.
  toggleConsole(window.innerWidth >= 768, true);
}

function toggleConsole(open, quiet) {
  if (!state.console) return;
  state.consoleOpen = open === undefined ? !state.consoleOpen : open;
  if (state.consoleOpen && state.agendaOpen) {
    state.agendaOpen = false;
    placeAgenda();
  }
  $('chair-panel').hidden = !state.consoleOpen;
  renderControls();
  arrangeTiles();
  if (quiet) return;
  if (state.consoleOpen) {
    const h = $('chair-heading');
    if (h) h.focus();
  } else {
    $('console-button').focus();
  }
}

/** Asks the chair why a participant is removed; resolves with the reason, or null. */
function askReason(name) {
  const dialog = $('remove-dialog');
  $('remove-title').textContent = t('chair.removeTitle', { name });
  const input = $('remove-reason');
  input.value = '';
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener('close', done);
      const reason = input.value.trim();
      resolve(dialog.returnValue === 'ok' && reason ? reason.slice(0, 500) : null);
    };
    dialog.returnValue = 'cancel';
    dialog.addEventListener('close', done);
    if (typeof dialog.showModal === 'function') dialog.showModal();
    else {
      dialog.removeEventListener('close', done);
      const r = window.prompt(t('chair.removeTitle', { name }));
      resolve(r && r.trim() ? r.trim().slice(0, 500) : null);
    }
  });
}

/** Asks the chair to confirm the end of the meeting. */
function confirmEnd() {
  const dialog = $('end-dialog');
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener('close', done);
      resolve(dialog.returnValue === 'ok');
    };
    dialog.returnValue = 'cancel';
    dialog.addEventListener('close', done);
    if (typeof dialog.showModal === 'function') dialog.showModal();
    else {
      dialog.removeEventListener('close', done);
      resolve(window.confirm(t('chair.endTitle')));
    }
  });
}

// ---- a bridge point's roll call -------------------------------------------------

function attendanceKey() {
  const m = (state.meeting && state.meeting.id) || (state.invitation && state.invitation.meeting.id) || '';
  return `giaoban.attendance.${m}`;
}

function openAttendance() {
  const form = $('attendance-form');
  const last = state.declared;
  $('attendance-leader').value = last ? last.leader : '';
  $('attendance-count').value = last ? String(last.attendees) : '';
  $('attendance-leader').placeholder = t('attendance.leaderHint');
  $('attendance-error').hidden = true;
  form.hidden = false;
  $('attendance-leader').focus();
}

function closeAttendance() {
  $('attendance-form').hidden = true;
}

async function sendAttendance(ev) {
  ev.preventDefault();
  const leader = $('attendance-leader').value.trim();
  const attendees = Number($('attendance-count').value);
  const err = $('attendance-error');
  const bad = !leader ? 'attendance.needLeader' : !Number.isInteger(attendees) || attendees < 0 || attendees > 10000 ? 'attendance.needCount' : null;
  if (bad) {
    err.hidden = false;
    err.textContent = t(bad);
    return;
  }
  if (!state.client) return;
  $('attendance-send').disabled = true;
  try {
    await state.client.declareAttendance(leader.slice(0, 200), attendees);
    state.declared = { leader, attendees };
    try {
      window.localStorage.setItem(attendanceKey(), JSON.stringify(state.declared));
    } catch (_) {
      // Not remembered across reloads: asked again then.
    }
    closeAttendance();
    renderControls();
  } catch (e) {
    err.hidden = false;
    err.textContent = errorText(e.code || 'unknown');
  } finally {
    $('attendance-send').disabled = false;
  }
}

// ---- the waiting screen -------------------------------------------------------------

function onWaiting(w) {
  state.waiting = w;
  if (state.screen !== 'waiting') showScreen('waiting');
  renderWaiting();
}

/** "Thứ Hai, 14/12/2026 08:00": the weekday in the page's language, then the time. */
function longTime(v) {
  const d = toDate(v);
  if (!d) return '—';
  let day = '';
  try {
    day = d.toLocaleDateString(getLang() === 'vi' ? 'vi-VN' : 'en-GB', { weekday: 'long' });
  } catch (_) {
    day = '';
  }
  const s = formatTime(v);
  return day ? `${day.charAt(0).toLocaleUpperCase(getLang())}${day.slice(1)}, ${s}` : s;
}

/** "Thứ Hai, 14/12/2026 08:00 – 11:30": the planned start with its weekday, and the end. */
function waitingWhen(m) {
  if (!m.starts_at) return '—';
  const start = longTime(m.starts_at);
  if (!m.ends_at) return start;
  const end = formatTime(m.ends_at);
  return end.slice(0, 10) === formatTime(m.starts_at).slice(0, 10) ? `${start} – ${end.slice(11)}` : `${start} – ${end}`;
}

function renderWaiting() {
  const w = state.waiting;
  if (!w) return;
  const m = w.meeting || (state.invitation && state.invitation.meeting) || {};
  $('waiting-title').textContent = m.title || '';
  $('waiting-when').textContent = waitingWhen(m);
  const st = m.status || '';
  const badge = $('waiting-status');
  badge.hidden = !st;
  badge.textContent = st ? t(`mstatus.${st}`) : '';
  badge.className = `status-badge status-${st}`;
  badge.dataset.status = st;
  $('waiting-where').textContent = m.location || '—';
  const list = $('waiting-agenda');
  list.textContent = '';
  const items = [...(w.agenda || [])].sort((a, b) => (a.position ?? a.order ?? 0) - (b.position ?? b.order ?? 0));
  for (const item of items) {
    const li = document.createElement('li');
    li.textContent = item.title;
    li.dataset.id = item.id || '';
    list.append(li);
  }
  $('waiting-agenda-empty').hidden = items.length > 0;
  $('topbar-title').textContent = m.title || '';
}

function wireClient(client) {
  client.addEventListener('state', (ev) => {
    if (state.tech) state.tech.setLive(ev.detail.state === 'connected');
    state.connState = ev.detail.state;
    state.connCode = ev.detail.code || null;
    if (ev.detail.state !== 'connected') state.rttMs = null;
    renderStatus();
    for (const tile of state.tiles.values()) tile.el.classList.toggle('stale', ev.detail.state === 'reconnecting');
    // A dropped socket that will resume keeps the grid and the media: only
    // a small banner says so, until the session is back.
    if (ev.detail.state === 'reconnecting' && ev.detail.resuming) {
      state.banner = { key: 'meeting.reconnecting' };
      renderBanner();
    } else if (ev.detail.state === 'connected' && state.banner && state.banner.key === 'meeting.reconnecting') {
      state.banner = null;
      renderBanner();
    }
    if (ev.detail.state === 'closed' && ev.detail.code) {
      showEnd({ kind: 'error', code: ev.detail.code });
    }
  });
  client.addEventListener('joined', (ev) => onJoined(ev.detail));
  client.addEventListener('waiting', (ev) => onWaiting(ev.detail));
  client.addEventListener('meeting_state', (ev) => onMeetingState(ev.detail.state));
  client.addEventListener('hands', (ev) => onHands(ev.detail.queue));
  client.addEventListener('media_blocked', (ev) => onMediaBlocked(ev.detail));
  client.addEventListener('attendance_declared', (ev) => {
    if (state.console) state.console.noteDeclared(ev.detail);
  });
  client.addEventListener('vote_opened', (ev) => state.votes.opened(ev.detail.poll, ev.detail.voted));
  client.addEventListener('vote_progress', (ev) => state.votes.progressed(ev.detail));
  client.addEventListener('vote_closed', (ev) => state.votes.closed(ev.detail.poll));
  // The document viewer and the synchronized presentation (presentation.js).
  import('./presentation.js')
    .then(({ setupPresenter }) => setupPresenter(client, state))
    .catch((e) => console.error('the document viewer did not load', e));
  client.addEventListener('removed', (ev) => {
    state.removedReason = ev.detail.reason;
  });
  client.addEventListener('resumed', (ev) => {
    // Same participant, same peer connections: the grid stays as it is; the
    // server replays what was missed.
    state.self = ev.detail.self || state.self;
    if (state.banner && state.banner.key === 'meeting.reconnecting') state.banner = null;
    renderBanner();
  });
  client.addEventListener('participant_joined', (ev) => {
    ensureTile(ev.detail.participant.id, ev.detail.participant);
    arrangeTiles();
    renderCount();
    if (state.console) {
      state.console.participantsChanged();
      state.console.refreshAttendance();
    }
  });
  client.addEventListener('participant_left', (ev) => {
    removeTile(ev.detail.participantId);
    if (state.console) state.console.refreshAttendance();
  });
  client.addEventListener('track_published', (ev) => {
    const tr = ev.detail.track;
    state.trackKinds.set(tr.track_id, { kind: tr.kind, participantId: tr.participant_id });
  });
  client.addEventListener('track_unpublished', (ev) => {
    const info = state.trackKinds.get(ev.detail.trackId);
    state.trackKinds.delete(ev.detail.trackId);
    const tile = state.tiles.get(ev.detail.participantId);
    if (info && tile && !tile.isSelf && ev.detail.participantId !== (state.self && state.self.id)) {
      detachKind(tile, info.kind);
    }
  });
  client.addEventListener('mute_changed', (ev) => {
    const tile = state.tiles.get(ev.detail.participantId);
    if (!tile) return;
    if (ev.detail.kind === 'audio') tile.participant.audio_muted = ev.detail.muted;
    if (ev.detail.kind === 'video') tile.participant.video_muted = ev.detail.muted;
    renderTile(tile);
  });
  client.addEventListener('video_paused', (ev) => {
    state.pausedVideo = new Set(ev.detail.trackIds);
    for (const tile of state.tiles.values()) renderTile(tile);
  });
  client.addEventListener('active_speaker', (ev) => {
    for (const [id, tile] of state.tiles) {
      const pid = tile.isSelf && state.self ? state.self.id : id;
      tile.el.classList.toggle('active-speaker', pid === ev.detail.participantId);
    }
  });
  client.addEventListener('remote_track', (ev) => {
    const { participantId, track } = ev.detail;
    if (!participantId) return;
    attachTrack(ensureTile(participantId), track);
  });
  client.addEventListener('remote_track_gone', (ev) => {
    // A slot's track moved on to somebody else, or carries nobody now.
    const { participantId, track } = ev.detail;
    const tile = state.tiles.get(participantId);
    if (tile && state.trackOwner.get(track) === tile.id) {
      state.trackOwner.delete(track);
      detachKind(tile, track.kind, track);
    }
  });
  client.addEventListener('media_failed', () => {
    state.banner = { key: 'meeting.mediaFailed' };
    renderBanner();
  });
  client.addEventListener('publish_failed', (ev) => {
    state.banner = { code: ev.detail.code };
    renderBanner();
  });
  client.addEventListener('server_error', (ev) => {
    if (!ev.detail.fatal) console.warn('giaoban: server error', ev.detail.code, ev.detail.message);
  });
  client.addEventListener('agenda_changed', () => {
    if (state.agenda) state.agenda.reload(true);
  });
  // The operator's message is pushed; the panel reads what it missed.
  client.addEventListener('tech_message', () => {
    if (state.tech) state.tech.poll();
  });
  client.addEventListener('conclusion_changed', (ev) => {
    if (state.agenda) state.agenda.setConclusion(ev.detail.itemId, ev.detail.text);
  });
  client.addEventListener('rtt', (ev) => {
    state.rttMs = ev.detail.ms;
    renderStatus();
  });
}

async function join() {
  if (!state.invitation || state.client || state.joining) return;
  state.joining = true;
  $('join-button').disabled = true;
  // Publish what the preview opened: wait for it if it is still opening.
  await state.mediaReady;
  if (meter && meter.ctx && meter.ctx.state === 'suspended') meter.ctx.resume().catch(() => {});
  // Slots unless the page was opened with ?receive=tracks (docs/protocol.md).
  const receive = new URLSearchParams(window.location.search).get('receive') === 'tracks' ? 'tracks' : 'slots';
  const client = new GiaobanClient({
    token: state.token,
    localStream: state.localStream,
    muted: state.muted,
    receive,
    receiveOnly: isObserver(),
  });
  state.client = client;
  wireClient(client);
  // The operator's dashboard: this point's link, every few seconds.
  state.stopReports = startLinkReports(client, () => ({
    audio: !state.muted.audio && !selfBlocked('audio'),
    video: !state.muted.video && !selfBlocked('video'),
  }));
  showScreen('meeting');
  renderControls();
  client.start();
}

function showEnd(reason) {
  state.endReason = reason;
  if (state.console) {
    state.console.stop();
    state.consoleOpen = false;
    $('chair-panel').hidden = true;
  }
  $('attendance-form').hidden = true;
  for (const id of [...state.tiles.keys()]) removeTile(id);
  for (const tr of state.localStream.getTracks()) tr.stop();
  showScreen('end');
  renderEnd();
  renderStatus();
}

function renderEnd() {
  const r = state.endReason;
  if (!r) return;
  if (r.kind === 'left') {
    $('end-title').textContent = t('meeting.left.title');
    $('end-message').textContent = state.meeting ? state.meeting.title : '';
  } else if (r.code === 'removed') {
    $('end-title').textContent = t('meeting.removed.title');
    $('end-message').textContent = state.removedReason ? t('meeting.removed.reason', { reason: state.removedReason }) : '';
  } else if (r.code === 'meeting_closed') {
    $('end-title').textContent = t('meeting.closed.title');
    $('end-message').textContent = t('meeting.closed.message');
  } else {
    $('end-title').textContent = t('meeting.ended.title');
    $('end-message').textContent = r.code === 'replaced' ? t('meeting.replaced') : errorText(r.code);
  }
  $('rejoin-button').hidden = !(r.kind === 'left' || r.code === 'replaced' || r.code === 'meeting_locked');
}

async function leave() {
  const client = state.client;
  if (!client) return;
  await client.leave();
  showEnd({ kind: 'left' });
}

// ---- start ----------------------------------------------------------------------

function rerenderAll() {
  renderJoin();
  renderControls();
  renderStatus();
  renderBanner();
  for (const tile of state.tiles.values()) renderTile(tile);
  if (state.meeting) renderCount();
  renderEnd();
  renderWaiting();
  arrangeTiles();
  fillDeviceSelects();
  if (state.agenda) {
    state.agenda.render();
    applyCurrentItem();
  }
  if (state.console) state.console.render();
  state.votes.render();
}

async function main() {
  setupLangSwitch(document);
  applyI18n(document);
  onLangChange(rerenderAll);
  state.votes = new VoteBoard({
    card: $('vote-card'),
    result: $('vote-result'),
    banner: $('vote-banner'),
    client: () => state.client,
    self: () => state.self,
    itemTitle: (id) => {
      const item = state.agenda && state.agenda.items ? state.agenda.items.find((i) => i.id === id) : null;
      return item ? item.title : null;
    },
    onChange: () => {
      if (state.console) state.console.votesChanged();
    },
  });

  $('preview-mic').addEventListener('click', () => toggleMute('audio'));
  $('preview-cam').addEventListener('click', () => toggleMute('video'));
  $('mic-button').addEventListener('click', () => toggleMute('audio'));
  $('cam-button').addEventListener('click', () => toggleMute('video'));
  $('leave-button').addEventListener('click', () => leave());
  $('join-button').addEventListener('click', () => join());
  $('rejoin-button').addEventListener('click', () => window.location.reload());
  $('retry-media').addEventListener('click', () => openMedia());
  $('agenda-button').addEventListener('click', () => toggleAgenda());
  $('console-button').addEventListener('click', () => toggleConsole());
  $('hand-button').addEventListener('click', () => toggleHandMenu());
  for (const b of document.querySelectorAll('#hand-menu .hand-kind')) {
    b.addEventListener('click', () => raiseHand(HAND_KINDS.includes(b.dataset.kind) ? b.dataset.kind : 'speak'));
  }
  $('hand-lower').addEventListener('click', () => lowerHand());
  document.addEventListener('click', (ev) => {
    // The path as dispatched: the button's content is re-rendered on click.
    const path = ev.composedPath();
    if (state.handMenuOpen && !path.includes($('hand-menu')) && !path.includes($('hand-button'))) toggleHandMenu(false);
  });
  $('hand-menu').addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      toggleHandMenu(false);
      $('hand-button').focus();
    }
  });
  $('attendance-button').addEventListener('click', () => ($('attendance-form').hidden ? openAttendance() : closeAttendance()));
  $('attendance-form').addEventListener('submit', sendAttendance);
  $('attendance-later').addEventListener('click', () => closeAttendance());
  $('fullscreen-button').addEventListener('click', () => toggleFullscreen());
  document.addEventListener('fullscreenchange', () => renderControls());
  $('grid-prev').addEventListener('click', () => turnPage(-1));
  $('grid-next').addEventListener('click', () => turnPage(1));
  $('remove-cancel').addEventListener('click', () => $('remove-dialog').close('cancel'));
  const agendaRoot = $('agenda-panel');
  agendaRoot.addEventListener('agenda_loaded', () => {
    applyCurrentItem();
    if (state.console) state.console.render();
    state.votes.render();
  });
  $('agenda-close').addEventListener('click', () => toggleAgenda(false));
  $('camera-select').addEventListener('change', (ev) => {
    state.devices.video = ev.target.value;
    openMedia(['video']);
  });
  $('mic-select').addEventListener('change', (ev) => {
    state.devices.audio = ev.target.value;
    openMedia(['audio']);
  });
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener('devicechange', () => fillDeviceSelects());
  }
  if (window.ResizeObserver) {
    new ResizeObserver(() => arrangeTiles()).observe($('stage'));
    new ResizeObserver(() => layoutTiles()).observe($('tiles'));
  } else {
    window.addEventListener('resize', arrangeTiles);
  }
  // Another invitation pasted into the address bar: start over with it.
  window.addEventListener('hashchange', () => window.location.reload());
  window.addEventListener('pagehide', () => {
    if (state.client) state.client.leave();
  });

  renderControls();
  state.token = decodeURIComponent(window.location.hash.replace(/^#/, '')).trim();
  // No link, or a broken one: the short code can stand for it.
  const codeEntry = () =>
    setupCodeEntry((contact) => {
      state.inviteContact = contact;
      renderJoin();
    });
  if (!state.token) {
    state.inviteError = 'no_token';
    renderJoin();
    codeEntry();
    return;
  }
  try {
    state.invitation = await fetchInvitation(state.token);
  } catch (e) {
    state.inviteError = e.code || 'unknown';
    state.inviteContact = e.contact || null;
  }
  renderJoin();
  if (state.inviteError === 'token_invalid') codeEntry();
  if (state.invitation) {
    try {
      const saved = JSON.parse(window.localStorage.getItem(attendanceKey()) || 'null');
      if (saved && typeof saved.leader === 'string') state.declared = saved;
    } catch (_) {
      state.declared = null;
    }
    setupRsvp(state.token, state.invitation);
    // The invitation's notices: sent, reminder, documents changed.
    setupNotices(state.token, [$('join-notices'), $('waiting-notices')]);
    // The text channel with the province's operator, and the pre-meeting check.
    state.tech = new TechPanel({ token: state.token, meetingId: state.invitation.meeting.id });
    addCheckLink(document.querySelector('.join-info'), state.token, 'check-link');
    addCheckLink(document.querySelector('.waiting-card'), state.token, 'check-link-waiting');
    state.agenda = new AgendaPanel({ root: $('agenda-panel'), token: state.token, meetingId: state.invitation.meeting.id });
    $('agenda-heading').tabIndex = -1;
    placeAgenda();
    state.agenda.reload();
    // An observer sends nothing: no camera or microphone is asked for.
    if (!isObserver()) {
      state.mediaReady = openMedia();
      await state.mediaReady;
    }
  }
}

// For tests and debugging: the live client and its connections.
window.giaoban = {
  get client() {
    return state.client;
  },
  get publisher() {
    return state.client ? state.client.publisher : null;
  },
  get subscriber() {
    return state.client ? state.client.subscriber : null;
  },
  get state() {
    return state.client ? state.client.state : state.connState;
  },
  /** The participant id a subscriber MediaStreamTrack id belongs to. */
  participantOfTrack(trackId) {
    return state.client ? state.client.remoteTrackOwners.get(trackId) || null : null;
  },
  /** The agenda as the panel shows it: [{id, title, documents: [{id, title, signature, status}]}]. */
  agenda() {
    return state.agenda ? state.agenda.summary() : null;
  },
  /** Opens or closes the agenda panel of the meeting screen. */
  toggleAgenda(open) {
    toggleAgenda(open);
  },
  /** The participant in the main view, or null (only the grid). */
  mainView() {
    return mainId();
  },
  /** The last `meeting_state` and the speaking queue as this page knows them. */
  meetingState() {
    return state.meetingState;
  },
  hands() {
    return state.hands;
  },
  /** What this page shows of the live meeting, for tests. */
  live() {
    const mine = ownHand();
    return {
      screen: state.screen,
      main: mainId(),
      pinned: state.pinned,
      page: state.gridPage,
      hand: mine,
      handStatus: $('hand-status').hidden ? null : $('hand-status').textContent,
      blockedNotice: $('blocked-notice').hidden ? null : $('blocked-notice').textContent,
      micBlocked: $('mic-button').classList.contains('blocked'),
      selfView: (() => {
        const r = $('self-view').getBoundingClientRect();
        return { width: Math.round(r.width), height: Math.round(r.height) };
      })(),
      waiting: state.waiting ? { title: $('waiting-title').textContent, when: $('waiting-when').textContent, where: $('waiting-where').textContent, agenda: [...$('waiting-agenda').children].map((li) => li.textContent) } : null,
      console: state.console && state.consoleOpen ? state.console.summary() : null,
      vote: state.votes ? state.votes.summary() : null,
      attendanceForm: !$('attendance-form').hidden,
      declared: state.declared,
    };
  },
  /** The participants shown in tiles: [{id, name, role, self}]. */
  tiles() {
    return [...state.tiles.values()].map((tile) => ({
      id: tile.isSelf ? (state.self ? state.self.id : 'self') : tile.id,
      name: tile.participant.name,
      role: tile.participant.role,
      self: tile.isSelf,
      videoPaused: tile.el.classList.contains('video-paused'),
    }));
  },
};

main();
