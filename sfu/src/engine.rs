//! The engine: one task that owns every peer connection, routes datagrams to
//! them, drives their timers and forwards media between them. The server talks
//! to it through [`Sfu`] and [`Participant`], which send it commands.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::codec::VideoCodec;
use crate::forward::{Forward, Layers, Verdict};
use crate::net::{self, Inbound};
use crate::peer::{Codec, Direction, Incoming, LocalCandidate, Peer, PeerEvent, Proto};
use crate::ViewerEvent;
use crate::{
    Candidate, ConnectionState, MediaKind, ParticipantId, PcKind, Quality, RoomId, SfuConfig,
    SfuError, SfuEvent,
};

mod allocation;
mod slots;
mod viewers;
pub use viewers::Viewer;

/// Least time between two keyframe requests sent to one publisher track. A
/// request that comes sooner is kept and sent when this has passed (unless a
/// keyframe came meanwhile), and a subscriber still waiting for a keyframe
/// asks again: a lost PLI or keyframe costs about this long, not a whole
/// keyframe period of the encoder.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);
/// Least time between two keyframe requests for one layer when the request
/// comes from a subscriber's PLI or FIR (its decoder lost something NACK
/// could not repair). Every subscriber of a layer that loses a packet asks,
/// and a keyframe is several times a normal frame: on a starved server or a
/// lossy uplink, answering each at the switch pace made keyframes cause the
/// loss they were asked to repair. A subscriber that joins or switches
/// layers is not held back by this.
const REPAIR_KEYFRAME_INTERVAL: Duration = Duration::from_millis(1000);
/// Layers whose keyframe requests a track remembers (a bound: simulcast has
/// three).
const MAX_KEYFRAME_LAYERS: usize = 8;

/// Keyframe requests for one layer of a published track. Requests are per
/// layer: a subscriber of the thumbnail that needs a keyframe does not make
/// the encoder send large keyframes of the other layers.
#[derive(Debug)]
struct KeyframeAsk {
    /// The layer (its rid; "" without simulcast).
    layer: String,
    /// When the last request for this layer was sent.
    last: Option<Instant>,
    /// A request held back by the throttle, to be sent from this time on
    /// (unless a keyframe of the layer comes first).
    due: Option<Instant>,
    /// When the first request not yet answered by a keyframe was sent (for
    /// the time-to-keyframe log).
    asked_at: Option<Instant>,
}

impl KeyframeAsk {
    fn new(layer: &str) -> KeyframeAsk {
        KeyframeAsk {
            layer: layer.to_owned(),
            last: None,
            due: None,
            asked_at: None,
        }
    }

    /// Whether a request may go now (at least `gap` after the last one);
    /// if not, it is held until it may.
    fn ask(&mut self, now: Instant, gap: Duration) -> bool {
        if let Some(last) = self.last.filter(|l| now.duration_since(*l) < gap) {
            let at = last + gap;
            self.due = Some(self.due.map_or(at, |d| d.min(at)));
            return false;
        }
        self.due = None;
        self.last = Some(now);
        self.asked_at.get_or_insert(now);
        true
    }

    /// Whether a held request is due.
    fn held_is_due(&self, now: Instant) -> bool {
        self.due.is_some_and(|d| now >= d)
    }

    /// A keyframe of the layer came: nothing is held any more. Returns when
    /// it was first asked for, if it was.
    fn answered(&mut self) -> Option<Instant> {
        self.due = None;
        self.asked_at.take()
    }
}

/// Least time between two offers on one subscriber connection.
const OFFER_SPACING: Duration = Duration::from_millis(150);

/// How often the active speaker is re-evaluated.
const SPEAKER_TICK: Duration = Duration::from_millis(300);
/// Least smoothed loudness (0..1, from -dBov) to count as speaking (about -55 dBov).
const SPEAKER_THRESHOLD: f32 = 0.55;
/// How much louder than the current speaker a new one must be.
const SPEAKER_MARGIN: f32 = 0.05;
/// Least time a speaker keeps the floor before another is announced.
const SPEAKER_HOLD: Duration = Duration::from_secs(1);

/// How long a simulcast layer goes unwanted before its publisher is told to pause it.
const PAUSE_AFTER: Duration = Duration::from_secs(3);

/// How long after a participant left the engine gives freed memory back.
const TRIM_DELAY: Duration = Duration::from_secs(2);

/// Datagrams kept for a subscriber connection awaiting its first answer.
const EARLY_DATAGRAMS: usize = 16;

/// Counters of the media plane.
#[derive(Debug, Clone, Default)]
pub struct SfuStats {
    pub rooms: usize,
    pub participants: usize,
    pub peers: usize,
    pub udp_datagrams_in: u64,
    pub tcp_frames_in: u64,
    /// Datagrams no peer claimed (unknown STUN username or address).
    pub datagrams_unrouted: u64,
    pub rtp_packets_in: u64,
    pub rtp_packets_forwarded: u64,
    pub keyframe_requests_sent: u64,
    /// Bytes of the datagrams and frames counted in `udp_datagrams_in`
    /// and `tcp_frames_in`.
    pub bytes_in: u64,
    /// Datagrams and ICE-TCP frames sent, and their bytes.
    pub datagrams_out: u64,
    pub bytes_out: u64,
    /// System calls that sent UDP datagrams (one `sendmmsg` sends many).
    pub udp_send_calls: u64,
    /// RTP payload bytes received from publishers and forwarded.
    pub rtp_payload_bytes_in: u64,
    pub rtp_payload_bytes_forwarded: u64,
    /// Sequence numbers missing from publishers' streams when the next
    /// packet arrived (before any retransmission repairs them).
    pub rtp_packets_lost: u64,
    /// Times a subscriber's stream moved from one simulcast layer to another.
    pub layer_switches: u64,
    /// Packets not forwarded to a subscriber because it already got them
    /// (a publisher's retransmission of a late packet) or too late.
    pub duplicates_dropped: u64,
    /// Datagrams dropped on arrival because the engine was behind (its
    /// inbound queue full).
    pub datagrams_dropped: u64,
    /// Media TCP connections closed by the port's limits: over the
    /// per-address cap, no ICE within the timeout, or idle after it.
    pub tcp_refused: u64,
    /// NACK feedback received (generic NACKs) and the packets they ask for.
    pub nacks_received: u64,
    pub nack_packets_requested: u64,
}

enum Command {
    Join {
        room: RoomId,
        participant: ParticipantId,
        /// Whether it gets a subscriber connection (a WHIP encoder does not).
        receive: bool,
        /// It receives in slots (see `slots`).
        in_slots: bool,
        events: mpsc::UnboundedSender<SfuEvent>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    /// A new player of a room's main view (see `viewers`).
    View {
        room: RoomId,
        sdp: String,
        events: mpsc::UnboundedSender<ViewerEvent>,
        reply: oneshot::Sender<Result<(PeerKey, String), SfuError>>,
    },
    ViewerLeave {
        viewer: PeerKey,
    },
    /// Marks a participant as the preferred main view (the chair).
    Feature {
        participant: ParticipantId,
        featured: bool,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Publish {
        participant: ParticipantId,
        sdp: String,
        reply: oneshot::Sender<Result<String, SfuError>>,
    },
    SubscriberAnswer {
        participant: ParticipantId,
        sdp: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Candidate {
        participant: ParticipantId,
        pc: PcKind,
        candidate: Candidate,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    SetQuality {
        participant: ParticipantId,
        tracks: Vec<String>,
        quality: Quality,
        /// The tracks of `tracks` this participant does not receive.
        reply: oneshot::Sender<Result<Vec<String>, SfuError>>,
    },
    RestartIce {
        participant: ParticipantId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Leave {
        participant: ParticipantId,
    },
    Stats {
        reply: oneshot::Sender<SfuStats>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Handle to the running media plane. Cheap to clone.
#[derive(Clone)]
pub struct Sfu {
    commands: mpsc::UnboundedSender<Command>,
    udp_addrs: Arc<Vec<SocketAddr>>,
    tcp_addrs: Arc<Vec<SocketAddr>>,
}

impl Sfu {
    /// Binds the media sockets and starts the engine.
    pub async fn start(config: SfuConfig) -> Result<Sfu, SfuError> {
        let mut sockets = net::bind(&config).await?;
        // Short on purpose: a datagram that waits behind a thousand others is
        // already late; the UDP readers drop when it is full.
        let (in_tx, in_rx) = mpsc::channel(1024);
        let tasks = sockets.spawn_readers(in_tx);
        let mut candidates = Vec::new();
        for (u, t) in sockets.udp_announced.iter().zip(&sockets.tcp_announced) {
            candidates.push(LocalCandidate {
                proto: Proto::Udp,
                addr: *u,
            });
            candidates.push(LocalCandidate {
                proto: Proto::Tcp,
                addr: *t,
            });
        }
        tracing::info!(
            udp = ?sockets.udp_bound,
            tcp = ?sockets.tcp_bound,
            announced = ?sockets.udp_announced,
            "media plane listening"
        );
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let sfu = Sfu {
            commands: cmd_tx,
            udp_addrs: Arc::new(sockets.udp_bound.clone()),
            tcp_addrs: Arc::new(sockets.tcp_bound.clone()),
        };
        let engine = Engine {
            udp: sockets.udp.clone(),
            tcp: HashMap::new(),
            candidates,
            peers: HashMap::new(),
            next_key: 1,
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            participants: HashMap::new(),
            rooms: HashMap::new(),
            speakers: HashMap::new(),
            timers: BTreeSet::new(),
            touched: Vec::new(),
            udp_out: Vec::new(),
            last_seq: HashMap::new(),
            stats: SfuStats::default(),
            tasks,
            viewers: HashMap::new(),
            main_feeds: HashMap::new(),
            alloc_config: allocation::AllocConfig {
                last_n: config.last_n,
                audio_loudest: config.audio_loudest,
            },
            room_alloc: HashMap::new(),
            sub_alloc: HashMap::new(),
            trim_at: None,
        };
        tokio::spawn(engine.run(cmd_rx, in_rx));
        Ok(sfu)
    }

    /// The bound UDP address (the first, when several media addresses are used).
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addrs[0]
    }

    /// The bound TCP address (the first, when several media addresses are used).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addrs[0]
    }

    /// Every bound UDP address (one per media address, one port number).
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp_addrs.to_vec()
    }

    /// Adds a participant to a room. Events about it arrive on the receiver.
    pub async fn join(
        &self,
        room: RoomId,
        participant: ParticipantId,
    ) -> Result<(Participant, mpsc::UnboundedReceiver<SfuEvent>), SfuError> {
        self.join_with(room, participant, true, false).await
    }

    /// Adds a participant that receives in slots: its subscriber connection
    /// negotiates only as many tracks of a kind as it is forwarded at once
    /// (last-N videos, the loudest audios), and [`SfuEvent::Slots`] says
    /// which publisher's track each carries. Otherwise as [`Sfu::join`].
    pub async fn join_in_slots(
        &self,
        room: RoomId,
        participant: ParticipantId,
    ) -> Result<(Participant, mpsc::UnboundedReceiver<SfuEvent>), SfuError> {
        self.join_with(room, participant, true, true).await
    }

    /// Adds a participant that only publishes (a WHIP encoder): it has no
    /// subscriber connection and receives nothing.
    pub async fn join_publisher(
        &self,
        room: RoomId,
        participant: ParticipantId,
    ) -> Result<(Participant, mpsc::UnboundedReceiver<SfuEvent>), SfuError> {
        self.join_with(room, participant, false, false).await
    }

    /// A player of `room`'s main view (WHEP): applies its offer (to receive
    /// audio and video) and returns the answer. The main view is the featured
    /// participant ([`Participant::set_featured`]) while it publishes, else the
    /// active speaker, else the first member publishing; it follows changes
    /// on the same two tracks, without renegotiation.
    pub async fn view(
        &self,
        room: RoomId,
        offer_sdp: String,
    ) -> Result<(Viewer, String, mpsc::UnboundedReceiver<ViewerEvent>), SfuError> {
        let (events, rx) = mpsc::unbounded_channel();
        let (reply, wait) = oneshot::channel();
        self.commands
            .send(Command::View {
                room,
                sdp: offer_sdp,
                events,
                reply,
            })
            .map_err(|_| SfuError::Stopped)?;
        let (key, answer) = wait.await.map_err(|_| SfuError::Stopped)??;
        Ok((Viewer::new(key, self.commands.clone()), answer, rx))
    }

    async fn join_with(
        &self,
        room: RoomId,
        participant: ParticipantId,
        receive: bool,
        in_slots: bool,
    ) -> Result<(Participant, mpsc::UnboundedReceiver<SfuEvent>), SfuError> {
        let (events, rx) = mpsc::unbounded_channel();
        let (reply, wait) = oneshot::channel();
        self.commands
            .send(Command::Join {
                room,
                participant: participant.clone(),
                receive,
                in_slots,
                events,
                reply,
            })
            .map_err(|_| SfuError::Stopped)?;
        wait.await.map_err(|_| SfuError::Stopped)??;
        Ok((
            Participant {
                id: participant,
                commands: self.commands.clone(),
                left: false,
            },
            rx,
        ))
    }

    /// Current counters.
    pub async fn stats(&self) -> Result<SfuStats, SfuError> {
        let (reply, wait) = oneshot::channel();
        self.commands
            .send(Command::Stats { reply })
            .map_err(|_| SfuError::Stopped)?;
        wait.await.map_err(|_| SfuError::Stopped)
    }

    /// Closes every connection and stops the engine.
    pub async fn shutdown(&self) {
        let (reply, wait) = oneshot::channel();
        if self.commands.send(Command::Shutdown { reply }).is_ok() {
            let _ = wait.await;
        }
    }
}

/// One participant's media. Dropping it removes the participant.
pub struct Participant {
    id: ParticipantId,
    commands: mpsc::UnboundedSender<Command>,
    left: bool,
}

impl Participant {
    /// The participant's id, as given to [`Sfu::join`].
    pub fn id(&self) -> &str {
        &self.id
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, SfuError>>) -> Command,
    ) -> Result<T, SfuError> {
        let (reply, wait) = oneshot::channel();
        self.commands
            .send(make(reply))
            .map_err(|_| SfuError::Stopped)?;
        wait.await.map_err(|_| SfuError::Stopped)?
    }

    /// Applies the publisher connection's offer; returns the answer SDP.
    pub async fn publish(&self, offer_sdp: String) -> Result<String, SfuError> {
        let participant = self.id.clone();
        self.ask(|reply| Command::Publish {
            participant,
            sdp: offer_sdp,
            reply,
        })
        .await
    }

    /// Applies the client's answer to the latest subscriber offer.
    pub async fn subscriber_answer(&self, answer_sdp: String) -> Result<(), SfuError> {
        let participant = self.id.clone();
        self.ask(|reply| Command::SubscriberAnswer {
            participant,
            sdp: answer_sdp,
            reply,
        })
        .await
    }

    /// Adds a client's trickled candidate to one of its connections.
    pub async fn add_candidate(&self, pc: PcKind, candidate: Candidate) -> Result<(), SfuError> {
        let participant = self.id.clone();
        self.ask(|reply| Command::Candidate {
            participant,
            pc,
            candidate,
            reply,
        })
        .await
    }

    /// Chooses what this participant receives of another's track (the
    /// simulcast layer, or nothing). Without a choice it gets the best layer.
    pub async fn set_quality(&self, track_id: String, quality: Quality) -> Result<(), SfuError> {
        let unknown = self.set_qualities(vec![track_id], quality).await?;
        match unknown.into_iter().next() {
            Some(track) => Err(SfuError::UnknownTrack(track)),
            None => Ok(()),
        }
    }

    /// [`set_quality`](Self::set_quality) for many tracks at once (one
    /// command, one allocation). Tracks this participant does not receive
    /// (gone since the client last heard) are skipped and returned.
    pub async fn set_qualities(
        &self,
        track_ids: Vec<String>,
        quality: Quality,
    ) -> Result<Vec<String>, SfuError> {
        let participant = self.id.clone();
        self.ask(|reply| Command::SetQuality {
            participant,
            tracks: track_ids,
            quality,
            reply,
        })
        .await
    }

    /// Restarts ICE on the subscriber connection (the client's address
    /// changed): a new subscriber offer with new ICE credentials follows, at
    /// once or after the answer to an outstanding one. The publisher
    /// connection restarts when the client offers new credentials itself
    /// ([`Participant::publish`]). Nothing happens before the first offer.
    pub async fn restart_ice(&self) -> Result<(), SfuError> {
        let participant = self.id.clone();
        self.ask(|reply| Command::RestartIce { participant, reply })
            .await
    }

    /// Marks this participant as the room's preferred main view for players
    /// ([`Sfu::view`]): the chair, or whoever has the floor.
    pub async fn set_featured(&self, featured: bool) -> Result<(), SfuError> {
        let participant = self.id.clone();
        self.ask(|reply| Command::Feature {
            participant,
            featured,
            reply,
        })
        .await
    }

    /// Leaves the room and closes both connections.
    pub async fn leave(mut self) {
        self.left = true;
        let _ = self.commands.send(Command::Leave {
            participant: self.id.clone(),
        });
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        if !self.left {
            let _ = self.commands.send(Command::Leave {
                participant: self.id.clone(),
            });
        }
    }
}

pub(crate) type PeerKey = u64;

/// A key no peer has (keys start at 1): the subscriber of a participant
/// that only publishes.
const NO_PEER: PeerKey = 0;

struct PeerSlot {
    peer: Peer,
    owner: ParticipantId,
    kind: PcKind,
    /// The deadline currently in `Engine::timers` for this peer.
    deadline: Option<Instant>,
    /// Remote addresses routed to this peer.
    addrs: Vec<(Proto, SocketAddr)>,
    /// Our ICE ufrags registered in `Engine::by_ufrag`, oldest first: after
    /// an ICE restart the old one stays until the new path carries media.
    ufrags: Vec<String>,
    /// Where the stack last sent media or DTLS (its selected pair).
    path: Option<(Proto, SocketAddr)>,
    /// DTLS is up: media may be sent (before, the stack refuses it).
    connected: bool,
    /// A subscriber connection whose first offer is not answered yet: the
    /// client's first ICE checks can overtake its answer, and the stack ignores
    /// checks it cannot match yet, costing a retransmission (~200 ms).
    awaiting_answer: bool,
    /// Datagrams that arrived while `awaiting_answer`, replayed after it.
    early: Vec<(Proto, SocketAddr, SocketAddr, BytesMut)>,
}

/// A track a participant publishes.
struct PubTrack {
    /// Room-wide id (`t-…`), announced to clients and used as the msid track id.
    id: String,
    /// The id the publisher connection knows the track by.
    recv_track: String,
    kind: MediaKind,
    codec: Codec,
    /// The video codec, for keyframe detection (`None` for audio).
    video: Option<VideoCodec>,
    /// Simulcast layers seen (one, named "", without simulcast).
    layers: Layers,
    /// Subscriber connections this track is added to, and what each receives.
    subscribers: Vec<Forward>,
    /// Keyframe requests, per layer.
    keyframes: Vec<KeyframeAsk>,
    /// Simulcast layers last asked of the publisher (`None`: all it sends).
    asked_layers: Option<Vec<String>>,
    /// Since when fewer layers than asked would do (pausing waits a little,
    /// so a subscriber flipping between sizes does not make the encoder thrash).
    fewer_since: Option<Instant>,
    /// Smoothed loudness from the audio-level extension, 0 (silence) to 1.
    loudness: f32,
    last_level: Option<Instant>,
    /// When its first packet came.
    since: Instant,
}

impl PubTrack {
    /// The keyframe requests of `layer`.
    fn keyframe_ask(&mut self, layer: &str) -> &mut KeyframeAsk {
        let pos = match self.keyframes.iter().position(|k| k.layer == layer) {
            Some(pos) => pos,
            None => {
                if self.keyframes.len() >= MAX_KEYFRAME_LAYERS {
                    self.keyframes.clear();
                }
                self.keyframes.push(KeyframeAsk::new(layer));
                self.keyframes.len() - 1
            }
        };
        &mut self.keyframes[pos]
    }
}

/// Who speaks in a room, as announced.
struct Speaker {
    current: Option<ParticipantId>,
    since: Instant,
}

struct ParticipantState {
    room: RoomId,
    events: mpsc::UnboundedSender<SfuEvent>,
    publisher: PeerKey,
    subscriber: PeerKey,
    tracks: Vec<PubTrack>,
    /// An offer on the subscriber connection awaits its answer.
    sub_offer_outstanding: bool,
    /// The subscriber connection's tracks changed since the last offer.
    sub_dirty: bool,
    /// When the last subscriber offer was sent.
    last_sub_offer: Option<Instant>,
    /// Preferred as the room's main view for players (the chair).
    featured: bool,
    /// It receives in slots (`None`: a sent track per published track).
    /// Taken out while `Engine::assign_slots` works on it.
    slots: Option<slots::Slots>,
}

struct Engine {
    /// When to give freed heap memory back to the system, after
    /// participants left or subscriber offers were made
    /// ([`crate::memory::release_freed`]).
    trim_at: Option<Instant>,
    udp: HashMap<SocketAddr, Arc<UdpSocket>>,
    /// TCP connections by remote address: their writer queues.
    tcp: HashMap<SocketAddr, mpsc::UnboundedSender<BytesMut>>,
    candidates: Vec<LocalCandidate>,
    peers: HashMap<PeerKey, PeerSlot>,
    next_key: PeerKey,
    by_ufrag: HashMap<String, PeerKey>,
    by_addr: HashMap<(Proto, SocketAddr), PeerKey>,
    participants: HashMap<ParticipantId, ParticipantState>,
    rooms: HashMap<RoomId, Vec<ParticipantId>>,
    speakers: HashMap<RoomId, Speaker>,
    timers: BTreeSet<(Instant, PeerKey)>,
    /// Peers that may have datagrams or events to drain.
    touched: Vec<PeerKey>,
    /// UDP datagrams produced while draining peers, by the announced
    /// address to send them from; sent together at the end of `flush`.
    udp_out: Vec<net::Outgoing>,
    /// Last sequence number seen per publisher SSRC (loss counting).
    last_seq: HashMap<u32, u16>,
    stats: SfuStats,
    tasks: Vec<JoinHandle<()>>,
    /// Players of rooms' main views, by their connection's key.
    viewers: HashMap<PeerKey, viewers::ViewerState>,
    /// Which players receive a published track now (by room-wide track id).
    main_feeds: HashMap<String, Vec<PeerKey>>,
    /// Last-N and loudest-audio settings.
    alloc_config: allocation::AllocConfig,
    /// Per room: speaking history and audible times (allocation).
    room_alloc: HashMap<RoomId, allocation::RoomAlloc>,
    /// Per subscribing participant: its allocation state.
    sub_alloc: HashMap<ParticipantId, allocation::SubAlloc>,
}

fn new_track_id() -> String {
    format!("t-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

impl Engine {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut inbound: mpsc::Receiver<Inbound>,
    ) {
        let mut speaker_tick = tokio::time::interval(SPEAKER_TICK);
        speaker_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut alloc_tick = tokio::time::interval(allocation::ALLOC_TICK);
        alloc_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self.timers.first().map(|(t, _)| *t);
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = commands.recv() => {
                    match cmd {
                        Some(Command::Shutdown { reply }) => {
                            self.shutdown();
                            let _ = reply.send(());
                            return;
                        }
                        Some(cmd) => self.command(cmd),
                        None => {
                            self.shutdown();
                            return;
                        }
                    }
                }
                msg = inbound.recv() => {
                    let Some(msg) = msg else { return };
                    self.inbound(msg);
                    // Take what else is queued without going back to the timer.
                    for _ in 0..64 {
                        match inbound.try_recv() {
                            Ok(msg) => self.inbound(msg),
                            Err(_) => break,
                        }
                    }
                }
                _ = speaker_tick.tick() => {
                    self.speakers_tick();
                    if self.trim_at.is_some_and(|t| t <= Instant::now()) {
                        self.trim_at = None;
                        crate::memory::release_freed();
                    }
                    self.layers_tick();
                }
                _ = alloc_tick.tick() => {
                    self.alloc_tick();
                    self.renegotiate_waiting();
                }
                _ = sleep => {
                    let now = Instant::now();
                    while let Some(&(t, key)) = self.timers.first() {
                        if t > now {
                            break;
                        }
                        self.timers.pop_first();
                        if let Some(slot) = self.peers.get_mut(&key) {
                            slot.deadline = None;
                            slot.peer.handle_timeout(now);
                            self.touched.push(key);
                        }
                    }
                }
            }
            self.flush();
        }
    }

    fn shutdown(&mut self) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            if let Some(slot) = self.peers.get_mut(&key) {
                slot.peer.close();
                self.touched.push(key);
            }
        }
        self.flush();
        for t in &self.tasks {
            t.abort();
        }
        self.peers.clear();
        self.participants.clear();
        self.rooms.clear();
        self.viewers.clear();
        self.main_feeds.clear();
    }

    fn command(&mut self, cmd: Command) {
        let Some(cmd) = self.viewer_command(cmd) else {
            return;
        };
        match cmd {
            Command::Join {
                room,
                participant,
                receive,
                in_slots,
                events,
                reply,
            } => {
                let _ = reply.send(self.join(room, participant, receive, in_slots, events));
            }
            Command::Publish {
                participant,
                sdp,
                reply,
            } => {
                let r = self.publish(&participant, sdp);
                let _ = reply.send(r);
            }
            Command::SubscriberAnswer {
                participant,
                sdp,
                reply,
            } => {
                let r = self.subscriber_answer(&participant, sdp);
                let _ = reply.send(r);
            }
            Command::Candidate {
                participant,
                pc,
                candidate,
                reply,
            } => {
                let r = match self.participants.get(&participant) {
                    None => Err(SfuError::UnknownParticipant),
                    Some(p) => {
                        let key = match pc {
                            PcKind::Publisher => p.publisher,
                            PcKind::Subscriber => p.subscriber,
                        };
                        self.touched.push(key);
                        match self.peers.get_mut(&key) {
                            Some(slot) => slot.peer.add_remote_candidate(candidate),
                            None => Err(SfuError::UnknownParticipant),
                        }
                    }
                };
                let _ = reply.send(r);
            }
            Command::SetQuality {
                participant,
                tracks,
                quality,
                reply,
            } => {
                let _ = reply.send(self.set_quality(&participant, &tracks, quality));
            }
            Command::RestartIce { participant, reply } => {
                let _ = reply.send(self.restart_ice(&participant));
            }
            Command::Leave { participant } => self.leave(&participant),
            Command::Stats { reply } => {
                let mut s = self.stats.clone();
                s.rooms = self.rooms.len();
                s.participants = self.participants.len();
                s.peers = self.peers.len();
                s.layer_switches = crate::forward::layer_switches();
                s.duplicates_dropped = crate::forward::duplicates_dropped();
                s.datagrams_dropped = crate::net::datagrams_dropped();
                s.tcp_refused = crate::net::tcp_refused();
                (s.nacks_received, s.nack_packets_requested) = crate::peer::nacks_received();
                let _ = reply.send(s);
            }
            Command::Shutdown { .. } => {}
            // Handled by `viewer_command`.
            Command::View { .. } | Command::ViewerLeave { .. } | Command::Feature { .. } => {}
        }
    }

    fn add_peer(&mut self, owner: &ParticipantId, kind: PcKind) -> Result<PeerKey, SfuError> {
        let direction = match kind {
            PcKind::Publisher => Direction::Receive,
            PcKind::Subscriber => Direction::Send,
        };
        let peer = Peer::new(&self.candidates, direction)?;
        let key = self.next_key;
        self.next_key += 1;
        // Its ufrag is known (and routed) once it has a local description.
        self.peers.insert(
            key,
            PeerSlot {
                peer,
                owner: owner.clone(),
                kind,
                deadline: None,
                addrs: Vec::new(),
                ufrags: Vec::new(),
                path: None,
                connected: false,
                awaiting_answer: kind == PcKind::Subscriber,
                early: Vec::new(),
            },
        );
        Ok(key)
    }

    fn remove_peer(&mut self, key: PeerKey) {
        if let Some(mut slot) = self.peers.remove(&key) {
            slot.peer.close();
            // Send what closing produced (DTLS close_notify).
            while let Some(t) = slot.peer.poll_transmit() {
                self.transmit(t.proto, t.local, t.remote, t.data);
            }
            for u in &slot.ufrags {
                if self.by_ufrag.get(u) == Some(&key) {
                    self.by_ufrag.remove(u);
                }
            }
            for a in &slot.addrs {
                if self.by_addr.get(a) == Some(&key) {
                    self.by_addr.remove(a);
                }
            }
            if let Some(d) = slot.deadline {
                self.timers.remove(&(d, key));
            }
        }
    }

    fn join(
        &mut self,
        room: RoomId,
        participant: ParticipantId,
        receive: bool,
        in_slots: bool,
        events: mpsc::UnboundedSender<SfuEvent>,
    ) -> Result<(), SfuError> {
        if self.participants.contains_key(&participant) {
            return Err(SfuError::AlreadyJoined(participant));
        }
        let publisher = self.add_peer(&participant, PcKind::Publisher)?;
        // A participant that only publishes has no subscriber connection:
        // its key names no peer, so everything that would use it skips it.
        let subscriber = if receive {
            match self.add_peer(&participant, PcKind::Subscriber) {
                Ok(k) => k,
                Err(e) => {
                    self.remove_peer(publisher);
                    return Err(e);
                }
            }
        } else {
            NO_PEER
        };
        let mut state = ParticipantState {
            room: room.clone(),
            events,
            publisher,
            subscriber,
            tracks: Vec::new(),
            sub_offer_outstanding: false,
            sub_dirty: false,
            last_sub_offer: None,
            featured: false,
            slots: (receive && in_slots).then(slots::Slots::default),
        };
        // Subscribe the newcomer to every live track in the room.
        let members = self.rooms.entry(room).or_default();
        let others: Vec<ParticipantId> = members.clone();
        members.push(participant.clone());
        let mut additions = Vec::new();
        for other in &others {
            if let Some(o) = self.participants.get(other) {
                for t in &o.tracks {
                    additions.push((other.clone(), t.id.clone(), t.kind, t.codec.clone()));
                }
            }
        }
        for (owner, track, kind, codec) in additions {
            if state.slots.as_mut().is_some_and(|s| s.admits(kind, &codec)) {
                // Sent when it takes a slot (the next allocation).
                if let Some(t) = self
                    .participants
                    .get_mut(&owner)
                    .and_then(|o| o.tracks.iter_mut().find(|t| t.id == track))
                {
                    t.subscribers
                        .push(Forward::in_slots(subscriber, Quality::High));
                }
                continue;
            }
            if let Some(slot) = self.peers.get_mut(&subscriber) {
                match slot.peer.add_send_track(&owner, &track, kind, &codec) {
                    Ok(()) => {
                        state.sub_dirty = true;
                        if let Some(t) = self
                            .participants
                            .get_mut(&owner)
                            .and_then(|o| o.tracks.iter_mut().find(|t| t.id == track))
                        {
                            t.subscribers.push(Forward::new(subscriber, Quality::High));
                        }
                    }
                    Err(e) => tracing::warn!("subscribe to {track}: {e}"),
                }
            }
        }
        // A newcomer learns who speaks now, not only at the next change.
        if let Some(current) = self
            .speakers
            .get(&state.room)
            .and_then(|s| s.current.clone())
        {
            let _ = state.events.send(SfuEvent::ActiveSpeaker {
                participant: current,
            });
        }
        let in_slots = state.slots.is_some();
        self.participants.insert(participant.clone(), state);
        if in_slots {
            // Its first offer carries the slots it needs now.
            self.allocate_now(&participant);
        }
        self.renegotiate(&participant);
        Ok(())
    }

    /// Announces a room's active speaker when the loudest audio changes.
    fn speakers_tick(&mut self) {
        let now = Instant::now();
        for (room, members) in &self.rooms {
            let mut best: Option<(&ParticipantId, f32)> = None;
            let mut current_loudness = 0.0;
            let current = self.speakers.get(room).and_then(|s| s.current.as_ref());
            for m in members {
                let Some(p) = self.participants.get_mut(m) else {
                    continue;
                };
                for t in p.tracks.iter_mut().filter(|t| t.kind == MediaKind::Audio) {
                    // Silence may send nothing (DTX): let the loudness fade.
                    if t.last_level
                        .is_none_or(|at| now.duration_since(at) > SPEAKER_TICK)
                    {
                        t.loudness *= 0.5;
                    }
                    if Some(m) == current {
                        current_loudness = t.loudness;
                    }
                    if best.is_none_or(|(_, l)| t.loudness > l) {
                        best = Some((m, t.loudness));
                    }
                }
            }
            let Some((loudest, loudness)) = best else {
                continue;
            };
            let state = self.speakers.entry(room.clone()).or_insert(Speaker {
                current: None,
                since: now,
            });
            let changes = state.current.as_ref() != Some(loudest)
                && loudness >= SPEAKER_THRESHOLD
                && loudness > current_loudness + SPEAKER_MARGIN
                && (state.current.is_none() || now.duration_since(state.since) >= SPEAKER_HOLD);
            if !changes {
                continue;
            }
            tracing::debug!(room = %room, speaker = %loudest, loudness, "active speaker");
            state.current = Some(loudest.clone());
            state.since = now;
            for m in members {
                if let Some(p) = self.participants.get(m) {
                    let _ = p.events.send(SfuEvent::ActiveSpeaker {
                        participant: loudest.clone(),
                    });
                }
            }
        }
        self.speakers
            .retain(|room, _| self.rooms.contains_key(room));
        // Players follow the speaker (and anything else missed); cheap
        // without players.
        self.update_main_views();
    }

    /// Tells publishers which simulcast layers someone receives, so that they
    /// stop encoding and sending the others (and resume them when wanted).
    fn layers_tick(&mut self) {
        let now = Instant::now();
        let feeds = &self.main_feeds;
        for p in self.participants.values_mut() {
            for t in p
                .tracks
                .iter_mut()
                .filter(|t| t.kind == MediaKind::Video && t.layers.len() > 1)
            {
                // Players of the main view get the best layer.
                let players = feeds.contains_key(&t.id).then_some(Quality::High);
                let wanted = t
                    .layers
                    .wanted(t.subscribers.iter().map(|f| f.effective()).chain(players));
                let asked = t.asked_layers.clone().unwrap_or_else(|| t.layers.all());
                if wanted == asked {
                    t.fewer_since = None;
                    continue;
                }
                let adds = wanted.iter().any(|w| !asked.contains(w));
                if !adds {
                    let since = *t.fewer_since.get_or_insert(now);
                    if now.duration_since(since) < PAUSE_AFTER {
                        continue;
                    }
                }
                tracing::debug!(track = %t.id, layers = ?wanted, "layers wanted");
                t.fewer_since = None;
                t.asked_layers = Some(wanted.clone());
                let _ = p.events.send(SfuEvent::LayersWanted {
                    track_id: t.id.clone(),
                    layers: wanted,
                });
            }
        }
    }

    /// Sets `quality` on this participant's forwards of `tracks`; returns
    /// those of `tracks` it does not receive.
    fn set_quality(
        &mut self,
        participant: &ParticipantId,
        tracks: &[String],
        quality: Quality,
    ) -> Result<Vec<String>, SfuError> {
        let sub = self
            .participants
            .get(participant)
            .map(|p| p.subscriber)
            .ok_or(SfuError::UnknownParticipant)?;
        let mut unknown: Vec<&String> = tracks.iter().collect();
        unknown.sort();
        unknown.dedup();
        for t in self
            .participants
            .values_mut()
            .flat_map(|p| p.tracks.iter_mut())
        {
            let Some(at) = unknown.iter().position(|w| **w == t.id) else {
                continue;
            };
            if let Some(fwd) = t.subscribers.iter_mut().find(|f| f.sub == sub) {
                fwd.quality = quality;
                unknown.swap_remove(at);
            }
        }
        Ok(unknown.into_iter().cloned().collect())
    }

    fn leave(&mut self, participant: &ParticipantId) {
        let Some(mut state) = self.participants.remove(participant) else {
            return;
        };
        for t in &mut state.tracks {
            self.return_slots(t);
        }
        if let Some(members) = self.rooms.get_mut(&state.room) {
            members.retain(|m| m != participant);
            if members.is_empty() {
                self.rooms.remove(&state.room);
            }
        }
        if let Some(speaker) = self.speakers.get_mut(&state.room) {
            if speaker.current.as_ref() == Some(participant) {
                speaker.current = None;
            }
        }
        let track_ids: Vec<String> = state.tracks.iter().map(|t| t.id.clone()).collect();
        self.unsubscribe_everyone(&state.room, &track_ids);
        // Drop this participant's subscriber connection from others' track lists.
        for p in self.participants.values_mut() {
            for t in &mut p.tracks {
                t.subscribers.retain(|f| f.sub != state.subscriber);
            }
        }
        self.remove_peer(state.publisher);
        self.remove_peer(state.subscriber);
        // Several may leave at once: one trim a little later for all.
        self.trim_at
            .get_or_insert_with(|| Instant::now() + TRIM_DELAY);
    }

    /// Removes tracks from every subscriber connection in the room.
    fn unsubscribe_everyone(&mut self, room: &RoomId, track_ids: &[String]) {
        let members = self.rooms.get(room).cloned().unwrap_or_default();
        for m in members {
            let Some(sub) = self.participants.get(&m).map(|p| p.subscriber) else {
                continue;
            };
            let mut changed = false;
            if let Some(slot) = self.peers.get_mut(&sub) {
                for id in track_ids {
                    match slot.peer.remove_send_track(id) {
                        Ok(true) => changed = true,
                        Ok(false) => {}
                        Err(e) => tracing::warn!("unsubscribe {id}: {e}"),
                    }
                }
            }
            if changed {
                if let Some(p) = self.participants.get_mut(&m) {
                    p.sub_dirty = true;
                }
                self.renegotiate(&m);
            }
        }
        // A player's main view may have lost its source.
        self.update_main_views();
    }

    fn publish(&mut self, participant: &ParticipantId, sdp: String) -> Result<String, SfuError> {
        let key = self
            .participants
            .get(participant)
            .map(|p| p.publisher)
            .ok_or(SfuError::UnknownParticipant)?;
        let slot = self
            .peers
            .get_mut(&key)
            .ok_or(SfuError::UnknownParticipant)?;
        self.touched.push(key);
        let answer = slot.peer.accept_offer(Instant::now(), sdp)?;
        // An offer with new ICE credentials restarted ICE: ours changed too.
        self.note_ufrag(key, crate::peer::ufrag_in(&answer));
        Ok(answer)
    }

    /// Routes STUN for the peer's current ufrag (new after an ICE restart;
    /// the old one stays until the new path works, see `note_path`).
    fn sync_ufrag(&mut self, key: PeerKey) {
        let ufrag = self.peers.get(&key).and_then(|s| s.peer.ufrag());
        self.note_ufrag(key, ufrag);
    }

    /// As [`Engine::sync_ufrag`], with the ufrag of the local description
    /// just made (writing the description out again costs more than the
    /// rest of a renegotiation's bookkeeping).
    fn note_ufrag(&mut self, key: PeerKey, ufrag: Option<String>) {
        let Some(ufrag) = ufrag else {
            return;
        };
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        if slot.ufrags.last() == Some(&ufrag) {
            return;
        }
        if !slot.ufrags.is_empty() {
            tracing::debug!(peer = key, owner = %slot.owner, pc = ?slot.kind, "ICE restart");
            if slot.kind == PcKind::Subscriber {
                // The client's checks with its new credentials can overtake
                // its answer: keep them until it arrives.
                slot.awaiting_answer = true;
            }
        }
        slot.ufrags.push(ufrag.clone());
        self.by_ufrag.insert(ufrag, key);
    }

    /// The stack sends media or DTLS on `path` now: when that is a new path
    /// (ICE restart, or a new pair selected), the peer's other remote
    /// addresses and old ufrags stop being routed to it.
    fn note_path(&mut self, key: PeerKey, path: (Proto, SocketAddr)) {
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        let changed = slot.path.is_some_and(|p| p != path);
        slot.path = Some(path);
        let stale: Vec<(Proto, SocketAddr)> = if changed {
            slot.addrs.iter().copied().filter(|a| *a != path).collect()
        } else {
            Vec::new()
        };
        slot.addrs.retain(|a| !stale.contains(a));
        let old_ufrags: Vec<String> = slot
            .ufrags
            .drain(..slot.ufrags.len().saturating_sub(1))
            .collect();
        if changed || !old_ufrags.is_empty() {
            tracing::debug!(peer = key, owner = %slot.owner, pc = ?slot.kind, remote = %path.1,
                forgotten = stale.len(), "media path");
        }
        for a in stale {
            if self.by_addr.get(&a) == Some(&key) {
                self.by_addr.remove(&a);
            }
        }
        for u in old_ufrags {
            if self.by_ufrag.get(&u) == Some(&key) {
                self.by_ufrag.remove(&u);
            }
        }
    }

    /// Restarts ICE on a participant's subscriber connection.
    fn restart_ice(&mut self, participant: &ParticipantId) -> Result<(), SfuError> {
        let key = self
            .participants
            .get(participant)
            .map(|p| p.subscriber)
            .ok_or(SfuError::UnknownParticipant)?;
        let slot = self
            .peers
            .get_mut(&key)
            .ok_or(SfuError::UnknownParticipant)?;
        if slot.ufrags.is_empty() {
            // Never offered: the first offer has fresh credentials anyway.
            return Ok(());
        }
        slot.peer.restart_ice();
        if let Some(p) = self.participants.get_mut(participant) {
            p.sub_dirty = true;
        }
        self.renegotiate(participant);
        Ok(())
    }

    fn subscriber_answer(
        &mut self,
        participant: &ParticipantId,
        sdp: String,
    ) -> Result<(), SfuError> {
        let (key, outstanding) = self
            .participants
            .get(participant)
            .map(|p| (p.subscriber, p.sub_offer_outstanding))
            .ok_or(SfuError::UnknownParticipant)?;
        if !outstanding {
            return Err(SfuError::Negotiation(
                "no subscriber offer is outstanding".into(),
            ));
        }
        let slot = self
            .peers
            .get_mut(&key)
            .ok_or(SfuError::UnknownParticipant)?;
        self.touched.push(key);
        let now = Instant::now();
        slot.peer.accept_answer(now, sdp)?;
        slot.awaiting_answer = false;
        for (proto, local, remote, data) in std::mem::take(&mut slot.early) {
            slot.peer.handle_input(now, proto, local, remote, data);
        }
        let connected = slot.connected;
        let mut in_slots = false;
        if let Some(p) = self.participants.get_mut(participant) {
            p.sub_offer_outstanding = false;
            if let Some(s) = p.slots.as_mut() {
                s.answered();
                in_slots = true;
            }
        }
        if in_slots {
            // Tracks waiting for the slots just negotiated take them now.
            self.allocate_now(participant);
        }
        self.renegotiate(participant);
        if connected {
            self.request_keyframes_for(key, false);
        }
        Ok(())
    }

    /// Sends a new subscriber offer when tracks changed and none is outstanding.
    fn renegotiate(&mut self, participant: &ParticipantId) {
        let Some(p) = self.participants.get_mut(participant) else {
            return;
        };
        if p.sub_offer_outstanding || !p.sub_dirty {
            return;
        }
        // Spaced: while people join, tracks appear one after another, and
        // each offer carries every track of the connection (its cost grows
        // with the meeting). Changes within the spacing go in one offer,
        // sent by `renegotiate_waiting`.
        let now = Instant::now();
        if p.last_sub_offer
            .is_some_and(|t| now.duration_since(t) < OFFER_SPACING)
        {
            return;
        }
        let Some(slot) = self.peers.get_mut(&p.subscriber) else {
            return;
        };
        match slot.peer.create_offer(Instant::now()) {
            Ok(sdp) => {
                p.sub_dirty = false;
                p.sub_offer_outstanding = true;
                p.last_sub_offer = Some(now);
                if let Some(s) = p.slots.as_mut() {
                    s.offered();
                }
                // Making and applying an offer copies every track's SDP
                // several times over; after a burst of joins that freed heap
                // stays resident unless it is given back (one trim, 1.4 ms at
                // 30 participants, for the whole burst).
                self.trim_at.get_or_insert(now + TRIM_DELAY);
                let ufrag = crate::peer::ufrag_in(&sdp);
                let _ = p.events.send(SfuEvent::SubscriberOffer { sdp });
                let key = p.subscriber;
                self.touched.push(key);
                self.note_ufrag(key, ufrag);
            }
            Err(e) => tracing::warn!(participant = %participant, "subscriber offer: {e}"),
        }
    }

    /// Sends the subscriber offers that waited for their spacing.
    fn renegotiate_waiting(&mut self) {
        let waiting: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.sub_dirty && !p.sub_offer_outstanding)
            .map(|(id, _)| id.clone())
            .collect();
        for id in waiting {
            self.renegotiate(&id);
        }
    }

    /// Asks for a keyframe of the video tracks `sub` receives, of the layer
    /// each sends it: of every one (`all`: the connection has just come up
    /// or back, and what was forwarded while it was away is gone), or only
    /// of those not started for it yet (after a renegotiation: a track
    /// already flowing needs none).
    fn request_keyframes_for(&mut self, sub: PeerKey, all: bool) {
        let now = Instant::now();
        let mut wanted = Vec::new();
        for (pid, p) in &self.participants {
            for t in &p.tracks {
                if t.kind != MediaKind::Video {
                    continue;
                }
                let Some(f) = t.subscribers.iter().find(|f| f.sub == sub && f.sending()) else {
                    continue;
                };
                if f.current().is_some() && !all {
                    continue;
                }
                let layer = f.current().or_else(|| t.layers.choose(f.effective(), now));
                if let Some(layer) = layer {
                    wanted.push((pid.clone(), t.id.clone(), layer.to_owned()));
                }
            }
        }
        for (pid, track, layer) in wanted {
            self.request_keyframe(&pid, &track, Some(&layer), KEYFRAME_INTERVAL);
        }
    }

    /// Asks `publisher` for a keyframe of `track`: of `layer`, or of every
    /// layer it has (`None`), each at most once per `gap` (a request that
    /// comes sooner is held and sent when the gap has passed, unless a
    /// keyframe of the layer came meanwhile).
    fn request_keyframe(
        &mut self,
        publisher: &ParticipantId,
        track: &str,
        layer: Option<&str>,
        gap: Duration,
    ) {
        let now = Instant::now();
        let Some(p) = self.participants.get_mut(publisher) else {
            return;
        };
        let Some(t) = p.tracks.iter_mut().find(|t| t.id == track) else {
            return;
        };
        let layers = match layer {
            Some(l) => vec![l.to_owned()],
            None if t.layers.len() == 0 => vec![String::new()],
            None => t.layers.all(),
        };
        let ask: Vec<String> = layers
            .into_iter()
            .filter(|l| t.keyframe_ask(l).ask(now, gap))
            .collect();
        if ask.is_empty() {
            return;
        }
        let recv_track = t.recv_track.clone();
        let key = p.publisher;
        if let Some(slot) = self.peers.get_mut(&key) {
            match slot.peer.request_keyframe(now, &recv_track, &ask) {
                Ok(sent) => self.stats.keyframe_requests_sent += sent,
                Err(e) => tracing::debug!("keyframe request: {e}"),
            }
            self.touched.push(key);
        }
    }

    fn inbound(&mut self, msg: Inbound) {
        match msg {
            Inbound::Datagram {
                proto,
                local,
                remote,
                data,
            } => {
                match proto {
                    Proto::Udp => self.stats.udp_datagrams_in += 1,
                    Proto::Tcp => self.stats.tcp_frames_in += 1,
                }
                self.stats.bytes_in += data.len() as u64;
                let Some(key) = self.route(proto, remote, &data) else {
                    self.stats.datagrams_unrouted += 1;
                    return;
                };
                if let Some(slot) = self.peers.get_mut(&key) {
                    if slot.awaiting_answer {
                        if slot.early.len() < EARLY_DATAGRAMS {
                            slot.early.push((proto, local, remote, data));
                        }
                        return;
                    }
                    slot.peer
                        .handle_input(Instant::now(), proto, local, remote, data);
                    self.touched.push(key);
                }
            }
            Inbound::TcpOpen { remote, writer } => {
                self.tcp.insert(remote, writer);
            }
            Inbound::TcpClosed { remote } => {
                self.tcp.remove(&remote);
                self.by_addr.remove(&(Proto::Tcp, remote));
            }
        }
    }

    /// Which peer a datagram is for (see [`net::demux`]); a STUN request
    /// naming the peer's ufrag teaches its address.
    fn route(&mut self, proto: Proto, remote: SocketAddr, data: &[u8]) -> Option<PeerKey> {
        match net::demux(&self.by_ufrag, &self.by_addr, proto, remote, data) {
            net::Route::ByUfrag(key) => {
                let addr = (proto, remote);
                if self.by_addr.insert(addr, key) != Some(key) {
                    if let Some(slot) = self.peers.get_mut(&key) {
                        if !slot.addrs.contains(&addr) {
                            slot.addrs.push(addr);
                        }
                    }
                }
                Some(key)
            }
            net::Route::ByAddr(key) => Some(key),
            net::Route::Unrouted => None,
        }
    }

    /// Queues a UDP datagram for `send_udp` or hands a frame to its TCP writer.
    fn transmit(&mut self, proto: Proto, local: SocketAddr, remote: SocketAddr, data: BytesMut) {
        match proto {
            Proto::Udp => self.udp_out.push(net::Outgoing {
                local,
                remote,
                data,
            }),
            Proto::Tcp => {
                if let Some(w) = self.tcp.get(&remote) {
                    let len = data.len() as u64;
                    if w.send(data).is_ok() {
                        self.stats.datagrams_out += 1;
                        self.stats.bytes_out += len;
                    }
                }
            }
        }
    }

    /// Sends the queued UDP datagrams, in order, batched per socket.
    fn send_udp(&mut self) {
        if self.udp_out.is_empty() {
            return;
        }
        let mut out = std::mem::take(&mut self.udp_out);
        // Grouped by socket; a stable sort keeps each destination's order.
        if out.windows(2).any(|w| w[0].local != w[1].local) {
            out.sort_by_key(|o| o.local);
        }
        let mut rest = &out[..];
        while let Some(first) = rest.first() {
            let n = rest.iter().take_while(|o| o.local == first.local).count();
            let (group, tail) = rest.split_at(n);
            rest = tail;
            let Some(sock) = self
                .udp
                .get(&group[0].local)
                .or_else(|| self.udp.values().next())
            else {
                continue;
            };
            let r = net::send_batch(sock, group);
            self.stats.datagrams_out += r.datagrams as u64;
            self.stats.bytes_out += r.bytes;
            self.stats.udp_send_calls += r.calls;
        }
        // Keep the allocation for the next flush.
        out.clear();
        self.udp_out = out;
    }

    /// Drains every touched peer: datagrams out, events handled, timers set.
    fn flush(&mut self) {
        while let Some(key) = self.touched.pop() {
            let mut events = Vec::new();
            let mut out = Vec::new();
            let Some(slot) = self.peers.get_mut(&key) else {
                continue;
            };
            while let Some(ev) = slot.peer.poll_event() {
                events.push(ev);
            }
            while let Some(t) = slot.peer.poll_transmit() {
                out.push(t);
            }
            // The last media/DTLS datagram tells the path the stack uses
            // (STUN answers go to every checking address).
            let sent_on = out
                .iter()
                .rev()
                .find(|t| !crate::peer::is_stun(&t.data))
                .map(|t| (t.proto, t.remote));
            let new_path = sent_on.filter(|p| slot.path != Some(*p) || slot.ufrags.len() > 1);
            // A peer whose first local description was made elsewhere than
            // in `publish`/`renegotiate` gets its ufrag routed here.
            let unrouted = slot.ufrags.is_empty();
            let deadline = slot.peer.poll_timeout();
            if slot.deadline != deadline {
                if let Some(d) = slot.deadline {
                    self.timers.remove(&(d, key));
                }
                if let Some(d) = deadline {
                    self.timers.insert((d, key));
                }
                slot.deadline = deadline;
            }
            for t in out {
                self.transmit(t.proto, t.local, t.remote, t.data);
            }
            if unrouted {
                self.sync_ufrag(key);
            }
            if let Some(path) = new_path {
                self.note_path(key, path);
            }
            for ev in events {
                self.peer_event(key, ev);
            }
        }
        self.send_udp();
    }

    fn peer_event(&mut self, key: PeerKey, ev: PeerEvent) {
        if self.viewer_peer_event(key, &ev) {
            return;
        }
        let Some((owner, kind)) = self.peers.get(&key).map(|s| (s.owner.clone(), s.kind)) else {
            return;
        };
        match ev {
            PeerEvent::State(state) => {
                if let Some(slot) = self.peers.get_mut(&key) {
                    slot.connected = state == ConnectionState::Connected;
                }
                if let Some(p) = self.participants.get_mut(&owner) {
                    let _ = p.events.send(SfuEvent::Connection { pc: kind, state });
                }
                match (kind, state) {
                    (PcKind::Subscriber, ConnectionState::Connected) => {
                        self.request_keyframes_for(key, true)
                    }
                    (PcKind::Publisher, ConnectionState::Failed | ConnectionState::Closed) => {
                        self.unpublish_all(&owner)
                    }
                    _ => {}
                }
            }
            PeerEvent::Rtp(incoming) => {
                self.count_rtp_in(&incoming.packet);
                self.on_rtp(&owner, incoming);
            }
            PeerEvent::KeyframeRequest { track } => {
                // A subscriber's decoder needs a keyframe of what it gets now
                // (on a slot: of the track the slot carries).
                let track = self
                    .participants
                    .get(&owner)
                    .and_then(|p| p.slots.as_ref())
                    .and_then(|s| s.source_of(&track))
                    .map(str::to_owned)
                    .unwrap_or(track);
                let now = Instant::now();
                let found = self.participants.iter().find_map(|(id, p)| {
                    let t = p.tracks.iter().find(|t| t.id == track)?;
                    let layer = t.subscribers.iter().find(|f| f.sub == key).and_then(|f| {
                        f.current()
                            .or_else(|| t.layers.choose(f.effective(), now))
                            .map(str::to_owned)
                    });
                    Some((id.clone(), layer))
                });
                if let Some((publisher, layer)) = found {
                    self.request_keyframe(
                        &publisher,
                        &track,
                        layer.as_deref(),
                        REPAIR_KEYFRAME_INTERVAL,
                    );
                }
            }
            PeerEvent::TrackClosed { track } => {
                let closed = self.participants.get_mut(&owner).and_then(|p| {
                    let pos = p.tracks.iter().position(|t| t.recv_track == track)?;
                    let t = p.tracks.remove(pos);
                    let _ = p.events.send(SfuEvent::TrackUnpublished {
                        track_id: t.id.clone(),
                    });
                    Some(t)
                });
                let id = closed.map(|mut t| {
                    self.return_slots(&mut t);
                    t.id
                });
                if let (Some(id), Some(room)) =
                    (id, self.participants.get(&owner).map(|p| p.room.clone()))
                {
                    self.unsubscribe_everyone(&room, &[id]);
                }
            }
        }
    }

    /// Counts a publisher's packet, and the sequence numbers skipped
    /// before it. A late packet (reordered or retransmitted) counts no
    /// loss; a jump of more than `MAX_GAP` is a restarted stream, not loss.
    fn count_rtp_in(&mut self, packet: &crate::peer::RtpPacket) {
        const MAX_GAP: i16 = 1000;
        /// Streams remembered at most (a bound, not a working limit).
        const MAX_STREAMS: usize = 4096;
        self.stats.rtp_packets_in += 1;
        self.stats.rtp_payload_bytes_in += packet.payload.len() as u64;
        let seq = packet.sequence_number;
        let last = self.last_seq.get(&packet.ssrc).copied();
        if last.is_none() && self.last_seq.len() >= MAX_STREAMS {
            self.last_seq.clear();
        }
        match last {
            None => {
                self.last_seq.insert(packet.ssrc, seq);
            }
            Some(last) => {
                let delta = seq.wrapping_sub(last) as i16;
                if delta > 0 {
                    if delta <= MAX_GAP {
                        self.stats.rtp_packets_lost += (delta - 1) as u64;
                    }
                    self.last_seq.insert(packet.ssrc, seq);
                }
            }
        }
    }

    fn unpublish_all(&mut self, owner: &ParticipantId) {
        let Some(p) = self.participants.get_mut(owner) else {
            return;
        };
        let mut tracks = std::mem::take(&mut p.tracks);
        let ids: Vec<String> = tracks.iter().map(|t| t.id.clone()).collect();
        for id in &ids {
            let _ = p.events.send(SfuEvent::TrackUnpublished {
                track_id: id.clone(),
            });
        }
        let room = p.room.clone();
        for t in &mut tracks {
            self.return_slots(t);
        }
        self.unsubscribe_everyone(&room, &ids);
    }

    fn on_rtp(&mut self, owner: &ParticipantId, incoming: Incoming) {
        let Incoming {
            track: recv_track,
            kind,
            codec,
            layer,
            audio_level,
            red,
            packet,
        } = incoming;
        let Some(p) = self.participants.get_mut(owner) else {
            return;
        };
        let pos = match p.tracks.iter().position(|t| t.recv_track == recv_track) {
            Some(pos) => pos,
            None => {
                // First packet of a new track: publish it to the room.
                let Some(codec) = codec else { return };
                let id = new_track_id();
                p.tracks.push(PubTrack {
                    id: id.clone(),
                    recv_track,
                    kind,
                    video: (kind == MediaKind::Video)
                        .then(|| VideoCodec::from_mime(&codec.mime_type)),
                    codec: codec.clone(),
                    layers: Layers::default(),
                    subscribers: Vec::new(),
                    keyframes: Vec::new(),
                    asked_layers: None,
                    fewer_since: None,
                    loudness: 0.0,
                    last_level: None,
                    since: Instant::now(),
                });
                let _ = p.events.send(SfuEvent::TrackPublished {
                    track_id: id.clone(),
                    kind,
                });
                let room = p.room.clone();
                self.subscribe_room(owner, &room, &id, kind, &codec);
                self.update_main_views();
                match self
                    .participants
                    .get(owner)
                    .and_then(|p| p.tracks.iter().position(|t| t.id == id))
                {
                    Some(pos) => pos,
                    None => return,
                }
            }
        };
        let Some(p) = self.participants.get_mut(owner) else {
            return;
        };
        let Some(track) = p.tracks.get_mut(pos) else {
            return;
        };
        let now = Instant::now();
        track.layers.saw(&layer, now);
        track.layers.note_seq(&layer, packet.sequence_number);
        // Payload plus RTP, SRTP and UDP/IP headers: what a layer costs a subscriber.
        track.layers.count(&layer, packet.payload.len() + 60, now);
        if let Some(level) = audio_level {
            let loud = f32::from(127 - level.min(127)) / 127.0;
            track.loudness = 0.85 * track.loudness + 0.15 * loud;
            track.last_level = Some(now);
        }
        let mut sent = 0;
        let mut want_keyframe = false;
        if let Some(video) = track.video {
            // A late copy of an old keyframe answers no request.
            if crate::codec::is_keyframe_start(video, &packet.payload)
                && !track.layers.last_was_late(&layer)
            {
                if let Some(at) = track.keyframe_ask(&layer).answered() {
                    tracing::debug!(
                        track = %track.id,
                        layer = %layer,
                        wait_ms = now.duration_since(at).as_millis() as u64,
                        "keyframe after request"
                    );
                }
            } else if track
                .keyframes
                .iter()
                .any(|k| k.layer == layer && k.held_is_due(now))
            {
                want_keyframe = true;
            }
        }
        for fwd in &mut track.subscribers {
            if !fwd.sending() {
                continue;
            }
            let Some(slot) = self.peers.get_mut(&fwd.sub).filter(|s| s.connected) else {
                continue;
            };
            let out = match fwd.on_packet(
                &track.layers,
                &layer,
                &packet,
                track.video,
                track.codec.clock_rate,
                now,
            ) {
                Verdict::Send(out) => out,
                Verdict::Skip => continue,
                Verdict::NeedKeyframe => {
                    want_keyframe = true;
                    continue;
                }
            };
            // RED goes out as RED, or as its primary Opus where not accepted.
            let out_track = fwd.out_track(&track.id);
            let result = if red {
                slot.peer.send_red(now, out_track, &out)
            } else {
                slot.peer.send_rtp(now, out_track, &out)
            };
            match result {
                Ok(()) => {
                    sent += 1;
                    self.stats.rtp_payload_bytes_forwarded += out.payload.len() as u64;
                    self.touched.push(fwd.sub);
                }
                Err(e) => tracing::trace!("forward: {e}"),
            }
        }
        let (to_viewers, viewer_wants_keyframe) = viewers::forward_to_viewers(
            &self.main_feeds,
            &mut self.viewers,
            &mut self.peers,
            &mut self.touched,
            track,
            &layer,
            &packet,
            now,
        );
        sent += to_viewers;
        want_keyframe |= viewer_wants_keyframe;
        self.stats.rtp_packets_forwarded += sent;
        if want_keyframe {
            let id = track.id.clone();
            self.request_keyframe(owner, &id, Some(&layer), KEYFRAME_INTERVAL);
        }
    }

    /// Adds a new track to every other member's subscriber connection.
    fn subscribe_room(
        &mut self,
        owner: &ParticipantId,
        room: &RoomId,
        track: &str,
        kind: MediaKind,
        codec: &Codec,
    ) {
        let members = self.rooms.get(room).cloned().unwrap_or_default();
        let mut subs = Vec::new();
        for m in members.iter().filter(|m| *m != owner) {
            let Some(p) = self.participants.get_mut(m) else {
                continue;
            };
            let sub = p.subscriber;
            if sub != NO_PEER && p.slots.as_mut().is_some_and(|s| s.admits(kind, codec)) {
                // Sent when it takes a slot (the next allocation).
                subs.push(Forward::in_slots(sub, Quality::High));
                continue;
            }
            let Some(slot) = self.peers.get_mut(&sub) else {
                continue;
            };
            match slot.peer.add_send_track(owner, track, kind, codec) {
                Ok(()) => {
                    subs.push(Forward::new(sub, Quality::High));
                    if let Some(p) = self.participants.get_mut(m) {
                        p.sub_dirty = true;
                    }
                    self.renegotiate(m);
                }
                Err(e) => tracing::warn!("subscribe {m} to {track}: {e}"),
            }
        }
        if let Some(t) = self
            .participants
            .get_mut(owner)
            .and_then(|p| p.tracks.iter_mut().find(|t| t.id == track))
        {
            t.subscribers.extend(subs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_requests_are_throttled_and_held_per_layer() {
        let t0 = Instant::now();
        let mut q = KeyframeAsk::new("q");
        assert!(q.ask(t0, KEYFRAME_INTERVAL));
        // Sooner than the gap: held, due when the gap has passed.
        let t1 = t0 + Duration::from_millis(100);
        assert!(!q.ask(t1, KEYFRAME_INTERVAL));
        assert!(!q.held_is_due(t1));
        assert!(q.held_is_due(t0 + KEYFRAME_INTERVAL));
        // A repair request waits for its own, longer gap.
        let t2 = t0 + Duration::from_millis(400);
        assert!(!q.ask(t2, REPAIR_KEYFRAME_INTERVAL));
        assert!(q.held_is_due(t0 + KEYFRAME_INTERVAL));
        // The keyframe came: nothing is held, and the wait is reported.
        assert_eq!(q.answered(), Some(t0));
        assert!(!q.held_is_due(t0 + REPAIR_KEYFRAME_INTERVAL));
        assert!(q.ask(t0 + REPAIR_KEYFRAME_INTERVAL, REPAIR_KEYFRAME_INTERVAL));
    }

    #[test]
    fn a_repair_request_held_is_due_after_the_repair_gap() {
        let t0 = Instant::now();
        let mut f = KeyframeAsk::new("f");
        assert!(f.ask(t0, REPAIR_KEYFRAME_INTERVAL));
        assert!(!f.ask(t0 + Duration::from_millis(500), REPAIR_KEYFRAME_INTERVAL));
        assert!(!f.held_is_due(t0 + Duration::from_millis(900)));
        assert!(f.held_is_due(t0 + REPAIR_KEYFRAME_INTERVAL));
    }
}
