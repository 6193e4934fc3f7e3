#!/usr/bin/env node
// Media through a TURN server only, in real Chromium, two pages in one meeting:
//
//   node turn.mjs URL1 URL2
//
// The server hands out TURN credentials with ice_transport_policy "relay"
// (turn.force_relay), so each page's two peer connections may use only
// relayed candidates. Checks, on both pages: both connections were made with
// iceTransportPolicy 'relay' and the TURN URLs of the joined message; each
// page decodes the other's video, and keeps decoding it; every selected
// candidate pair's local candidate is of type 'relay', with the relay reached
// over E2E_RELAY_PROTOCOL (default 'tls': TURN over TLS, turns:); no local
// candidate other than relay was gathered.
//
// With E2E_REFRESH_WAIT_MS set (the server's credential lifetime short), it
// then waits that long for the server's fresh credentials (`ice_servers`) to
// reach both connections of both pages (RTCPeerConnection.setConfiguration)
// and checks that the video keeps flowing over the same relay afterwards.
//
// Meant to run where UDP is dropped except between coturn and the SFU (the
// Rust test tests/tests/turn.rs sets that up with nftables in a namespace of
// its own), so the media can only have gone through coturn.
//
// Prints a JSON summary as the last line on stdout and exits 0, or prints the
// reason on stderr (and a summary with "ok": false) and exits 1. The
// invitation URLs and TURN credentials are never printed.
//
// Environment: CHROMIUM_PATH, E2E_TIMEOUT_MS (wait for media after the joins,
// default 20000), E2E_VERBOSE=1, E2E_RELAY_PROTOCOL (tls, tcp or udp),
// E2E_REFRESH_WAIT_MS (0: no refresh check).

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
const relayProtocol = process.env.E2E_RELAY_PROTOCOL || 'tls';
/** How long the video must keep coming after the first decoded frames. */
const KEEP_MS = 3000;
const refreshWaitMs = Number(process.env.E2E_REFRESH_WAIT_MS || 0);

/**
 * The TURN usernames ("<expiry>:<participant id>") each connection of the
 * page is configured with now. Usernames are not secret (the credentials are
 * never read out of the page).
 */
async function turnUsernames(page) {
  return page.evaluate(() => {
    const g = window.giaoban;
    const out = {};
    for (const name of ['publisher', 'subscriber']) {
      const pc = g[name];
      const s = pc ? (pc.getConfiguration().iceServers || [])[0] : null;
      out[name] = s && s.username ? s.username : null;
    }
    return out;
  });
}

const expiryOf = (u) => (u ? Number(String(u).split(':')[0]) : null);

/** Page `b`'s inbound video from `ownerId` (or null). */
async function videoFrom(b, ownerId) {
  const inbound = await inboundStats(b.page);
  return inbound.find((s) => s.kind === 'video' && s.owner === ownerId) || null;
}

/**
 * For each peer connection: its configuration (policy, TURN URLs; never the
 * credentials), the selected candidate pair's local and remote candidates,
 * and the kinds of local candidates gathered.
 */
async function relayFacts(page) {
  return page.evaluate(async () => {
    const g = window.giaoban;
    const out = {};
    for (const name of ['publisher', 'subscriber']) {
      const pc = g[name];
      if (!pc) {
        out[name] = null;
        continue;
      }
      const conf = pc.getConfiguration();
      const stats = await pc.getStats();
      const byId = new Map();
      stats.forEach((s) => byId.set(s.id, s));
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) || pair;
      });
      const cand = (c) =>
        c
          ? {
              candidateType: c.candidateType,
              protocol: c.protocol,
              relayProtocol: c.relayProtocol || null,
              address: c.address || c.ip || null,
              port: c.port,
              url: c.url || null,
            }
          : null;
      const gathered = [];
      stats.forEach((s) => {
        if (s.type === 'local-candidate') gathered.push(`${s.candidateType}/${s.relayProtocol || s.protocol}`);
      });
      out[name] = {
        connectionState: pc.connectionState,
        iceTransportPolicy: conf.iceTransportPolicy,
        iceServerUrls: (conf.iceServers || []).flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls])),
        hasCredentials: (conf.iceServers || []).every((s) => !!s.username && !!s.credential),
        pair: pair
          ? {
              state: pair.state,
              bytesSent: pair.bytesSent || 0,
              bytesReceived: pair.bytesReceived || 0,
              local: cand(byId.get(pair.localCandidateId)),
              remote: cand(byId.get(pair.remoteCandidateId)),
            }
          : null,
        gathered: [...new Set(gathered)].sort(),
      };
    }
    return out;
  });
}

async function check(browsers, urls, out) {
  await Promise.all(browsers.map((b, i) => joinMeeting(b, urls[i])));
  log('both pages clicked Join');
  const deadline = Date.now() + timeoutMs;
  let selves;
  let videos;
  for (;;) {
    selves = await Promise.all(browsers.map((b) => selfOf(b.page)));
    let why;
    if (selves.every(Boolean)) {
      videos = await Promise.all(browsers.map((b, i) => videoFrom(b, selves[1 - i].id)));
      if (videos.every((v) => v && v.framesDecoded > 0)) break;
      why = videos.map((v, i) => `page ${i + 1}: ${v ? v.framesDecoded : 'no'} frames`).join('; ');
    } else {
      why = 'not both joined';
    }
    if (Date.now() > deadline) {
      out.facts = await Promise.all(browsers.map((b) => relayFacts(b.page)));
      throw new Error(`timeout after ${timeoutMs} ms waiting for video through TURN: ${why}`);
    }
    await sleep(300);
  }
  out.first_video_ms = elapsed();
  log('both pages decode the other one\'s video');
  out.participants = selves.map((s) => s.id);
  const t1 = Date.now();
  await sleep(KEEP_MS);
  const again = await Promise.all(browsers.map((b, i) => videoFrom(b, selves[1 - i].id)));
  const secs = (Date.now() - t1) / 1000;
  out.video = again.map((v, i) => ({
    before: videos[i].framesDecoded,
    after: v ? v.framesDecoded : 0,
    fps: v ? Math.round(((v.framesDecoded - videos[i].framesDecoded) / secs) * 10) / 10 : 0,
    frameWidth: v ? v.frameWidth : 0,
  }));
  out.facts = await Promise.all(browsers.map((b) => relayFacts(b.page)));
  for (let i = 0; i < 2; i++) {
    if (!(out.video[i].after > out.video[i].before)) {
      throw new Error(`page ${i + 1}: decoded frames stopped at ${out.video[i].after}`);
    }
    for (const name of ['publisher', 'subscriber']) {
      const f = out.facts[i][name];
      const where = `page ${i + 1} ${name}`;
      if (!f) throw new Error(`${where}: no peer connection`);
      if (f.iceTransportPolicy !== 'relay') throw new Error(`${where}: iceTransportPolicy is ${f.iceTransportPolicy}`);
      if (f.iceServerUrls.length === 0 || !f.hasCredentials) {
        throw new Error(`${where}: no TURN server with credentials configured (${JSON.stringify(f.iceServerUrls)})`);
      }
      if (!f.pair || !f.pair.local) throw new Error(`${where}: no selected candidate pair (${JSON.stringify(f)})`);
      const local = f.pair.local;
      if (local.candidateType !== 'relay' || local.relayProtocol !== relayProtocol) {
        throw new Error(`${where}: the selected local candidate is ${JSON.stringify(local)}, not relay/${relayProtocol}`);
      }
      const notRelay = f.gathered.filter((g) => !g.startsWith('relay/'));
      if (notRelay.length > 0) throw new Error(`${where}: gathered non-relay candidates ${notRelay}`);
    }
  }
  if (refreshWaitMs > 0) await checkRefresh(browsers, selves, out);
}

/** Waits for fresh credentials on every connection; the video must go on. */
async function checkRefresh(browsers, selves, out) {
  const t0 = Date.now();
  const before = await Promise.all(browsers.map((b) => turnUsernames(b.page)));
  let now;
  for (;;) {
    now = await Promise.all(browsers.map((b) => turnUsernames(b.page)));
    const fresh = now.every((p, i) => ['publisher', 'subscriber'].every((n) => p[n] && p[n] !== before[i][n]));
    if (fresh) break;
    if (Date.now() - t0 > refreshWaitMs) {
      throw new Error(`no fresh TURN credentials on every connection within ${refreshWaitMs} ms`);
    }
    await sleep(500);
  }
  const seenAfterMs = Date.now() - t0;
  log(`fresh TURN credentials on every connection after ${seenAfterMs} ms`);
  const v0 = await Promise.all(browsers.map((b, i) => videoFrom(b, selves[1 - i].id)));
  await sleep(KEEP_MS);
  const v1 = await Promise.all(browsers.map((b, i) => videoFrom(b, selves[1 - i].id)));
  const facts = await Promise.all(browsers.map((b) => relayFacts(b.page)));
  out.refresh = {
    seen_after_ms: seenAfterMs,
    expiry_before: before.map((p) => expiryOf(p.publisher)),
    expiry_after: now.map((p) => expiryOf(p.publisher)),
    video: v1.map((v, i) => ({ before: v0[i] ? v0[i].framesDecoded : 0, after: v ? v.framesDecoded : 0 })),
    states: facts.map((f) => [f.publisher.connectionState, f.subscriber.connectionState]),
  };
  for (let i = 0; i < 2; i++) {
    const v = out.refresh.video[i];
    if (!(v.after > v.before)) throw new Error(`page ${i + 1}: video stopped after the credential refresh (${JSON.stringify(v)})`);
    for (const name of ['publisher', 'subscriber']) {
      const f = facts[i][name];
      if (f.connectionState !== 'connected' || !f.pair || f.pair.local.candidateType !== 'relay') {
        throw new Error(`page ${i + 1} ${name}: after the refresh ${JSON.stringify(f)}`);
      }
    }
  }
}

async function main() {
  const urls = process.argv.slice(2);
  if (urls.length !== 2) {
    process.stderr.write('usage: node turn.mjs URL1 URL2\n');
    return 2;
  }
  const out = { ok: false, check: 'turn', relay_protocol: relayProtocol, reason: null };
  const browsers = [];
  try {
    for (let i = 0; i < 2; i++) browsers.push(await openBrowser(i));
    log('browsers started');
    await check(browsers, urls, out);
    out.ok = true;
    out.elapsed_ms = elapsed();
    log('turn: passed');
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

watchdog(timeoutMs + refreshWaitMs + 90000);
process.exitCode = await main();
