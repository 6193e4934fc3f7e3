#!/usr/bin/env node
// End-to-end test of live votes on the meeting page (issue 21): a chair and
// two members, three browsers with fake cameras and microphones.
//
//   node vote_page.mjs CHAIR_URL MEMBER1_URL MEMBER2_URL
//
// 1. The members open their links (the waiting screen), the chair joins and
//    starts the meeting from the console.
// 2. The chair opens a named vote from the console's form (question, agenda
//    item, rule, voters).
// 3. Both members see the voting card: member 1 chooses "Tán thành",
//    confirms; member 2 (a tablet, 768x1024) "Không tán thành", confirms. The
//    choice buttons are touch targets of at least 44 px and the card is on
//    top of the video (the element under its centre is the card's).
// 4. Member 1 reloads its page and joins again: the card comes back as
//    "voted".
// 5. The chair's console shows 2/3 with both names; the chair votes for from
//    its own card, sees 3/3 and closes the vote (with its confirmation).
// 6. All three pages show the result: passed, 2-1-0... (for/against/abstain
//    counts), the rule; member 2 dismisses it.
//
// Prints a JSON summary on stdout and exits 0, or the reason on stderr (and a
// summary with "ok": false) and exits 1. The URLs carry tokens: never printed.
//
// Environment: CHROMIUM_PATH, FIREFOX_PATH, E2E_MEMBER2_BROWSER
// (chromium|firefox: member 2's browser, default chromium), E2E_QUESTION,
// E2E_ITEM (the agenda item's title to choose), E2E_TIMEOUT_MS (each wait,
// default 30000), E2E_SCREENSHOT_DIR, E2E_VERBOSE=1.

import { closeBrowsers, cspViolations, dumpConsoles, elapsed, joinMeeting, log, openBrowser, sleep, watchdog } from './lib.mjs';

const timeoutMs = Number(process.env.E2E_TIMEOUT_MS || 30000);
const shotDir = process.env.E2E_SCREENSHOT_DIR || '';
const member2Browser = process.env.E2E_MEMBER2_BROWSER === 'firefox' ? 'firefox' : 'chromium';
const QUESTION = process.env.E2E_QUESTION || 'Thông qua Kế hoạch phát triển kinh tế - xã hội năm 2027';
const ITEM = process.env.E2E_ITEM || '';

const summary = { ok: false, reason: null, member2_browser: member2Browser, steps: [] };

function step(name, data) {
  log(name);
  summary.steps.push({ at_ms: elapsed(), step: name, ...(data ? { data } : {}) });
}

const live = (b) => b.page.evaluate(() => window.giaoban.live());

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

/** A click as a user makes it (the element must be visible and not covered). */
async function click(b, sel) {
  if (b.kind === 'firefox') {
    await b.page.waitForSelector(sel, { visible: true, timeout: timeoutMs });
    await b.page.click(sel);
  } else {
    await b.page.locator(sel).click({ timeout: timeoutMs });
  }
}

async function fill(b, sel, text) {
  if (b.kind === 'firefox') {
    await b.page.$eval(sel, (el, v) => {
      el.value = v;
      el.dispatchEvent(new Event('input', { bubbles: true }));
    }, text);
  } else {
    await b.page.locator(sel).fill(text);
  }
}

async function shot(b, name) {
  if (!shotDir) return;
  await b.page.screenshot({ path: `${shotDir}/${name}.png` }).catch(() => {});
}

/** Reloads the page and joins again (the invitation is in the URL's hash). */
async function reloadAndJoin(b) {
  await b.page.reload({ waitUntil: 'load', timeout: 15000 });
  await until(b, 'the Join button after the reload', () => {
    const btn = document.getElementById('join-button');
    return btn && !btn.disabled && !btn.closest('[hidden]');
  });
  await click(b, '#join-button');
}

/** The voting card as the page shows it, once it is in `state`. */
function cardIn(b, state) {
  return until(b, `the voting card (${state})`, (s) => {
    const v = window.giaoban.live().vote;
    return v && v.card && v.card.state === s ? v.card : null;
  }, state);
}

/** Whether the element under the card's centre is the card's own (not a tile). */
function cardOnTop(b) {
  return b.page.evaluate(() => {
    const card = document.getElementById('vote-card');
    const r = card.getBoundingClientRect();
    const at = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
    const btn = card.querySelector('.vote-choice');
    let btnTop = true;
    if (btn) {
      const br = btn.getBoundingClientRect();
      const under = document.elementFromPoint(br.x + br.width / 2, br.y + br.height / 2);
      btnTop = under === btn || btn.contains(under);
    }
    return { center: !!at && card.contains(at), button: btnTop, in_viewport: r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth };
  });
}

/** One ballot by clicking: the choice, then its confirmation. */
async function vote(b, choice) {
  await cardIn(b, 'choose');
  await click(b, `#vote-card .vote-choice[data-choice="${choice}"]`);
  const confirming = await cardIn(b, 'confirm');
  const pending = await b.page.evaluate(() => document.getElementById('vote-pending').textContent);
  await click(b, '#vote-confirm');
  const done = await cardIn(b, 'voted');
  return { pending, confirming_state: confirming.state, done: done.state };
}

function result(b) {
  return until(b, 'the result of the vote', () => {
    const v = window.giaoban.live().vote;
    return v && v.result ? v.result : null;
  });
}

async function main() {
  const urls = process.argv.slice(2);
  if (urls.length !== 3) {
    process.stderr.write('usage: node vote_page.mjs CHAIR_URL MEMBER1_URL MEMBER2_URL\n');
    return 2;
  }
  const browsers = [];
  try {
    browsers.push(await openBrowser(0, { viewport: { width: 1280, height: 800 } }));
    browsers.push(await openBrowser(1, { viewport: { width: 1024, height: 768 } }));
    // A tablet held upright.
    browsers.push(await openBrowser(2, { browser: member2Browser, viewport: { width: 768, height: 1024 } }));
    const [chair, m1, m2] = browsers;
    step('browsers started', { member2: m2.kind });

    // ---- 1. everyone in, the meeting started --------------------------------------
    await Promise.all([joinMeeting(m1, urls[1]), joinMeeting(m2, urls[2])]);
    await joinMeeting(chair, urls[0]);
    const chairLive = await until(chair, "the chair's console", () => {
      const l = window.giaoban.live();
      return window.giaoban.state === 'connected' && l.console && l.console.status ? l : null;
    });
    if (chairLive.console.status !== 'in_progress') await click(chair, '#chair-start');
    await until(chair, 'the vote form in the console', () => {
      const c = window.giaoban.live().console;
      return c && c.status === 'in_progress' && c.vote && c.vote.form;
    });
    for (const b of [m1, m2]) {
      await until(b, 'the meeting screen', () => window.giaoban.state === 'connected' && window.giaoban.live().screen === 'meeting');
    }
    step('everyone is in the meeting');

    // ---- 2. the chair opens a named vote ----------------------------------------------
    await fill(chair, '#vote-question', QUESTION);
    if (ITEM) {
      const value = await until(chair, 'the agenda item in the vote form', (title) => {
        const opt = [...document.querySelectorAll('#vote-item option')].find((o) => o.textContent.includes(title));
        return opt ? opt.value : null;
      }, ITEM);
      await chair.page.locator('#vote-item').selectOption(value);
    }
    summary.rule_options = await chair.page.evaluate(() => [...document.querySelectorAll('#vote-rule option')].map((o) => ({ value: o.value, text: o.textContent })));
    await chair.page.locator('#vote-rule').selectOption('all_members_majority');
    await chair.page.locator('#vote-form input[name="vote-kind"][value="named"]').check();
    await chair.page.locator('#vote-form input[name="vote-voters"][value="members"]').check();
    await click(chair, '#vote-open');
    await until(chair, 'the progress in the console', () => {
      const c = window.giaoban.live().console;
      return c && c.vote && !c.vote.form && c.vote.progress ? c.vote.progress : null;
    });
    step('the chair opened the vote');

    // ---- 3. the members vote by clicking ------------------------------------------------
    const cards = [];
    for (const b of [m1, m2]) {
      const card = await cardIn(b, 'choose');
      cards.push({ page: b.index + 1, browser: b.kind, question: card.question, secret: card.secret, item: card.item, buttons: card.buttons, rect: card.rect, on_top: await cardOnTop(b) });
    }
    summary.cards = cards;
    await shot(m2, '1-member2-card');
    summary.member1_vote = await vote(m1, 'for');
    summary.member2_vote = await vote(m2, 'against');
    await shot(m2, '2-member2-voted');
    step('both members voted');

    // ---- 4. a reload: the card comes back as voted ----------------------------------------
    await reloadAndJoin(m1);
    const again = await cardIn(m1, 'voted');
    summary.member1_after_reload = { state: again.state, question: again.question };
    step('member 1 reloaded: the card says voted');

    // ---- 5. the chair follows, votes, closes ------------------------------------------------
    summary.progress_members = await until(chair, 'progress 2/3 with both names', () => {
      const v = window.giaoban.live().console.vote;
      return v && v.progress && v.progress.voted === 2 && v.voters.length === 2 ? v : null;
    });
    summary.chair_card = await vote(chair, 'for');
    summary.progress_all = await until(chair, 'progress 3/3', () => {
      const v = window.giaoban.live().console.vote;
      return v && v.progress && v.progress.voted === 3 && v.voters.length === 3 ? v : null;
    });
    await shot(chair, '3-chair-progress');
    await click(chair, '#vote-close');
    await click(chair, '#vote-close-confirm');
    step('the chair closed the vote');

    // ---- 6. the result everywhere -------------------------------------------------------------
    summary.results = [];
    for (const b of [chair, m1, m2]) {
      const r = await result(b);
      summary.results.push({ page: b.index + 1, ...r });
    }
    await shot(m2, '4-member2-result');
    await shot(chair, '4-chair-result');
    // The cards are gone; the console offers a new vote.
    for (const b of [chair, m1, m2]) {
      await until(b, 'no voting card after the close', () => window.giaoban.live().vote.card === null);
    }
    await until(chair, 'the form again', () => window.giaoban.live().console.vote.form);
    // The result stays until dismissed.
    await sleep(1500);
    summary.result_still_shown = !!(await live(m2)).vote.result;
    await click(m2, '#vote-result-close');
    await until(m2, 'the result dismissed', () => window.giaoban.live().vote.result === null);
    step('everyone saw the result; member 2 dismissed it');

    for (const b of browsers) {
      const v = await cspViolations(b.page);
      if (v.length) throw new Error(`page ${b.index + 1} broke the CSP: ${v.join('; ')}`);
    }
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

watchdog(timeoutMs * 16 + 60000);

process.exitCode = await main();
