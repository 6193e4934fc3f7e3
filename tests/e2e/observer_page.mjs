#!/usr/bin/env node
// End to end in real Chromium: an observer's page only watches. A bridge
// point joins and publishes; then an observer opens its invitation:
//
//  * the join page asks for no camera or microphone (getUserMedia is never
//    called), shows the observer note, no device choice and no mic/cam
//    buttons;
//  * after joining, the page has no publisher connection, no mic/cam
//    buttons, sent neither `publish` nor `mute` on its WebSocket and got no
//    `error` (the server refuses both from an observer with `forbidden`);
//  * it receives and decodes the bridge point's video.
//
//   node observer_page.mjs BRIDGE_URL OBSERVER_URL
//
// Environment: CHROMIUM_PATH, E2E_TIMEOUT_MS (each wait, default 20000),
// E2E_STAFF_TOKEN (reads the operator's live roster at the end),
// E2E_ERROR_CODES (codes whose texts the page must have, comma-separated),
// E2E_VERBOSE=1. Prints a JSON summary on stdout (last line); exits 0 or 1.

import { closeBrowsers, cspViolations, dumpConsoles, inboundStats, joinMeeting, log, openBrowser, selfOf, sleep, watchdog } from './lib.mjs';

const waitMs = Number(process.env.E2E_TIMEOUT_MS || 20000);
const [bridgeUrl, observerUrl] = process.argv.slice(2);

// Records what the page asks of the devices and what its WebSocket carries.
const RECORDER = `(() => {
  window.__gumCalls = 0;
  const md = navigator.mediaDevices;
  if (md && md.getUserMedia) {
    const orig = md.getUserMedia.bind(md);
    md.getUserMedia = (c) => { window.__gumCalls += 1; return orig(c); };
  }
  window.__wsSent = [];
  window.__wsErrors = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try { const m = JSON.parse(data); window.__wsSent.push(m.type); } catch (_) {}
    if (!this.__watched) {
      this.__watched = true;
      this.addEventListener('message', (ev) => {
        try { const m = JSON.parse(ev.data); if (m.type === 'error') window.__wsErrors.push(m.code); } catch (_) {}
      });
    }
    return send.call(this, data);
  };
})();`;

/** Runs `fn` in the page (it may be async) until it returns a truthy value. */
async function until(page, what, fn, arg) {
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    const v = await page.evaluate(fn, arg);
    if (v) return v;
    await sleep(200);
  }
  throw new Error(`${what}: not within ${waitMs} ms`);
}

async function main() {
  const summary = { ok: false, reason: null };
  const browsers = [];
  try {
    if (!bridgeUrl || !observerUrl) throw new Error('usage: observer_page.mjs BRIDGE_URL OBSERVER_URL');
    const bridge = await openBrowser(0);
    browsers.push(bridge);
    await joinMeeting(bridge, bridgeUrl);
    summary.bridge = await until(bridge.page, 'the bridge point joined', () => {
      const c = window.giaoban.client;
      return c && c.self && c.publisher ? { id: c.self.id, role: c.self.role } : null;
    });
    log('bridge joined', JSON.stringify(summary.bridge));

    const obs = await openBrowser(1, { viewport: { width: 768, height: 1024 }, initScript: RECORDER });
    browsers.push(obs);
    const page = obs.page;
    await page.goto(observerUrl, { waitUntil: 'load', timeout: waitMs });
    await until(page, 'the Join button', () => {
      const b = document.getElementById('join-button');
      return b && !b.hidden && !b.disabled;
    });
    // Give a preview that would open the camera time to do it.
    await sleep(500);
    summary.join_page = await page.evaluate(() => {
      const shown = (el) => !!el && !el.closest('[hidden]');
      return {
        gum_calls: window.__gumCalls,
        note_shown: shown(document.getElementById('observer-note')),
        note: document.getElementById('observer-note').textContent,
        camera_select_shown: shown(document.getElementById('camera-select')),
        mic_select_shown: shown(document.getElementById('mic-select')),
        preview_buttons_shown: shown(document.getElementById('preview-mic')) || shown(document.getElementById('preview-cam')),
        role_text: document.getElementById('invite-role').textContent,
        preview_text: document.getElementById('preview-placeholder-text').textContent,
      };
    });
    log('observer join page', JSON.stringify(summary.join_page));
    await page.click('#join-button');
    await until(page, 'the observer joined', () => !!(window.giaoban.client && window.giaoban.client.self));
    const video = await until(
      page,
      'the bridge point video at the observer',
      async (owner) => {
        const pc = window.giaoban.subscriber;
        if (!pc) return null;
        const stats = await pc.getStats();
        let frames = 0;
        stats.forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
        });
        const tile = window.giaoban.tiles().find((x) => x.id === owner);
        return frames > 0 && tile ? { frames, tile: tile.name } : null;
      },
      summary.bridge.id,
    );
    summary.video = video;
    // A second or two for a late publish or mute to show up.
    await sleep(1500);
    summary.self = await selfOf(page);
    summary.meeting_page = await page.evaluate(() => {
      const c = window.giaoban.client;
      return {
        publisher: c.publisher ? c.publisher.connectionState : null,
        receive_only: c.receiveOnly,
        mic_button_shown: !document.getElementById('mic-button').hidden,
        cam_button_shown: !document.getElementById('cam-button').hidden,
        banner: document.getElementById('meeting-banner').hidden ? null : document.getElementById('meeting-banner').textContent,
        sent: window.__wsSent,
        errors: window.__wsErrors,
        gum_calls: window.__gumCalls,
      };
    });
    summary.inbound = (await inboundStats(page)).map((s) => ({ kind: s.kind, owner: s.owner, packets: s.packetsReceived }));
    // The texts of the codes the server sends since issue 19 (E2E_ERROR_CODES,
    // comma-separated), in both languages, as the page's catalogue has them.
    summary.error_texts = await page.evaluate(async (codes) => {
      const i18n = await import('/assets/i18n.js');
      const out = {};
      for (const lang of ['en', 'vi']) {
        i18n.setLang(lang);
        out[lang] = Object.fromEntries(codes.map((c) => [c, i18n.errorText(c) === i18n.t('error.unknown') ? null : i18n.errorText(c)]));
      }
      return out;
    }, (process.env.E2E_ERROR_CODES || '').split(',').filter(Boolean));
    summary.csp = await cspViolations(page);
    // The operator's live roster, while both pages are in (E2E_STAFF_TOKEN).
    const meetingId = await page.evaluate(() => window.giaoban.client.meeting.id);
    const resp = await fetch(`${new URL(observerUrl).origin}/api/meetings/${encodeURIComponent(meetingId)}/live`, {
      headers: { authorization: `Bearer ${process.env.E2E_STAFF_TOKEN || ''}` },
    });
    summary.live = { status: resp.status, body: await resp.json().catch(() => null) };
    summary.ok = true;
  } catch (e) {
    summary.reason = e && e.message ? e.message : String(e);
    process.stderr.write(`e2e failed: ${summary.reason}\n`);
    dumpConsoles(browsers);
  } finally {
    await closeBrowsers(browsers);
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return summary.ok ? 0 : 1;
}

watchdog(waitMs * 6 + 30000);
process.exitCode = await main();
