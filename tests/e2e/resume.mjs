#!/usr/bin/env node
// Session resume and ICE restart of the web client in real Chromium (issue 6):
// two pages (A and B) in one meeting decode each other's video, then A's
// network fails in one of these ways, without any user action:
//
//   reset    A's TCP connections to the server are destroyed (`ss -K`, as a
//            reset by a middlebox would), twice: A must resume within the
//            grace each time.
//   offline  A's network goes offline for 6 s (DevTools network emulation:
//            the WebSocket hangs, WebRTC on loopback goes on): A's client
//            notices (network change, unanswered ping), restarts ICE, gives
//            the socket up with close code 4000 and resumes once back online.
//            Each time: the same participant id, the "reconnecting" banner
//            shown while away and gone after, B sees no leave or join of A
//            and keeps A's tile (the same DOM element), video keeps being
//            decoded both ways.
//   idle     A's pings and link reports are lost (the test's recorder drops them) while the
//            server keeps talking to A: the server's idle timeout closes the
//            socket (1008, no error frame) and A must resume, not end.
//   grace    A's connections are destroyed and new ones refused (nftables)
//            for longer than the server's grace: B sees A leave; once the
//            server is reachable again A's client joins afresh by itself
//            (resume_failed, then join) and B sees A again, with video.
//   ice      Every datagram and TCP segment between A and the media port is
//            dropped (nftables; B's own UDP ports stay open): A's ICE goes
//            disconnected, the client restarts ICE on both connections (a new
//            publish offer, `ice_restart`), and once the path is back media
//            flows again, with new ICE credentials on both sides.
//
//   node resume.mjs reset|idle|offline|grace|ice URL_A URL_B
//
// Environment: HTTP_PORT and MEDIA_PORT (the server's), GRACE_SECS (grace),
// CHROMIUM_PATH, E2E_TIMEOUT_MS (default 30000: each wait), E2E_VERBOSE=1.
// Needs `ss` (iproute2) and `nft`, and the right to use them: run it in a
// network namespace of its own (tests/tests/browser_resume.rs does).
//
// The pages are watched by a test-only init script (never by the client's
// own code): it records the messages of every WebSocket the page opens and
// the ICE states of every RTCPeerConnection.
// Prints a JSON summary as its last stdout line and exits 0, or 1 with the
// reason on stderr. The URLs carry tokens: they are never printed.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { closeBrowsers, dumpConsoles, inboundStats, joinMeeting, log, openBrowser, sleep, watchdog } from './lib.mjs';

const [scenario, urlA, urlB] = process.argv.slice(2);
const timeoutMs = Number(process.env.E2E_TIMEOUT_MS || 30000);
const httpPort = Number(process.env.HTTP_PORT || 0);
const mediaPort = Number(process.env.MEDIA_PORT || 0);
const graceSecs = Number(process.env.GRACE_SECS || 30);
const NFT_TABLE = 'giaoban_resume_e2e';
watchdog(8 * timeoutMs + 60000);

/** Runs in each page before its scripts: records sockets and ICE states. */
function recorder() {
  const rec = { ws: 0, log: [], ice: [] };
  window.__e2e = rec;
  const ufrag = (sdp) => {
    const m = typeof sdp === 'string' ? /a=ice-ufrag:(\S+)/.exec(sdp) : null;
    return m ? m[1] : null;
  };
  const note = (n, dir, m) => {
    const e = { t: Date.now(), n, dir, type: m.type };
    for (const k of ['id', 'code', 'reason', 'participant_id', 'replayed']) if (m[k] !== undefined) e[k] = m[k];
    if (m.participant && m.participant.id) e.pid = m.participant.id;
    if (m.sdp) e.ufrag = ufrag(m.sdp);
    rec.log.push(e);
  };
  const NativeWS = window.WebSocket;
  window.WebSocket = class extends NativeWS {
    constructor(...args) {
      super(...args);
      const n = ++rec.ws;
      rec.log.push({ t: Date.now(), n, dir: 'ws', type: 'new' });
      this.addEventListener('open', () => rec.log.push({ t: Date.now(), n, dir: 'ws', type: 'open' }));
      this.addEventListener('close', (e) => rec.log.push({ t: Date.now(), n, dir: 'ws', type: 'close', code: e.code, reason: e.reason }));
      this.addEventListener('message', (e) => {
        try {
          note(n, 'in', JSON.parse(e.data));
        } catch (_) {
          // not JSON: not ours to judge
        }
      });
      const send = this.send.bind(this);
      this.send = (data) => {
        let m = null;
        try {
          m = JSON.parse(data);
          note(n, 'out', m);
        } catch (_) {
          // ignore
        }
        // The idle check: the page's periodic messages get lost on the way,
        // its pings and its link reports alike (either keeps the server
        // from calling it idle); its resume after the close goes through.
        if (rec.dropPings && m && (m.type === 'ping' || m.type === 'link_report')) return undefined;
        return send(data);
      };
      const close = this.close.bind(this);
      this.close = (code, reason) => {
        rec.log.push({ t: Date.now(), n, dir: 'ws', type: 'close_called', code });
        return close(code, reason);
      };
    }
  };
  // The banner of the meeting screen: every time it shows or hides.
  rec.banner = [];
  document.addEventListener('DOMContentLoaded', () => {
    const el = document.getElementById('meeting-banner');
    if (!el) return;
    let shown = !el.hidden;
    new MutationObserver(() => {
      if (!el.hidden === shown) return;
      shown = !el.hidden;
      rec.banner.push({ t: Date.now(), shown, text: shown ? el.textContent : '' });
    }).observe(el, { attributes: true, attributeFilter: ['hidden'] });
  });
  const NativePC = window.RTCPeerConnection;
  let pcs = 0;
  window.RTCPeerConnection = class extends NativePC {
    constructor(...args) {
      super(...args);
      const n = ++pcs;
      this.addEventListener('iceconnectionstatechange', () => rec.ice.push({ t: Date.now(), n, state: this.iceConnectionState }));
    }
  };
}

function sh(cmd, args, input) {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** The pids of one browser: its main process (by profile folder) and descendants. */
function browserPids(userDataDir) {
  const procs = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      procs.set(Number(d), { ppid, cmd });
    } catch (_) {
      // gone meanwhile
    }
  }
  const pids = new Set([...procs].filter(([, p]) => p.cmd.includes(`--user-data-dir=${userDataDir}`)).map(([pid]) => pid));
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of procs) {
      if (!pids.has(pid) && pids.has(p.ppid)) {
        pids.add(pid);
        grew = true;
      }
    }
  }
  return pids;
}

/** Local ports of the established TCP connections of `pids` to the server's HTTP port. */
function httpConnections(pids) {
  const out = sh('ss', ['-tnpH', 'state', 'established', `( dport = :${httpPort} )`]);
  const ports = [];
  for (const line of out.split('\n')) {
    const m = /\S+:(\d+)\s+\S+:(\d+)\s+users:(.*)$/.exec(line.trim());
    if (!m) continue;
    const owners = [...m[3].matchAll(/pid=(\d+)/g)].map((x) => Number(x[1]));
    if (owners.some((p) => pids.has(p))) ports.push(Number(m[1]));
  }
  return ports;
}

/** Destroys the browser's TCP connections to the server (both ends get a reset). */
function resetConnections(b) {
  const pids = browserPids(b.userDataDir);
  if (pids.size === 0) throw new Error(`no process of page ${b.index + 1} found`);
  const ports = httpConnections(pids);
  if (ports.length === 0) throw new Error(`page ${b.index + 1} has no connection to port ${httpPort}`);
  for (const p of ports) sh('ss', ['-K', '-tn', `( dport = :${httpPort} and sport = :${p} )`]);
  const left = httpConnections(pids).filter((p) => ports.includes(p));
  if (left.length) throw new Error(`connections still open after ss -K: ${left}`);
  return ports;
}

function nft(rules) {
  sh('nft', ['-f', '-'], `table inet ${NFT_TABLE} {\n chain out {\n  type filter hook output priority 0;\n${rules.map((r) => `  ${r}\n`).join('')} }\n}\n`);
}

function nftClear() {
  try {
    sh('nft', ['delete', 'table', 'inet', NFT_TABLE]);
  } catch (_) {
    // no table
  }
}

/** What a page shows and receives now. */
async function probe(b) {
  const p = await b.page.evaluate(() => {
    const g = window.giaoban;
    const c = g.client;
    const banner = document.getElementById('meeting-banner');
    return {
      state: g.state,
      self: c && c.self ? c.self.id : null,
      banner: banner && !banner.hidden ? banner.textContent : null,
      screen: document.getElementById('end-screen') && !document.getElementById('end-screen').hidden ? 'end' : 'meeting',
      tiles: g.tiles().filter((t) => !t.self).map((t) => t.id),
      ice: {
        publisher: g.publisher ? g.publisher.iceConnectionState : null,
        subscriber: g.subscriber ? g.subscriber.iceConnectionState : null,
      },
      ufrag: {
        publisherLocal: g.publisher && g.publisher.localDescription ? (/a=ice-ufrag:(\S+)/.exec(g.publisher.localDescription.sdp) || [])[1] : null,
        publisherRemote: g.publisher && g.publisher.remoteDescription ? (/a=ice-ufrag:(\S+)/.exec(g.publisher.remoteDescription.sdp) || [])[1] : null,
        subscriberRemote: g.subscriber && g.subscriber.remoteDescription ? (/a=ice-ufrag:(\S+)/.exec(g.subscriber.remoteDescription.sdp) || [])[1] : null,
      },
    };
  });
  p.frames = {};
  for (const s of await inboundStats(b.page)) if (s.kind === 'video' && s.owner) p.frames[s.owner] = (p.frames[s.owner] || 0) + s.framesDecoded;
  return p;
}

async function records(b) {
  return b.page.evaluate(() => ({ log: window.__e2e.log, ice: window.__e2e.ice, banner: window.__e2e.banner }));
}

/** For a failure report: every RTP stream of both connections, in short. */
async function rtpStats(b) {
  return b.page.evaluate(async () => {
    const g = window.giaoban;
    const out = {};
    for (const [name, pc] of [['publisher', g.publisher], ['subscriber', g.subscriber]]) {
      if (!pc) continue;
      const rows = [`ice ${pc.iceConnectionState} signaling ${pc.signalingState}`];
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp') rows.push(`out ${s.kind} rid=${s.rid} ssrc=${s.ssrc} active=${s.active} pkts=${s.packetsSent} frames=${s.framesEncoded} ${s.frameWidth}x${s.frameHeight} limit=${s.qualityLimitationReason}`);
        if (s.type === 'inbound-rtp') rows.push(`in ${s.kind} ssrc=${s.ssrc} pkts=${s.packetsReceived} frames=${s.framesDecoded} lost=${s.packetsLost} kf=${s.keyFramesDecoded} pli=${s.pliCount}`);
        if (s.type === 'candidate-pair' && s.nominated) rows.push(`pair ${s.state} sent=${s.bytesSent} recv=${s.bytesReceived}`);
      });
      out[name] = rows;
    }
    return out;
  });
}

/** Polls `fn` (every 200 ms) until it returns a truthy value; throws after `ms`. */
async function waitFor(what, fn, ms = timeoutMs) {
  const t0 = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() - t0 > ms) throw new Error(`timeout (${ms} ms) waiting for ${what}`);
    await sleep(200);
  }
}

/** Waits until `viewer` has decoded at least `n` more video frames of `pid` than `from`. */
async function framesGrow(viewer, pid, from, n = 15, ms = timeoutMs) {
  const t0 = Date.now();
  const p = await waitFor(`page ${viewer.index + 1} to decode ${n} more frames of ${pid}`, async () => {
    const q = await probe(viewer);
    return (q.frames[pid] || 0) >= from + n ? q : null;
  }, ms);
  return { frames: p.frames[pid], ms: Date.now() - t0 };
}

const summary = { ok: false, scenario, phases: [] };
const browsers = [];

/** Messages about participant `pid` joining or leaving, in B's record from index `from`. */
function joinsLeaves(rec, pid, from) {
  return rec.log
    .slice(from)
    .filter((e) => e.dir === 'in' && ((e.type === 'participant_left' && e.participant_id === pid) || (e.type === 'participant_joined' && e.pid === pid)));
}

/** Marks B's tile of `pid` so a removed and re-added tile shows. */
async function markTile(b, pid) {
  return b.page.evaluate((id) => {
    const el = document.querySelector(`.tile[data-participant-id="${CSS.escape(id)}"]`);
    if (!el) return false;
    el.dataset.e2eMark = 'kept';
    return true;
  }, pid);
}

async function tileKept(b, pid) {
  return b.page.evaluate((id) => {
    const el = document.querySelector(`.tile[data-participant-id="${CSS.escape(id)}"]`);
    return el ? el.dataset.e2eMark === 'kept' : null;
  }, pid);
}

/**
 * One away-and-back of A that must end in a resume: `cut` makes A lose its
 * socket (and returns when A is reachable again, or hands back a function
 * that restores it), then every check of a resume.
 */
async function resumePhase(name, a, b, ids, cut, tick, extraMs = 0) {
  const ph = { name, states: [] };
  summary.phases.push(ph);
  const [recA0, recB0] = [await records(a), await records(b)];
  const before = [await probe(a), await probe(b)];
  if (!(await markTile(b, ids.a))) throw new Error(`${name}: page B has no tile of A`);
  const t0 = Date.now();
  const restore = await cut();
  ph.cut = restore && restore.info;
  // While away (and until connected again): the banner, media both ways.
  let resumedAt = null;
  let restored = false;
  const during = [null, null];
  await waitFor(`${name}: A to resume`, async () => {
    if (tick) await tick();
    const p = await probe(a);
    if (ph.states[ph.states.length - 1] !== p.state) ph.states.push(p.state);
    if (p.state !== 'connected' && !during[0]) {
      during[0] = p.frames[ids.b] || 0;
      during[1] = (await probe(b)).frames[ids.a] || 0;
    }
    if (!restored && restore && restore.fn && Date.now() - t0 >= restore.afterMs) {
      restore.fn();
      restored = true;
      ph.restored_after_ms = Date.now() - t0;
    }
    const rec = await records(a);
    const resumed = rec.log.slice(recA0.log.length).find((e) => e.dir === 'in' && e.type === 'resumed');
    if (resumed && p.state === 'connected') {
      resumedAt = resumedAt || Date.now();
      return true;
    }
    return false;
  }, timeoutMs + extraMs + (restore && restore.afterMs ? restore.afterMs : 0));
  ph.away_ms = resumedAt - t0;
  const recA = await records(a);
  const mine = recA.log.slice(recA0.log.length);
  ph.closes = mine.filter((e) => e.dir === 'ws' && (e.type === 'close' || e.type === 'close_called')).map((e) => `${e.type} ${e.code}`);
  ph.a_sent = mine.filter((e) => e.dir === 'out' && e.type !== 'ping').map((e) => e.type);
  const resumed = mine.find((e) => e.dir === 'in' && e.type === 'resumed');
  ph.resumed = { pid: resumed.pid, replayed: resumed.replayed };
  if (resumed.pid !== ids.a) throw new Error(`${name}: resumed as ${resumed.pid}, not ${ids.a}`);
  if (mine.some((e) => e.dir === 'in' && (e.type === 'joined' || e.code === 'resume_failed'))) {
    throw new Error(`${name}: A joined afresh instead of resuming: ${JSON.stringify(mine.filter((e) => e.dir === 'in').map((e) => e.type))}`);
  }
  // The banner goes once connected again.
  await waitFor(`${name}: the banner to go`, async () => !(await probe(a)).banner, 5000);
  const shows = (await records(a)).banner.filter((e) => e.t >= t0);
  ph.banner = shows.map((e) => `${e.shown ? `shown "${e.text}"` : 'hidden'} @${e.t - t0}`);
  ph.banner_seen = shows.some((e) => e.shown && e.t <= resumedAt);
  if (!ph.banner_seen) throw new Error(`${name}: the reconnecting banner never showed while away`);
  const after = [await probe(a), await probe(b)];
  if (after[0].self !== ids.a) throw new Error(`${name}: A is now ${after[0].self}`);
  if (after[0].screen === 'end') throw new Error(`${name}: A shows the end screen`);
  // Video keeps being decoded both ways, after the resume too.
  ph.video = {
    a_of_b: { before: before[0].frames[ids.b], while_away: during[0], after: (await framesGrow(a, ids.b, after[0].frames[ids.b] || 0)).frames },
    b_of_a: { before: before[1].frames[ids.a], while_away: during[1], after: (await framesGrow(b, ids.a, after[1].frames[ids.a] || 0)).frames },
  };
  for (const [k, v] of Object.entries(ph.video)) {
    if (!(v.after > v.before)) throw new Error(`${name}: video ${k} did not keep flowing: ${JSON.stringify(v)}`);
  }
  // B saw nothing: no leave, no join of A, the same tile element.
  const recB = await records(b);
  const seen = joinsLeaves(recB, ids.a, recB0.log.length);
  if (seen.length) throw new Error(`${name}: B saw ${JSON.stringify(seen)}`);
  if ((await tileKept(b, ids.a)) !== true) throw new Error(`${name}: B's tile of A was removed or replaced`);
  if (!after[1].tiles.includes(ids.a)) throw new Error(`${name}: B shows no tile of A`);
  ph.ice_after = after[0].ice;
  log(`${name}: resumed after ${ph.away_ms} ms; closes ${ph.closes.join(', ')}; video ${JSON.stringify(ph.video)}`);
  return ph;
}

/** Both pages joined and decoding each other's video; returns their ids. */
async function start() {
  for (let i = 0; i < 2; i++) browsers.push(await openBrowser(i, { initScript: recorder }));
  const [a, b] = browsers;
  await joinMeeting(a, urlA);
  await joinMeeting(b, urlB);
  const ids = await waitFor('both pages to join', async () => {
    const [pa, pb] = [await probe(a), await probe(b)];
    return pa.self && pb.self && pa.state === 'connected' && pb.state === 'connected' ? { a: pa.self, b: pb.self } : null;
  });
  await framesGrow(a, ids.b, 0, 20);
  await framesGrow(b, ids.a, 0, 20);
  summary.ids = ids;
  log(`joined: A ${ids.a}, B ${ids.b}; both decode video`);
  return { a, b, ids };
}

async function scenarioReset() {
  const { a, b, ids } = await start();
  // A reset of A's TCP connections, twice (the second on a resumed socket).
  for (const name of ['reset', 'reset again']) {
    await resumePhase(name, a, b, ids, async () => {
      const ports = resetConnections(a);
      return { info: { reset_ports: ports } };
    });
  }
}

async function scenarioOffline() {
  const { a, b, ids } = await start();
  // A offline for a few seconds (the socket hangs rather than closing).
  const cdp = await a.context.newCDPSession(a.page);
  await cdp.send('Network.enable');
  const conditions = (offline) => ({ offline, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await resumePhase('offline', a, b, ids, async () => {
    await cdp.send('Network.emulateNetworkConditions', conditions(true));
    return {
      afterMs: 6000,
      fn: () => {
        cdp.send('Network.emulateNetworkConditions', conditions(false)).catch((e) => log(`online failed: ${e.message}`));
      },
    };
  });
  const off = summary.phases[0];
  if (!off.closes.includes('close_called 4000')) {
    throw new Error(`offline: the client did not give its socket up with 4000: ${off.closes}`);
  }
}

async function scenarioGrace() {
  const { a, b, ids } = await start();
  const ph = { name: 'grace', grace_secs: graceSecs };
  summary.phases.push(ph);
  const [recA0, recB0] = [await records(a), await records(b)];
  // New connections to the server are refused, A's current ones reset.
  nft([`tcp dport ${httpPort} tcp flags & (syn | ack) == syn reject with tcp reset`]);
  const t0 = Date.now();
  ph.reset_ports = resetConnections(a);
  await waitFor('B to see A leave after the grace', async () => {
    const recB = await records(b);
    return joinsLeaves(recB, ids.a, recB0.log.length).some((e) => e.type === 'participant_left');
  }, graceSecs * 1000 + timeoutMs);
  ph.left_after_ms = Date.now() - t0;
  const leftMsg = joinsLeaves(await records(b), ids.a, recB0.log.length)[0];
  ph.left_reason = leftMsg.reason;
  if (ph.left_after_ms < graceSecs * 1000 - 500) throw new Error(`B saw A leave after ${ph.left_after_ms} ms, before the ${graceSecs} s grace`);
  if ((await probe(b)).tiles.includes(ids.a)) {
    await waitFor("B's tile of A to go", async () => !(await probe(b)).tiles.includes(ids.a), 5000);
  }
  ph.banner_seen = (await records(a)).banner.some((e) => e.shown && e.t >= t0);
  if (!ph.banner_seen) throw new Error('the reconnecting banner never showed while A was away');
  nftClear();
  const tBack = Date.now();
  // A's client comes back by itself as a new participant.
  const newId = await waitFor('A to join afresh', async () => {
    const p = await probe(a);
    return p.state === 'connected' && p.self && p.self !== ids.a ? p.self : null;
  }, timeoutMs);
  ph.rejoined_after_ms = Date.now() - tBack;
  const mine = (await records(a)).log.slice(recA0.log.length).filter((e) => e.dir === 'in' || e.dir === 'ws');
  ph.a_seen = mine.map((e) => (e.dir === 'ws' ? `ws${e.n}:${e.type}${e.code ? ` ${e.code}` : ''}` : e.code ? `${e.type}:${e.code}` : e.type)).slice(0, 40);
  if (!mine.some((e) => e.code === 'resume_failed')) throw new Error(`A did not try to resume first: ${ph.a_seen}`);
  if (!mine.some((e) => e.type === 'joined')) throw new Error(`A did not join: ${ph.a_seen}`);
  await waitFor('B to see the new A', async () => (await probe(b)).tiles.includes(newId), timeoutMs);
  const joinedMsg = joinsLeaves(await records(b), newId, recB0.log.length).find((e) => e.type === 'participant_joined');
  if (!joinedMsg) throw new Error('B got no participant_joined of the new A');
  ph.video = {
    b_of_new_a: (await framesGrow(b, newId, 0, 20)).frames,
    new_a_of_b: (await framesGrow(a, ids.b, 0, 20)).frames,
  };
  const pa = await probe(a);
  if (pa.banner) throw new Error(`A still shows a banner: ${pa.banner}`);
  if (pa.screen === 'end') throw new Error('A shows the end screen');
  summary.new_a = newId;
  log(`grace: B saw A leave after ${ph.left_after_ms} ms (${ph.left_reason}); A back as ${newId} ${ph.rejoined_after_ms} ms after the server was reachable`);
}

async function scenarioIdle() {
  const { a, b, ids } = await start();
  // A's pings and link reports are lost from now on; A still hears
  // the server (B toggles its microphone every 8 s), so only the server's
  // idle timeout can end the socket: it closes it with 1008 and no error,
  // and A must resume.
  const t0 = Date.now();
  await a.page.evaluate(() => {
    window.__e2e.dropPings = true;
  });
  await resumePhase('idle', a, b, ids, async () => ({ info: 'pings dropped' }), async () => {
    const since = Date.now() - t0;
    if (since > 8000 * ((b.toggles || 0) + 1)) {
      b.toggles = (b.toggles || 0) + 1;
      await b.page.click('#mic-button');
    }
    const closed = (await records(a)).log.some((e) => e.dir === 'ws' && e.type === 'close' && e.code === 1008);
    if (closed) {
      await a.page.evaluate(() => {
        window.__e2e.dropPings = false;
      });
    }
  }, 60000);
  const ph = summary.phases[0];
  ph.idle_close_after_ms = ph.away_ms;
  if (!ph.closes.includes('close 1008')) throw new Error(`idle: no 1008 close from the server: ${ph.closes}`);
  if (ph.closes.some((c) => c.startsWith('close_called'))) throw new Error(`idle: the page gave its socket up itself: ${ph.closes}`);
}

/** The local ports of B's selected candidate pairs (both connections), UDP only. */
async function selectedPorts(b) {
  return b.page.evaluate(async () => {
    const g = window.giaoban;
    const out = [];
    for (const pc of [g.publisher, g.subscriber]) {
      if (!pc) continue;
      const stats = await pc.getStats();
      let pairId = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
      });
      const pair = pairId ? stats.get(pairId) : null;
      const local = pair ? stats.get(pair.localCandidateId) : null;
      out.push(local ? { protocol: local.protocol, port: local.port } : null);
    }
    return out;
  });
}

async function scenarioIce() {
  const { a, b, ids } = await start();
  const ph = { name: 'ice' };
  summary.phases.push(ph);
  const [recA0, recB0] = [await records(a), await records(b)];
  const bPorts = await selectedPorts(b);
  if (bPorts.some((p) => !p || p.protocol !== 'udp')) throw new Error(`B's selected pairs are not all UDP: ${JSON.stringify(bPorts)}`);
  const keep = [...new Set(bPorts.map((p) => p.port))].join(', ');
  const before = [await probe(a), await probe(b)];
  ph.ufrag_before = before[0].ufrag;
  await markTile(b, ids.a);
  // A's media path is cut: UDP to and from the media port except B's, and
  // all ICE-TCP. The WebSocket (HTTP port) stays up.
  nft([
    `udp dport ${mediaPort} udp sport != { ${keep} } drop`,
    `udp sport ${mediaPort} udp dport != { ${keep} } drop`,
    `tcp dport ${mediaPort} drop`,
    `tcp sport ${mediaPort} drop`,
  ]);
  const t0 = Date.now();
  // Until A's client has asked for new paths on both connections.
  await waitFor('A to restart ICE on both connections', async () => {
    const log2 = (await records(a)).log.slice(recA0.log.length);
    const pub = log2.some((e) => e.dir === 'out' && e.type === 'publish' && e.ufrag && e.ufrag !== before[0].ufrag.publisherLocal);
    const sub = log2.some((e) => e.dir === 'out' && e.type === 'ice_restart');
    return pub && sub;
  }, timeoutMs);
  ph.restart_after_ms = Date.now() - t0;
  await sleep(1000);
  const rec = await records(a);
  ph.ice_states = rec.ice.filter((e) => e.t >= t0).map((e) => `pc${e.n}:${e.state}@${e.t - t0}`);
  const framesAtUnblock = [(await probe(a)).frames[ids.b] || 0, (await probe(b)).frames[ids.a] || 0];
  nftClear();
  const tBack = Date.now();
  ph.blocked_ms = tBack - t0;
  const [ab, ba] = await Promise.all([framesGrow(a, ids.b, framesAtUnblock[0], 15), framesGrow(b, ids.a, framesAtUnblock[1], 15)]);
  ph.media_back_ms = { a_of_b: ab.ms, b_of_a: ba.ms };
  const after = await waitFor('both of A\'s connections to be connected', async () => {
    const p = await probe(a);
    const ok = (s) => s === 'connected' || s === 'completed';
    return ok(p.ice.publisher) && ok(p.ice.subscriber) ? p : null;
  }, timeoutMs);
  ph.ufrag_after = after.ufrag;
  for (const k of ['publisherLocal', 'publisherRemote', 'subscriberRemote']) {
    if (!after.ufrag[k] || after.ufrag[k] === before[0].ufrag[k]) throw new Error(`the ${k} ICE ufrag did not change: ${JSON.stringify(ph.ufrag_before)} -> ${JSON.stringify(after.ufrag)}`);
  }
  const recB = await records(b);
  const seen = joinsLeaves(recB, ids.a, recB0.log.length);
  if (seen.length) throw new Error(`B saw ${JSON.stringify(seen)}`);
  if ((await tileKept(b, ids.a)) !== true) throw new Error("B's tile of A was removed or replaced");
  if (after.self !== ids.a) throw new Error(`A is now ${after.self}`);
  const mine = (await records(a)).log.slice(recA0.log.length);
  ph.a_sent = mine.filter((e) => e.dir === 'out' && !['ping', 'candidate'].includes(e.type)).map((e) => e.type);
  ph.errors = mine.filter((e) => e.dir === 'in' && e.type === 'error').map((e) => e.code);
  if (mine.some((e) => e.dir === 'in' && e.type === 'joined')) throw new Error('A joined afresh');
  if (mine.some((e) => e.dir === 'ws' && e.type === 'close')) throw new Error('A lost its WebSocket');
  log(`ice: restart asked ${ph.restart_after_ms} ms after the cut; media back ${JSON.stringify(ph.media_back_ms)} ms after the path came back`);
}

try {
  const scenarios = { reset: scenarioReset, idle: scenarioIdle, offline: scenarioOffline, grace: scenarioGrace, ice: scenarioIce };
  if (!scenarios[scenario] || !urlA || !urlB) throw new Error(`usage: resume.mjs ${Object.keys(scenarios).join('|')} URL_A URL_B`);
  if (!httpPort || !mediaPort) throw new Error('HTTP_PORT and MEDIA_PORT must be set');
  nftClear();
  await scenarios[scenario]();
  summary.ok = true;
} catch (e) {
  summary.reason = e && e.message ? e.message : String(e);
  process.stderr.write(`e2e failed: ${summary.reason}\n`);
  dumpConsoles(browsers, 40);
  try {
    summary.rtp = await Promise.all(browsers.map((b) => rtpStats(b)));
  } catch (_) {
    // the page is gone
  }
  try {
    summary.records = await Promise.all(browsers.map(async (b) => (await records(b)).log.filter((x) => x.type !== 'pong' && x.type !== 'ping' && x.type !== 'candidate').slice(-60)));
  } catch (_) {
    // the page is gone
  }
}
nftClear();
await closeBrowsers(browsers);
process.stdout.write(`${JSON.stringify(summary)}\n`);
process.exit(summary.ok ? 0 : 1);
