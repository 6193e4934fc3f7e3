// The giaoban signaling protocol (docs/protocol.md) and the two WebRTC peer
// connections of a participant. No user interface here: the UI listens to
// the events of a `GiaobanClient` (an EventTarget; each event's data is in
// `event.detail`):
//
//   state            {state: 'connecting'|'waiting'|'connected'|'reconnecting'|'closed', code?, attempt?, delayMs?, resuming?}
//   joined           {self, meeting, participants, tracks, meetingState}   (again after every fresh join;
//                                      participants carry audio_blocked, video_blocked, hand)
//   resumed          {self, replayed}  the session came back on a new socket: same
//                                      participant, same peer connections, nothing to rebuild
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
//   tech_message       {message}    the province's operator wrote to this point (or to all)
//   conclusion_changed {itemId, text}  an agenda item's conclusion was set (text) or
//                                      cleared (text: null)
//   waiting            {meeting, agenda}  the meeting has not started: `join` was
//                                      answered by `waiting`; the socket stays open and
//                                      the client joins by itself on `meeting_started`
//   meeting_started    {}           the chair started it (a `joined` follows)
//   meeting_state      {state}      {status, locked, floor, current_item_id, join_muted}
//                                   (also in `joined`, as `meetingState`)
//   hands              {queue}      the ordered speaking queue [{participant_id, name, kind, since}]
//   media_blocked      {participantId, audio_blocked, video_blocked}  the chair's block
//   attendance_declared {participant_id, invitation_id, leader, attendees}  (moderators)
//   removed            {reason}     the chair removed us (the socket closes next)
//   presentation       {presentation, floorMayPresent}  the document presented
//                      now (null: none), its page and zoom
//   vote_opened        {poll, voted}  a vote opened (voted: undefined), or is open
//                                      when we (re)joined (voted: whether our
//                                      invitation has voted): the voting card
//   vote_progress      {pollId, voted, eligible, voters}  ballots so far (chair and
//                                      secretary; voters: names, null if secret)
//   vote_closed        {poll}       the vote closed; poll.outcome is the result
//
// Reconnection: when the WebSocket drops (or the server is silent for too
// long, or closes it as idle: 1008 without a fatal error), the peer
// connections are kept and a new socket `resume`s the
// session with its resume token after 0.3, 1, 2, 4, 8… s (the server keeps
// the participant for its grace, 30 s by default); the messages missed are
// replayed by the server and requests left unanswered are sent again. If
// the resume is refused (`resume_failed`), both peer connections are closed
// and the socket joins afresh with the invitation token.
// A peer connection whose ICE disconnects or fails (a network change) is
// restarted: the publisher re-offers with new ICE credentials, the server is
// asked (`ice_restart`) for a subscriber offer with new ones. Only if that
// does not bring it back does the client join afresh.

export const PROTOCOL_VERSION = 1;

/** The publisher's video layers, lowest first (RTP stream ids q, h, f). */
export const SIMULCAST_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
];
export const CLIENT_NAME = 'giaoban-web/0.1';

const PING_INTERVAL_MS = 10000;
/** Most tracks one `set_quality` may name (the server's limit). */
const MAX_QUALITY_TRACKS = 1000;
/** How long quality wishes are gathered before they are sent together. */
const QUALITY_BATCH_MS = 50;
// The server answers every ping; this much silence means the socket is dead
// even if the browser has not noticed yet.
const SILENCE_LIMIT_MS = 30000;
const BACKOFF_MAX_MS = 10000;
const LEAVE_WAIT_MS = 1000;
// ICE 'disconnected' this long (it may come back by itself) restarts ICE.
const ICE_DISCONNECTED_RESTART_MS = 2000;
// A connection still failed this long after its ICE restart: join afresh.
const ICE_RESTART_GIVE_UP_MS = 15000;
// After a network change, a ping unanswered this long means the socket is dead.
const PROBE_TIMEOUT_MS = 3000;
// WebSocket close code telling the server "I will resume" (not a goodbye).
const CLOSE_RESUMING = 4000;
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
  'meeting_locked',
  'removed_from_meeting',
]);

/** The kinds of a raised hand (docs/protocol.md, raise_hand). */
export const HAND_KINDS = ['speak', 'question', 'point_of_order'];

/** A ballot's choices: tán thành, không tán thành, không biểu quyết. */
export const VOTE_CHOICES = ['for', 'against', 'abstain'];

/** The rules a vote may be decided by (docs/protocol.md, open_vote). */
export const VOTE_RULES = ['all_members_majority', 'present_majority', 'two_thirds_all'];

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
    const err = new ProtocolError(code, body && body.message);
    // Who to call about a link that does not work (server.contact).
    err.contact = body && typeof body.contact === 'string' ? body.contact : null;
    throw err;
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
   * @param {'slots'|'tracks'} [opts.receive]  how the subscriber connection
   *   carries the others' media (docs/protocol.md, "Receiving in slots");
   *   default 'slots'
   * @param {boolean} [opts.receiveOnly]  never publish nor send `mute` (an
   *   observer's invitation; also when `joined` says the role is observer)
   */
  constructor({ token, url, localStream, muted, receive, receiveOnly }) {
    super();
    /** Receive only: no publisher connection, no `mute` (observers may not). */
    this.receiveOnly = !!receiveOnly;
    /** 'slots' or 'tracks': what `join` asks for. */
    this.receive = receive === 'tracks' ? 'tracks' : 'slots';
    // Receiving in slots: slot name -> {track, stream, participantId}.
    this._slots = new Map();
    // Remote video track id -> the quality last asked for it (null: none yet).
    this._remoteVideo = new Map();
    // Remote video track id -> the quality last sent to the server (absent:
    // the server's default, 'high').
    this._qualitySent = new Map();
    // Remote video track id -> its participant (for the wishes per participant).
    this._remoteVideoOwner = new Map();
    this._videoQuality = null;
    this._qualityBy = new Map();
    this.token = token;
    this.url = url || defaultWsUrl();
    this.localStream = localStream || null;
    this.muted = { audio: !!(muted && muted.audio), video: !!(muted && muted.video) };
    /** Our participant as the server knows it (changes on every join). */
    this.self = null;
    this.meeting = null;
    /** The live state of `joined` / `meeting_state`: {status, locked, floor, current_item_id, join_muted}. */
    this.meetingState = null;
    /** The speaking queue of the last `hands`. */
    this.hands = [];
    /** `waiting` while the meeting has not started (the waiting screen), else null. */
    this.waiting = null;
    /** The reason of a `removed`, once the chair removed us. */
    this.removedReason = null;
    /** TURN servers with credentials from `joined` / `ice_servers` (RTCIceServer[]). */
    this.iceServers = [];
    /** 'relay' when the server says to use only TURN-relayed candidates, else 'all'. */
    this.iceTransportPolicy = 'all';
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
    // Resume: the session generation (peer connections live across sockets
    // and compare it), the token, and the messages received since `joined`.
    this._session = 0;
    this._resumeToken = null;
    this._received = 0;
    this._attachedGen = -1; // the socket the session is attached to
    this._replayLeft = 0; // replayed messages still to come after `resumed`
    this._restartTimers = { publisher: null, subscriber: null };
    this._restartedAt = { publisher: 0, subscriber: 0 };
    this._restartWanted = { publisher: false, subscriber: false };
    this._onNetworkChange = () => this._networkChanged();
  }

  /** Connects and joins. */
  start() {
    this._left = false;
    this._fatal = null;
    window.addEventListener('online', this._onNetworkChange);
    if (navigator.connection && navigator.connection.addEventListener) {
      navigator.connection.addEventListener('change', this._onNetworkChange);
    }
    this._connect();
  }

  /** Leaves the meeting (sends `leave`, waits briefly for `bye`) and stops. */
  async leave() {
    if (this._left) return;
    this._left = true;
    clearTimeout(this._reconnectTimer);
    window.removeEventListener('online', this._onNetworkChange);
    if (navigator.connection && navigator.connection.removeEventListener) {
      navigator.connection.removeEventListener('change', this._onNetworkChange);
    }
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
    if (this.receiveOnly) return; // the server refuses `mute` from an observer
    this.muted[kind] = muted;
    if (this.localStream) {
      const tracks = kind === 'audio' ? this.localStream.getAudioTracks() : this.localStream.getVideoTracks();
      for (const tr of tracks) tr.enabled = !muted;
    }
    if (this.state === 'connected') {
      this._request({ type: 'mute', kind, muted }).catch((e) => this._reportError(e));
    }
  }

  // ---- the meeting's conduct (docs/protocol.md, issue 20) ---------------------
  // Each resolves with the server's `ok`, or rejects with a ProtocolError
  // (`forbidden` when our role may not: the table of permissions.rs).

  /** Asks to speak: `kind` speak | question | point_of_order. Again: changes the kind, keeps the place. */
  raiseHand(kind) {
    return this._request({ type: 'raise_hand', kind: HAND_KINDS.includes(kind) ? kind : 'speak' });
  }

  lowerHand() {
    return this._request({ type: 'lower_hand' });
  }

  /** Chair, secretary: gives the floor (the participant leaves the queue, is heard, is the main view). */
  giveFloor(participantId) {
    return this._request({ type: 'give_floor', participant_id: participantId });
  }

  /** Chair, secretary: nobody has the floor; the chair is the main view again. */
  takeFloor() {
    return this._request({ type: 'take_floor' });
  }

  /** Chair, secretary: removes a request from the queue. */
  clearHand(participantId) {
    return this._request({ type: 'clear_hand', participant_id: participantId });
  }

  /** Chair, secretary: blocks (or lets through again) a participant's audio or video. */
  muteParticipant(participantId, kind, muted) {
    return this._request({ type: 'mute_participant', participant_id: participantId, kind, muted: !!muted });
  }

  /** Chair, secretary: blocks the audio of everyone but the chairs and the floor holder. */
  muteAll() {
    return this._request({ type: 'mute_all' });
  }

  lockMeeting(locked) {
    return this._request({ type: 'lock_meeting', locked: !!locked });
  }

  /** Chair, secretary: removes a participant; `reason` (1..500 characters) is recorded. */
  removeParticipant(participantId, reason) {
    return this._request({ type: 'remove_participant', participant_id: participantId, reason });
  }

  /** Chair, secretary: the agenda item under discussion (null: none). */
  setCurrentItem(itemId) {
    return this._request({ type: 'set_current_item', item_id: itemId || null });
  }

  /** Chair: draft/scheduled -> in progress; the waiting participants enter. */
  startMeeting() {
    return this._request({ type: 'start_meeting' });
  }

  /** Chair: ends the meeting; every session is closed with `meeting_closed`. */
  endMeeting() {
    return this._request({ type: 'end_meeting' });
  }

  /** A bridge point's roll call: its presiding leader and the number of people present. */
  declareAttendance(leader, attendees) {
    return this._request({ type: 'declare_attendance', leader, attendees });
  }

  // ---- votes (docs/protocol.md, "Votes") ------------------------------------

  /**
   * Chair, secretary: puts a question to the vote. `rule` one of VOTE_RULES
   * (default all_members_majority), `voters` the invitation roles that vote
   * (default chair and member), `itemId` the agenda item it decides (or none).
   */
  openVote({ question, itemId, secret, rule, voters }) {
    const msg = { type: 'open_vote', question, secret: !!secret };
    if (itemId) msg.item_id = itemId;
    if (rule) msg.rule = rule;
    if (Array.isArray(voters) && voters.length) msg.voters = voters;
    return this._request(msg);
  }

  /** One ballot: `choice` for | against | abstain (VOTE_CHOICES). */
  castVote(pollId, choice) {
    return this._request({ type: 'cast_vote', poll_id: pollId, choice });
  }

  /** Chair, secretary: closes the vote; everyone gets `vote_closed` with the result. */
  closeVote(pollId) {
    return this._request({ type: 'close_vote', poll_id: pollId });
  }

  // ---- presenting documents (docs/protocol.md, "Presenting documents") ----

  /** Presents a document of the current agenda item at `page` and `zoomPercent`. */
  presentDocument(documentId, page, zoomPercent) {
    const msg = { type: 'present_document', document_id: documentId };
    if (page) msg.page = page;
    if (zoomPercent) msg.zoom_percent = zoomPercent;
    return this._request(msg);
  }

  /** The presenter turns to `page` (and zooms, when `zoomPercent` is given). */
  presentPage(page, zoomPercent) {
    const msg = { type: 'present_page', page };
    if (zoomPercent) msg.zoom_percent = zoomPercent;
    return this._request(msg);
  }

  /** The presenter (or the chair or secretary) stops presenting. */
  stopPresenting() {
    return this._request({ type: 'stop_presenting' });
  }

  /** Chair, secretary: lets the floor holder present (or not). */
  allowPresenting(allowed) {
    return this._request({ type: 'allow_presenting', allowed: !!allowed });
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
      if (!msg || typeof msg !== 'object') return;
      // Every message after `joined` counts (the server numbers them the same
      // way); `joined` and `resumed` themselves arrive before this is set.
      if (gen === this._attachedGen) this._received++;
      this._onMessage(msg, gen);
      if (gen === this._attachedGen && this._replayLeft > 0 && --this._replayLeft === 0) this._resendPending(gen);
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
    if (this.state !== 'connected' && this.state !== 'waiting') return;
    const ts = Date.now();
    // Waiting (not joined): no session messages to count yet.
    const ping = this.state === 'waiting' ? { type: 'ping', ts } : { type: 'ping', ts, received: this._received };
    this._request(ping)
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
        // With a session to resume, tell the server (if it hears us) that
        // this is no goodbye.
        if (this._canResume()) ws.close(CLOSE_RESUMING, 'resume');
        else ws.close();
      } catch (_) {
        // ignore
      }
    }
    this._onSocketGone(gen, null);
  }

  /** Whether a lost socket can be replaced by a resume (peer connections kept). */
  _canResume() {
    return !!(this._resumeToken && this.self && !this._left && !this._fatal);
  }

  /** The browser says the network changed: restart ICE, and check the socket. */
  _networkChanged() {
    if (this._left || !this.self) return;
    for (const name of ['publisher', 'subscriber']) this._restartIce(name);
    if (this.state !== 'connected') return;
    const gen = this._gen;
    const probe = this._request({ type: 'ping', ts: Date.now(), received: this._received });
    const timer = setTimeout(() => {
      if (gen === this._gen && this._ws) this._dropSocket();
    }, PROBE_TIMEOUT_MS);
    probe.then(() => clearTimeout(timer)).catch(() => clearTimeout(timer));
  }

  _onSocketGone(gen, closeEvent) {
    if (gen !== this._gen) return;
    this._gen++; // everything of the old socket is stale from now on
    this._ws = null;
    clearInterval(this._pingTimer);
    this._pingTimer = null;
    // A protocol close (1002) without an error frame: joining again will
    // not help. A policy close (1008) is fatal only after an error frame
    // with a fatal code (already noted in _fatal): without one it is the
    // server's idle timeout (this page was silent, e.g. frozen in the
    // background), and the session resumes like after any other drop.
    if (!this._fatal && closeEvent && closeEvent.code === 1002) this._fatal = 'unsupported_version';
    // A session that may resume keeps its peer connections (media flows on)
    // and its unanswered requests (sent again after the resume).
    const resuming = this._canResume();
    if (!resuming) this._teardown();
    if (this._left) {
      this._setState('closed');
      return;
    }
    if (this._fatal) {
      this._setState('closed', { code: this._fatal });
      return;
    }
    // A session that ran well for a while starts the backoff afresh.
    if (this._healthySince && Date.now() - this._healthySince > HEALTHY_AFTER_MS) this._attempt = 0;
    this._healthySince = 0;
    // A resume must land within the server's grace: try soon.
    const delayMs = resuming && this._attempt === 0 ? 300 : Math.min(1000 * 2 ** this._attempt, BACKOFF_MAX_MS);
    this._attempt++;
    this._setState('reconnecting', { attempt: this._attempt, delayMs, resuming });
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => {
      if (!this._left && !this._fatal) this._connect();
    }, delayMs);
  }

  /** Closes both peer connections and forgets the outstanding requests. */
  _teardown() {
    clearInterval(this._pingTimer);
    this._pingTimer = null;
    this._session++; // callbacks of the old peer connections are stale
    this._attachedGen = -1;
    this._replayLeft = 0;
    for (const name of ['publisher', 'subscriber']) {
      clearTimeout(this._restartTimers[name]);
      this._restartTimers[name] = null;
      this._restartedAt[name] = 0;
      this._restartWanted[name] = false;
    }
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
    this._slots = new Map();
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
      this._pending.set(id, { resolve, reject, msg: { ...msg, id }, gen: this._gen });
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
        if (this._canResume()) this._resume(gen);
        else this._join(gen);
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
        this._qualitySent.delete(msg.track_id);
        this._remoteVideoOwner.delete(msg.track_id);
        this._emit('track_unpublished', { trackId: msg.track_id, participantId: msg.participant_id });
        break;
      case 'agenda_changed':
        this._emit('agenda_changed', { meetingId: msg.meeting_id });
        break;
      case 'tech_message':
        this._emit('tech_message', { message: msg.message });
        break;
      case 'conclusion_changed':
        this._emit('conclusion_changed', { itemId: msg.item_id, text: typeof msg.text === 'string' ? msg.text : null });
        break;
      case 'layers_wanted':
        this._applyLayers(Array.isArray(msg.layers) ? msg.layers : null);
        break;
      case 'ice_servers':
        // Fresh TURN credentials: for allocations made from now on.
        this._setIce(msg);
        for (const pc of [this.publisher, this.subscriber]) {
          if (!pc) continue;
          try {
            pc.setConfiguration({ ...pc.getConfiguration(), iceServers: this.iceServers, iceTransportPolicy: this.iceTransportPolicy });
          } catch (e) {
            this._reportError(e);
          }
        }
        break;
      case 'active_speaker':
        this._emit('active_speaker', { participantId: msg.participant_id });
        break;
      case 'video_paused':
        // The full list of video tracks the server holds back (last-N).
        this._emit('video_paused', { trackIds: Array.isArray(msg.track_ids) ? msg.track_ids : [], reason: msg.reason });
        break;
      case 'slots':
        this._onSlots(Array.isArray(msg.slots) ? msg.slots : []);
        break;
      case 'mute_changed':
        this._emit('mute_changed', { participantId: msg.participant_id, kind: msg.kind, muted: !!msg.muted });
        break;
      case 'subscriber_offer':
        this._onSubscriberOffer(msg.sdp, this._session);
        break;
      case 'meeting_started':
        // Waiting for the start: join again on this socket (same token).
        this._emit('meeting_started', {});
        if (this.waiting && this.state === 'waiting') this._join(gen);
        break;
      case 'meeting_state': {
        const { type: _type, ...st } = msg;
        this.meetingState = st;
        this._emit('meeting_state', { state: st });
        break;
      }
      case 'hands':
        this.hands = Array.isArray(msg.queue) ? msg.queue : [];
        this._emit('hands', { queue: this.hands });
        break;
      case 'media_blocked':
        if (this.self && msg.participant_id === this.self.id) {
          this.self = { ...this.self, audio_blocked: !!msg.audio_blocked, video_blocked: !!msg.video_blocked };
        }
        this._emit('media_blocked', {
          participantId: msg.participant_id,
          audio_blocked: !!msg.audio_blocked,
          video_blocked: !!msg.video_blocked,
        });
        break;
      case 'attendance_declared':
        this._emit('attendance_declared', {
          participant_id: msg.participant_id,
          invitation_id: msg.invitation_id,
          leader: msg.leader,
          attendees: msg.attendees,
        });
        break;
      case 'removed':
        // The chair removed us: the server closes the socket next (1008);
        // joining again would be refused (removed_from_meeting).
        this.removedReason = typeof msg.reason === 'string' ? msg.reason : '';
        this._fatal = 'removed';
        this._emit('removed', { reason: this.removedReason });
        break;
      case 'vote_opened':
        if (msg.poll && typeof msg.poll === 'object') {
          this._emit('vote_opened', { poll: msg.poll, voted: typeof msg.voted === 'boolean' ? msg.voted : undefined });
        }
        break;
      case 'vote_progress':
        this._emit('vote_progress', {
          pollId: msg.poll_id,
          voted: Number(msg.voted) || 0,
          eligible: Number(msg.eligible) || 0,
          voters: Array.isArray(msg.voters) ? msg.voters : null,
        });
        break;
      case 'vote_closed':
        if (msg.poll && typeof msg.poll === 'object') this._emit('vote_closed', { poll: msg.poll });
        break;
      case 'presentation':
        this.presentation = msg.presentation && typeof msg.presentation === 'object' ? msg.presentation : null;
        this.floorMayPresent = !!msg.floor_may_present;
        this._emit('presentation', { presentation: this.presentation, floorMayPresent: this.floorMayPresent });
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

  // ---- resuming ------------------------------------------------------------

  /** On a new socket: takes the session over with the resume token. */
  async _resume(gen) {
    let resumed;
    try {
      resumed = await this._request({
        type: 'resume',
        resume_token: this._resumeToken,
        received: this._received,
        meeting_id: this.meeting ? this.meeting.id : undefined,
      });
    } catch (e) {
      if (gen !== this._gen) return;
      // Refused (grace over, replaced, nothing kept): start afresh. The
      // server keeps the socket open after resume_failed, so join on it.
      this._resumeToken = null;
      this._teardown();
      this._emit('server_error', { code: e.code || 'resume_failed', message: e.message, fatal: false });
      if (this._ws && this._ws.readyState === WebSocket.OPEN) this._join(gen);
      return;
    }
    if (gen !== this._gen) return;
    this._attachedGen = gen;
    this._resumeToken = resumed.resume_token || null;
    if (resumed.participant) this.self = resumed.participant;
    if (this.self && this.self.role === 'observer') this.receiveOnly = true;
    this._healthySince = Date.now();
    this._setState('connected');
    this._emit('resumed', { self: this.self, replayed: resumed.replayed || 0 });
    this._replayLeft = resumed.replayed || 0;
    if (this._replayLeft === 0) this._resendPending(gen);
    // A mute toggled while the socket was down was not sent: send it now.
    for (const kind of this.receiveOnly ? [] : ['audio', 'video']) {
      const known = this.self && this.self[`${kind}_muted`];
      if (typeof known === 'boolean' && known !== this.muted[kind]) {
        this._request({ type: 'mute', kind, muted: this.muted[kind] }).catch((e) => this._reportError(e));
      }
    }
    for (const name of ['publisher', 'subscriber']) {
      if (this._restartWanted[name]) this._restartIce(name);
    }
  }

  /**
   * After a resume and its replay: requests sent on an older socket that are
   * still unanswered never reached the server (it answers every request in
   * order, and the answers were replayed): send them again.
   */
  _resendPending(gen) {
    for (const p of this._pending.values()) {
      if (p.gen !== gen) {
        p.gen = gen;
        this._sendRaw(p.msg);
      }
    }
  }

  // ---- ICE restart -----------------------------------------------------------

  /**
   * Restarts ICE on one connection (its network path is gone): the publisher
   * makes an offer with new credentials, the server is asked for one on the
   * subscriber. Without a socket, it waits for the resume.
   */
  async _restartIce(name) {
    const pc = name === 'publisher' ? this.publisher : this.subscriber;
    if (!pc || pc.connectionState === 'closed') return;
    clearTimeout(this._restartTimers[name]);
    this._restartTimers[name] = null;
    if (this.state !== 'connected') {
      this._restartWanted[name] = true;
      return;
    }
    this._restartWanted[name] = false;
    this._restartedAt[name] = Date.now();
    const sess = this._session;
    try {
      if (name === 'subscriber') {
        await this._request({ type: 'ice_restart' });
        return;
      }
      if (pc.signalingState !== 'stable') return; // a negotiation is under way
      const offer = await pc.createOffer({ iceRestart: true });
      await pc.setLocalDescription(offer);
      if (sess !== this._session) return;
      const answer = await this._request({ type: 'publish', sdp: pc.localDescription.sdp });
      if (sess !== this._session) return;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    } catch (e) {
      if (sess === this._session) this._reportError(e);
    }
  }

  /** A connection's ICE state changed: restart it when it is lost. */
  _onIceState(name, pc, sess) {
    if (sess !== this._session) return;
    const s = pc.iceConnectionState;
    if (s === 'connected' || s === 'completed') {
      clearTimeout(this._restartTimers[name]);
      this._restartTimers[name] = null;
      return;
    }
    if (s === 'failed') {
      this._restartIce(name);
    } else if (s === 'disconnected' && !this._restartTimers[name]) {
      this._restartTimers[name] = setTimeout(() => {
        this._restartTimers[name] = null;
        if (sess === this._session && pc.iceConnectionState === 'disconnected') this._restartIce(name);
      }, ICE_DISCONNECTED_RESTART_MS);
    }
  }

  // ---- joining -------------------------------------------------------------

  async _join(gen) {
    let joined;
    try {
      joined = await this._request({ type: 'join', token: this.token, receive: this.receive });
    } catch (e) {
      // A fatal code: the server closes the socket and we stay closed. Any
      // other failure: try again on a new socket, with the backoff.
      if (gen === this._gen && !this._fatal && e.code !== 'disconnected') this._dropSocket();
      return;
    }
    if (gen !== this._gen) return;
    if (joined.type === 'waiting') {
      // Not started yet: the socket stays open, `meeting_started` will say
      // when to join again. Nothing to publish or receive meanwhile.
      this._attempt = 0;
      this.waiting = { meeting: joined.meeting || null, agenda: Array.isArray(joined.agenda) ? joined.agenda : [] };
      this._setState('waiting');
      this._emit('waiting', this.waiting);
      return;
    }
    this.waiting = null;
    // The backoff restarts only once media connects (or the session lasts):
    // a join that works but whose media fails must not retry every second.
    this._healthySince = Date.now();
    this._attachedGen = gen;
    this._received = 0;
    this._resumeToken = joined.resume_token || null;
    const sess = this._session;
    this.self = joined.participant;
    this.meeting = joined.meeting;
    this.meetingState = joined.state && typeof joined.state === 'object' ? joined.state : null;
    this.hands = [];
    // An observer only watches: the server refuses its publish and mute.
    if (this.self && this.self.role === 'observer') this.receiveOnly = true;
    this._setIce(joined);
    this._remoteVideo = new Map();
    this._qualitySent = new Map();
    this._remoteVideoOwner = new Map();
    for (const t of joined.tracks || []) this._noteRemoteTrack(t);
    this._createSubscriber(sess);
    this._setState('connected');
    this._emit('joined', {
      self: joined.participant,
      meeting: joined.meeting,
      participants: joined.participants || [],
      tracks: joined.tracks || [],
      meetingState: this.meetingState,
    });
    if (this.receiveOnly) return;
    for (const kind of ['audio', 'video']) {
      if (this.muted[kind]) this._request({ type: 'mute', kind, muted: true }).catch((e) => this._reportError(e));
    }
    try {
      await this._publish(sess);
    } catch (e) {
      if (sess === this._session && e.code !== 'disconnected') {
        this._emit('publish_failed', { code: e instanceof ProtocolError ? e.code : 'negotiation_failed' });
      }
    }
  }

  /** Takes `ice_servers` and `ice_transport_policy` of a `joined` or `ice_servers` message. */
  _setIce(msg) {
    this.iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
    this.iceTransportPolicy = msg.ice_transport_policy === 'relay' ? 'relay' : 'all';
  }

  _newPeerConnection(name, gen) {
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers,
      iceTransportPolicy: this.iceTransportPolicy,
      bundlePolicy: 'max-bundle',
    });
    pc.onicecandidate = (ev) => {
      if (gen !== this._session || !ev.candidate || !ev.candidate.candidate) return;
      const c = ev.candidate.toJSON();
      if (this._candidateReady[name]) this._sendCandidate(name, c);
      else this._candidateQueue[name].push(c);
    };
    pc.oniceconnectionstatechange = () => this._onIceState(name, pc, gen);
    pc.onconnectionstatechange = () => {
      if (gen !== this._session) return;
      if (pc.connectionState === 'connected') this._attempt = 0;
      if (pc.connectionState === 'failed') {
        // An ICE restart comes first (_onIceState); only if the connection
        // is still failed well after it, join afresh.
        const since = this._restartedAt[name];
        if (since && Date.now() - since > ICE_RESTART_GIVE_UP_MS) {
          this._emit('media_failed', { pc: name });
          this._resumeToken = null;
          this._dropSocket();
        } else {
          this._restartIce(name);
          setTimeout(() => {
            if (gen === this._session && pc.connectionState === 'failed') {
              this._emit('media_failed', { pc: name });
              this._resumeToken = null;
              this._dropSocket();
            }
          }, ICE_RESTART_GIVE_UP_MS);
        }
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
    if (this.receiveOnly) return;
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
    if (gen !== this._session) return;
    const answerPromise = this._request({ type: 'publish', sdp: pc.localDescription.sdp });
    this._flushCandidates('publisher');
    const answer = await answerPromise;
    if (gen !== this._session) return;
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
  }

  /**
   * What this page wants of the others' video: 'high', 'medium', 'low' or
   * 'off' (the server picks the simulcast layer). The grid calls it when tile
   * sizes change; new tracks get the current choice. `byParticipant` (a Map
   * participant id -> quality) overrides it for some: the main view, tiles
   * on another page of the grid.
   */
  setVideoQuality(quality, byParticipant) {
    const by = byParticipant instanceof Map ? byParticipant : new Map();
    const same =
      this._videoQuality === quality &&
      this._qualityBy.size === by.size &&
      [...by].every(([id, q]) => this._qualityBy.get(id) === q);
    if (same) return;
    this._videoQuality = quality;
    this._qualityBy = by;
    for (const trackId of this._remoteVideo.keys()) this._sendQuality(trackId);
  }

  _noteRemoteTrack(track) {
    if (track.kind !== 'video' || (this.self && track.participant_id === this.self.id)) return;
    this._remoteVideo.set(track.track_id, null);
    this._qualitySent.delete(track.track_id);
    this._remoteVideoOwner.set(track.track_id, track.participant_id);
    this._sendQuality(track.track_id);
  }

  _sendQuality(trackId) {
    const owner = this._remoteVideoOwner.get(trackId);
    const q = (owner && this._qualityBy.get(owner)) || this._videoQuality || 'high';
    if (this._remoteVideo.get(trackId) === q) return;
    // The server's default is 'high': nothing to say until that changes.
    if (this._remoteVideo.get(trackId) === null && q === 'high') return;
    this._remoteVideo.set(trackId, q);
    // Queued and sent as one list per quality QUALITY_BATCH_MS later: a grid
    // of 100 tiles that changes size, a join into a meeting of 100 or a burst
    // of track_published (everybody back after a server restart) is one
    // message, not 100 (the server limits messages per second).
    if (!this._qualityQueue) {
      this._qualityQueue = new Map();
      setTimeout(() => this._flushQuality(), QUALITY_BATCH_MS);
    }
    this._qualityQueue.set(trackId, q);
  }

  _flushQuality() {
    const queued = this._qualityQueue;
    this._qualityQueue = null;
    if (!queued) return;
    const byQuality = new Map();
    for (const [trackId, q] of queued) {
      // Gone or changed again since it was queued: nothing (more) to say.
      if (this._remoteVideo.get(trackId) !== q) continue;
      // Changed and changed back within the batch (a tile resized while the
      // page laid out): the server already has it.
      if ((this._qualitySent.get(trackId) || 'high') === q) continue;
      this._qualitySent.set(trackId, q);
      if (!byQuality.has(q)) byQuality.set(q, []);
      byQuality.get(q).push(trackId);
    }
    for (const [quality, ids] of byQuality) {
      for (let i = 0; i < ids.length; i += MAX_QUALITY_TRACKS) {
        this._sendRaw({ type: 'set_quality', track_ids: ids.slice(i, i + MAX_QUALITY_TRACKS), quality });
      }
    }
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
      if (gen !== this._session) return;
      const stream = ev.streams && ev.streams[0];
      if (stream && stream.id.startsWith('slot-')) {
        // A slot: whose media it carries comes in `slots` messages.
        const slot = this._slots.get(stream.id) || { participantId: null };
        slot.track = ev.track;
        slot.stream = stream;
        this._slots.set(stream.id, slot);
        if (slot.participantId) {
          this.remoteTrackOwners.set(ev.track.id, slot.participantId);
          this._emit('remote_track', { participantId: slot.participantId, track: ev.track, stream });
        }
        return;
      }
      const participantId = stream ? stream.id : null;
      if (participantId) this.remoteTrackOwners.set(ev.track.id, participantId);
      this._emit('remote_track', { participantId, track: ev.track, stream });
    };
    this.subscriber = pc;
  }

  /** The server moved tracks between our slots: re-attribute their tracks. */
  _onSlots(list) {
    for (const s of list) {
      if (!s || typeof s.slot !== 'string') continue;
      const slot = this._slots.get(s.slot) || { participantId: null };
      const before = slot.participantId;
      slot.participantId = s.participant_id || null;
      this._slots.set(s.slot, slot);
      if (before === slot.participantId || !slot.track) continue;
      if (before) {
        this.remoteTrackOwners.delete(slot.track.id);
        this._emit('remote_track_gone', { participantId: before, track: slot.track });
      }
      if (slot.participantId) {
        this.remoteTrackOwners.set(slot.track.id, slot.participantId);
        this._emit('remote_track', { participantId: slot.participantId, track: slot.track, stream: slot.stream });
      }
    }
  }

  _onSubscriberOffer(sdp, gen) {
    // The server sends one offer at a time, but the answers are asynchronous:
    // keep them in order anyway.
    this._subChain = this._subChain.then(async () => {
      if (gen !== this._session || !this.subscriber) return;
      const pc = this.subscriber;
      try {
        await pc.setRemoteDescription({ type: 'offer', sdp });
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        if (gen !== this._session) return;
        const done = this._request({ type: 'subscriber_answer', sdp: pc.localDescription.sdp });
        this._flushCandidates('subscriber');
        await done;
      } catch (e) {
        if (gen === this._session) this._reportError(e);
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
