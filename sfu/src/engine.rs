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
use crate::net;
use crate::peer::{Codec, Direction, Incoming, LocalCandidate, Peer, PeerEvent, Proto};
use crate::room::{Room, RoomEvent};
use crate::ViewerEvent;
use crate::{
    Candidate, ConnectionState, MediaKind, ParticipantId, PcKind, Quality, RoomId, SfuConfig,
    SfuError, SfuEvent,
};

mod allocation;
mod blocking;
mod demux;
mod driver;
mod overload;
mod sink;
mod slots;
mod stats;
mod viewers;
mod workers;
use sink::{Sink, SinkCodec};
pub use stats::SfuStats;
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

/// How long a simulcast layer goes unwanted before its publisher is told to pause it.
const PAUSE_AFTER: Duration = Duration::from_secs(3);

/// How long after a participant left the engine gives freed memory back.
const TRIM_DELAY: Duration = Duration::from_secs(2);

/// Datagrams kept for a subscriber connection awaiting its first answer.
const EARLY_DATAGRAMS: usize = 16;

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
    /// Blocks or unblocks one kind of a participant's media (see `blocking`).
    Block {
        participant: ParticipantId,
        kind: MediaKind,
        blocked: bool,
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
    /// The figures of each participant of a room (see `stats`).
    Figures {
        room: RoomId,
        reply: oneshot::Sender<Vec<crate::ParticipantFigures>>,
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
        // STUN and DTLS that find the media queue full wait here instead of
        // being dropped (`overload`: handshakes are never refused).
        let (hs_tx, hs_rx) = mpsc::channel(1024);
        let tasks = sockets.spawn_readers(in_tx, hs_tx);
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
            timers: BTreeSet::new(),
            touched: Vec::new(),
            udp_out: Vec::new(),
            scratch_events: Vec::new(),
            scratch_out: Vec::new(),
            last_seq: HashMap::new(),
            stats: SfuStats::default(),
            tasks,
            viewers: HashMap::new(),
            main_feeds: HashMap::new(),
            alloc_config: allocation::AllocConfig {
                last_n: config.last_n,
                audio_loudest: config.audio_loudest,
            },
            trim_at: None,
            load: overload::Load::new(Instant::now(), config.overload),
            sending: workers::SendQueue::default(),
            workers: match config.send_workers {
                0 => workers::default_count(),
                n => n.min(workers::MAX),
            },
            send_scratch: Vec::new(),
        };
        tracing::info!(send_workers = engine.workers, "media engine");
        tokio::spawn(engine.run(cmd_rx, in_rx, hs_rx));
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
    /// participant ([`Participant::set_featured`], [`Sfu::set_featured_id`])
    /// while it publishes, else the
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

    /// Blocks (`blocked`) or unblocks one kind of a participant's media,
    /// as a chair's mute: while blocked, none of its packets of that kind
    /// are forwarded to anyone (subscribers with a track per published
    /// track, subscribers in slots, players of the main view), whatever
    /// its client keeps sending; a blocked audio track neither makes its
    /// participant the active speaker nor takes a place among the loudest
    /// audios, and a blocked video takes no last-N place. The block belongs
    /// to the participant, not to a track: it holds for tracks published
    /// later (block between [`Sfu::join`] and the first publish to have a
    /// participant join muted). Unblocking resumes forwarding at once;
    /// video restarts at a keyframe asked of the publisher.
    ///
    /// A participant not in the media plane (never joined, or left) is
    /// [`SfuError::UnknownParticipant`], as for [`Sfu::set_featured_id`];
    /// its blocks are forgotten when it leaves. Setting what is already
    /// set is `Ok` and changes nothing.
    pub async fn block_media(
        &self,
        participant_id: &str,
        kind: MediaKind,
        blocked: bool,
    ) -> Result<(), SfuError> {
        let participant = participant_id.to_owned();
        self.ask(|reply| Command::Block {
            participant,
            kind,
            blocked,
            reply,
        })
        .await
    }

    /// [`Participant::set_featured`] by participant id: the server marks
    /// whoever holds the floor (a WHIP publisher, another session's
    /// participant) as the room's preferred main view, and unmarks the
    /// previous one. A participant not in the media plane is
    /// [`SfuError::UnknownParticipant`].
    pub async fn set_featured_id(
        &self,
        participant_id: &str,
        featured: bool,
    ) -> Result<(), SfuError> {
        let participant = participant_id.to_owned();
        self.ask(|reply| Command::Feature {
            participant,
            featured,
            reply,
        })
        .await
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
    /// Where a send worker last sent media for this peer (`workers`): read
    /// as the stack's path when the peer is next drained.
    sent_on: Option<(Proto, SocketAddr)>,
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
    /// The kinds of its media the server blocked (not forwarded).
    blocked: blocking::Blocked,
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
    /// Each room's behaviour, sans I/O: members, the active speaker, what
    /// each subscriber receives ([`crate::room`]).
    rooms: HashMap<RoomId, Room>,
    timers: BTreeSet<(Instant, PeerKey)>,
    /// Peers that may have datagrams or events to drain.
    touched: Vec<PeerKey>,
    /// UDP datagrams produced while draining peers, by the announced
    /// address to send them from; sent together at the end of `flush`.
    udp_out: Vec<net::Outgoing>,
    /// `flush`'s buffers for one peer's events and datagrams, kept between
    /// flushes so that draining a peer allocates nothing.
    scratch_events: Vec<PeerEvent>,
    scratch_out: Vec<crate::peer::Transmit>,
    /// Last sequence number seen per publisher SSRC (loss counting).
    last_seq: HashMap<u32, u16>,
    stats: SfuStats,
    tasks: Vec<JoinHandle<()>>,
    /// Players of rooms' main views, by their connection's key.
    viewers: HashMap<PeerKey, viewers::ViewerState>,
    /// Which players receive a published track now (by room-wide track id).
    main_feeds: HashMap<String, Vec<PeerKey>>,
    /// Last-N and loudest-audio settings (of every new room).
    alloc_config: allocation::AllocConfig,
    /// The engine's own load, and what it sheds ([`overload`]).
    load: overload::Load,
    /// Connections with forwarded packets queued, written at the end of
    /// each flush ([`workers`]).
    sending: workers::SendQueue,
    /// Threads that write queued packets (the engine's own included).
    workers: usize,
    /// Each send worker's datagrams, kept between flushes.
    send_scratch: Vec<Vec<net::Outgoing>>,
}

fn new_track_id() -> String {
    format!("t-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

impl Engine {
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
            Command::Block {
                participant,
                kind,
                blocked,
                reply,
            } => {
                let _ = reply.send(self.block_media(&participant, kind, blocked));
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
                s.shed_level = self.load.shed() as u8;
                s.engine_busy = self.load.last_busy;
                let _ = reply.send(s);
            }
            Command::Figures { room, reply } => {
                let _ = reply.send(self.participant_figures(&room));
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
                sent_on: None,
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
            blocked: blocking::Blocked::default(),
            slots: (receive && in_slots).then(slots::Slots::default),
        };
        // Subscribe the newcomer to every live track in the room.
        let config = self.alloc_config;
        let shed = self.load.shed();
        let core = self.rooms.entry(room).or_insert_with(|| {
            let mut r = Room::new(config);
            r.set_shed(shed);
            r
        });
        let others: Vec<ParticipantId> = core.members().to_vec();
        core.handle_join(&participant);
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
            .rooms
            .get(&state.room)
            .and_then(|r| r.speaker().cloned())
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
        for (room, core) in &mut self.rooms {
            let mut loudness: Vec<(&str, f32)> = Vec::new();
            for m in core.members() {
                let Some(p) = self.participants.get_mut(m) else {
                    continue;
                };
                let blocked = p.blocked.of(MediaKind::Audio);
                for t in p.tracks.iter_mut().filter(|t| t.kind == MediaKind::Audio) {
                    // Silence may send nothing (DTX): let the loudness fade.
                    if t.last_level
                        .is_none_or(|at| now.duration_since(at) > SPEAKER_TICK)
                    {
                        t.loudness *= 0.5;
                    }
                    // Blocked: nobody hears it, it does not speak.
                    if !blocked {
                        loudness.push((m.as_str(), t.loudness));
                    }
                }
            }
            let loudness: Vec<(String, f32)> = loudness
                .into_iter()
                .map(|(m, l)| (m.to_owned(), l))
                .collect();
            core.handle_loudness(now, loudness.iter().map(|(m, l)| (m.as_str(), *l)));
            while let Some(ev) = core.poll_event() {
                let RoomEvent::ActiveSpeaker(speaker) = ev;
                tracing::debug!(room = %room, speaker = %speaker, "active speaker");
                for m in core.members() {
                    if let Some(p) = self.participants.get(m) {
                        let _ = p.events.send(SfuEvent::ActiveSpeaker {
                            participant: speaker.clone(),
                        });
                    }
                }
            }
        }
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
        if let Some(core) = self.rooms.get_mut(&state.room) {
            core.handle_leave(participant);
            if core.members().is_empty() {
                self.rooms.remove(&state.room);
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
        let members = self.members(room);
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
        if p.blocked.of(t.kind) {
            // Nothing of it is forwarded: no decoder waits for a keyframe.
            return;
        }
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
                    codec: Codec::clone(&codec),
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
        let blocked = p.blocked.of(kind);
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
        if blocked {
            // The server blocked this kind of the publisher's media: it goes
            // to nobody, dropped before any per-subscriber work. Its layers
            // and loudness are still noted above, so that it ranks at once
            // when unblocked.
            self.stats.rtp_packets_blocked += 1;
            return;
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
                .any(|k| k.layer == *layer && k.held_is_due(now))
            {
                want_keyframe = true;
            }
        }
        for fwd in &mut track.subscribers {
            if !fwd.sending() || !sink::ready(&self.peers, fwd.sub) {
                continue;
            }
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
            let target = Sink {
                key: fwd.sub,
                track: fwd.out_track(&track.id),
                codec: SinkCodec::Own,
            };
            if sink::send(&mut self.peers, &mut self.sending, target, now, &out, red) {
                sent += 1;
                self.stats.rtp_payload_bytes_forwarded += out.payload.len() as u64;
            }
        }
        let (to_viewers, viewer_wants_keyframe) = viewers::forward_to_viewers(
            &self.main_feeds,
            &mut self.viewers,
            &mut self.peers,
            &mut self.sending,
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
            self.request_keyframe(owner, &id, Some(&*layer), KEYFRAME_INTERVAL);
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
        let members = self.members(room);
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
