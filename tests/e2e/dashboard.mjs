#!/usr/bin/env node
// The operator's desk in real Chromium (issue 23), in two runs:
//
//   node dashboard.mjs check CHECK_URL
//     A bridge point opens its pre-meeting check (/check#token) before the
//     meeting starts, runs it (fake camera and microphone; it answers that
//     it heard the test tone), and the operator's dashboard page
//     (/operator?meeting=ID, staff token in its session storage) shows the
//     point's latest check.
//
//   node dashboard.mjs loss CLEAN_URL LOSSY_URL
//     Two bridge points join the started meeting; the second one's media goes
//     through the test's impairment relay (tests/src/impair.rs; its address
//     replaces the server's in that page, as in impairment.mjs). Once both
//     report, the relay drops 10 % both ways: the dashboard (REST, as the
//     page polls it) must show that point degraded with its loss and raise
//     an alert; the time it took is measured. Then that point leaves: the
//     dashboard shows it disconnected. Before the loss, the operator writes
//     to the clean point in the text channel: its page's "Kỹ thuật" panel
//     shows it, the lossy point's does not.
//
// Environment: CHROMIUM_PATH, E2E_TIMEOUT_MS (each wait, default 30000),
// DESK_BASE (the server's URL), DESK_MEETING (meeting id), DESK_STAFF (a staff
// token of the operator), and for `loss`: IMPAIR_CONTROL, IMPAIR_REWRITE_FROM,
// IMPAIR_REWRITE_TO (see impairment.mjs). Prints a JSON summary as the last
// line on stdout; exits 1 with "ok": false and a reason when a step fails.
// The URLs carry tokens: never printed.

import dgram from 'node:dgram';
import { closeBrowsers, dumpConsoles, elapsed, joinMeeting, log, openBrowser, selfOf, sleep, watchdog } from './lib.mjs';

const timeoutMs = Number(process.env.E2E_TIMEOUT_MS || 30000);
const base = process.env.DESK_BASE || '';
const meeting = process.env.DESK_MEETING || '';
const staff = process.env.DESK_STAFF || '';

const summary = { ok: false, reason: null, steps: [] };

function step(name, data) {
  log(name);
  summary.steps.push({ at_ms: elapsed(), step: name, ...(data ? { data } : {}) });
}

function hostPort(s) {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i), Number(s.slice(i + 1))];
}

async function dashboard() {
  const r = await fetch(`${base}/api/meetings/${meeting}/dashboard`, { headers: { Authorization: `Bearer ${staff}` } });
  if (!r.ok) throw new Error(`dashboard: HTTP ${r.status}`);
  return r.json();
}

async function untilDash(what, pred) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  for (;;) {
    last = await dashboard();
    const got = pred(last);
    if (got) return got;
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what} (dashboard: ${JSON.stringify(last.points.map((p) => ({ name: p.name, state: p.state, report: p.report })))})`);
    await sleep(500);
  }
}

async function untilPage(b, what, fn, arg) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await b.page.evaluate(fn, arg).catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`page ${b.index + 1}: timeout waiting for ${what}`);
    await sleep(250);
  }
}

async function control(msg) {
  const [host, port] = hostPort(process.env.IMPAIR_CONTROL || '');
  const sock = dgram.createSocket('udp4');
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      const reply = new Promise((resolve) => {
        sock.once('message', (m) => resolve(JSON.parse(m.toString())));
      });
      sock.send(JSON.stringify(msg), port, host);
      const r = await Promise.race([reply, sleep(2000).then(() => null)]);
      if (r) return r;
    }
    throw new Error('the relay does not answer');
  } finally {
    sock.close();
  }
}

// The lossy page's address rewrite (the same as impairment.mjs's).
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
  const fixSdp = (sdp) => sdp.split('\r\n').map(fix).filter((l) => l !== null).join('\r\n');
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

async function runCheck(browsers, checkUrl) {
  const b = await openBrowser(0);
  browsers.push(b);
  await b.page.goto(checkUrl, { waitUntil: 'load', timeout: 15000 });
  await b.page.locator('#check-start').waitFor({ state: 'visible', timeout: timeoutMs });
  await untilPage(b, 'the check page ready', () => !document.getElementById('check-start').disabled);
  const t0 = Date.now();
  await b.page.locator('#check-start').click();
  // The page asks whether the test tone was heard: yes.
  await b.page.locator('#heard-yes').waitFor({ state: 'visible', timeout: timeoutMs });
  await b.page.locator('#heard-yes').click();
  const stored = await untilPage(b, 'the stored check', () => window.giaobanCheck.stored && !window.giaobanCheck.running && window.giaobanCheck.stored);
  step('check stored', { stored, ms: Date.now() - t0 });
  summary.check = stored;
  summary.verdict = await b.page.locator('#check-verdict').textContent();

  // The operator's page shows it.
  const op = await openBrowser(1, {
    viewport: { width: 1600, height: 1000 },
    initScript: `sessionStorage.setItem('giaoban.staff', ${JSON.stringify(JSON.stringify({ token: staff }))});`,
  });
  browsers.push(op);
  await op.page.goto(`${base}/operator?meeting=${encodeURIComponent(meeting)}`, { waitUntil: 'load', timeout: 15000 });
  const inv = stored.invitation_id;
  summary.operator_row = await untilPage(op, 'the point on the dashboard page', (id) => {
    const r = window.giaobanDesk.row(id);
    return r && r.check && !r.check.startsWith('Chưa') ? r : null;
  }, inv);
  step('dashboard page shows the check', summary.operator_row);
}

async function runLoss(browsers, cleanUrl, lossyUrl) {
  const from = hostPort(process.env.IMPAIR_REWRITE_FROM || '');
  const to = hostPort(process.env.IMPAIR_REWRITE_TO || '');
  await control({ cmd: 'set', to_client: {}, to_server: {} });
  browsers.push(await openBrowser(0));
  browsers.push(await openBrowser(1, { initScript: `(${impairInit.toString()})(${JSON.stringify({ from, to })});` }));
  const [clean, lossy] = browsers;
  await joinMeeting(clean, cleanUrl);
  await joinMeeting(lossy, lossyUrl);
  const selves = [];
  for (const b of browsers) selves.push(await untilPage(b, 'joined', () => window.giaoban.client && window.giaoban.client.self && window.giaoban.client.self.id));
  const lossyId = selves[1];
  step('joined');
  // Both points report over clean links first.
  const before = await untilDash('both points reporting', (d) => {
    const ps = d.points.filter((p) => p.connected && p.report && p.report.bitrate_in_kbps !== undefined && p.report.bitrate_in_kbps !== null);
    return ps.length >= 2 ? d : null;
  });
  const lossyPoint = () => (d) => d.points.find((p) => p.participant_id === lossyId);
  summary.before = lossyPoint()(before);
  summary.rewrite = await lossy.page.evaluate(() => window.__impair);
  step('reporting', { lossy: summary.before.report });

  // The text channel: the operator writes to the clean point only; its
  // meeting page's "Kỹ thuật" panel shows it, the other point's does not.
  const cleanPoint = before.points.find((p) => p.participant_id === selves[0]);
  const text = 'Xã Sạch: kiểm tra lại micro';
  const r = await fetch(`${base}/api/meetings/${meeting}/tech-messages`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${staff}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ text, invitation_id: cleanPoint.invitation_id }),
  });
  if (r.status !== 201) throw new Error(`tech message: HTTP ${r.status}`);
  const tChat = Date.now();
  await untilPage(clean, 'the message in the Kỹ thuật panel', (x) => [...document.querySelectorAll('#tech-messages li')].some((li) => li.textContent.includes(x)), text);
  summary.chat_shown_after_ms = Date.now() - tChat;
  summary.chat_badge = await clean.page.evaluate(() => document.getElementById('tech-toggle').textContent);
  await sleep(4500);
  summary.chat_leaked = await lossy.page.evaluate((x) => [...document.querySelectorAll('#tech-messages li')].some((li) => li.textContent.includes(x)), text);
  if (summary.chat_leaked) throw new Error('the other point sees a message to the clean point');
  step('chat', { ms: summary.chat_shown_after_ms, badge: summary.chat_badge });

  // 10 % loss both ways on the lossy point's path.
  await control({ cmd: 'set', to_client: { loss_pct: 10 }, to_server: { loss_pct: 10 } });
  const t0 = Date.now();
  const degraded = await untilDash('the lossy point degraded with an alert', (d) => {
    const p = lossyPoint()(d);
    const alert = d.alerts.find((a) => a.kind === 'degraded' && p && a.invitation_id === p.invitation_id);
    return p && p.state === 'degraded' && alert ? { point: p, alert, counts: d.counts } : null;
  });
  summary.degraded_after_ms = Date.now() - t0;
  summary.degraded = degraded;
  step('degraded', { ms: summary.degraded_after_ms, loss: degraded.point.report });
  await control({ cmd: 'set', to_client: {}, to_server: {} });

  // The lossy point leaves.
  const inv = degraded.point.invitation_id;
  await lossy.page.evaluate(() => window.giaoban.client.leave());
  const t1 = Date.now();
  const gone = await untilDash('the point disconnected', (d) => {
    const p = d.points.find((x) => x.invitation_id === inv);
    return p && p.state === 'disconnected' ? { point: p, alert: d.alerts[0] } : null;
  });
  summary.disconnected_after_ms = Date.now() - t1;
  summary.disconnected = gone;
  step('disconnected', { ms: summary.disconnected_after_ms });
}

async function main() {
  const [mode, ...urls] = process.argv.slice(2);
  watchdog(240000);
  const browsers = [];
  try {
    if (mode === 'check') await runCheck(browsers, urls[0]);
    else if (mode === 'loss') await runLoss(browsers, urls[0], urls[1]);
    else throw new Error(`unknown mode ${mode}`);
    summary.ok = true;
  } catch (e) {
    summary.reason = e.message;
    dumpConsoles(browsers);
  } finally {
    await closeBrowsers(browsers);
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return summary.ok ? 0 : 1;
}

main().then((code) => process.exit(code));
