//! Players of a room's main view (WHEP): connections where the client
//! offers to receive one audio and one video track and we answer sending.
//!
//! The main view is one participant of the room: the featured one (the
//! chair, or the floor holder: `Sfu::set_featured_id`) while it publishes
//! media that is not blocked (`blocking`), else the active speaker, else
//! the first member publishing. When it changes, each player's
//! two outgoing tracks move to the new source's tracks without renegotiation:
//! the same SSRC, continuous sequence numbers and timestamps, starting at a
//! keyframe asked of the new source ([`Forward::rebase`]). The RTCP of those
//! two streams (sender reports of the rewritten stream, NACKs answered over
//! RTX in the codec of each packet) is the connection's own: see
//! `Peer::answer_sending`.

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::mpsc;

use super::sink::{Sink, SinkCodec};
use super::{
    Command, Engine, PeerKey, PeerSlot, PubTrack, KEYFRAME_INTERVAL, REPAIR_KEYFRAME_INTERVAL,
};
use crate::forward::{Forward, Verdict};
use crate::peer::RtpPacket;
use crate::{
    ConnectionState, MediaKind, ParticipantId, PcKind, Quality, RoomId, SfuError, ViewerEvent,
};

/// A main view: the participant, its audio track, its video track.
type MainSource = (ParticipantId, Option<String>, Option<String>);

/// The msid stream id of what a player receives.
const STREAM: &str = "main";

/// One player, keyed in `Engine::viewers` by its connection's [`PeerKey`].
pub(super) struct ViewerState {
    room: RoomId,
    events: mpsc::UnboundedSender<ViewerEvent>,
    /// The participant shown now.
    source: Option<ParticipantId>,
    /// The source's tracks forwarded now (room-wide track ids).
    audio_track: Option<String>,
    video_track: Option<String>,
    /// Each outgoing track's continuity across sources.
    audio: Forward,
    video: Forward,
}

/// A player of a room's main view. Dropping it (or [`Viewer::close`]) closes
/// its connection.
pub struct Viewer {
    key: PeerKey,
    commands: mpsc::UnboundedSender<Command>,
    closed: bool,
}

impl Viewer {
    pub(super) fn new(key: PeerKey, commands: mpsc::UnboundedSender<Command>) -> Viewer {
        Viewer {
            key,
            commands,
            closed: false,
        }
    }

    /// A number that identifies the player within the media plane.
    pub fn id(&self) -> u64 {
        self.key
    }

    /// Closes the connection.
    pub fn close(mut self) {
        self.closed = true;
        let _ = self
            .commands
            .send(Command::ViewerLeave { viewer: self.key });
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self
                .commands
                .send(Command::ViewerLeave { viewer: self.key });
        }
    }
}

/// What a player's connection is asked to send, by track name.
const TRACKS: [(&str, MediaKind); 2] = [("audio", MediaKind::Audio), ("video", MediaKind::Video)];

impl Engine {
    /// A new player of `room`'s main view: answers its offer.
    pub(super) fn view(
        &mut self,
        room: RoomId,
        sdp: String,
        events: mpsc::UnboundedSender<ViewerEvent>,
    ) -> Result<(PeerKey, String), SfuError> {
        let key = self.add_peer(&format!("viewer-{}", self.next_key), PcKind::Subscriber)?;
        let answer = match self.peers.get_mut(&key) {
            Some(slot) => {
                // The client offered: nothing of ours to wait for.
                slot.awaiting_answer = false;
                slot.peer
                    .answer_sending(Instant::now(), sdp, STREAM, &TRACKS)
            }
            None => Err(SfuError::Stopped),
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                self.remove_peer(key);
                return Err(e);
            }
        };
        self.touched.push(key);
        self.sync_ufrag(key);
        self.viewers.insert(
            key,
            ViewerState {
                room,
                events,
                source: None,
                audio_track: None,
                video_track: None,
                audio: Forward::new(key, Quality::High),
                video: Forward::new(key, Quality::High),
            },
        );
        self.update_main_views();
        Ok((key, answer))
    }

    pub(super) fn viewer_leave(&mut self, key: PeerKey) {
        if self.viewers.remove(&key).is_some() {
            self.remove_peer(key);
            self.update_main_views();
        }
    }

    /// Handles a command about players; `None` when it is about something else.
    pub(super) fn viewer_command(&mut self, cmd: Command) -> Option<Command> {
        match cmd {
            Command::View {
                room,
                sdp,
                events,
                reply,
            } => {
                let _ = reply.send(self.view(room, sdp, events));
                None
            }
            Command::ViewerLeave { viewer } => {
                self.viewer_leave(viewer);
                None
            }
            Command::Feature {
                participant,
                featured,
                reply,
            } => {
                let r = match self.participants.get_mut(&participant) {
                    Some(p) => {
                        p.featured = featured;
                        Ok(())
                    }
                    None => Err(SfuError::UnknownParticipant),
                };
                if r.is_ok() {
                    self.update_main_views();
                }
                let _ = reply.send(r);
                None
            }
            other => Some(other),
        }
    }

    /// An event of a player's connection. Returns false when `key` is no player.
    pub(super) fn viewer_peer_event(&mut self, key: PeerKey, ev: &crate::peer::PeerEvent) -> bool {
        let Some(v) = self.viewers.get(&key) else {
            return false;
        };
        match ev {
            crate::peer::PeerEvent::State(state) => {
                let _ = v.events.send(ViewerEvent::Connection(*state));
                if let Some(slot) = self.peers.get_mut(&key) {
                    slot.connected = *state == ConnectionState::Connected;
                }
                if *state == ConnectionState::Connected {
                    self.viewer_keyframe(key, KEYFRAME_INTERVAL);
                }
            }
            crate::peer::PeerEvent::KeyframeRequest { .. } => {
                self.viewer_keyframe(key, REPAIR_KEYFRAME_INTERVAL)
            }
            _ => {}
        }
        true
    }

    /// Asks the source of a player's video for a keyframe.
    fn viewer_keyframe(&mut self, key: PeerKey, gap: std::time::Duration) {
        let Some(v) = self.viewers.get(&key) else {
            return;
        };
        let layer = v.video.current().map(str::to_owned);
        if let (Some(source), Some(track)) = (v.source.clone(), v.video_track.clone()) {
            self.request_keyframe(&source, &track, layer.as_deref(), gap);
        }
    }

    /// The main view of a room: (participant, its audio track, its video track).
    pub(super) fn main_source(&self, room: &RoomId) -> Option<MainSource> {
        let core = self.rooms.get(room)?;
        let members = core.members();
        let speaker = core.speaker();
        let mut best: Option<((bool, bool, bool), &ParticipantId)> = None;
        for m in members {
            let Some(p) = self.participants.get(m) else {
                continue;
            };
            // Blocked media is nobody's to see or hear.
            let shown = |kind: MediaKind| {
                p.tracks
                    .iter()
                    .any(|t| t.kind == kind && !p.blocked.of(kind))
            };
            let has_video = shown(MediaKind::Video);
            if !has_video && !shown(MediaKind::Audio) {
                continue;
            }
            let rank = (p.featured, Some(m) == speaker, has_video);
            // Strictly better only: among equals the earliest member stays.
            if best.is_none_or(|(b, _)| rank > b) {
                best = Some((rank, m));
            }
        }
        let (_, m) = best?;
        let p = self.participants.get(m)?;
        let first = |kind: MediaKind| {
            p.tracks
                .iter()
                .find(|t| t.kind == kind && !p.blocked.of(kind))
                .map(|t| t.id.clone())
        };
        Some((m.clone(), first(MediaKind::Audio), first(MediaKind::Video)))
    }

    /// Re-chooses every room's main view after something changed (a
    /// participant featured, a speaker, tracks, members, players) and moves
    /// the players whose source changed.
    pub(super) fn update_main_views(&mut self) {
        if self.viewers.is_empty() {
            self.main_feeds.clear();
            return;
        }
        let mut choices: HashMap<RoomId, Option<MainSource>> = HashMap::new();
        for v in self.viewers.values() {
            if !choices.contains_key(&v.room) {
                choices.insert(v.room.clone(), self.main_source(&v.room));
            }
        }
        let mut keyframes = Vec::new();
        let mut feeds: HashMap<String, Vec<PeerKey>> = HashMap::new();
        for (key, v) in &mut self.viewers {
            let choice = choices.get(&v.room).cloned().flatten();
            let (source, audio, video) = match choice {
                Some((s, a, vt)) => (Some(s), a, vt),
                None => (None, None, None),
            };
            if v.source != source {
                tracing::debug!(room = %v.room, viewer = key, source = ?source, "main view");
                v.source = source.clone();
                let _ = v.events.send(ViewerEvent::MainView {
                    participant: source.clone(),
                });
            }
            if v.audio_track != audio {
                v.audio.rebase();
                v.audio_track = audio;
            }
            if v.video_track != video {
                v.video.rebase();
                v.video_track = video;
                if let (Some(s), Some(t)) = (&source, &v.video_track) {
                    keyframes.push((s.clone(), t.clone()));
                }
            }
            for t in [&v.audio_track, &v.video_track].into_iter().flatten() {
                feeds.entry(t.clone()).or_default().push(*key);
            }
        }
        self.main_feeds = feeds;
        for (source, track) in keyframes {
            self.request_keyframe(&source, &track, None, KEYFRAME_INTERVAL);
        }
    }
}

/// Forwards a packet of `track` to the players showing it. Returns how many
/// packets were sent and whether a player waits for a keyframe. Takes the
/// engine's fields apart, as the caller holds `track` borrowed from it.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_to_viewers(
    feeds: &HashMap<String, Vec<PeerKey>>,
    viewers: &mut HashMap<PeerKey, ViewerState>,
    peers: &mut HashMap<PeerKey, PeerSlot>,
    sending: &mut super::workers::SendQueue,
    track: &PubTrack,
    layer: &str,
    packet: &RtpPacket,
    now: Instant,
) -> (u64, bool) {
    let Some(keys) = feeds.get(&track.id) else {
        return (0, false);
    };
    let mut sent = 0;
    let mut want_keyframe = false;
    for key in keys {
        let Some(v) = viewers.get_mut(key) else {
            continue;
        };
        if !super::sink::ready(peers, *key) {
            continue;
        }
        let (fwd, name) = match track.kind {
            MediaKind::Audio => (&mut v.audio, "audio"),
            MediaKind::Video => (&mut v.video, "video"),
        };
        let out = match fwd.on_packet(
            &track.layers,
            layer,
            packet,
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
        let target = Sink {
            key: *key,
            track: name,
            codec: SinkCodec::Named(&track.codec.mime_type),
        };
        // A player's track names the codec per packet. A RED payload goes
        // out as it came, named as its primary codec (as before the sink:
        // not unwrapped for players; see the report of issue 25).
        if super::sink::send(peers, sending, target, now, &out, false) {
            sent += 1;
        }
    }
    (sent, want_keyframe)
}
