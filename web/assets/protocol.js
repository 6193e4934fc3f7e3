// The giaoban signaling protocol (docs/protocol.md) and the two WebRTC peer
// connections of a participant. No user interface here: the UI listens to
// the events of a `GiaobanClient` (an EventTarget; each event's data is in
// `event.detail`):
//
//   state            {state: 'connecting'|'connected'|'reconnecting'|'closed', code?, attempt?, delayMs?}
//   joined           {self, meeting, participants, tracks}   (again after every reconnection)
//   participant_joined {participant}
//   participant_left   {participantId, reason}
//   track_published    {track}
//   track_unpublished  {trackId, participantId}
//   mute_changed       {participantId, kind, muted}
//   remote_track       {participantId, track, stream}  a track of the subscriber connection
//   media_failed       {pc}         a peer connection failed; the client rejoins
//   publish_failed     {code}       the server refused our media (we still receive)
//   server_error       {code, message, fatal}
//   rtt                {ms}
//   agenda_changed     {meetingId}  the agenda or its documents changed: read them again
//
// Reconnection: when the WebSocket drops (or a peer connection fails, or
// the server is silent for too long), both peer connections are closed and
// a new socket joins again with the same token after 1, 2, 4, 8, 10, 10… s.

export const PROTOCOL_VERSION = 1;

/** The publisher's video layers, lowest first (RTP stream ids q, h, f). */
export const SIMULCAST_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
];
export const CLIENT_NAME = 'giaoban-web/0.1';

const PING_INTERVAL_MS = 10000;
// The server answers every ping; this much silence means the socket is dead
// even if the browser has not noticed yet.
const SILENCE_LIMIT_MS = 30000;
const BACKOFF_MAX_MS = 10000;
const LEAVE_WAIT_MS = 1000;
// After this long joined, a dropped session reconnects after 1 s again.
const HEALTHY_AFTER_MS = 30000;

/** Error codes after which joining again with the same token cannot work. */
export const FATAL_CODES = new Set([
  'unsupported_version',
  'token_invalid',
  'token_expired',
  'token_wrong_meeting',
  'token_revoked',
  'meeting_not_found',
  'meeting_closed',
  'replaced',
]);

/** An error answer of the server (or `disconnected` when the socket dropped). */
export class ProtocolError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

/** The WebSocket URL of the server that served this page. */
export function defaultWsUrl() {
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${window.location.host}/ws`;
}

/**
 * Checks an invitation token with `GET /api/invitation`. Resolves with
 * `{meeting: {id, title}, name, role, expires_at}`, rejects with a
 * ProtocolError whose code is the server's (`token_expired`…) or `network`.
 */
export async function fetchInvitation(token) {
  let resp;
  try {
    resp = await fetch('/api/invitation', {
      headers: { Authorization: `Bearer ${token}` },
      cache: 'no-store',
    });
  } catch (e) {
    throw new ProtocolError('network', String(e));
  }
  let body = null;
  try {
    body = await resp.json();
  } catch (_) {
    body = null;
  }
  if (!resp.ok) {
    const code = body && typeof body.code === 'string' ? body.code : resp.status >= 500 ? 'internal' : 'token_invalid';
    throw new ProtocolError(code, body && body.message);
  }
  if (!body || typeof body !== 'object' || !body.meeting) throw new ProtocolError('internal', 'bad invitation answer');
  return body;
}

/** One participant's session: socket, publisher and subscriber connections. */
export class GiaobanClient extends EventTarget {
  /**
   * @param {object} opts
   * @param {string} opts.token       the invitation token
   * @param {string} [opts.url]       the WebSocket URL (default: this server's /ws)
   * @param {MediaStream} [opts.localStream]  microphone and camera to publish
   * @param {{audio?: boolean, video?: boolean}} [opts.muted]  initial mute state
   */
  constructor({ token, url, localStream, muted }) {
    super();
    // Remote video track id -> the quality last asked for it (null: none yet).
    this._remoteVideo = new Map();
    this._videoQuality = null;
    this.token = token;
    this.url = url || defaultWsUrl();
    this.localStream = localStream || null;
    this.muted = { audio: !!(muted && muted.audio), video: !!(muted && muted.video) };
    /** Our participant as the server knows it (changes on every join). */
    this.self = null;
    this.meeting = null;
    this.iceServers = [];
    /** The publisher RTCPeerConnection (client → server), or null. */
    this.publisher = null;
    /** The subscriber RTCPeerConnection (server → client), or null. */
    this.subscriber = null;
    /** MediaStreamTrack id → participant id, for the subscriber's tracks. */
    this.remoteTrackOwners = new Map();
    this.state = 'idle';
    this.serverInfo = null;

    this._ws = null;
    this._gen = 0; // bumped for every socket; stale callbacks compare it
    this._nextId = 1;
    this._pending = new Map();
    this._attempt = 0;
    this._healthySince = 0;
    this._reconnectTimer = null;
    this._pingTimer = null;
    this._lastRx = 0;
    this._left = false;
    this._fatal = null;
    this._subChain = Promise.resolve();
    this._candidateQueue = { publisher: [], subscriber: [] };
    this._candidateReady = { publisher: false, subscriber: false };
  }

  /** Connects and joins. */
  start() {
    this._left = false;
    this._fatal = null;
    this._connect();
  }

  /** Leaves the meeting (sends `leave`, waits briefly for `bye`) and stops. */
  async leave() {
    if (this._left) return;
    this._left = true;
    clearTimeout(this._reconnectTimer);
    const ws = this._ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      const bye = new Promise((resolve) => {
        this._onBye = resolve;
        setTimeout(resolve, LEAVE_WAIT_MS);
      });
      this._sendRaw({ type: 'leave' });
      await bye;
    }
    this._teardown();
    this._gen++;
    if (ws) {
      try {
        ws.close(1000);
      } catch (_) {
        // already closed
      }
    }
    this._setState('closed');
  }

  /**
   * Mutes or unmutes the microphone (`audio`) or camera (`video`): the track
   * stops sending (track.enabled) and the others are told with `mute`.
   */
  setMuted(kind, muted) {
    this.muted[kind] = muted;
    if (this.localStream) {
      const tracks = kind === 'audio' ? this.localStream.getAudioTracks() : this.localStream.getVideoTracks();
      for (const tr of tracks) tr.enabled = !muted;
    }
    if (this.state === 'connected') {
      this._request({ type: 'mute', kind, muted }).catch((e) => this._reportError(e));
    }
  }

  // ---- socket ------------------------------------------------------------

  _connect() {
    const gen = ++this._gen;
    this._setState(this._attempt > 0 || this.self ? 'reconnecting' : 'connecting', { attempt: this._attempt });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this._onSocketGone(gen, null);
      return;
    }
    this._ws = ws;
    this._lastRx = Date.now();
    ws.onopen = () => {
      if (gen !== this._gen) return;
      this._sendRaw({ type: 'hello', version: PROTOCOL_VERSION, client: CLIENT_NAME });
    };
    ws.onmessage = (ev) => {
      if (gen !== this._gen) return;
      this._lastRx = Date.now();
      if (typeof ev.data !== 'string') return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      if (msg && typeof msg === 'object') this._onMessage(msg, gen);
    };
    ws.onclose = (ev) => {
      if (gen !== this._gen) return;
      this._onSocketGone(gen, ev);
    };
    ws.onerror = () => {
      // A close event follows; it does the work.
    };
    clearInterval(this._pingTimer);
    this._pingTimer = setInterval(() => this._tick(gen), PING_INTERVAL_MS);
  }

  _tick(gen) {
    if (gen !== this._gen) return;
    if (Date.now() - this._lastRx > SILENCE_LIMIT_MS) {
      this._dropSocket();
      return;
    }
    if (this.state !== 'connected') return;
    const ts = Date.now();
    this._request({ type: 'ping', ts })
      .then(() => this._emit('rtt', { ms: Date.now() - ts }))
      .catch(() => {});
  }

  /** Abandons the current socket (dead or useless) and reconnects. */
  _dropSocket() {
    const gen = this._gen;
    const ws = this._ws;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch (_) {
        // ignore
      }
    }
    this._onSocketGone(gen, null);
  }

  _onSocketGone(gen, closeEvent) {
    if (gen !== this._gen) return;
    this._gen++; // everything of the old socket is stale from now on
    this._ws = null;
    this._teardown();
    if (this._left) {
      this._setState('closed');
      return;
    }
    if (!this._fatal && closeEvent && (closeEvent.code === 1008 || closeEvent.code === 1002)) {
      // Policy or protocol close without an error frame: joining again will
      // not help.
      this._fatal = closeEvent.code === 1002 ? 'unsupported_version' : 'token_invalid';
    }
    if (this._fatal) {
      this._setState('closed', { code: this._fatal });
      return;
    }
    // A session that ran well for a while starts the backoff afresh.
    if (this._healthySince && Date.now() - this._healthySince > HEALTHY_AFTER_MS) this._attempt = 0;
    this._healthySince = 0;
    const delayMs = Math.min(1000 * 2 ** this._attempt, BACKOFF_MAX_MS);
    this._attempt++;
    this._setState('reconnecting', { attempt: this._attempt, delayMs });
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => {
      if (!this._left && !this._fatal) this._connect();
    }, delayMs);
  }

  /** Closes both peer connections and forgets the outstanding requests. */
  _teardown() {
    clearInterval(this._pingTimer);
    this._pingTimer = null;
    for (const { reject } of this._pending.values()) reject(new ProtocolError('disconnected'));
    this._pending.clear();
    for (const pc of [this.publisher, this.subscriber]) {
      if (pc) {
        pc.onicecandidate = pc.ontrack = pc.onconnectionstatechange = null;
        pc.close();
      }
    }
    this.publisher = null;
    this.subscriber = null;
    this.remoteTrackOwners.clear();
    this._subChain = Promise.resolve();
    this._candidateQueue = { publisher: [], subscriber: [] };
    this._candidateReady = { publisher: false, subscriber: false };
  }

  _sendRaw(msg) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  /** Sends a request with a fresh `id`; resolves with the answer. */
  _request(msg) {
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      if (!this._sendRaw({ ...msg, id })) {
        this._pending.delete(id);
        reject(new ProtocolError('disconnected'));
      }
    });
  }

  _onMessage(msg, gen) {
    if (msg.id !== undefined && msg.id !== null && this._pending.has(msg.id)) {
      const { resolve, reject } = this._pending.get(msg.id);
      this._pending.delete(msg.id);
      if (msg.type === 'error') {
        this._noteError(msg);
        reject(new ProtocolError(msg.code, msg.message));
      } else {
        resolve(msg);
      }
      return;
    }
    switch (msg.type) {
      case 'hello':
        this.serverInfo = msg;
        this._join(gen);
        break;
      case 'participant_joined':
        if (msg.participant) this._emit('participant_joined', { participant: msg.participant });
        break;
      case 'participant_left':
        if (this.self && msg.participant_id === this.self.id) {
          if (msg.reason === 'replaced' || msg.reason === 'revoked') {
            this._fatal = msg.reason === 'revoked' ? 'token_revoked' : 'replaced';
          }
          break;
        }
        this._emit('participant_left', { participantId: msg.participant_id, reason: msg.reason });
        break;
      case 'track_published':
        if (msg.track) {
          this._noteRemoteTrack(msg.track);
          this._emit('track_published', { track: msg.track });
        }
        break;
      case 'track_unpublished':
        this._remoteVideo.delete(msg.track_id);
        this._emit('track_unpublished', { trackId: msg.track_id, participantId: msg.participant_id });
        break;
      case 'agenda_changed':
        this._emit('agenda_changed', { meetingId: msg.meeting_id });
        break;
      case 'layers_wanted':
        this._applyLayers(Array.isArray(msg.layers) ? msg.layers : null);
        break;
      case 'active_speaker':
        this._emit('active_speaker', { participantId: msg.participant_id });
        break;
      case 'mute_changed':
        this._emit('mute_changed', { participantId: msg.participant_id, kind: msg.kind, muted: !!msg.muted });
        break;
      case 'subscriber_offer':
        this._onSubscriberOffer(msg.sdp, gen);
        break;
      case 'error':
        this._noteError(msg);
        break;
      case 'bye':
        if (this._onBye) this._onBye();
        break;
      default:
        // pong or ok without a pending request, or a newer message type.
        break;
    }
  }

  _noteError(msg) {
    const fatal = FATAL_CODES.has(msg.code);
    if (fatal) this._fatal = msg.code;
    this._emit('server_error', { code: msg.code, message: msg.message, fatal });
  }

  _reportError(e) {
    if (e && e.code === 'disconnected') return;
    if (e instanceof ProtocolError) return; // already reported by _noteError
    this._emit('server_error', { code: 'internal', message: String(e), fatal: false });
  }

  // ---- joining -------------------------------------------------------------

  async _join(gen) {
    let joined;
    try {
      joined = await this._request({ type: 'join', token: this.token });
    } catch (e) {
      // A fatal code: the server closes the socket and we stay closed. Any
      // other failure: try again on a new socket, with the backoff.
      if (gen === this._gen && !this._fatal && e.code !== 'disconnected') this._dropSocket();
      return;
    }
    if (gen !== this._gen) return;
    // The backoff restarts only once media connects (or the session lasts):
    // a join that works but whose media fails must not retry every second.
    this._healthySince = Date.now();
    this.self = joined.participant;
    this.meeting = joined.meeting;
    this.iceServers = Array.isArray(joined.ice_servers) ? joined.ice_servers : [];
    this._remoteVideo = new Map();
    for (const t of joined.tracks || []) this._noteRemoteTrack(t);
    this._createSubscriber(gen);
    this._setState('connected');
    this._emit('joined', {
      self: joined.participant,
      meeting: joined.meeting,
      participants: joined.participants || [],
      tracks: joined.tracks || [],
    });
    for (const kind of ['audio', 'video']) {
      if (this.muted[kind]) this._request({ type: 'mute', kind, muted: true }).catch((e) => this._reportError(e));
    }
    try {
      await this._publish(gen);
    } catch (e) {
      if (gen === this._gen && e.code !== 'disconnected') {
        this._emit('publish_failed', { code: e instanceof ProtocolError ? e.code : 'negotiation_failed' });
      }
    }
  }

  _newPeerConnection(name, gen) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
    pc.onicecandidate = (ev) => {
      if (gen !== this._gen || !ev.candidate || !ev.candidate.candidate) return;
      const c = ev.candidate.toJSON();
      if (this._candidateReady[name]) this._sendCandidate(name, c);
      else this._candidateQueue[name].push(c);
    };
    pc.onconnectionstatechange = () => {
      if (gen !== this._gen) return;
      if (pc.connectionState === 'connected') this._attempt = 0;
      if (pc.connectionState === 'failed') {
        this._emit('media_failed', { pc: name });
        this._dropSocket();
      }
    };
    return pc;
  }

  _sendCandidate(name, candidate) {
    this._sendRaw({ type: 'candidate', pc: name, candidate });
  }

  _flushCandidates(name) {
    this._candidateReady[name] = true;
    for (const c of this._candidateQueue[name]) this._sendCandidate(name, c);
    this._candidateQueue[name] = [];
  }

  async _publish(gen) {
    const stream = this.localStream;
    const tracks = stream ? [...stream.getAudioTracks().slice(0, 1), ...stream.getVideoTracks().slice(0, 1)] : [];
    if (tracks.length === 0) return; // nothing to send: receive only
    const pc = this._newPeerConnection('publisher', gen);
    this.publisher = pc;
    for (const track of tracks) {
      track.enabled = !this.muted[track.kind];
      const init = { direction: 'sendonly', streams: [stream] };
      // Simulcast: three layers, so the server can send each participant the
      // one that fits its screen (tile size) and its link.
      if (track.kind === 'video') init.sendEncodings = SIMULCAST_LAYERS.map((l) => ({ ...l }));
      pc.addTransceiver(track, init);
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    if (gen !== this._gen) return;
    const answerPromise = this._request({ type: 'publish', sdp: pc.localDescription.sdp });
    this._flushCandidates('publisher');
    const answer = await answerPromise;
    if (gen !== this._gen) return;
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
  }

  /**
   * What this page wants of the others' video: 'high', 'medium', 'low' or
   * 'off' (the server picks the simulcast layer). The grid calls it when tile
   * sizes change; new tracks get the current choice.
   */
  setVideoQuality(quality) {
    if (this._videoQuality === quality) return;
    this._videoQuality = quality;
    for (const trackId of this._remoteVideo.keys()) this._sendQuality(trackId);
  }

  _noteRemoteTrack(track) {
    if (track.kind !== 'video' || (this.self && track.participant_id === this.self.id)) return;
    this._remoteVideo.set(track.track_id, null);
    this._sendQuality(track.track_id);
  }

  _sendQuality(trackId) {
    const q = this._videoQuality || 'high';
    if (this._remoteVideo.get(trackId) === q) return;
    // The server's default is 'high': nothing to say until that changes.
    if (this._remoteVideo.get(trackId) === null && q === 'high') return;
    this._remoteVideo.set(trackId, q);
    this._sendRaw({ type: 'set_quality', track_id: trackId, quality: q });
  }

  /** Sends only the simulcast layers somebody receives (the server says which). */
  async _applyLayers(layers) {
    const pc = this.publisher;
    if (!pc || !layers) return;
    const sender = pc.getSenders().find((x) => x.track && x.track.kind === 'video');
    if (!sender) return;
    try {
      const params = sender.getParameters();
      if (!params.encodings || params.encodings.length < 2) return;
      let changed = false;
      for (const enc of params.encodings) {
        const active = !enc.rid || layers.includes(enc.rid);
        if (enc.active !== active) {
          enc.active = active;
          changed = true;
        }
      }
      if (changed) await sender.setParameters(params);
    } catch (e) {
      console.warn('giaoban: could not change the simulcast layers', e);
    }
  }

  _createSubscriber(gen) {
    const pc = this._newPeerConnection('subscriber', gen);
    pc.ontrack = (ev) => {
      if (gen !== this._gen) return;
      const stream = ev.streams && ev.streams[0];
      const participantId = stream ? stream.id : null;
      if (participantId) this.remoteTrackOwners.set(ev.track.id, participantId);
      this._emit('remote_track', { participantId, track: ev.track, stream });
    };
    this.subscriber = pc;
  }

  _onSubscriberOffer(sdp, gen) {
    // The server sends one offer at a time, but the answers are asynchronous:
    // keep them in order anyway.
    this._subChain = this._subChain.then(async () => {
      if (gen !== this._gen || !this.subscriber) return;
      const pc = this.subscriber;
      try {
        await pc.setRemoteDescription({ type: 'offer', sdp });
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        if (gen !== this._gen) return;
        const done = this._request({ type: 'subscriber_answer', sdp: pc.localDescription.sdp });
        this._flushCandidates('subscriber');
        await done;
      } catch (e) {
        if (gen === this._gen) this._reportError(e);
      }
    });
  }

  // ---- events ----------------------------------------------------------------

  _setState(state, extra) {
    this.state = state;
    this._emit('state', { state, ...(extra || {}) });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
