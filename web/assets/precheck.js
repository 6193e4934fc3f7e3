// The pre-meeting check (issue 23), opened from the invitation link
// (/check#<token>): camera, microphone level, speaker (a test tone made
// here with WebAudio), the network path to the media server (a short test
// connection: UDP, else TCP, else the TURN relay, read from the selected
// ICE candidate pair), the round-trip time, and a short bandwidth probe
// (a timed download and upload). The result goes to the server
// (POST /api/link-check), which decides "ready" and shows it on the
// operator's dashboard.
//
// For tests, `window.giaobanCheck` exposes the last result.

import { apiRequest } from './api.js';
import { applyI18n, setupLangSwitch, t, onLangChange } from './i18n.js';

const $ = (id) => document.getElementById(id);
const DOWNLOAD_BYTES = 1_000_000;
const UPLOAD_BYTES = 500_000;
const ICE_WAIT_MS = 12000;

const state = { token: '', info: null, result: {}, stored: null, running: false };

function setPart(part, text, ok) {
  const row = document.querySelector(`tr[data-part="${part}"] .check-state`);
  if (!row) return;
  row.textContent = text;
  row.dataset.ok = ok === null ? '' : String(!!ok);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function deviceError(e) {
  return e && (e.name === 'NotFoundError' || e.name === 'OverconstrainedError') ? 'absent' : 'failed';
}

async function checkCamera() {
  setPart('camera', t('check.running'), null);
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true });
    const video = $('check-video');
    video.srcObject = stream;
    const started = performance.now();
    while (video.videoWidth === 0 && performance.now() - started < 4000) await sleep(100);
    const ok = video.videoWidth > 0;
    setPart('camera', ok ? `${video.videoWidth}×${video.videoHeight}` : t('check.failed'), ok);
    return ok ? 'ok' : 'failed';
  } catch (e) {
    const r = deviceError(e);
    setPart('camera', t(`check.${r}`), false);
    return r;
  }
}

async function checkMicrophone() {
  setPart('microphone', t('check.speakNow'), null);
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    const r = deviceError(e);
    setPart('microphone', t(`check.${r}`), false);
    return { microphone: r, level: null };
  }
  const ctx = new AudioContext();
  const src = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  src.connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  let peak = 0;
  const started = performance.now();
  while (performance.now() - started < 3000) {
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    for (const v of data) sum += v * v;
    peak = Math.max(peak, Math.sqrt(sum / data.length));
    await sleep(50);
  }
  for (const tr of stream.getTracks()) tr.stop();
  ctx.close().catch(() => {});
  const level = Math.min(100, Math.round(peak * 100 * 3));
  const ok = level >= 2;
  setPart('microphone', `${t('check.level')} ${level}/100${ok ? '' : ` · ${t('check.silent')}`}`, ok);
  return { microphone: ok ? 'ok' : 'silent', level };
}

/** Plays a 1 s tone; resolves with ok / failed when the person answers. */
function checkSpeaker() {
  setPart('speaker', t('check.listen'), null);
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 660;
    gain.gain.value = 0.2;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 1);
    osc.onended = () => ctx.close().catch(() => {});
  } catch (_) {
    // No audio output at all: the person will say so.
  }
  $('speaker-question').hidden = false;
  return new Promise((resolve) => {
    const answer = (heard) => {
      $('speaker-question').hidden = true;
      setPart('speaker', heard ? t('check.ok') : t('check.failed'), heard);
      resolve(heard ? 'ok' : 'failed');
    };
    $('heard-yes').onclick = () => answer(true);
    $('heard-no').onclick = () => answer(false);
  });
}

/** The test connection: path and round-trip time from the selected pair. */
async function checkPath() {
  setPart('path', t('check.running'), null);
  const pc = new RTCPeerConnection({
    iceServers: state.info.ice_servers || [],
    iceTransportPolicy: state.info.ice_transport_policy || 'all',
  });
  try {
    // A silent tone as the track: the test needs no microphone.
    const ctx = new AudioContext();
    const dest = ctx.createMediaStreamDestination();
    const osc = ctx.createOscillator();
    osc.connect(dest);
    osc.start();
    pc.addTransceiver(dest.stream.getAudioTracks()[0], { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    // Gather (the server answers checks from any address; candidates in
    // the offer only help).
    const gathered = new Promise((r) => {
      if (pc.iceGatheringState === 'complete') r();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r());
    });
    await Promise.race([gathered, sleep(3000)]);
    const answer = await apiRequest('POST', '/api/link-check/ice', { token: state.token, body: { sdp: pc.localDescription.sdp } });
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    const started = performance.now();
    while (pc.iceConnectionState !== 'connected' && pc.iceConnectionState !== 'completed' && performance.now() - started < ICE_WAIT_MS) {
      if (pc.iceConnectionState === 'failed') break;
      await sleep(100);
    }
    let path = 'none';
    let rtt = null;
    if (pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed') {
      for (let i = 0; i < 20 && rtt === null; i += 1) {
        const stats = await pc.getStats();
        let pairId = null;
        stats.forEach((s) => {
          if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
        });
        stats.forEach((s) => {
          if (s.type !== 'candidate-pair') return;
          if (!(s.id === pairId || (!pairId && s.nominated && s.state === 'succeeded'))) return;
          const local = stats.get(s.localCandidateId);
          if (local) path = local.candidateType === 'relay' ? 'relay' : local.protocol === 'tcp' ? 'tcp' : 'udp';
          if (typeof s.currentRoundTripTime === 'number') rtt = Math.round(s.currentRoundTripTime * 1000);
        });
        if (rtt === null) await sleep(250);
      }
    }
    osc.stop();
    ctx.close().catch(() => {});
    setPart('path', t(`check.path.${path}`), path !== 'none');
    return { path, rtt };
  } catch (e) {
    setPart('path', t('check.path.none'), false);
    return { path: 'none', rtt: null };
  } finally {
    pc.close();
  }
}

async function httpRtt() {
  const times = [];
  for (let i = 0; i < 5; i += 1) {
    const t0 = performance.now();
    await fetch('/api/link-check/probe?bytes=0', { headers: { Authorization: `Bearer ${state.token}` }, cache: 'no-store' });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return Math.round(times[2]);
}

async function checkBandwidth() {
  setPart('download', t('check.running'), null);
  let down = null;
  let up = null;
  try {
    const t0 = performance.now();
    const r = await fetch(`/api/link-check/probe?bytes=${DOWNLOAD_BYTES}`, { headers: { Authorization: `Bearer ${state.token}` }, cache: 'no-store' });
    const body = await r.arrayBuffer();
    const ms = Math.max(1, performance.now() - t0);
    down = Math.round((body.byteLength * 8) / ms);
  } catch (_) {
    down = null;
  }
  setPart('download', down === null ? t('check.failed') : `${down} kbit/s`, down !== null && down >= state.info.min_down_kbps);
  setPart('upload', t('check.running'), null);
  try {
    const data = new Uint8Array(UPLOAD_BYTES);
    crypto.getRandomValues(data.subarray(0, 65536));
    const t0 = performance.now();
    const r = await fetch('/api/link-check/probe', { method: 'POST', headers: { Authorization: `Bearer ${state.token}`, 'Content-Type': 'application/octet-stream' }, body: data, cache: 'no-store' });
    await r.text();
    const ms = Math.max(1, performance.now() - t0);
    up = r.ok ? Math.round((UPLOAD_BYTES * 8) / ms) : null;
  } catch (_) {
    up = null;
  }
  setPart('upload', up === null ? t('check.failed') : `${up} kbit/s`, up !== null && up >= state.info.min_up_kbps);
  return { down, up };
}

function renderVerdict() {
  const v = $('check-verdict');
  const c = state.stored;
  if (!c) {
    v.textContent = '';
    return;
  }
  v.dataset.ready = String(c.ready);
  v.textContent = c.ready
    ? t('check.ready')
    : `${t('check.notReady')}: ${c.problems.map((p) => t(`check.problem.${p}`)).join(', ')}`;
}

async function run() {
  if (state.running) return;
  state.running = true;
  $('check-start').disabled = true;
  $('check-error').hidden = true;
  try {
    const camera = await checkCamera();
    const mic = await checkMicrophone();
    const speakerDone = checkSpeaker();
    const net = await checkPath();
    const rtt = net.rtt !== null ? net.rtt : await httpRtt().catch(() => null);
    setPart('rtt', rtt === null ? t('check.failed') : `${rtt} ms`, rtt !== null && rtt <= state.info.max_rtt_ms);
    const bw = await checkBandwidth();
    // The speaker's answer: wait for it a while, else "unknown".
    const speaker = await Promise.race([speakerDone, sleep(20000).then(() => 'unknown')]);
    const video = $('check-video');
    if (video.srcObject) for (const tr of video.srcObject.getTracks()) tr.stop();
    const body = {
      camera,
      microphone: mic.microphone,
      speaker,
      path: net.path,
      browser: (navigator.userAgent.match(/(Firefox|Chrome|Edg|Safari)\/\d+/) || [''])[0],
    };
    if (mic.level !== null) body.mic_level = mic.level;
    if (rtt !== null) body.rtt_ms = rtt;
    if (bw.down !== null) body.down_kbps = bw.down;
    if (bw.up !== null) body.up_kbps = bw.up;
    state.result = body;
    state.stored = await apiRequest('POST', '/api/link-check', { token: state.token, body });
    renderVerdict();
  } catch (e) {
    $('check-error').textContent = `${t('check.error')} (${e.code || e.message || e})`;
    $('check-error').hidden = false;
  } finally {
    state.running = false;
    $('check-start').disabled = false;
  }
}

async function main() {
  setupLangSwitch(document);
  applyI18n(document);
  onLangChange(renderVerdict);
  state.token = decodeURIComponent(window.location.hash.replace(/^#/, '')).trim();
  $('check-start').addEventListener('click', () => run());
  try {
    state.info = await apiRequest('GET', '/api/link-check', { token: state.token });
    $('check-who').textContent = `${state.info.invitation.name} · ${state.info.meeting.title}`;
    state.stored = state.info.latest;
    renderVerdict();
  } catch (e) {
    $('check-error').textContent = `${t('check.error')} (${e.code || e})`;
    $('check-error').hidden = false;
    $('check-start').disabled = true;
  }
}

window.giaobanCheck = {
  get result() {
    return state.result;
  },
  get stored() {
    return state.stored;
  },
  get running() {
    return state.running;
  },
};

main();
