// Shared helpers of the end-to-end scripts: starting a browser with our flags
// and a fresh profile, joining a meeting through the join page, reading
// WebRTC stats, a signed-in check of a secretariat page, cleaning up.
//
// The browsers are the system's: Chromium (CHROMIUM_PATH, default
// /usr/bin/chromium), driven by playwright-core, and Firefox ESR
// (FIREFOX_PATH, default /usr/bin/firefox-esr), driven by puppeteer-core over
// WebDriver BiDi; neither package ever downloads a browser. E2E_VERBOSE=1
// copies the pages' console to stderr; E2E_CHROMIUM_FLAGS adds Chromium flags
// (space-separated) for experiments.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

/** Exactly the flags we run Chromium with (Playwright's defaults are off). */
export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

export const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const firefoxPath = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr';

/**
 * Firefox's counterpart of FLAGS: a fake camera and microphone, allowed as a
 * user allows them, ICE candidates on loopback and not hidden behind mDNS
 * names (the tests run in a namespace with only `lo`). puppeteer-core adds
 * its own prefs that switch off updates, telemetry and the like.
 *
 * The permission is granted (permissions.default.*), not skipped
 * (media.navigator.permission.disabled): without a granted camera or
 * microphone, Firefox gathers ICE candidates only on the interface of the
 * default route, and the namespace has none, so it gathered nothing.
 */
export const FIREFOX_PREFS = {
  'media.navigator.streams.fake': true,
  'permissions.default.camera': 1,
  'permissions.default.microphone': 1,
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
};
export const verbose = process.env.E2E_VERBOSE === '1';
/** The screen size of a page unless a script asks for another. */
const DEFAULT_VIEWPORT = { width: 1024, height: 768 };
/** Extra Chromium flags for experiments (space-separated), after FLAGS. */
const envFlags = (process.env.E2E_CHROMIUM_FLAGS || '').split(/\s+/).filter(Boolean);

const started = Date.now();

/** Milliseconds since the script started. */
export function elapsed() {
  return Date.now() - started;
}

/** A progress line on stderr. */
export function log(...args) {
  process.stderr.write(`[e2e +${elapsed()}ms] ${args.join(' ')}\n`);
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * One browser with its own fresh profile, one page.
 * @param {number} index  0-based; pages are named 1, 2… in messages
 * @param {object} [opts]
 * @param {{width: number, height: number}} [opts.viewport]  default 1024x768
 * @param {string[]} [opts.extraFlags]  appended to FLAGS
 * @param {Function|string} [opts.initScript]  runs in the page before its own scripts
 * @param {object} [opts.firefoxPrefs]  more Firefox prefs, after FIREFOX_PREFS
 */
export async function openBrowser(index, opts = {}) {
  if (opts.browser === 'firefox') return openFirefox(index, opts);
  const userDataDir = mkdtempSync(join(tmpdir(), `giaoban-e2e-${index}-`));
  let browser;
  try {
    // Exactly our flags: Playwright's own defaults are switched off; it only
    // needs the profile folder and its control pipe.
    browser = await chromium.launch({
      executablePath,
      ignoreDefaultArgs: true,
      args: [...FLAGS, ...envFlags, ...(opts.extraFlags || []), `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe'],
      timeout: 20000,
    });
  } catch (e) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw e;
  }
  const context = await browser.newContext({ viewport: opts.viewport || DEFAULT_VIEWPORT });
  await context.addInitScript(CSP_WATCH);
  if (opts.initScript) await context.addInitScript(opts.initScript);
  const page = await context.newPage();
  const consoleLines = keepConsole(page, index);
  return { index, kind: 'chromium', browser, context, page, userDataDir, consoleLines };
}

/**
 * Collects page `index`'s console messages and uncaught exceptions (the
 * lines `dumpConsoles` prints), copying them to stderr as they come: the
 * exceptions always, the console with E2E_VERBOSE=1. The same events in
 * playwright and puppeteer.
 */
function keepConsole(page, index) {
  const lines = [];
  page.on('console', (msg) => {
    const line = `[page ${index + 1} ${msg.type()}] ${msg.text()}`;
    lines.push(line);
    if (verbose) process.stderr.write(`${line}\n`);
  });
  page.on('pageerror', (err) => {
    const line = `[page ${index + 1} exception] ${err.message}`;
    lines.push(line);
    process.stderr.write(`${line}\n`);
  });
  return lines;
}

/** `openBrowser` for Firefox ESR (`opts.extraFlags` does not apply). */
async function openFirefox(index, opts) {
  const userDataDir = mkdtempSync(join(tmpdir(), `giaoban-e2e-ff-${index}-`));
  let browser;
  try {
    browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath: firefoxPath,
      headless: true,
      userDataDir,
      extraPrefsFirefox: { ...FIREFOX_PREFS, ...(opts.firefoxPrefs || {}) },
      timeout: 30000,
    });
  } catch (e) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw e;
  }
  const page = await browser.newPage();
  await page.setViewport(opts.viewport || DEFAULT_VIEWPORT);
  await page.evaluateOnNewDocument(CSP_WATCH);
  if (opts.initScript) await page.evaluateOnNewDocument(opts.initScript);
  const consoleLines = keepConsole(page, index);
  return { index, kind: 'firefox', browser, context: null, page, userDataDir, consoleLines };
}

/**
 * The few page operations the scripts need, the same for both drivers:
 * playwright (Chromium) and puppeteer (Firefox) name them differently.
 */
function ui(b) {
  const p = b.page;
  if (b.kind === 'firefox') {
    return {
      waitVisible: (sel, timeout) => p.waitForSelector(sel, { visible: true, timeout }),
      waitFor: (fn, timeout) => p.waitForFunction(fn, { timeout }),
      click: (sel) => p.click(sel),
      text: (sel) => p.$eval(sel, (el) => el.textContent),
    };
  }
  return {
    waitVisible: (sel, timeout) => p.locator(sel).waitFor({ state: 'visible', timeout }),
    waitFor: (fn, timeout) => p.waitForFunction(fn, null, { timeout }),
    click: (sel) => p.locator(sel).click(),
    text: (sel) => p.locator(sel).textContent(),
  };
}

/** Opens the invitation URL and clicks Join once the page allows it. */
export async function joinMeeting(b, url) {
  await b.page.goto(url, { waitUntil: 'load', timeout: 15000 });
  const u = ui(b);
  try {
    await u.waitVisible('#join-button', 10000);
    await u.waitFor(() => !document.getElementById('join-button').disabled, 10000);
  } catch (e) {
    const err = await u.text('#invite-error').catch(() => '');
    throw new Error(`page ${b.index + 1}: the Join button never became usable${err ? ` (page says: ${err})` : ''}`);
  }
  // The preview has opened the fake camera and microphone before joining.
  await u
    .waitFor(() => !document.getElementById('preview-video').hidden, 10000)
    .catch(() => log(`page ${b.index + 1}: no camera preview before joining`));
  await u.click('#join-button');
}

/** Our participant as the page's client knows it, or null before joining. */
export async function selfOf(page) {
  return page.evaluate(() => {
    const c = window.giaoban.client;
    return c && c.self ? { id: c.self.id, name: c.self.name, role: c.self.role } : null;
  });
}

/**
 * The subscriber connection's inbound RTP streams, each with the
 * participant it comes from (`owner`); [] before there is a subscriber.
 */
export async function inboundStats(page) {
  return page.evaluate(async () => {
    const g = window.giaoban;
    const pc = g.subscriber;
    const out = [];
    if (!pc) return out;
    const trackOfMid = new Map();
    for (const tr of pc.getTransceivers()) {
      if (tr.mid !== null) trackOfMid.set(tr.mid, tr.receiver.track.id);
    }
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      const trackId = s.trackIdentifier || trackOfMid.get(s.mid) || null;
      out.push({
        kind: s.kind,
        owner: trackId ? g.participantOfTrack(trackId) : null,
        ssrc: s.ssrc,
        packetsReceived: s.packetsReceived || 0,
        bytesReceived: s.bytesReceived || 0,
        framesDecoded: s.framesDecoded || 0,
        keyFramesDecoded: s.keyFramesDecoded || 0,
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
        freezeCount: s.freezeCount || 0,
        totalFreezesDuration: s.totalFreezesDuration || 0,
        pliCount: s.pliCount || 0,
        nackCount: s.nackCount || 0,
        firCount: s.firCount || 0,
        packetsLost: s.packetsLost || 0,
        framesReceived: s.framesReceived || 0,
        framesDropped: s.framesDropped || 0,
      });
    });
    return out;
  });
}

/**
 * An init script that records every Content-Security-Policy violation of the
 * page (the server sends a strict CSP: the pages must work under it) in
 * `window.__cspViolations`. Read it with `cspViolations`.
 */
export const CSP_WATCH = `(() => {
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sourceFile || '') + ':' + (e.lineNumber || 0));
  });
})();`;

/** The CSP violations page `page` recorded (see `CSP_WATCH`). */
export async function cspViolations(page) {
  return page.evaluate(() => window.__cspViolations || ['the CSP watch did not run']);
}

/** Prints the last console lines of every page on stderr. */
export function dumpConsoles(browsers, n = 30) {
  for (const b of browsers) {
    for (const line of b.consoleLines.slice(-n)) process.stderr.write(`${line}\n`);
  }
}

/** Closes the browsers and removes their profiles. */
export async function closeBrowsers(browsers) {
  for (const b of browsers) {
    await b.browser.close().catch(() => {});
    rmSync(b.userDataDir, { recursive: true, force: true });
  }
}

/** Exits the process with a message if `main` hangs past `ms`. */
export function watchdog(ms) {
  const t = setTimeout(() => {
    process.stderr.write('e2e failed: hard timeout (browser hung)\n');
    process.exit(1);
  }, ms);
  t.unref();
}

/**
 * One check of a secretariat page in Chromium, signed in: the shared frame
 * of the admin scripts. Launches Chromium (1280x900, downloads accepted,
 * CSP watched, page errors counted), opens `base + path`, signs in with
 * E2E_USERNAME / E2E_PASSWORD, then runs `body({ page, step, fail, env })`.
 * Afterwards no CSP violation and no page error may have happened. Prints
 * the JSON summary ({ok, reason, steps, page_errors}) as the last line of
 * stdout; resolves to the exit code (0 when every step passed).
 *
 * `fail(message)` throws; `env(name)` is a required environment variable;
 * `step(name, detail)` records a passed step.
 */
export async function staffPageCheck({ name, base, path, waitMs }, body) {
  const summary = { ok: false, reason: null, steps: [] };
  const fail = (message) => {
    throw new Error(message);
  };
  const env = (key) => {
    const v = process.env[key];
    if (!v) fail(`${key} is not set`);
    return v;
  };
  const step = (what, detail) => {
    summary.steps.push(what);
    log(what, detail ? JSON.stringify(detail) : '');
  };
  const userDataDir = mkdtempSync(join(tmpdir(), `giaoban-${name}-e2e-`));
  let browser = null;
  try {
    browser = await chromium.launch({
      executablePath,
      ignoreDefaultArgs: true,
      args: [...FLAGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe'],
      timeout: 20000,
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    await context.addInitScript(CSP_WATCH);
    const page = await context.newPage();
    page.on('pageerror', (err) => {
      process.stderr.write(`[exception] ${err.message}\n`);
      summary.page_errors = (summary.page_errors || 0) + 1;
    });

    await page.goto(`${base}${path}`, { waitUntil: 'load', timeout: waitMs });
    await page.locator('#login-username').waitFor({ state: 'visible', timeout: waitMs });
    await page.fill('#login-username', env('E2E_USERNAME'));
    await page.fill('#login-password', env('E2E_PASSWORD'));
    await page.click('#login-button');

    await body({ page, step, fail, env });

    const v = await cspViolations(page);
    if (v.length) fail(`CSP violations: ${v.join('; ')}`);
    if (summary.page_errors) fail(`${summary.page_errors} page errors`);
    step('no CSP violation, no page error');
    summary.ok = true;
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  } catch (e) {
    summary.reason = e && e.message ? e.message : String(e);
    process.stderr.write(`e2e failed: ${summary.reason}\n`);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 1;
  } finally {
    if (browser) await browser.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  }
}
