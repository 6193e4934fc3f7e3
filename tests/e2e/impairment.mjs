#!/usr/bin/env node
// Weak links in real Chromium: one clean publisher page and one subscriber
// page whose media goes through the test's impairment relay
// (tests/src/impair.rs), which the script switches through a list of
// conditions (loss, rate caps, delay). For each condition it measures, from
// the subscriber page's getStats, how the publisher's video and audio arrive.
//
//   node impairment.mjs PUBLISHER_URL SUBSCRIBER_URL
//
// Environment (set by tests/tests/impairment.rs):
//   IMPAIR_CONTROL       host:port of the relay's control socket (UDP JSON)
//   IMPAIR_REWRITE_FROM  the server's media address as its SDP announces it
//   IMPAIR_REWRITE_TO    the relay's address, put in its place on the
//                        subscriber page only (every other server candidate,
//                        ICE-TCP included, is removed there, so that page's
//                        media can only take the relay)
//   IMPAIR_PHASES        JSON list of {name, to_client, to_server, settle_ms,
//                        measure_ms}: conditions as the relay takes them
//   IMPAIR_PUBLISHER_AUDIO  a WAV file the publisher's fake microphone plays
//                        in a loop (Chromium's --use-file-for-fake-audio-capture)
//   CHROMIUM_PATH, E2E_TIMEOUT_MS (wait for first video, default 20000),
//   E2E_TOP_LAYER_WAIT_MS (wait for the publisher's top layer before the
//   first phase, default 20000; the Rust test sets 30000), E2E_VERBOSE=1.
//
// Prints a JSON summary as the last line on stdout ({ok, phases: [...]});
// the Rust test judges the figures. Exits 1 (with "ok": false and a reason)
// only when the run itself fails: no join, no video, the relay not in the
// path. The invitation URLs carry tokens: they are never printed.

import dgram from 'node:dgram';
import {
  closeBrowsers,
  dumpConsoles,
  elapsed,
  joinMeeting,
  log,
  openBrowser,
  selfOf,
  sleep,
  watchdog,
} from './lib.mjs';

const timeoutMs = Number(process.env.E2E_TIMEOUT_MS || 20000);
const TOP_LAYER_WAIT_MS = Number(process.env.E2E_TOP_LAYER_WAIT_MS || 20000);
/** How often the subscriber's decoded frames are sampled (for stalls and layers). */
const SAMPLE_MS = 250;

function hostPort(s) {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i), Number(s.slice(i + 1))];
}

// ---- the relay's control socket ------------------------------------------------

async function control(msg) {
  const [host, port] = hostPort(process.env.IMPAIR_CONTROL || '');
  const sock = dgram.createSocket('udp4');
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      const reply = new Promise((resolve) => {
        const t = setTimeout(() => resolve(null), 1000);
        sock.once('message', (buf) => {
          clearTimeout(t);
          resolve(JSON.parse(buf.toString()));
        });
      });
      sock.send(JSON.stringify(msg), port, host);
      const r = await reply;
      if (r) {
        if (!r.ok) throw new Error(`relay refused ${JSON.stringify(msg)}: ${r.error}`);
        return r;
      }
    }
    throw new Error(`the relay's control socket ${host}:${port} does not answer`);
  } finally {
    sock.close();
  }
}

// ---- the subscriber page's address rewrite --------------------------------------

// Runs in the impaired page before its scripts: every remote description and
// candidate the page gets has the server's media address replaced by the
// relay's, and every other server candidate (ICE-TCP, other addresses)
// removed. Counts what it did in window.__impair.
function impairInit(cfg) {
  const [fromIp, fromPort] = cfg.from;
  const [toIp, toPort] = cfg.to;
  const info = { rewritten: 0, removed: 0 };
  window.__impair = info;
  const fix = (line) => {
    const prefix = line.startsWith('a=') ? 'a=' : '';
    const f = line.slice(prefix.length).split(' ');
    if (f.length < 8 || !f[0].startsWith('candidate:')) return line;
    if (f[2].toLowerCase() === 'udp' && f[4] === fromIp && f[5] === String(fromPort)) {
      f[4] = toIp;
      f[5] = String(toPort);
      info.rewritten++;
      return prefix + f.join(' ');
    }
    info.removed++;
    return null;
  };
  const fixSdp = (sdp) =>
    sdp
      .split('\r\n')
      .map(fix)
      .filter((l) => l !== null)
      .join('\r\n');
  const proto = RTCPeerConnection.prototype;
  const setRemote = proto.setRemoteDescription;
  proto.setRemoteDescription = function (desc, ...rest) {
    if (desc && typeof desc.sdp === 'string') desc = { type: desc.type, sdp: fixSdp(desc.sdp) };
    return setRemote.call(this, desc, ...rest);
  };
  const addCandidate = proto.addIceCandidate;
  proto.addIceCandidate = function (c, ...rest) {
    if (c && typeof c.candidate === 'string' && c.candidate) {
      const line = fix(c.candidate);
      if (line === null) return Promise.resolve();
      c = { ...(typeof c.toJSON === 'function' ? c.toJSON() : c), candidate: line };
    }
    return addCandidate.call(this, c, ...rest);
  };
}

// ---- stats -------------------------------------------------------------------

/** The subscriber page's figures of what `ownerId` sends it, and its transport. */
async function subscriberStats(page, ownerId) {
  return page.evaluate(async (owner) => {
    const g = window.giaoban;
    const pc = g.subscriber;
    const out = { video: null, audio: null, pair: null };
    if (!pc) return out;
    const trackOfMid = new Map();
    for (const tr of pc.getTransceivers()) {
      if (tr.mid !== null) trackOfMid.set(tr.mid, tr.receiver.track.id);
    }
    const stats = await pc.getStats();
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    const n = (x) => (typeof x === 'number' ? x : 0);
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        const trackId = s.trackIdentifier || trackOfMid.get(s.mid) || null;
        if (!trackId || g.participantOfTrack(trackId) !== owner) return;
        const common = {
          packetsReceived: n(s.packetsReceived),
          packetsLost: n(s.packetsLost),
          bytesReceived: n(s.bytesReceived),
          nackCount: n(s.nackCount),
          jitterBufferDelay: n(s.jitterBufferDelay),
          jitterBufferEmittedCount: n(s.jitterBufferEmittedCount),
        };
        if (s.kind === 'video') {
          out.video = {
            ...common,
            framesDecoded: n(s.framesDecoded),
            framesReceived: n(s.framesReceived),
            framesDropped: n(s.framesDropped),
            keyFramesDecoded: n(s.keyFramesDecoded),
            frameWidth: n(s.frameWidth),
            frameHeight: n(s.frameHeight),
            freezeCount: n(s.freezeCount),
            totalFreezesDuration: n(s.totalFreezesDuration),
            pliCount: n(s.pliCount),
            firCount: n(s.firCount),
          };
        } else if (s.kind === 'audio') {
          out.audio = {
            ...common,
            totalSamplesReceived: n(s.totalSamplesReceived),
            concealedSamples: n(s.concealedSamples),
            silentConcealedSamples: n(s.silentConcealedSamples),
            concealmentEvents: n(s.concealmentEvents),
          };
        }
      }
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        const pair = byId.get(s.selectedCandidatePairId);
        const remote = pair ? byId.get(pair.remoteCandidateId) : null;
        out.pair = pair
          ? {
              rtt_ms: typeof pair.currentRoundTripTime === 'number' ? Math.round(pair.currentRoundTripTime * 1000) : null,
              remote: remote ? `${remote.address || remote.ip}:${remote.port}/${remote.protocol}` : null,
            }
          : null;
      }
    });
    return out;
  }, ownerId);
}

/** The remote address of the page's publisher connection's selected pair. */
async function publisherPair(page) {
  return page.evaluate(async () => {
    const pc = window.giaoban.publisher;
    if (!pc) return null;
    const stats = await pc.getStats();
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    let out = null;
    stats.forEach((s) => {
      if (s.type !== 'transport' || !s.selectedCandidatePairId) return;
      const pair = byId.get(s.selectedCandidatePairId);
      const remote = pair ? byId.get(pair.remoteCandidateId) : null;
      out = {
        remote: remote ? `${remote.address || remote.ip}:${remote.port}/${remote.protocol}` : null,
        outgoing_kbps: pair && typeof pair.availableOutgoingBitrate === 'number' ? Math.round(pair.availableOutgoingBitrate / 1000) : null,
      };
    });
    return out;
  });
}

/** The publisher page's outbound audio: packets and bytes sent so far. */
async function outboundAudio(page) {
  return page.evaluate(async () => {
    const pc = window.giaoban.publisher;
    if (!pc) return null;
    let out = null;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'audio') {
        out = { packetsSent: s.packetsSent || 0, bytesSent: s.bytesSent || 0 };
      }
    });
    return out;
  });
}

/** The publisher page's outbound video layers (per rid). */
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
        active: s.active !== false,
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
        bytesSent: s.bytesSent || 0,
        framesSent: s.framesSent || 0,
        qualityLimitationReason: s.qualityLimitationReason || null,
      });
    });
    out.sort((a, b) => String(a.rid).localeCompare(String(b.rid)));
    return out;
  });
}

// ---- phases ------------------------------------------------------------------

/** Samples the subscriber's decoded video every SAMPLE_MS for `ms`. */
async function sample(page, ownerId, ms, trace) {
  const end = Date.now() + ms;
  for (;;) {
    const s = await subscriberStats(page, ownerId);
    const v = s.video;
    trace.push({
      t: Date.now(),
      frames: v ? v.framesDecoded : 0,
      width: v ? v.frameWidth : 0,
      height: v ? v.frameHeight : 0,
    });
    if (Date.now() >= end) return s;
    await sleep(SAMPLE_MS);
  }
}

/** The longest run of samples without a new decoded frame, in ms. */
function longestStall(trace) {
  let worst = 0;
  let since = null;
  let frames = null;
  for (const s of trace) {
    if (since === null || s.frames !== frames) {
      since = s.t;
      frames = s.frames;
    } else {
      worst = Math.max(worst, s.t - since);
    }
  }
  return worst;
}

const diff = (a, b, k) => (b && a ? b[k] - a[k] : 0);
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

function relayDelta(a, b) {
  const out = {};
  for (const dir of ['to_client', 'to_server']) {
    const d = {};
    for (const k of Object.keys(b[dir])) d[k] = b[dir][k] - a[dir][k];
    out[dir] = d;
  }
  return out;
}

/** Which publisher layer (rid) has the width the subscriber decodes. */
function layerOf(width, layers) {
  const exact = layers.find((l) => l.frameWidth === width);
  if (exact) return exact.rid;
  let best = null;
  for (const l of layers) {
    if (l.frameWidth > 0 && (!best || Math.abs(l.frameWidth - width) < Math.abs(best.frameWidth - width))) best = l;
  }
  return best ? `${best.rid}?` : null;
}

async function runPhase(sub, pub, ownerId, phase) {
  const set = await control({ cmd: 'set', to_client: phase.to_client || {}, to_server: phase.to_server || {} });
  log(`phase ${phase.name}: ${JSON.stringify(set.conditions)}`);
  const settleTrace = [];
  await sample(sub.page, ownerId, phase.settle_ms, settleTrace);

  const relayA = (await control({ cmd: 'stats' })).stats;
  const pubA = await outboundLayers(pub.page);
  const pubAudioA = await outboundAudio(pub.page);
  const a = await subscriberStats(sub.page, ownerId);
  const t0 = Date.now();
  const trace = [];
  const b = await sample(sub.page, ownerId, phase.measure_ms, trace);
  const secs = (Date.now() - t0) / 1000;
  const relayB = (await control({ cmd: 'stats' })).stats;
  const pubB = await outboundLayers(pub.page);
  const pubAudioB = await outboundAudio(pub.page);
  const uplink = await publisherPair(sub.page);

  const va = a.video;
  const vb = b.video;
  const aa = a.audio;
  const ab = b.audio;
  // Share of the measuring time spent at each decoded width.
  const widths = {};
  for (const s of trace) widths[s.width] = (widths[s.width] || 0) + 1;
  for (const w of Object.keys(widths)) widths[w] = round(widths[w] / trace.length, 2);
  const publisher = pubB.map((l) => {
    const before = pubA.find((x) => x.rid === l.rid);
    return {
      rid: l.rid,
      active: l.active,
      width: l.frameWidth,
      height: l.frameHeight,
      kbps: Math.round(((l.bytesSent - (before ? before.bytesSent : 0)) * 8) / secs / 1000),
      limitation: l.qualityLimitationReason,
    };
  });
  const frames = diff(va, vb, 'framesDecoded');
  const samples = diff(aa, ab, 'totalSamplesReceived');
  const jbEmitted = diff(aa, ab, 'jitterBufferEmittedCount');
  const audioSent = diff(pubAudioA, pubAudioB, 'packetsSent');
  const vJbEmitted = diff(va, vb, 'jitterBufferEmittedCount');
  const result = {
    name: phase.name,
    conditions: set.conditions,
    secs: round(secs),
    video: {
      frames,
      fps: round(frames / secs),
      freezes: diff(va, vb, 'freezeCount'),
      freeze_s: round(diff(va, vb, 'totalFreezesDuration'), 2),
      longest_stall_ms: longestStall(trace),
      settle_stall_ms: longestStall(settleTrace),
      width: vb ? vb.frameWidth : 0,
      height: vb ? vb.frameHeight : 0,
      layer: vb ? layerOf(vb.frameWidth, pubB) : null,
      widths,
      kbps: Math.round((diff(va, vb, 'bytesReceived') * 8) / secs / 1000),
      packets: diff(va, vb, 'packetsReceived'),
      packets_lost: diff(va, vb, 'packetsLost'),
      nacks: diff(va, vb, 'nackCount'),
      plis: diff(va, vb, 'pliCount'),
      firs: diff(va, vb, 'firCount'),
      keyframes: diff(va, vb, 'keyFramesDecoded'),
      frames_dropped: diff(va, vb, 'framesDropped'),
      jitter_buffer_ms: vJbEmitted > 0 ? Math.round((diff(va, vb, 'jitterBufferDelay') / vJbEmitted) * 1000) : null,
    },
    audio: {
      packets: diff(aa, ab, 'packetsReceived'),
      pps: round(diff(aa, ab, 'packetsReceived') / secs),
      // What the publisher sent meanwhile (its page is not impaired).
      sent_pps: round(audioSent / secs),
      delivered_pct: audioSent > 0 ? round((diff(aa, ab, 'packetsReceived') / audioSent) * 100, 1) : null,
      packets_lost: diff(aa, ab, 'packetsLost'),
      samples,
      concealed: diff(aa, ab, 'concealedSamples'),
      concealed_pct: samples > 0 ? round((diff(aa, ab, 'concealedSamples') / samples) * 100, 1) : null,
      concealment_events: diff(aa, ab, 'concealmentEvents'),
      jitter_buffer_ms: jbEmitted > 0 ? Math.round((diff(aa, ab, 'jitterBufferDelay') / jbEmitted) * 1000) : null,
    },
    rtt_ms: b.pair ? b.pair.rtt_ms : null,
    subscriber_remote: b.pair ? b.pair.remote : null,
    uplink,
    publisher_layers: publisher,
    relay: relayDelta(relayA, relayB),
  };
  log(
    `phase ${phase.name}: ${result.video.frames} frames (${result.video.fps} fps), ` +
      `${result.video.width}x${result.video.height} (${result.video.layer}), ${result.video.kbps} kbit/s, ` +
      `freezes ${result.video.freezes}/${result.video.freeze_s}s, stall ${result.video.longest_stall_ms} ms, ` +
      `lost ${result.video.packets_lost}, nacks ${result.video.nacks}, plis ${result.video.plis}; ` +
      `audio ${result.audio.pps} pps of ${result.audio.sent_pps} sent, concealed ${result.audio.concealed_pct}%; rtt ${result.rtt_ms} ms`,
  );
  return result;
}

// ---- main ----------------------------------------------------------------------

async function joinAndWait(pub, sub, urls, rewriteTo) {
  await Promise.all([joinMeeting(pub, urls[0]), joinMeeting(sub, urls[1])]);
  log('both pages clicked Join');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const selves = await Promise.all([selfOf(pub.page), selfOf(sub.page)]);
    if (selves.every(Boolean)) {
      const s = await subscriberStats(sub.page, selves[0].id);
      if (s.video && s.video.framesDecoded > 0) {
        log('the subscriber page decodes the publisher');
        return selves;
      }
    }
    if (Date.now() > deadline) {
      const info = await sub.page.evaluate(() => window.__impair || null).catch(() => null);
      throw new Error(
        `the subscriber page decoded no video in ${timeoutMs} ms (joined: ${selves.map(Boolean)}, ` +
          `address rewrite: ${JSON.stringify(info)}, relay ${rewriteTo})`,
      );
    }
    await sleep(300);
  }
}

async function main() {
  const urls = process.argv.slice(2);
  if (urls.length !== 2) {
    process.stderr.write('usage: node impairment.mjs PUBLISHER_URL SUBSCRIBER_URL\n');
    return 2;
  }
  const phases = JSON.parse(process.env.IMPAIR_PHASES || '[]');
  const from = hostPort(process.env.IMPAIR_REWRITE_FROM || '');
  const to = hostPort(process.env.IMPAIR_REWRITE_TO || '');
  const out = { ok: false, reason: null, phases: [] };
  const browsers = [];
  try {
    await control({ cmd: 'set', to_client: {}, to_server: {} });
    const wav = process.env.IMPAIR_PUBLISHER_AUDIO;
    browsers.push(await openBrowser(0, { extraFlags: wav ? [`--use-file-for-fake-audio-capture=${wav}`] : [] }));
    // The subscriber's tiles are large, so it asks for the top layer.
    browsers.push(
      await openBrowser(1, {
        viewport: { width: 1920, height: 1080 },
        initScript: `(${impairInit.toString()})(${JSON.stringify({ from, to })});`,
      }),
    );
    const [pub, sub] = browsers;
    log('browsers started');
    const selves = await joinAndWait(pub, sub, urls, to.join(':'));
    const ownerId = selves[0].id;

    // The impaired page must reach the server only through the relay.
    out.rewrite = await sub.page.evaluate(() => window.__impair);
    const relayAddr = `${to[0]}:${to[1]}/udp`;
    const subPair = (await subscriberStats(sub.page, ownerId)).pair;
    const pubPair = await publisherPair(sub.page);
    out.paths = { subscriber: subPair && subPair.remote, publisher: pubPair && pubPair.remote };
    if (out.paths.subscriber !== relayAddr || out.paths.publisher !== relayAddr) {
      throw new Error(`the impaired page does not go through the relay ${relayAddr}: ${JSON.stringify(out.paths)}`);
    }

    // Let the publisher bring up its top layer (Chromium waits for its own
    // bandwidth estimate) and the subscriber receive it, before measuring.
    const t0 = Date.now();
    for (;;) {
      const layers = await outboundLayers(pub.page);
      const sending = layers.filter((l) => l.bytesSent > 0);
      const top = Math.max(0, ...sending.map((l) => l.frameWidth));
      const s = await subscriberStats(sub.page, ownerId);
      const w = s.video ? s.video.frameWidth : 0;
      out.top_layer = { publisher_width: top, subscriber_width: w, layers };
      if (layers.length > 0 && sending.length === layers.length && top > 0 && w >= top) break;
      if (Date.now() - t0 > TOP_LAYER_WAIT_MS) {
        log(`after ${TOP_LAYER_WAIT_MS} ms the subscriber decodes ${w}px, the top layer is ${top}px: going on`);
        break;
      }
      await sleep(300);
    }
    out.top_layer.wait_ms = Date.now() - t0;
    log(`top layer: ${JSON.stringify(out.top_layer)}`);

    for (const phase of phases) out.phases.push(await runPhase(sub, pub, ownerId, phase));
    await control({ cmd: 'set', to_client: {}, to_server: {} });
    out.ok = true;
    out.elapsed_ms = elapsed();
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

{
  const phases = JSON.parse(process.env.IMPAIR_PHASES || '[]');
  const phaseMs = phases.reduce((t, p) => t + (p.settle_ms || 0) + (p.measure_ms || 0), 0);
  watchdog(timeoutMs + TOP_LAYER_WAIT_MS + phaseMs + 90000);
}
process.exitCode = await main();
