// The join page: invitation check, camera/microphone preview, the meeting
// grid and its controls. The protocol lives in protocol.js, the strings in
// i18n.js.
//
// For tests, `window.giaoban` exposes the client and its peer connections.

import { applyI18n, errorText, onLangChange, roleText, setupLangSwitch, t, getLang } from './i18n.js';
import { formatTime } from './documents.js';
import { GiaobanClient, fetchInvitation } from './protocol.js';
import { AgendaPanel } from './agenda-panel.js';
import { setupRsvp } from './rsvp.js';

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
};

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
  if (video.srcObject !== state.localStream) video.srcObject = state.localStream;
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
  $('meeting-screen').hidden = name !== 'meeting';
  $('end-screen').hidden = name !== 'end';
  document.body.classList.toggle('page-light', name !== 'meeting');
  document.body.classList.toggle('page-dark', name === 'meeting');
  placeAgenda();
  if (name === 'meeting') layoutTiles();
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
  panel.hidden = state.screen === 'end' || (inMeeting && !state.agendaOpen);
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
  placeAgenda();
  layoutTiles();
  if (state.agendaOpen) $('agenda-heading').focus();
  else $('agenda-button').focus();
}

function renderControls() {
  renderControlButton($('mic-button'), 'audio', state.muted.audio);
  renderControlButton($('cam-button'), 'video', state.muted.video);
  $('mic-button').hidden = isObserver();
  $('cam-button').hidden = isObserver();
  const leave = $('leave-button');
  const label = t('meeting.leave');
  leave.innerHTML = `${icon('leave')}<span class="ctl-label"></span>`;
  leave.querySelector('.ctl-label').textContent = label;
  leave.setAttribute('aria-label', label);
  leave.title = label;
  renderAgendaButton();
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
  state.tiles.set(id, tile);
  const container = $('tiles');
  if (isSelf) container.prepend(el);
  else container.append(el);
  layoutTiles();
  return tile;
}

function renderTile(tile) {
  const p = tile.participant;
  const name = tile.isSelf ? `${p.name} (${t('meeting.you')})` : p.name;
  tile.el.querySelector('.tile-name').textContent = name;
  tile.el.querySelector('.tile-role').textContent = roleText(p.role);
  tile.el.querySelector('.initials').textContent = initials(p.name);
  tile.el.setAttribute('aria-label', `${name}, ${roleText(p.role)}`);
  const mic = tile.el.querySelector('.tile-mic');
  mic.hidden = !p.audio_muted;
  mic.title = t('meeting.micMuted');
  mic.setAttribute('aria-label', t('meeting.micMuted'));
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
  for (const [track, owner] of state.trackOwner) if (owner === id) state.trackOwner.delete(track);
  layoutTiles();
  renderCount();
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

/** Chooses the number of columns that gives the largest 16:9 tiles. */
function layoutTiles() {
  const container = $('tiles');
  const n = Math.max(1, state.tiles.size);
  const cs = window.getComputedStyle(container);
  const w = container.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  const h = container.clientHeight - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom);
  if (!(w > 0) || !(h > 0)) return;
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
  // Ask the server for the simulcast layer that fits the tiles (in device pixels).
  if (state.client) {
    const px = best.th * (window.devicePixelRatio || 1);
    state.client.setVideoQuality(px >= 480 ? 'high' : px >= 200 ? 'medium' : 'low');
  }
}

// ---- client events --------------------------------------------------------------

function onJoined(d) {
  state.self = d.self;
  state.meeting = d.meeting;
  state.banner = null;
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
  renderControls();
  // Changes pushed while the socket was down were missed: read it again.
  if (state.agenda && state.agenda.items) state.agenda.reload();
}

function wireClient(client) {
  client.addEventListener('state', (ev) => {
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
  client.addEventListener('resumed', (ev) => {
    // Same participant, same peer connections: the grid stays as it is; the
    // server replays what was missed.
    state.self = ev.detail.self || state.self;
    if (state.banner && state.banner.key === 'meeting.reconnecting') state.banner = null;
    renderBanner();
  });
  client.addEventListener('participant_joined', (ev) => {
    ensureTile(ev.detail.participant.id, ev.detail.participant);
    renderCount();
  });
  client.addEventListener('participant_left', (ev) => removeTile(ev.detail.participantId));
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
  showScreen('meeting');
  renderControls();
  client.start();
}

function showEnd(reason) {
  state.endReason = reason;
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
  } else {
    $('end-title').textContent = t('meeting.ended.title');
    $('end-message').textContent = r.code === 'replaced' ? t('meeting.replaced') : errorText(r.code);
  }
  $('rejoin-button').hidden = !(r.kind === 'left' || r.code === 'replaced');
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
  fillDeviceSelects();
  if (state.agenda) state.agenda.render();
}

async function main() {
  setupLangSwitch(document);
  applyI18n(document);
  onLangChange(rerenderAll);

  $('preview-mic').addEventListener('click', () => toggleMute('audio'));
  $('preview-cam').addEventListener('click', () => toggleMute('video'));
  $('mic-button').addEventListener('click', () => toggleMute('audio'));
  $('cam-button').addEventListener('click', () => toggleMute('video'));
  $('leave-button').addEventListener('click', () => leave());
  $('join-button').addEventListener('click', () => join());
  $('rejoin-button').addEventListener('click', () => window.location.reload());
  $('retry-media').addEventListener('click', () => openMedia());
  $('agenda-button').addEventListener('click', () => toggleAgenda());
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
  if (window.ResizeObserver) new ResizeObserver(() => layoutTiles()).observe($('tiles'));
  else window.addEventListener('resize', layoutTiles);
  // Another invitation pasted into the address bar: start over with it.
  window.addEventListener('hashchange', () => window.location.reload());
  window.addEventListener('pagehide', () => {
    if (state.client) state.client.leave();
  });

  renderControls();
  state.token = decodeURIComponent(window.location.hash.replace(/^#/, '')).trim();
  if (!state.token) {
    state.inviteError = 'no_token';
    renderJoin();
    return;
  }
  try {
    state.invitation = await fetchInvitation(state.token);
  } catch (e) {
    state.inviteError = e.code || 'unknown';
    state.inviteContact = e.contact || null;
  }
  renderJoin();
  if (state.invitation) {
    setupRsvp(state.token, state.invitation);
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
