// The bridge point's side of the operator's desk (issue 23):
// - link reports: every few seconds the meeting page reads its peer
//   connections' statistics (getStats) and sends a compact `link_report`
//   (docs/protocol.md, "Link reports") for the operator's dashboard;
// - the "Kỹ thuật" panel: the text channel with the province's operator
//   (REST, polled), on the waiting screen and in the meeting;
// - the link to the pre-meeting check (/check#<token>).

import { apiRequest } from './api.js';
import { t, onLangChange } from './i18n.js';

/** Seconds between two link reports. */
export const REPORT_SECONDS = 5;
/** Seconds between two reads of the text channel. */
// In the meeting the operator's messages are pushed over its WebSocket
// (`tech_message`, which makes the panel read at once) and the panel
// polls only slowly, to catch up; outside it (waiting, reconnecting) it
// polls as before.
const CHAT_POLL_SECONDS = 4;
const CHAT_POLL_LIVE_SECONDS = 30;

function browserName() {
  const ua = navigator.userAgent || '';
  const m =
    ua.match(/(Edg|OPR|Firefox|Chrome|Chromium|Safari)\/(\d+)/) || [];
  const names = { Edg: 'Edge', OPR: 'Opera' };
  return m.length ? `${names[m[1]] || m[1]} ${m[2]}` : ua.slice(0, 40);
}

function round(v, digits) {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/**
 * Reads one peer connection's statistics: byte counters, packets, the
 * selected candidate pair. Returns a plain summary.
 */
async function readStats(pc) {
  const out = {
    bytesIn: 0, bytesOut: 0, packetsIn: 0, lostIn: 0, lostOut: 0, sentOut: 0,
    jitter: null, rtt: null, path: null, audioLevel: null, framesSent: null,
    heightOut: null, heightIn: null, freezes: 0, fpsOut: null,
    // Per inbound stream: its kind, packets received and lost.
    streams: new Map(),
  };
  if (!pc || pc.connectionState === 'closed') return out;
  let report;
  try {
    report = await pc.getStats();
  } catch (_) {
    return out;
  }
  let pairId = null;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  report.forEach((s) => {
    if (s.type === 'candidate-pair' && (s.id === pairId || (!pairId && s.nominated && s.state === 'succeeded'))) {
      if (typeof s.currentRoundTripTime === 'number') out.rtt = s.currentRoundTripTime * 1000;
      const local = report.get(s.localCandidateId);
      if (local) {
        if (local.candidateType === 'relay') out.path = 'relay';
        else if (local.protocol === 'tcp' || local.protocol === 'udp') out.path = local.protocol;
      }
    } else if (s.type === 'inbound-rtp') {
      out.bytesIn += s.bytesReceived || 0;
      out.packetsIn += s.packetsReceived || 0;
      out.lostIn += Math.max(0, s.packetsLost || 0);
      out.streams.set(s.id, { kind: s.kind, got: s.packetsReceived || 0, lost: Math.max(0, s.packetsLost || 0) });
      if (typeof s.jitter === 'number') out.jitter = Math.max(out.jitter || 0, s.jitter * 1000);
      if (s.kind === 'video') {
        if (s.frameHeight) out.heightIn = Math.max(out.heightIn || 0, s.frameHeight);
        out.freezes += s.freezeCount || 0;
      }
    } else if (s.type === 'outbound-rtp') {
      out.bytesOut += s.bytesSent || 0;
      out.sentOut += s.packetsSent || 0;
      if (s.kind === 'video') {
        out.framesSent = (out.framesSent || 0) + (s.framesSent || 0);
        if (s.frameHeight) out.heightOut = Math.max(out.heightOut || 0, s.frameHeight);
      }
    } else if (s.type === 'remote-inbound-rtp') {
      out.lostOut += Math.max(0, s.packetsLost || 0);
      if (typeof s.roundTripTime === 'number' && out.rtt === null) out.rtt = s.roundTripTime * 1000;
    } else if (s.type === 'media-source' && s.kind === 'audio' && typeof s.audioLevel === 'number') {
      out.audioLevel = s.audioLevel;
    }
  });
  return out;
}

/**
 * Sends a `link_report` every REPORT_SECONDS while `client` is joined.
 * `mediaOn()` says whether the microphone and camera are on now.
 * Returns a function that stops it.
 */
export function startLinkReports(client, mediaOn) {
  let prev = null;
  let stopped = false;
  const browser = browserName();
  async function tick() {
    if (stopped || !client.self) return;
    const [pub, sub] = await Promise.all([readStats(client.publisher), readStats(client.subscriber)]);
    const now = performance.now();
    const cur = {
      at: now,
      bytesIn: sub.bytesIn + pub.bytesIn,
      bytesOut: pub.bytesOut + sub.bytesOut,
      packetsIn: sub.packetsIn,
      lostIn: sub.lostIn,
      sentOut: pub.sentOut,
      lostOut: pub.lostOut,
      framesSent: pub.framesSent,
      freezes: sub.freezes,
      streams: sub.streams,
    };
    const msg = { type: 'link_report', browser };
    const path = pub.path || sub.path;
    if (path) msg.path = path;
    const rtt = pub.rtt !== null ? pub.rtt : sub.rtt;
    if (rtt !== null) msg.rtt_ms = Math.min(60000, Math.round(rtt));
    if (sub.jitter !== null) msg.jitter_ms = Math.min(60000, Math.round(sub.jitter));
    if (sub.heightIn) msg.video_height_in = Math.min(4320, sub.heightIn);
    if (pub.heightOut) msg.video_height_out = Math.min(4320, pub.heightOut);
    const on = mediaOn();
    if (on.audio && pub.audioLevel !== null) msg.audio_level = round(Math.min(1, pub.audioLevel), 3);
    if (prev) {
      const secs = (now - prev.at) / 1000;
      if (secs > 0) {
        msg.bitrate_in_kbps = Math.min(1e6, Math.round(((cur.bytesIn - prev.bytesIn) * 8) / 1000 / secs));
        msg.bitrate_out_kbps = Math.min(1e6, Math.round(((cur.bytesOut - prev.bytesOut) * 8) / 1000 / secs));
        // This point's downlink: every stream it receives crosses it, and
        // each also carries its sender's uplink loss (the server forwards
        // the gaps), so the least lossy stream is the downlink's loss (one
        // bad sender does not make every receiver look bad). Audio first:
        // video's retransmissions hide loss.
        const least = { audio: null, video: null };
        for (const [id, st] of cur.streams) {
          const before = prev.streams.get(id);
          if (!before || !(st.kind in least)) continue;
          const got = st.got - before.got;
          const lost = st.lost - before.lost;
          // Too few packets say nothing (a paused video).
          if (got + lost < 20) continue;
          const pct = Math.min(100, Math.max(0, (100 * lost) / (got + lost)));
          least[st.kind] = least[st.kind] === null ? pct : Math.min(least[st.kind], pct);
        }
        const loss = least.audio !== null ? least.audio : least.video;
        if (loss !== null) msg.loss_in_percent = round(loss, 1);
        const sent = cur.sentOut - prev.sentOut;
        const lostOut = cur.lostOut - prev.lostOut;
        if (sent > 0) msg.loss_out_percent = round(Math.min(100, Math.max(0, (100 * lostOut) / sent)), 1);
        if (on.video && cur.framesSent !== null && prev.framesSent !== null) {
          msg.fps_out = round(Math.min(240, Math.max(0, (cur.framesSent - prev.framesSent) / secs)), 1);
        }
        msg.frozen_in = Math.min(1000, Math.max(0, cur.freezes - prev.freezes));
      }
    }
    prev = cur;
    client._request(msg).catch(() => {});
  }
  const timer = setInterval(() => {
    tick().catch(() => {});
  }, REPORT_SECONDS * 1000);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** "hh:mm" of a Unix time. */
function hhmm(unix) {
  const d = new Date(unix * 1000);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/**
 * The "Kỹ thuật" panel of a bridge point: a button in a corner opens the
 * text channel with the province's operator. Polls while the page lives
 * (slowly while `setLive(true)`: messages are pushed then).
 */
export class TechPanel {
  constructor({ token, meetingId }) {
    this.token = token;
    this.meetingId = meetingId;
    this.after = 0;
    this.unread = 0;
    this.open = false;
    this.build();
    this.poll();
    this.live = false;
    this.timer = setInterval(() => this.poll(), CHAT_POLL_SECONDS * 1000);
    onLangChange(() => this.renderTexts());
  }

  build() {
    if (!document.querySelector('link[href="/assets/techdesk.css"]')) {
      const css = document.createElement('link');
      css.rel = 'stylesheet';
      css.href = '/assets/techdesk.css';
      document.head.appendChild(css);
    }
    // The button sits in the top bar (out of the way of the meeting's own
    // controls); the panel opens under it.
    const toggle = document.createElement('button');
    toggle.type = 'button';
    toggle.className = 'btn btn-topbar tech-toggle';
    toggle.id = 'tech-toggle';
    toggle.setAttribute('aria-expanded', 'false');
    toggle.setAttribute('aria-controls', 'tech-panel');
    const bar = document.querySelector('.topbar-right');
    if (bar) bar.prepend(toggle);
    const root = document.createElement('div');
    root.className = 'tech-desk';
    root.id = 'tech-desk';
    if (!bar) root.appendChild(toggle);
    root.insertAdjacentHTML('beforeend', `
      <section class="card tech-panel" id="tech-panel" hidden>
        <h2 id="tech-title"></h2>
        <ol class="tech-messages" id="tech-messages" aria-live="polite"></ol>
        <p class="muted" id="tech-empty"></p>
        <form class="tech-form" id="tech-form">
          <input type="text" id="tech-input" maxlength="2000" required>
          <button type="submit" class="btn btn-primary" id="tech-send"></button>
        </form>
        <p class="alert alert-error" id="tech-error" role="alert" hidden></p>
      </section>`);
    document.body.appendChild(root);
    this.el = root;
    this.toggleEl = toggle;
    toggle.addEventListener('click', () => this.toggle());
    root.querySelector('#tech-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.send();
    });
    this.renderTexts();
  }

  renderTexts() {
    const q = (id) => this.el.querySelector(id);
    this.toggleEl.textContent = this.unread ? `${t('desk.panel')} (${this.unread})` : t('desk.panel');
    q('#tech-title').textContent = t('desk.panelTitle');
    q('#tech-empty').textContent = t('desk.noMessages');
    q('#tech-send').textContent = t('desk.send');
    q('#tech-input').placeholder = t('desk.placeholder');
    q('#tech-empty').hidden = q('#tech-messages').children.length > 0;
  }

  toggle(open) {
    this.open = open === undefined ? !this.open : open;
    this.el.querySelector('#tech-panel').hidden = !this.open;
    this.toggleEl.setAttribute('aria-expanded', String(this.open));
    if (this.open) {
      this.unread = 0;
      this.el.querySelector('#tech-input').focus();
    }
    this.renderTexts();
  }

  add(messages) {
    const list = this.el.querySelector('#tech-messages');
    for (const m of messages) {
      this.after = Math.max(this.after, m.seq);
      const li = document.createElement('li');
      li.className = m.sender === 'operator' ? 'from-operator' : 'from-point';
      const who = m.sender === 'operator'
        ? (m.invitation_id ? t('desk.fromOperator') : t('desk.toAll'))
        : t('desk.fromYou');
      const head = document.createElement('span');
      head.className = 'tech-meta';
      head.textContent = `${hhmm(m.created_at)} · ${who}`;
      const body = document.createElement('span');
      body.className = 'tech-text';
      body.textContent = m.text;
      li.append(head, body);
      list.appendChild(li);
      if (!this.open && m.sender === 'operator') this.unread += 1;
    }
    if (messages.length) {
      list.scrollTop = list.scrollHeight;
      this.renderTexts();
    }
  }

  /** In the meeting (its socket connected: messages are pushed) or not. */
  setLive(live) {
    if (live === this.live) return;
    this.live = live;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.poll(), (live ? CHAT_POLL_LIVE_SECONDS : CHAT_POLL_SECONDS) * 1000);
    // Back in: read what was missed while the socket was away.
    if (live) this.poll();
  }

  async poll() {
    try {
      const r = await apiRequest('GET', `/api/meetings/${encodeURIComponent(this.meetingId)}/tech-messages?after=${this.after}`, { token: this.token });
      this.add((r && r.messages) || []);
    } catch (_) {
      // The next poll tries again.
    }
  }

  async send() {
    const input = this.el.querySelector('#tech-input');
    const err = this.el.querySelector('#tech-error');
    const text = input.value.trim();
    if (!text) return;
    try {
      await apiRequest('POST', `/api/meetings/${encodeURIComponent(this.meetingId)}/tech-messages`, { token: this.token, body: { text } });
      input.value = '';
      err.hidden = true;
      await this.poll();
    } catch (e) {
      err.textContent = t('desk.sendFailed');
      err.hidden = false;
    }
  }

  stop() {
    clearInterval(this.timer);
    this.toggleEl.remove();
    this.el.remove();
  }
}

/** Adds the link to the pre-meeting check under `parent`. */
export function addCheckLink(parent, token, id) {
  if (!parent || document.getElementById(id)) return;
  const p = document.createElement('p');
  p.className = 'check-link-row';
  const a = document.createElement('a');
  a.id = id;
  a.className = 'btn btn-secondary';
  a.href = `/check#${encodeURIComponent(token)}`;
  a.target = '_blank';
  a.rel = 'noopener';
  const label = () => {
    a.textContent = t('check.open');
  };
  label();
  onLangChange(label);
  p.appendChild(a);
  parent.appendChild(p);
}
