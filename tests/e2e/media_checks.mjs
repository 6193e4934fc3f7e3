#!/usr/bin/env node
// Media checks of the web client in real Chromium, two pages in one meeting:
//
//   node media_checks.mjs simulcast URL1 URL2
//     Page 1 receives page 2's simulcast video at `high`, then asks for `low`
//     (the client's setVideoQuality), then `high` again. From page 1's
//     getStats: the decoded frame width drops and comes back, and frames keep
//     being decoded across both switches (no stall over 2 s). Reports the
//     widths, how long each switch took, and page 2's outbound layers per rid.
//
//   node media_checks.mjs tcp URL1 URL2
//     Both pages decode each other's video, and every peer connection's
//     selected candidate pair has a local candidate of protocol tcp. Meant to
//     run where UDP is dropped (the Rust test runs it in a namespace with an
//     nftables rule dropping all UDP output).
//
//   node media_checks.mjs speaker URL1 URL2
//     At least one `active_speaker` message (Chromium's fake microphone beeps)
//     names one of the two participants; a page told the other participant
//     speaks marks that tile `active-speaker`.
//
//   node media_checks.mjs rejoin URL1 URL2
//     Page 2 leaves (the Leave button) and, after the server's SSRC rest
//     (E2E_SSRC_REST_MS, default 12000), joins again. Page 1's subscriber
//     connection stays up throughout: it must decode page 2's new video, and
//     receive page 2's new audio on the SSRC its old audio had (the server
//     reuses the SSRCs of removed audio tracks so that a long-lived
//     connection's per-SSRC state stays bounded). Reports the SSRCs, frames
//     decoded and audio packets received.
//
// Prints a JSON summary as the last line on stdout and exits 0, or prints the
// reason on stderr (and a summary with "ok": false) and exits 1. The
// invitation URLs carry tokens: they are never printed.
//
// Environment: CHROMIUM_PATH (default /usr/bin/chromium), E2E_TIMEOUT_MS (the
// wait for media after both joins, default 20000), E2E_VERBOSE=1 (browser
// console on stderr), E2E_TOP_LAYER_WAIT_MS (simulcast: how long to wait for
// all of the publisher's layers before switching, default 25000),
// E2E_VIDEO_CODEC (simulcast: `H264` makes page 2 prefer H264, packetization
// mode 1, for its camera, as a browser configured for it would; the summary
// reports the codec each side uses), E2E_BROWSER_1 (page 1's browser:
// chromium, the default, or firefox; FIREFOX_PATH, default
// /usr/bin/firefox-esr). Page 2 is always Chromium.

import {
  closeBrowsers,
  dumpConsoles,
  elapsed,
  inboundStats,
  joinMeeting,
  log,
  openBrowser,
  selfOf,
  sleep,
  watchdog,
} from './lib.mjs';

const timeoutMs = Number(process.env.E2E_TIMEOUT_MS || 20000);
/** A switch must show the new layer within this long. */
const SWITCH_TIMEOUT_MS = 8000;
/** Longest acceptable time without a newly decoded frame. */
const MAX_STALL_MS = 2000;
/** The first seconds of decoding, whose stalls are reported, not judged. */
const STARTUP_MS = 2000;
/** How long to stay on a layer once it shows (frames must keep coming). */
const DWELL_MS = 2000;
/**
 * How long to stay on `low`: longer than the server's 3 s before it pauses
 * the layers nobody receives (`layers_wanted`), so going back to `high`
 * also checks that the publisher resumes its top layer.
 */
const LOW_DWELL_MS = Number(process.env.E2E_LOW_DWELL_MS || 4500);
/** How long the top layer may take to show up before the first switch. */
const TOP_LAYER_WAIT_MS = Number(process.env.E2E_TOP_LAYER_WAIT_MS || 25000);

// Runs in every page before its scripts: records the signaling messages the
// client sends and receives (the few fields the checks need, never a token).
function recordSignaling() {
  const Native = window.WebSocket;
  const rec = { rx: [], tx: [] };
  window.__e2eSignaling = rec;
  const keep = (raw) => {
    try {
      const m = JSON.parse(raw);
      return {
        t: Math.round(performance.now()),
        type: m.type,
        id: m.id,
        participant_id: m.participant_id,
        track_id: m.track_id,
        quality: m.quality,
        layers: m.layers,
        code: m.code,
      };
    } catch (_) {
      return null;
    }
  };
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (ev) => {
        if (typeof ev.data !== 'string') return;
        const m = keep(ev.data);
        if (m && m.type !== 'subscriber_offer' && m.type !== 'publish_answer') rec.rx.push(m);
      });
    }

    send(data) {
      if (typeof data === 'string') {
        const m = keep(data);
        if (m && m.type !== 'join' && m.type !== 'publish' && m.type !== 'subscriber_answer' && m.type !== 'candidate') {
          rec.tx.push(m);
        }
      }
      return super.send(data);
    }
  };
}

async function signaling(page) {
  return page.evaluate(() => window.__e2eSignaling || { rx: [], tx: [] });
}

/** The page's own clock (performance.now()), to relate it to recorded messages. */
async function pageNow(page) {
  return page.evaluate(() => Math.round(performance.now()));
}

/** Page `b`'s inbound video from `ownerId` (or null). */
async function videoFrom(b, ownerId) {
  const inbound = await inboundStats(b.page);
  return inbound.find((s) => s.kind === 'video' && s.owner === ownerId) || null;
}

/** The publisher's outbound video layers, per rid. */
async function outboundLayers(page) {
  return page.evaluate(async () => {
    const pc = window.giaoban.publisher;
    if (!pc) return [];
    const out = [];
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type !== 'outbound-rtp' || s.kind !== 'video') return;
      out.push({
        rid: s.rid || null,
        ssrc: s.ssrc,
        active: s.active,
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
        framesEncoded: s.framesEncoded || 0,
        framesSent: s.framesSent || 0,
        bytesSent: s.bytesSent || 0,
        targetBitrate: s.targetBitrate || 0,
        qualityLimitationReason: s.qualityLimitationReason || null,
        scalabilityMode: s.scalabilityMode || null,
        encoderImplementation: s.encoderImplementation || null,
        keyFramesEncoded: s.keyFramesEncoded || 0,
        pliCount: s.pliCount || 0,
      });
    });
    out.sort((a, b) => String(a.rid).localeCompare(String(b.rid)));
    return out;
  });
}

/** The publisher's send bandwidth estimate (bit/s) from its selected pair. */
async function publisherEstimate(page) {
  return page.evaluate(async () => {
    const pc = window.giaoban.publisher;
    if (!pc) return null;
    const stats = await pc.getStats();
    let bps = null;
    stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && typeof s.availableOutgoingBitrate === 'number') {
        bps = s.availableOutgoingBitrate;
      }
    });
    return bps;
  });
}

/**
 * What the server's answer to the publisher offers for congestion control:
 * the distinct rtcp-fb kinds and the header extensions of its video section.
 */
async function publisherAnswerFeedback(page) {
  return page.evaluate(() => {
    const pc = window.giaoban.publisher;
    const sdp = pc && pc.remoteDescription ? pc.remoteDescription.sdp : '';
    const video = sdp.split(/\r?\nm=/).find((sec) => sec.startsWith('video')) || '';
    const fb = new Set();
    const ext = new Set();
    for (const line of video.split(/\r?\n/)) {
      let m = /^a=rtcp-fb:\S+ (.+)$/.exec(line);
      if (m) fb.add(m[1].trim());
      m = /^a=extmap:\S+ (\S+)/.exec(line);
      if (m) ext.add(m[1]);
    }
    return { rtcp_fb: [...fb].sort(), extmap: [...ext].sort() };
  });
}

/** The capture settings of the page's camera track. */
async function cameraSettings(page) {
  return page.evaluate(() => {
    const c = window.giaoban.client;
    const tr = c && c.localStream ? c.localStream.getVideoTracks()[0] : null;
    if (!tr) return null;
    const s = tr.getSettings();
    return { width: s.width, height: s.height, frameRate: s.frameRate };
  });
}

/**
 * Every peer connection's selected candidate pair: local and remote
 * candidate protocol, type, address and port.
 */
async function selectedPairs(page) {
  return page.evaluate(async () => {
    const g = window.giaoban;
    const out = {};
    for (const name of ['publisher', 'subscriber']) {
      const pc = g[name];
      if (!pc) {
        out[name] = null;
        continue;
      }
      const stats = await pc.getStats();
      const byId = new Map();
      stats.forEach((s) => byId.set(s.id, s));
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) || pair;
      });
      if (!pair) {
        stats.forEach((s) => {
          if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
        });
      }
      if (!pair) {
        out[name] = { connectionState: pc.connectionState, pair: null };
        continue;
      }
      const cand = (c) =>
        c
          ? {
              protocol: c.protocol,
              candidateType: c.candidateType,
              tcpType: c.tcpType || null,
              address: c.address || c.ip || null,
              port: c.port,
            }
          : null;
      const localCandidates = [];
      stats.forEach((s) => {
        if (s.type === 'local-candidate') localCandidates.push(`${s.protocol}/${s.candidateType}${s.tcpType ? `/${s.tcpType}` : ''}`);
      });
      out[name] = {
        connectionState: pc.connectionState,
        pair: {
          state: pair.state,
          bytesSent: pair.bytesSent || 0,
          bytesReceived: pair.bytesReceived || 0,
          local: cand(byId.get(pair.localCandidateId)),
          remote: cand(byId.get(pair.remoteCandidateId)),
        },
        localCandidates,
      };
    }
    return out;
  });
}

/** Opens both pages, joins, and waits until each decodes the other's video. */
async function joinBoth(browsers, urls) {
  await Promise.all(browsers.map((b, i) => joinMeeting(b, urls[i])));
  log('both pages clicked Join');
  const deadline = Date.now() + timeoutMs;
  let why = '';
  for (;;) {
    const selves = await Promise.all(browsers.map((b) => selfOf(b.page)));
    if (selves.every(Boolean)) {
      const videos = await Promise.all(browsers.map((b, i) => videoFrom(b, selves[1 - i].id)));
      if (videos.every((v) => v && v.framesDecoded > 0)) {
        log('both pages decode the other one\'s video');
        return { selves, videos };
      }
      why = videos
        .map((v, i) => (v && v.framesDecoded > 0 ? null : `page ${i + 1}: no decoded video (${JSON.stringify(v)})`))
        .filter(Boolean)
        .join('; ');
    } else {
      why = selves.map((s, i) => (s ? null : `page ${i + 1} not joined`)).filter(Boolean).join('; ');
    }
    if (Date.now() > deadline) throw new Error(`timeout after ${timeoutMs} ms waiting for video: ${why}`);
    await sleep(300);
  }
}

// ---- simulcast ---------------------------------------------------------------

const VIDEO_CODEC = process.env.E2E_VIDEO_CODEC || '';

/**
 * Page init script: every video transceiver the page adds prefers H264
 * (packetization mode 1, constrained baseline first), the rest after it.
 */
function preferH264() {
  const native = RTCPeerConnection.prototype.addTransceiver;
  RTCPeerConnection.prototype.addTransceiver = function (trackOrKind, init) {
    const t = native.call(this, trackOrKind, init);
    const kind = typeof trackOrKind === 'string' ? trackOrKind : trackOrKind.kind;
    if (kind === 'video' && t.setCodecPreferences) {
      const rank = (c) => {
        if (c.mimeType !== 'video/H264') return 3;
        const f = c.sdpFmtpLine || '';
        if (!f.includes('packetization-mode=1')) return 2;
        return f.includes('profile-level-id=42e01f') ? 0 : 1;
      };
      const codecs = RTCRtpSender.getCapabilities('video').codecs.slice();
      codecs.sort((a, b) => rank(a) - rank(b));
      t.setCodecPreferences(codecs);
    }
    return t;
  };
}

/** The mime types of the codecs `pc`'s `direction` video RTP streams use. */
async function videoCodecs(page, which, type) {
  return page.evaluate(
    async ({ which, type }) => {
      const pc = window.giaoban[which];
      if (!pc) return [];
      const stats = await pc.getStats();
      const out = new Set();
      stats.forEach((s) => {
        if (s.type === type && s.kind === 'video' && s.codecId && stats.get(s.codecId)) {
          out.add(stats.get(s.codecId).mimeType);
        }
      });
      return [...out];
    },
    { which, type },
  );
}

/**
 * What a stall sample keeps of an inbound video (0 while there is none): what
 * was decoded, and what came in, to tell a stall of the forwarding from one
 * of decoding.
 */
const SAMPLED = [
  'framesDecoded',
  'frameWidth',
  'frameHeight',
  'keyFramesDecoded',
  'freezeCount',
  'totalFreezesDuration',
  'packetsReceived',
  'framesReceived',
  'framesDropped',
  'packetsLost',
  'nackCount',
  'pliCount',
  'firCount',
];

/**
 * Samples page 1's inbound video from `ownerId` until `until(sample)` holds or
 * `ms` pass; every sample goes to `trace` (for the stall check).
 */
async function sampleUntil(b, ownerId, trace, ms, until) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await videoFrom(b, ownerId);
    const s = { t: Date.now() };
    for (const k of SAMPLED) s[k] = v ? v[k] : 0;
    trace.push(s);
    if (until && until(s)) return s;
    if (Date.now() >= deadline) return until ? null : s;
    await sleep(100);
  }
}

/** The longest time in `trace` (samples from `from` to `to`) without a new decoded frame. */
function longestStall(trace, from, to = Infinity) {
  let worst = { ms: 0, at: null };
  let lastChange = null;
  let lastFrames = null;
  for (const s of trace) {
    if (s.t < from || s.t > to) continue;
    if (lastChange === null || s.framesDecoded !== lastFrames) {
      lastChange = s.t;
      lastFrames = s.framesDecoded;
      continue;
    }
    const ms = s.t - lastChange;
    if (ms > worst.ms) worst = { ms, at: lastChange };
  }
  return worst;
}

async function checkSimulcast(browsers, urls, out) {
  const { selves } = await joinBoth(browsers, urls);
  const [rx, tx] = browsers;
  const txId = selves[1].id;
  out.participants = selves;
  out.camera = await cameraSettings(tx.page);
  out.publisher_answer = await publisherAnswerFeedback(tx.page);
  const trace = [];
  const t0 = Date.now();

  // Page 1 gets `high` (the server's default; its 1920x1080 tiles ask for it
  // too). Give the publisher a moment to bring up all its layers (the top one
  // waits for Chromium's bandwidth estimate) and page 1 to show the best.
  let layers = [];
  let first = null;
  {
    const deadline = Date.now() + TOP_LAYER_WAIT_MS;
    for (;;) {
      layers = await outboundLayers(tx.page);
      const sending = layers.filter((l) => l.bytesSent > 0);
      const topWidth = Math.max(0, ...sending.map((l) => l.frameWidth));
      first = await sampleUntil(rx, txId, trace, 0, null);
      if (sending.length === layers.length && topWidth > 0 && first.frameWidth >= topWidth) break;
      if (Date.now() > deadline) {
        const silent = layers.filter((l) => !(l.bytesSent > 0)).map((l) => l.rid);
        log(
          `after ${TOP_LAYER_WAIT_MS} ms page 1 decodes ${first.frameWidth}px wide; top sent layer ${topWidth}px; ` +
            `silent layers: ${silent.join(', ') || 'none'}: going on`,
        );
        break;
      }
      await sleep(300);
    }
  }
  out.top_layer_wait_ms = Date.now() - t0;
  out.layers_before = layers;
  out.publisher_estimate_bps = { before: await publisherEstimate(tx.page) };
  const highWidth = first.frameWidth;
  out.widths = { high_before: highWidth };
  log(`page 1 decodes ${first.frameWidth}x${first.frameHeight} at 'high'; publisher layers:`, JSON.stringify(layers));
  await sampleUntil(rx, txId, trace, 1000, null);

  const switchTo = async (quality, reached) => {
    const start = Date.now();
    await rx.page.evaluate((q) => window.giaoban.client.setVideoQuality(q), quality);
    const s = await sampleUntil(rx, txId, trace, SWITCH_TIMEOUT_MS, reached);
    return { quality, ms: s ? s.t - start : null, sample: s, start };
  };

  // high -> low
  const down = await switchTo('low', (s) => s.frameWidth > 0 && s.frameWidth < highWidth);
  out.switch_low = { ms: down.ms, width: down.sample ? down.sample.frameWidth : null };
  if (!down.sample) {
    out.layers_after = await outboundLayers(tx.page);
    out.trace = trace.slice(-20);
    const last = trace[trace.length - 1];
    throw new Error(
      `after setVideoQuality('low') the decoded width stayed ${last.frameWidth}px for ${SWITCH_TIMEOUT_MS} ms ` +
        `(publisher layers: ${JSON.stringify(out.layers_after)})`,
    );
  }
  log(`'low' shows after ${down.ms} ms: ${down.sample.frameWidth}x${down.sample.frameHeight}`);
  await sampleUntil(rx, txId, trace, LOW_DWELL_MS, null);
  const lowWidth = trace[trace.length - 1].frameWidth;
  out.widths.low = lowWidth;
  out.layers_at_low = await outboundLayers(tx.page);

  // low -> high
  const up = await switchTo('high', (s) => s.frameWidth >= highWidth);
  out.switch_high = { ms: up.ms, width: up.sample ? up.sample.frameWidth : null };
  if (!up.sample) {
    out.layers_after = await outboundLayers(tx.page);
    out.trace = trace.slice(-20);
    const last = trace[trace.length - 1];
    throw new Error(
      `after setVideoQuality('high') the decoded width stayed ${last.frameWidth}px (was ${highWidth}px) for ` +
        `${SWITCH_TIMEOUT_MS} ms (publisher layers: ${JSON.stringify(out.layers_after)})`,
    );
  }
  log(`'high' shows again after ${up.ms} ms: ${up.sample.frameWidth}x${up.sample.frameHeight}`);
  await sampleUntil(rx, txId, trace, DWELL_MS, null);
  out.widths.high_after = trace[trace.length - 1].frameWidth;

  out.layers_after = await outboundLayers(tx.page);
  out.codecs = {
    publisher: await videoCodecs(tx.page, 'publisher', 'outbound-rtp'),
    subscriber: await videoCodecs(rx.page, 'subscriber', 'inbound-rtp'),
  };
  log('video codecs:', JSON.stringify(out.codecs));
  out.publisher_estimate_bps.after = await publisherEstimate(tx.page);
  // Chromium drops the top layer while its bandwidth estimate is too low.
  out.silent_layers = out.layers_after.filter((l) => !(l.bytesSent > 0)).map((l) => l.rid);
  // Stalls (no new decoded frame, sampled every ~100 ms), in three windows:
  // the first seconds of the call (start-up, reported only), the wait for the
  // top layer (the server moves to it on its own when it appears), and the
  // two switches with the dwell after each.
  const windows = {
    startup: [t0, t0 + STARTUP_MS],
    before_switches: [t0 + STARTUP_MS, down.start],
    switches: [down.start, Infinity],
  };
  // Every change of the decoded width, with when it showed.
  out.width_changes = [];
  for (const s of trace) {
    const prev = out.width_changes[out.width_changes.length - 1];
    if (!prev || prev.width !== s.frameWidth) out.width_changes.push({ at_ms: s.t - t0, width: s.frameWidth });
  }
  out.stalls = {};
  for (const [name, [from, to]] of Object.entries(windows)) {
    const st = longestStall(trace, from, to);
    out.stalls[name] = { ms: st.ms, at_ms: st.at === null ? null : st.at - t0 };
  }
  out.switch_low.at_ms = down.start - t0;
  out.switch_high.at_ms = up.start - t0;
  const lastS = trace[trace.length - 1];
  out.frames = { first: trace[0].framesDecoded, last: lastS.framesDecoded, samples: trace.length };
  out.freezes = { count: lastS.freezeCount, total_s: lastS.totalFreezesDuration };
  out.keyframes_decoded = lastS.keyFramesDecoded;
  const sig = await signaling(rx.page);
  out.set_quality_sent = sig.tx.filter((m) => m.type === 'set_quality').map((m) => m.quality);
  out.set_quality_errors = sig.rx.filter((m) => m.type === 'error').map((m) => m.code);
  // What the server asked page 2 to send, relative to the first switch.
  const txSig = await signaling(tx.page);
  const txNow = await pageNow(tx.page);
  const nowMs = Date.now();
  out.layers_wanted = txSig.rx
    .filter((m) => m.type === 'layers_wanted' && m.track_id)
    .map((m) => ({ at_ms: nowMs - (txNow - m.t) - t0, layers: m.layers }));
  for (const name of ['before_switches', 'switches']) {
    const st = out.stalls[name];
    if (st.ms > MAX_STALL_MS) {
      // The samples around the stall, relative to the first one.
      const at = t0 + st.at_ms;
      out.stall_trace = trace
        .filter((x) => x.t >= at - 600 && x.t <= at + st.ms + 600)
        .map((x) => ({ ...x, t: x.t - t0 }));
      throw new Error(`no new frame for ${st.ms} ms (${name}, from ${st.at_ms} ms after the first sample)`);
    }
  }
  if (out.widths.high_after < highWidth) throw new Error(`back at 'high' the width is ${out.widths.high_after}px`);
  if (!(lastS.framesDecoded > trace[0].framesDecoded)) throw new Error('framesDecoded did not increase');
}

// ---- tcp -----------------------------------------------------------------------

async function checkTcp(browsers, urls, out) {
  const { selves, videos } = await joinBoth(browsers, urls);
  out.participants = selves;
  // A second look: the video keeps coming (not just one frame before a failure).
  const t1 = Date.now();
  await sleep(3000);
  const again = await Promise.all(browsers.map((b, i) => videoFrom(b, selves[1 - i].id)));
  const secs = (Date.now() - t1) / 1000;
  out.video = again.map((v, i) => ({
    before: videos[i].framesDecoded,
    after: v ? v.framesDecoded : 0,
    fps: v ? Math.round(((v.framesDecoded - videos[i].framesDecoded) / secs) * 10) / 10 : 0,
    frameWidth: v ? v.frameWidth : 0,
  }));
  out.pairs = await Promise.all(browsers.map((b) => selectedPairs(b.page)));
  for (let i = 0; i < 2; i++) {
    if (!(out.video[i].after > out.video[i].before)) {
      throw new Error(`page ${i + 1}: decoded frames stopped at ${out.video[i].after}`);
    }
    for (const name of ['publisher', 'subscriber']) {
      const p = out.pairs[i][name];
      if (!p || !p.pair || !p.pair.local) throw new Error(`page ${i + 1} ${name}: no selected candidate pair (${JSON.stringify(p)})`);
      if (p.pair.local.protocol !== 'tcp') {
        throw new Error(`page ${i + 1} ${name}: the selected local candidate is ${JSON.stringify(p.pair.local)}`);
      }
    }
  }
}

// ---- speaker -------------------------------------------------------------------

/** How long to wait, after the first `active_speaker`, for the other page's. */
const SECOND_PAGE_WAIT_MS = 6000;

async function speakerMessages(browsers) {
  const sigs = await Promise.all(browsers.map((b) => signaling(b.page)));
  const nows = await Promise.all(browsers.map((b) => pageNow(b.page)));
  return sigs.map((s, i) => {
    const joined = s.rx.find((m) => m.type === 'joined');
    return {
      joined_ago_ms: joined ? nows[i] - joined.t : null,
      messages: s.rx
        .filter((m) => m.type === 'active_speaker')
        .map((m) => ({ participant_id: m.participant_id, ago_ms: nows[i] - m.t })),
    };
  });
}

async function checkSpeaker(browsers, urls, out) {
  const joinedAt = Date.now();
  const { selves } = await joinBoth(browsers, urls);
  out.participants = selves;
  const ids = new Set(selves.map((s) => s.id));
  const deadline = joinedAt + timeoutMs;
  let firstAt = null;
  for (;;) {
    const pages = await speakerMessages(browsers);
    out.active_speaker = pages;
    const told = pages.map((p) => p.messages.length > 0);
    if (firstAt === null && told.some(Boolean)) {
      firstAt = Date.now();
      log('first active_speaker message');
    }
    // Both pages are in the meeting when it is announced: normally both hear
    // of it; give the second a moment, but one is what the check needs.
    if (told.every(Boolean) || (firstAt !== null && Date.now() - firstAt > SECOND_PAGE_WAIT_MS)) break;
    if (Date.now() > deadline) {
      throw new Error(`no active_speaker message in ${timeoutMs} ms after joining (${JSON.stringify(pages)})`);
    }
    await sleep(300);
  }
  out.pages_told = out.active_speaker.map((p) => p.messages.length > 0);
  const all = out.active_speaker.flatMap((p) => p.messages);
  const strangers = all.filter((m) => !ids.has(m.participant_id));
  if (strangers.length > 0) throw new Error(`active_speaker named unknown participants: ${JSON.stringify(strangers)}`);
  // The tiles: the latest speaker's tile is marked (a page's own tile is
  // reported, not required: the client keys it 'self').
  out.tiles = [];
  for (let i = 0; i < 2; i++) {
    const msgs = out.active_speaker[i].messages;
    const last = msgs[msgs.length - 1];
    const marked = await browsers[i].page.evaluate(() =>
      [...document.querySelectorAll('.tile.active-speaker')].map((el) => el.dataset.participantId),
    );
    const speaker = last ? last.participant_id : null;
    const isSelf = speaker === selves[i].id;
    out.tiles.push({ page: i + 1, speaker, speaker_is_self: isSelf, marked });
    if (speaker && !isSelf && !marked.includes(speaker)) {
      throw new Error(`page ${i + 1}: the tile of the speaker ${speaker} is not marked active-speaker (marked: ${marked})`);
    }
  }
}

// ---- rejoin ------------------------------------------------------------------

/** Rest before the server gives a removed track's SSRC to a new one (10 s), and a margin. */
const SSRC_REST_MS = Number(process.env.E2E_SSRC_REST_MS || 12000);

/** Page `b`'s inbound audio from `ownerId` (or null). */
async function audioFrom(b, ownerId) {
  const inbound = await inboundStats(b.page);
  return inbound.find((s) => s.kind === 'audio' && s.owner === ownerId) || null;
}

async function checkRejoin(browsers, urls, out) {
  const { selves, videos } = await joinBoth(browsers, urls);
  const [b1, b2] = browsers;
  const firstSsrc = videos[0].ssrc;
  out.first_video_ssrc = firstSsrc;
  let firstAudio = null;
  for (const until = Date.now() + timeoutMs; !(firstAudio && firstAudio.packetsReceived > 0); await sleep(300)) {
    if (Date.now() > until) throw new Error('page 1 receives no audio from page 2');
    firstAudio = await audioFrom(b1, selves[1].id);
  }
  out.first_audio_ssrc = firstAudio.ssrc;
  await b2.page.locator('#leave-button').click();
  log('page 2 left');
  // Page 1 is told: page 2's video is no longer among its inbound streams
  // with an owner (the transceiver went inactive).
  const goneBy = Date.now() + timeoutMs;
  for (;;) {
    const v = await videoFrom(b1, selves[1].id);
    const frames = v ? v.framesDecoded : 0;
    await sleep(1000);
    const again = await videoFrom(b1, selves[1].id);
    if (!again || again.framesDecoded === frames) break;
    if (Date.now() > goneBy) throw new Error('page 1 still decodes page 2\'s video after it left');
  }
  log('page 1 no longer receives page 2');
  await sleep(SSRC_REST_MS);
  // A fresh load (the invitation URL again would only change the fragment).
  await b2.page.goto('about:blank');
  await joinMeeting(b2, urls[1]);
  // Chromium keeps the receiver (and its track id) of a transceiver the
  // server reuses, and an SSRC's stats go on counting: page 2's new video
  // is the inbound video of its (new) participant id whose decoded frames
  // grow after the rejoin.
  const deadline = Date.now() + timeoutMs;
  let self2 = null;
  let prev = null;
  let v = null;
  for (;;) {
    self2 = await selfOf(b2.page);
    v = self2 ? await videoFrom(b1, self2.id) : null;
    if (v && prev && v.ssrc === prev.ssrc && v.framesDecoded >= prev.framesDecoded + 10) break;
    if (v && (!prev || v.ssrc !== prev.ssrc)) prev = v;
    if (Date.now() > deadline) {
      const all = await inboundStats(b1.page);
      throw new Error(
        `timeout after ${timeoutMs} ms: page 1 does not decode page 2's new video (${JSON.stringify(v)}); ` +
          `page 2 is ${JSON.stringify(self2)}, was ${selves[1].id}; page 1 receives ${JSON.stringify(all)}`,
      );
    }
    await sleep(300);
  }
  out.second_video_ssrc = v.ssrc;
  out.second_frames_decoded = v.framesDecoded;
  out.second_frame_width = v.frameWidth;
  log(`page 1 decodes page 2's new video: ssrc ${v.ssrc} (was ${firstSsrc}), ${v.framesDecoded} frames`);
  const a = await audioFrom(b1, self2.id);
  // And keeps decoding it, and receiving the audio.
  await sleep(2000);
  const later = await videoFrom(b1, self2.id);
  if (!later || later.framesDecoded <= v.framesDecoded) {
    throw new Error(`page 1 stopped decoding page 2's new video (${JSON.stringify(later)})`);
  }
  const aLater = await audioFrom(b1, self2.id);
  out.second_audio_ssrc = aLater ? aLater.ssrc : null;
  out.second_audio_packets = aLater ? aLater.packetsReceived : 0;
  if (!a || !aLater || aLater.ssrc !== a.ssrc || aLater.packetsReceived <= a.packetsReceived + 20) {
    const all = (await inboundStats(b1.page)).filter((x) => x.kind === 'audio');
    throw new Error(
      `page 1 does not receive page 2's new audio: ${JSON.stringify(a)} then ${JSON.stringify(aLater)}; ` +
        `page 1's inbound audio: ${JSON.stringify(all)}`,
    );
  }
  log(`page 1 receives page 2's new audio: ssrc ${aLater.ssrc} (was ${firstAudio.ssrc}), ${aLater.packetsReceived} packets`);
  if (aLater.ssrc !== firstAudio.ssrc) {
    throw new Error(`page 2's new audio came on SSRC ${aLater.ssrc}, not on the freed ${firstAudio.ssrc}: the server did not reuse it`);
  }
  out.later_frames_decoded = later.framesDecoded;
}

// ---- main ----------------------------------------------------------------------

const CHECKS = { simulcast: checkSimulcast, tcp: checkTcp, speaker: checkSpeaker, rejoin: checkRejoin };

async function main() {
  const [check, ...urls] = process.argv.slice(2);
  if (!CHECKS[check] || urls.length !== 2) {
    process.stderr.write(`usage: node media_checks.mjs ${Object.keys(CHECKS).join('|')} URL1 URL2\n`);
    return 2;
  }
  // Page 1's tiles are large in the simulcast check, so its own layout asks
  // for `high` too.
  const viewports = check === 'simulcast' ? [{ width: 1920, height: 1080 }, null] : [null, null];
  const out = { ok: false, check, reason: null };
  const browsers = [];
  try {
    for (let i = 0; i < 2; i++) {
      // Page 2 publishes in the simulcast check.
      const initScript =
        VIDEO_CODEC === 'H264' && i === 1
          ? `(${recordSignaling})();\n(${preferH264})();`
          : recordSignaling;
      const browser = i === 0 ? process.env.E2E_BROWSER_1 || 'chromium' : 'chromium';
      browsers.push(await openBrowser(i, { browser, viewport: viewports[i] || undefined, initScript }));
    }
    log('browsers started');
    // The rejoin check is about SSRCs taken again by a track of its own:
    // both pages receive a track per published track (the web client's
    // default, slots, keeps SSRCs anyway).
    const pageUrls =
      check === 'rejoin'
        ? urls.map((u) => {
            const url = new URL(u);
            url.searchParams.set('receive', 'tracks');
            return url.toString();
          })
        : urls;
    await CHECKS[check](browsers, pageUrls, out);
    // How page 1 received: the number of `slots` messages it got.
    out.slots_messages = (await signaling(browsers[0].page)).rx.filter((m) => m.type === 'slots').length;
    out.user_agent_1 = await browsers[0].page.evaluate(() => navigator.userAgent);
    out.ok = true;
    out.elapsed_ms = elapsed();
    log(`${check}: passed`);
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  } catch (e) {
    out.reason = e && e.message ? e.message : String(e);
    out.elapsed_ms = elapsed();
    process.stderr.write(`e2e failed: ${out.reason}\n`);
    dumpConsoles(browsers);
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return 1;
  } finally {
    await closeBrowsers(browsers);
  }
}

watchdog(timeoutMs + 90000);
process.exitCode = await main();
