#!/usr/bin/env node
// End-to-end test of the chair's console and the live meeting page (issue 20)
// in real Chromium: a chair and two bridge points, three browsers with fake
// cameras and microphones.
//
//   node chair_console.mjs CHAIR_URL BRIDGE1_URL BRIDGE2_URL
//
// 1. The bridge points open their links first: a meeting that has not
//    started shows the waiting screen (title, time, place, agenda). The chair
//    joins and starts it from the console; the points enter by themselves.
// 2. Roll call: each point declares its presiding leader and attendees.
//    The page's own tools: the chair pins bridge 1 (its main view only
//    changes), bridge 1 goes full screen and back, the chair's page switches
//    to English and back; once the extra points the test runner joins
//    (E2E_EXTRA_POINTS, browserless) are in, bridge 2's grid has two pages
//    and it turns them.
// 3. Bridge 1 raises its hand (a question): the chair's queue shows it, the
//    chair gives the floor: bridge 1 is the main view on bridge 2's page and
//    its audio arrives there (inbound-rtp packets increase).
// 4. The chair takes the floor back and mutes all: bridge 2 and the chair
//    stop receiving audio packets from the points (after ~1 s); bridge 2's
//    page says it is muted by the chair, and it can still raise its hand.
// 5. The attendance summary of the console shows both points present, with
//    their declared leaders and their first join times.
// 6. The chair ends the meeting: the points see the closing message.
//
// Prints a JSON summary on stdout and exits 0, or the reason on stderr (and a
// summary with "ok": false) and exits 1. The URLs carry tokens: never printed.
//
// Environment: CHROMIUM_PATH, E2E_TIMEOUT_MS (each wait, default 30000),
// E2E_EXTRA_POINTS (how many others the runner joins once the meeting
// started, without a browser; bridge 2's grid must then need two pages),
// E2E_SCREENSHOT_DIR (PNGs of the three pages at the main steps),
// E2E_VERBOSE=1.

import { closeBrowsers, cspViolations, dumpConsoles, elapsed, inboundStats, joinMeeting, log, openBrowser, selfOf, sleep, watchdog } from './lib.mjs';

const timeoutMs = Number(process.env.E2E_TIMEOUT_MS || 30000);
const shotDir = process.env.E2E_SCREENSHOT_DIR || '';
/** Packets a stream may still count after the block settled (in flight). */
const STOPPED_SLACK = 3;
/** How long after `mute_all` the blocked audio must have stopped. */
const SETTLE_MS = 1000;
/** The window in which a stopped stream must not grow. */
const WINDOW_MS = 2000;

const extraPoints = Number(process.env.E2E_EXTRA_POINTS || 0);

const LEADERS = ['Nguyễn Văn An, Chủ tịch UBND xã', 'Trần Thị Bình, Phó Chủ tịch UBND xã'];
const ATTENDEES = [12, 7];

const summary = { ok: false, reason: null, steps: [] };

function step(name, data) {
  log(name);
  summary.steps.push({ at_ms: elapsed(), step: name, ...(data ? { data } : {}) });
}

/** Waits until `fn(arg)` (run in the page) returns something truthy; returns it. */
async function until(b, what, fn, arg) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  for (;;) {
    let failed = null;
    try {
      last = await b.page.evaluate(fn, arg);
    } catch (e) {
      failed = e.message;
      last = null;
    }
    if (last) return last;
    if (Date.now() > deadline) {
      const seen = failed ? `evaluate failed: ${failed}` : JSON.stringify(await live(b).catch(() => null));
      throw new Error(`page ${b.index + 1}: timeout waiting for ${what} (page: ${seen})`);
    }
    await sleep(250);
  }
}

const live = (b) => b.page.evaluate(() => window.giaoban.live());

async function shot(b, name) {
  if (!shotDir) return;
  await b.page.screenshot({ path: `${shotDir}/${name}.png` }).catch(() => {});
}

/** Audio packets per SSRC on a page, with the stream's participant. */
async function audioBySsrc(b) {
  const stats = await inboundStats(b.page);
  const out = new Map();
  for (const s of stats) if (s.kind === 'audio') out.set(s.ssrc, { owner: s.owner, packets: s.packetsReceived });
  return out;
}

/**
 * Audio packets received between two snapshots, summed per participant (a
 * slot that changed hands counts for both), and for streams that carry
 * nobody now.
 */
function audioDelta(a, b) {
  const per = {};
  for (const [ssrc, s] of b) {
    const before = a.get(ssrc);
    const d = s.packets - (before ? before.packets : 0);
    for (const owner of new Set([s.owner || 'none', before ? before.owner || 'none' : s.owner || 'none'])) {
      per[owner] = (per[owner] || 0) + d;
    }
  }
  return per;
}

/** Participant ids of the tiles the grid shows now (the current page). */
const gridShown = (b) => b.page.evaluate(() => [...document.querySelectorAll('#tiles > .tile')].filter((t) => !t.hidden).map((t) => t.dataset.participantId));

/** Turns `b`'s grid pages until the tile of `id` is shown (or the main view has it). */
async function showTile(b, id) {
  return until(b, `the tile of ${id} shown`, (pid) => {
    const tile = document.querySelector(`.tile[data-participant-id="${pid}"]`);
    if (!tile) return null;
    if (!tile.hidden) return true;
    // Back to the first page, then forward page by page.
    const prev = document.getElementById('grid-prev');
    if (!prev.disabled && !window.__e2eForward) prev.click();
    else {
      window.__e2eForward = true;
      const next = document.getElementById('grid-next');
      if (next.disabled) window.__e2eForward = false;
      else next.click();
    }
    return null;
  }, id);
}

/** What a page's language switch changed: the lang attribute and two labels. */
const labels = (b) =>
  b.page.evaluate(() => ({
    lang: document.documentElement.lang,
    mute_all: (document.getElementById('chair-mute-all') || {}).textContent || null,
    leave: document.getElementById('leave-button').getAttribute('aria-label'),
  }));

async function main() {
  const urls = process.argv.slice(2);
  if (urls.length !== 3) {
    process.stderr.write('usage: node chair_console.mjs CHAIR_URL BRIDGE1_URL BRIDGE2_URL\n');
    return 2;
  }
  const browsers = [];
  try {
    browsers.push(await openBrowser(0, { viewport: { width: 1280, height: 800 } }));
    browsers.push(await openBrowser(1, { viewport: { width: 1024, height: 768 } }));
    // A tablet held upright.
    browsers.push(await openBrowser(2, { viewport: { width: 768, height: 1024 } }));
    const [chair, b1, b2] = browsers;
    step('browsers started');

    // ---- 1. the waiting screen, then the chair starts -------------------------
    await Promise.all([joinMeeting(b1, urls[1]), joinMeeting(b2, urls[2])]);
    const before = [];
    for (const b of [b1, b2]) {
      before.push(
        await until(b, 'the waiting screen or the meeting', () => {
          const l = window.giaoban.live();
          if (l.screen === 'waiting' && l.waiting && l.waiting.title) return l;
          return window.giaoban.state === 'connected' ? l : null;
        }),
      );
    }
    summary.waiting = before.map((l) => l.waiting);
    step('bridge points opened their links', { screens: before.map((l) => l.screen) });
    await shot(b1, '1-bridge1-waiting');

    await joinMeeting(chair, urls[0]);
    const chairLive = await until(chair, "the chair's console", () => {
      const l = window.giaoban.live();
      return window.giaoban.state === 'connected' && l.console && l.console.status ? l : null;
    });
    summary.chair_status_at_join = chairLive.console.status;
    if (chairLive.console.status === 'draft' || chairLive.console.status === 'scheduled') {
      await chair.page.locator('#chair-start').click();
      step('the chair started the meeting');
    }
    await until(chair, 'the meeting in progress', () => {
      const l = window.giaoban.live();
      return l.console && l.console.status === 'in_progress';
    });
    for (const b of [b1, b2]) {
      await until(b, 'the meeting screen after the start', () => window.giaoban.state === 'connected' && window.giaoban.live().screen === 'meeting');
    }
    const ids = {
      chair: (await selfOf(chair.page)).id,
      b1: (await selfOf(b1.page)).id,
      b2: (await selfOf(b2.page)).id,
    };
    step('everyone is in the meeting', ids);

    // ---- 2. roll call -------------------------------------------------------------
    for (const [i, b] of [b1, b2].entries()) {
      await until(b, 'the roll call form', () => window.giaoban.live().attendanceForm);
      await b.page.locator('#attendance-leader').fill(LEADERS[i]);
      await b.page.locator('#attendance-count').fill(String(ATTENDEES[i]));
      await b.page.locator('#attendance-send').click();
      await until(b, 'the roll call sent', () => {
        const l = window.giaoban.live();
        return !l.attendanceForm && l.declared ? l.declared : null;
      });
    }
    step('both points declared their leaders');

    // Media first: bridge 2 hears bridge 1, the chair hears both.
    await until(b2, "bridge 1's audio", async (id) => {
      const pc = window.giaoban.subscriber;
      if (!pc) return null;
      let n = 0;
      (await pc.getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
        const tr = pc.getTransceivers().find((t) => t.mid === s.mid);
        const trackId = s.trackIdentifier || (tr ? tr.receiver.track.id : null);
        if (trackId && window.giaoban.participantOfTrack(trackId) === id) n += s.packetsReceived || 0;
      });
      return n > 0;
    }, ids.b1);
    step('media flows');

    // The own camera is small (not a third of a portrait tablet).
    const selfViews = [];
    for (const b of browsers) {
      const l = await live(b);
      const vw = await b.page.evaluate(() => window.innerWidth);
      selfViews.push({ page: b.index + 1, ...l.selfView, viewport_width: vw });
    }
    summary.self_views = selfViews;

    // ---- the page's own tools --------------------------------------------------------
    // Pin: the chair pins bridge 1; only the chair's main view changes.
    await showTile(chair, ids.b1);
    await chair.page.locator(`.tile[data-participant-id="${ids.b1}"] .tile-pin`).click();
    const pinned = await until(chair, 'bridge 1 pinned to the main view', (id) => {
      const l = window.giaoban.live();
      const pin = document.querySelector(`.tile[data-participant-id="${id}"] .tile-pin`);
      return l.pinned === id && l.main === id && document.querySelector('#main-view .tile')?.dataset.participantId === id
        ? { main: l.main, pinned: l.pinned, pressed: pin.getAttribute('aria-pressed') }
        : null;
    }, ids.b1);
    summary.pin = {
      chair: pinned,
      main_at_b1: await b1.page.evaluate(() => window.giaoban.mainView()),
      main_at_b2: await b2.page.evaluate(() => window.giaoban.mainView()),
      pinned_at_b2: (await live(b2)).pinned,
    };
    await chair.page.locator(`#main-view .tile[data-participant-id="${ids.b1}"] .tile-pin`).click();
    summary.pin.after_unpin = await until(chair, 'the pin undone', (id) => {
      const l = window.giaoban.live();
      return l.pinned === null && l.main !== id ? { main: l.main } : null;
    }, ids.b1);
    step('the chair pinned bridge 1 on its page, then undid it', summary.pin);

    // Full screen: bridge 1 enters and leaves it with the control bar's button.
    await b1.page.locator('#fullscreen-button').click();
    const full = await until(b1, 'full screen', () => {
      const btn = document.getElementById('fullscreen-button');
      return document.fullscreenElement && btn.getAttribute('aria-pressed') === 'true'
        ? { element: document.fullscreenElement.tagName, label: btn.getAttribute('aria-label') }
        : null;
    });
    await b1.page.locator('#fullscreen-button').click();
    const windowed = await until(b1, 'out of full screen', () => {
      const btn = document.getElementById('fullscreen-button');
      return !document.fullscreenElement && btn.getAttribute('aria-pressed') === 'false' ? { label: btn.getAttribute('aria-label') } : null;
    });
    summary.fullscreen = { entered: full, left: windowed };
    step('bridge 1 went full screen and back', summary.fullscreen);

    // English: the chair's page switches language, then back to Vietnamese.
    const viBefore = await labels(chair);
    await chair.page.locator('.lang-switch button[data-lang="en"]').click();
    await until(chair, 'the page in English', () => document.documentElement.lang === 'en' && document.getElementById('chair-mute-all')?.textContent === 'Mute all');
    const en = await labels(chair);
    await shot(chair, '2-chair-english');
    await chair.page.locator('.lang-switch button[data-lang="vi"]').click();
    await until(chair, 'the page in Vietnamese again', () => document.documentElement.lang === 'vi');
    summary.language = { vi: viBefore, en, vi_again: await labels(chair) };
    step('the chair switched the page to English and back', summary.language);

    // Grid pages: with the extra points, bridge 2's grid (beside the chair in
    // the main view) has more tiles than a page holds.
    const pager = await until(b2, 'a second page in the grid', (n) => {
      const pagerBox = document.getElementById('grid-pager');
      const others = document.querySelectorAll('#tiles > .tile').length;
      return others >= n && !pagerBox.hidden ? { others, text: document.getElementById('grid-page').textContent } : null;
    }, extraPoints + 1);
    const firstIndex = (await live(b2)).page;
    const firstPage = await gridShown(b2);
    const firstText = await b2.page.evaluate(() => document.getElementById('grid-page').textContent);
    await b2.page.locator('#grid-next').click();
    await until(b2, 'the second page', () => window.giaoban.live().page === 1);
    const secondPage = await gridShown(b2);
    const secondText = await b2.page.evaluate(() => document.getElementById('grid-page').textContent);
    await shot(b2, '2-bridge2-page2');
    await b2.page.locator('#grid-prev').click();
    await until(b2, 'back on the first page', () => window.giaoban.live().page === 0);
    summary.paging = {
      others: pager.others,
      first_index: firstIndex,
      main: await b2.page.evaluate(() => window.giaoban.mainView()),
      first: { text: firstText, shown: firstPage },
      second: { text: secondText, shown: secondPage },
      back: { shown: await gridShown(b2) },
    };
    step("bridge 2 turned its grid's pages", summary.paging);

    // ---- 3. raise hand -> floor ----------------------------------------------------
    await b1.page.locator('#hand-button').click();
    await b1.page.locator('#hand-menu .hand-kind[data-kind="question"]').click();
    const hand = await until(b1, 'our place in the queue', () => window.giaoban.live().hand);
    summary.bridge1_hand = { ...hand, status: (await live(b1)).handStatus };
    const queued = await until(chair, "the hand in the chair's queue", (id) => {
      const q = window.giaoban.live().console.queue;
      return q.find((h) => h.id === id) ? q : null;
    }, ids.b1);
    summary.chair_queue = queued;
    step('bridge 1 raised its hand; the chair sees it', { queue: queued });
    await shot(chair, '2-chair-queue');
    // The waiting time runs (the console counts every second).
    const waited0 = queued.find((h) => h.id === ids.b1).waited;
    let waited1 = null;
    for (let i = 0; i < 14 && (!waited1 || waited1 === waited0); i++) {
      await sleep(250);
      const h = (await live(chair)).console.queue.find((x) => x.id === ids.b1);
      waited1 = h ? h.waited : null;
    }
    summary.waiting_time = { first: waited0, later: waited1 };

    await chair.page.locator(`#chair-queue-list li[data-participant-id="${ids.b1}"] .chair-give`).click();
    await until(b2, "bridge 1 as bridge 2's main view", (id) => window.giaoban.mainView() === id, ids.b1);
    await until(chair, 'the floor in the console', (id) => window.giaoban.live().console.floor === id, ids.b1);
    summary.bridge1_floor_status = await until(b1, 'bridge 1 told it has the floor', () => {
      const l = window.giaoban.live();
      return l.handStatus && !l.hand ? l.handStatus : null;
    });
    const a0 = await audioBySsrc(b2);
    await sleep(1500);
    const a1 = await audioBySsrc(b2);
    const floorDelta = audioDelta(a0, a1);
    summary.floor_audio_at_bridge2 = floorDelta;
    if (!((floorDelta[ids.b1] || 0) > 0)) throw new Error(`bridge 2 received no audio from the floor holder: ${JSON.stringify(floorDelta)}`);
    step('floor given: bridge 1 is the main view on bridge 2 and heard there', { packets: floorDelta[ids.b1] });
    await shot(b2, '3-bridge2-floor');

    // ---- 4. take back, mute all ----------------------------------------------------------
    await chair.page.locator('#chair-take-floor').click();
    await until(chair, 'nobody with the floor', () => window.giaoban.live().console.floor === null);
    await chair.page.locator('#chair-mute-all').click();
    for (const b of [b1, b2]) {
      await until(b, 'the muted-by-the-chair notice', () => {
        const l = window.giaoban.live();
        return l.blockedNotice && l.micBlocked ? l.blockedNotice : null;
      });
    }
    summary.blocked_notice = (await live(b2)).blockedNotice;
    step('mute all: both points show it');
    await sleep(SETTLE_MS);
    const m0 = { b2: await audioBySsrc(b2), chair: await audioBySsrc(chair) };
    await sleep(WINDOW_MS);
    const m1 = { b2: await audioBySsrc(b2), chair: await audioBySsrc(chair) };
    const muted = { at_bridge2: audioDelta(m0.b2, m1.b2), at_chair: audioDelta(m0.chair, m1.chair) };
    summary.muted_audio = muted;
    const fromPoints = (d, points) => points.reduce((s, id) => s + (d[id] || 0), 0) + (d.none || 0);
    const leakB2 = fromPoints(muted.at_bridge2, [ids.b1]);
    const leakChair = fromPoints(muted.at_chair, [ids.b1, ids.b2]);
    if (leakB2 > STOPPED_SLACK || leakChair > STOPPED_SLACK) {
      throw new Error(`audio of the points still flows after mute all: ${JSON.stringify(muted)}`);
    }
    // The chair is not muted: bridge 2 still hears it (the measure works).
    summary.chair_audio_after_mute_all = muted.at_bridge2[ids.chair] || 0;
    step('no audio from the points after mute all', muted);
    await shot(b2, '4-bridge2-muted');

    // Muted, bridge 2 can still ask to speak.
    await b2.page.locator('#hand-button').click();
    await b2.page.locator('#hand-menu .hand-kind[data-kind="point_of_order"]').click();
    const queued2 = await until(chair, "bridge 2's hand in the queue", (id) => {
      const q = window.giaoban.live().console.queue;
      return q.find((h) => h.id === id && h.kind === 'point_of_order') ? q : null;
    }, ids.b2);
    summary.muted_hand = queued2;
    step('a muted point raised its hand');

    // ---- 5. attendance summary --------------------------------------------------------------
    // Both points present, each with its declared leader and first join time.
    summary.attendance = await until(chair, 'both points with leader and join time in the attendance summary', (leaders) => {
      const a = window.giaoban.live().console.attendance;
      if (!a) return null;
      const ok = leaders.every((l) => a.rows.some((r) => r.leader.includes(l) && r.present && r.first_joined_at));
      return ok ? a : null;
    }, LEADERS);
    step('the attendance summary shows both points, their leaders and join times');
    await chair.page.evaluate(() => document.getElementById('chair-att-list').scrollIntoView());
    await shot(chair, '5-chair-console');

    // ---- 6. the end ----------------------------------------------------------------------------
    await chair.page.locator('#chair-end').click();
    await chair.page.locator('#end-confirm').click();
    const ends = [];
    for (const b of [b1, b2]) {
      ends.push(
        await until(b, 'the closing message', () => {
          const t = document.getElementById('end-title');
          return window.giaoban.live().screen === 'end' && t.textContent ? { title: t.textContent, message: document.getElementById('end-message').textContent } : null;
        }),
      );
    }
    summary.end = ends;
    step('the meeting ended: the points show the closing message');

    for (const b of browsers) {
      const v = await cspViolations(b.page);
      if (v.length) throw new Error(`page ${b.index + 1} broke the CSP: ${v.join('; ')}`);
    }
    summary.ids = ids;
    summary.ok = true;
    summary.elapsed_ms = elapsed();
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  } catch (e) {
    summary.reason = e && e.message ? e.message : String(e);
    process.stderr.write(`e2e failed: ${summary.reason}\n`);
    for (const b of browsers) await shot(b, `fail-page${b.index + 1}`);
    dumpConsoles(browsers);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 1;
  } finally {
    await closeBrowsers(browsers);
  }
}

watchdog(timeoutMs * 20 + 60000);

process.exitCode = await main();
