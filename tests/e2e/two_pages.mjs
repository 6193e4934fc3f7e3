#!/usr/bin/env node
// End-to-end test of the web client in real browsers: two browsers, each
// opens one invitation URL and joins; then both must receive each other's
// media (video frames decoded, audio packets) and show each other's name.
//
//   node two_pages.mjs URL1 URL2
//
// Prints a JSON summary on stdout and exits 0, or prints the reason on
// stderr (and a JSON summary with "ok": false on stdout) and exits 1.
// The invitation URLs carry tokens: they are never printed.
//
// Environment:
//   E2E_BROWSERS      the two browsers, comma-separated: chromium (default)
//                     or firefox, each with an optional screen size (default
//                     1024x768), e.g. "firefox:768x1024,chromium"
//   CHROMIUM_PATH     Chromium (default /usr/bin/chromium; never downloaded)
//   FIREFOX_PATH      Firefox ESR (default /usr/bin/firefox-esr)
//   E2E_TIMEOUT_MS    how long to wait for media after both joins (default 30000)
//   E2E_SCREENSHOT    if set, a PNG of the first page (1024x768) is written there
//   E2E_VERBOSE=1     browser console messages on stderr

import { closeBrowsers, cspViolations, dumpConsoles, elapsed, joinMeeting, log, openBrowser, watchdog } from './lib.mjs';

const timeoutMs = Number(process.env.E2E_TIMEOUT_MS || 30000);
const specs = (process.env.E2E_BROWSERS || 'chromium,chromium').split(',').map((k) => k.trim());
const kinds = specs.map((k) => k.split(':')[0]);
/** The screen size of each page: `undefined` for the default. */
const viewports = specs.map((k) => {
  const m = /:(\d+)x(\d+)$/.exec(k);
  return m ? { width: Number(m[1]), height: Number(m[2]) } : undefined;
});

/** Runs in the page: what this participant receives and shows. */
async function probe(page) {
  return page.evaluate(async () => {
    const g = window.giaoban;
    const out = {
      userAgent: navigator.userAgent,
      screen: { width: window.innerWidth, height: window.innerHeight },
      state: g.state,
      self: null,
      tiles: g.tiles(),
      inbound: [],
      publisher: null,
      subscriber: null,
    };
    const c = g.client;
    if (c && c.self) out.self = { id: c.self.id, name: c.self.name, role: c.self.role };
    // What the server accepted of the browser's offer, and what it offers:
    // RTX for video, RED around Opus, Opus in-band FEC (media.md, loss repair).
    const repair = (d) => (d && d.sdp ? {
      rtx: /a=rtpmap:\d+ rtx\/90000/i.test(d.sdp),
      // Firefox writes the server's `red/48000/2` back as `red/48000`.
      red: /a=rtpmap:\d+ red\/48000(\/2)?\r?$/im.test(d.sdp),
      fec: /useinbandfec=1/.test(d.sdp),
    } : null);
    if (g.publisher) {
      out.publisher = g.publisher.connectionState;
      out.publishOffer = repair(g.publisher.localDescription);
      out.publishAnswer = repair(g.publisher.remoteDescription);
    }
    const pc = g.subscriber;
    if (!pc) return out;
    out.subscriber = pc.connectionState;
    out.subscriberOffer = repair(pc.remoteDescription);
    out.subscriberAnswer = repair(pc.localDescription);
    const trackOfMid = new Map();
    for (const tr of pc.getTransceivers()) {
      if (tr.mid !== null) trackOfMid.set(tr.mid, tr.receiver.track.id);
    }
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      const trackId = s.trackIdentifier || trackOfMid.get(s.mid) || null;
      out.inbound.push({
        kind: s.kind,
        owner: trackId ? g.participantOfTrack(trackId) : null,
        packetsReceived: s.packetsReceived || 0,
        bytesReceived: s.bytesReceived || 0,
        framesDecoded: s.framesDecoded || 0,
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
      });
    });
    for (const t of out.tiles) {
      const el = document.querySelector(`.tile[data-participant-id="${CSS.escape(t.self ? 'self' : t.id)}"] .tile-name`);
      t.shownName = el ? el.textContent : null;
      const box = el ? el.closest('.tile').getBoundingClientRect() : null;
      t.visible = !!box && box.width > 0 && box.height > 0;
    }
    return out;
  });
}

/** Whether `p` (one page's probe) has everything from `other`; else why not. */
function check(p, other) {
  if (!p.self) return { done: false, why: `not joined (state ${p.state})` };
  if (!other.self) return { done: false, why: 'the other page has not joined' };
  const otherId = other.self.id;
  const tile = p.tiles.find((t) => !t.self && t.id === otherId);
  if (!tile) return { done: false, why: `no tile for the other participant ${otherId}` };
  if (!tile.visible || !tile.shownName || !tile.shownName.includes(other.self.name)) {
    return { done: false, why: `the other's tile does not show the name "${other.self.name}"` };
  }
  const video = p.inbound.find((s) => s.kind === 'video' && s.owner === otherId && s.framesDecoded > 0);
  if (!video) return { done: false, why: `no decoded video frame from ${otherId} (subscriber ${p.subscriber})` };
  const audio = p.inbound.find((s) => s.kind === 'audio' && s.owner === otherId && s.packetsReceived > 0);
  if (!audio) return { done: false, why: `no audio packet from ${otherId}` };
  return { done: true, video, audio, tile };
}

function summary(ok, probes, results, reason) {
  return {
    ok,
    reason: reason || null,
    elapsed_ms: elapsed(),
    pages: probes.map((p, i) => {
      const r = results ? results[i] : null;
      return {
        page: i + 1,
        browser: kinds[i],
        user_agent: p ? p.userAgent : null,
        screen: p ? p.screen : null,
        state: p ? p.state : null,
        self: p ? p.self : null,
        other: probes[1 - i] ? probes[1 - i].self : null,
        publisher: p ? p.publisher : null,
        subscriber: p ? p.subscriber : null,
        publish_offer: p ? p.publishOffer || null : null,
        publish_answer: p ? p.publishAnswer || null : null,
        subscriber_offer: p ? p.subscriberOffer || null : null,
        subscriber_answer: p ? p.subscriberAnswer || null : null,
        tiles: p ? p.tiles.map((t) => ({ id: t.id, name: t.name, role: t.role, self: t.self })) : [],
        other_tile_name: r && r.tile ? r.tile.shownName : null,
        video: r && r.video ? r.video : null,
        audio: r && r.audio ? r.audio : null,
        inbound: p ? p.inbound : [],
        done: !!(r && r.done),
        waiting_for: r && !r.done ? r.why : null,
      };
    }),
  };
}

async function main() {
  const urls = process.argv.slice(2);
  if (urls.length !== 2) {
    process.stderr.write('usage: node two_pages.mjs URL1 URL2\n');
    return 2;
  }
  const browsers = [];
  let probes = [null, null];
  let results = null;
  try {
    if (kinds.length !== 2 || kinds.some((k) => k !== 'chromium' && k !== 'firefox')) {
      throw new Error(`E2E_BROWSERS must name two of chromium, firefox: ${kinds.join(',')}`);
    }
    for (let i = 0; i < 2; i++) {
      browsers.push(await openBrowser(i, { browser: kinds[i], viewport: viewports[i] }));
    }
    log('browsers started');
    await Promise.all(browsers.map((b, i) => joinMeeting(b, urls[i])));
    log('both pages clicked Join');
    const deadline = Date.now() + timeoutMs; // counted from the Join clicks
    for (;;) {
      probes = await Promise.all(browsers.map((b) => probe(b.page)));
      results = [check(probes[0], probes[1]), check(probes[1], probes[0])];
      if (results.every((r) => r.done)) break;
      if (Date.now() > deadline) {
        const why = results
          .map((r, i) => (r.done ? null : `page ${i + 1}: ${r.why}`))
          .filter(Boolean)
          .join('; ');
        throw new Error(`timeout after ${timeoutMs} ms: ${why}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    log('media flows both ways');
    // The server's Content-Security-Policy blocked nothing the page needed.
    for (const b of browsers) {
      const v = await cspViolations(b.page);
      if (v.length) throw new Error(`page ${b.index + 1} (${b.kind}) broke the CSP: ${v.join('; ')}`);
    }
    log('no CSP violation on either page');
    if (process.env.E2E_SCREENSHOT) {
      // Let a few frames render so the tiles show video.
      await new Promise((r) => setTimeout(r, 700));
      await browsers[0].page.screenshot({ path: process.env.E2E_SCREENSHOT });
      log('screenshot written');
    }
    process.stdout.write(`${JSON.stringify(summary(true, probes, results))}\n`);
    return 0;
  } catch (e) {
    const reason = e && e.message ? e.message : String(e);
    process.stderr.write(`e2e failed: ${reason}\n`);
    dumpConsoles(browsers);
    process.stdout.write(`${JSON.stringify(summary(false, probes, results, reason))}\n`);
    return 1;
  } finally {
    await closeBrowsers(browsers);
  }
}

watchdog(timeoutMs + 60000);

process.exitCode = await main();
