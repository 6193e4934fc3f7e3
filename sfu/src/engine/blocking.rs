//! Media blocked by the server (a chair's mute, a meeting that joins
//! muted): one kind of a participant's media that is forwarded to nobody.
//!
//! The block belongs to the participant ([`super::ParticipantState`]), so it
//! holds for tracks published after it was set. Its effects:
//! - forwarding drops the packets on arrival (`Engine::on_rtp`), before any
//!   per-subscriber work: subscribers with a track per published track,
//!   subscribers in slots and players of the main view alike;
//! - the allocation gives the blocked tracks nothing (`allocation`): a
//!   blocked audio takes no place among the loudest and no audio slot, a
//!   blocked video no last-N place; the active speaker ignores blocked
//!   audio, and the main view ignores blocked tracks (`viewers`);
//! - no keyframe is asked of a blocked video.
//!
//! The track's layers and loudness are still noted while blocked, so that
//! when the block is lifted the track ranks at once: every forward of it
//! restarts where a decoder can (any packet of audio, a keyframe of video,
//! asked of the publisher now) and continues its outgoing numbering.

use std::time::Instant;

use super::{Engine, KEYFRAME_INTERVAL};
use crate::{MediaKind, ParticipantId, Quality, SfuError};

/// The kinds of a participant's media the server blocked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Blocked {
    audio: bool,
    video: bool,
}

impl Blocked {
    /// Whether `kind` is blocked.
    pub fn of(self, kind: MediaKind) -> bool {
        match kind {
            MediaKind::Audio => self.audio,
            MediaKind::Video => self.video,
        }
    }

    fn set(&mut self, kind: MediaKind, blocked: bool) {
        match kind {
            MediaKind::Audio => self.audio = blocked,
            MediaKind::Video => self.video = blocked,
        }
    }
}

impl Engine {
    /// Blocks or unblocks `kind` of `participant`'s media (see the module).
    pub(super) fn block_media(
        &mut self,
        participant: &ParticipantId,
        kind: MediaKind,
        blocked: bool,
    ) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(participant)
            .ok_or(SfuError::UnknownParticipant)?;
        if p.blocked.of(kind) == blocked {
            return Ok(());
        }
        p.blocked.set(kind, blocked);
        let room = p.room.clone();
        tracing::info!(participant = %participant, kind = kind.as_str(), blocked, "media block");
        if blocked {
            if kind == MediaKind::Audio {
                // A muted speaker speaks no more: the next one is announced
                // without waiting for the hold.
                if let Some(core) = self.rooms.get_mut(&room) {
                    core.forget_speaker(participant);
                }
            }
        } else {
            // Each forward restarts at a packet a decoder can start from,
            // continuing its sequence numbers and timestamps over the gap.
            for t in p.tracks.iter_mut().filter(|t| t.kind == kind) {
                for f in &mut t.subscribers {
                    f.rebase();
                }
            }
        }
        // Decided now, not at the next tick: a block frees its slots and
        // places at once, a lifted block takes them back at once. The
        // room's audible times first: a blocked track was audible to
        // nobody, and a stale time would keep it out of the loudest until
        // the next tick.
        let members = self.members(&room);
        self.note_room(&room, Instant::now());
        for m in members.iter().filter(|m| *m != participant) {
            self.allocate_now(m);
        }
        self.update_main_views();
        if !blocked && kind == MediaKind::Video {
            self.keyframes_after_block(participant);
        }
        Ok(())
    }

    /// Asks `participant` for a keyframe of each layer of its video tracks
    /// that a subscriber or a player will receive, its video just unblocked.
    fn keyframes_after_block(&mut self, participant: &ParticipantId) {
        let now = Instant::now();
        let mut asks = Vec::new();
        if let Some(p) = self.participants.get(participant) {
            for t in p.tracks.iter().filter(|t| t.kind == MediaKind::Video) {
                let players = self.main_feeds.contains_key(&t.id).then_some(Quality::High);
                let mut layers: Vec<&str> = t
                    .subscribers
                    .iter()
                    .filter(|f| f.sending())
                    .map(|f| f.effective())
                    .chain(players)
                    .filter_map(|q| t.layers.choose(q, now))
                    .collect();
                layers.sort_unstable();
                layers.dedup();
                asks.extend(layers.into_iter().map(|l| (t.id.clone(), l.to_owned())));
            }
        }
        for (track, layer) in asks {
            self.request_keyframe(participant, &track, Some(&layer), KEYFRAME_INTERVAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::sync::mpsc;

    use super::super::{allocation, Engine};
    use crate::peer::{Codec, Incoming, LocalCandidate, Proto, RtpPacket};
    use crate::{MediaKind, ParticipantId, Quality, SfuError, SfuEvent};

    /// An engine without sockets or task: commands are called directly,
    /// media goes in through `on_rtp`.
    fn engine() -> Engine {
        Engine {
            udp: HashMap::new(),
            tcp: HashMap::new(),
            candidates: vec![LocalCandidate {
                proto: Proto::Udp,
                addr: ([127, 0, 0, 1], 9).into(),
            }],
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
            stats: Default::default(),
            tasks: Vec::new(),
            viewers: HashMap::new(),
            main_feeds: HashMap::new(),
            alloc_config: allocation::AllocConfig {
                last_n: 0,
                audio_loudest: 3,
            },
            trim_at: None,
            load: super::super::overload::Load::new(
                std::time::Instant::now(),
                crate::OverloadConfig::default(),
            ),
            sending: Default::default(),
            workers: 1,
            send_scratch: Vec::new(),
        }
    }

    fn join(e: &mut Engine, who: &str, in_slots: bool) -> mpsc::UnboundedReceiver<SfuEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        e.join("r".into(), who.into(), true, in_slots, tx)
            .expect("join");
        rx
    }

    fn codec(kind: MediaKind) -> Codec {
        match kind {
            MediaKind::Audio => Codec {
                mime_type: "audio/opus".into(),
                clock_rate: 48000,
                channels: 2,
                fmtp: "minptime=10;useinbandfec=1".into(),
            },
            MediaKind::Video => Codec {
                mime_type: "video/VP8".into(),
                clock_rate: 90000,
                channels: 0,
                fmtp: String::new(),
            },
        }
    }

    /// A packet of `owner`'s track of `kind` (audio: at `level`, 0 loudest;
    /// video: a one-packet VP8 keyframe).
    fn packet(e: &mut Engine, owner: &str, kind: MediaKind, seq: u16, level: u8) {
        let payload = match kind {
            MediaKind::Audio => vec![0xfc; 40],
            MediaKind::Video => vec![0x90, 0x80, 0x80, 0x01, 0x10, 0, 0],
        };
        let incoming = Incoming {
            track: format!("{owner}-{}", kind.as_str()),
            kind,
            codec: Some(std::sync::Arc::new(codec(kind))),
            layer: std::sync::Arc::from(""),
            audio_level: (kind == MediaKind::Audio).then_some(level),
            red: false,
            packet: RtpPacket {
                marker: true,
                sequence_number: seq,
                timestamp: u32::from(seq) * 960,
                ssrc: 1000 + u32::from(kind == MediaKind::Video),
                payload: Bytes::from(payload),
            },
        };
        e.on_rtp(&owner.to_owned(), incoming);
    }

    /// The subscriber connection of `sub`, taken as up (so that forwarding
    /// reaches it).
    fn connect(e: &mut Engine, sub: &str) -> u64 {
        let key = e.participants[sub].subscriber;
        e.peers.get_mut(&key).expect("subscriber peer").connected = true;
        key
    }

    /// `owner`'s track of `kind` as `sub` gets it: (cap, layer forwarded).
    fn forward(e: &Engine, owner: &str, kind: MediaKind, sub: &str) -> (Quality, Option<String>) {
        let key = e.participants[sub].subscriber;
        let t = e.participants[owner]
            .tracks
            .iter()
            .find(|t| t.kind == kind)
            .expect("track");
        let f = t
            .subscribers
            .iter()
            .find(|f| f.sub == key)
            .expect("forward");
        (f.cap(), f.current().map(str::to_owned))
    }

    fn speaker(e: &Engine) -> Option<ParticipantId> {
        e.rooms.get("r").and_then(|r| r.speaker().cloned())
    }

    #[test]
    fn blocked_audio_goes_to_nobody_and_does_not_speak() {
        let mut e = engine();
        let _a = join(&mut e, "a", false);
        let _b = join(&mut e, "b", false);
        let _c = join(&mut e, "c", true);
        connect(&mut e, "b");
        // a speaks loudly: b gets it, c (in slots) may, a is the speaker.
        for seq in 1..=40 {
            packet(&mut e, "a", MediaKind::Audio, seq, 0);
        }
        e.alloc_tick();
        e.speakers_tick();
        assert_eq!(speaker(&e).as_deref(), Some("a"));
        assert_eq!(
            forward(&e, "a", MediaKind::Audio, "b"),
            (Quality::High, Some(String::new()))
        );
        assert_eq!(forward(&e, "a", MediaKind::Audio, "c").0, Quality::High);

        e.block_media(&"a".into(), MediaKind::Audio, true)
            .expect("block");
        // At once: no speaker, no place among the loudest, nothing forwarded.
        assert_eq!(speaker(&e), None);
        assert_eq!(
            forward(&e, "a", MediaKind::Audio, "b"),
            (Quality::Off, None)
        );
        assert_eq!(forward(&e, "a", MediaKind::Audio, "c").0, Quality::Off);
        let before = e.stats.rtp_packets_blocked;
        for seq in 41..=140 {
            packet(&mut e, "a", MediaKind::Audio, seq, 0);
            if seq % 20 == 0 {
                e.alloc_tick();
                e.speakers_tick();
            }
        }
        assert_eq!(e.stats.rtp_packets_blocked - before, 100);
        // b's forward was not touched by any of them (it would have started).
        assert_eq!(
            forward(&e, "a", MediaKind::Audio, "b"),
            (Quality::Off, None)
        );
        assert_eq!(forward(&e, "a", MediaKind::Audio, "c").0, Quality::Off);
        assert_eq!(speaker(&e), None, "a blocked track became the speaker");
        // Blocking again changes nothing.
        e.block_media(&"a".into(), MediaKind::Audio, true)
            .expect("block again");

        // A block longer than the allocation's hold: a's last audible
        // time is old when the block is lifted.
        if let Some(ra) = e.rooms.get_mut("r") {
            ra.age_audible(Duration::from_secs(5));
        }
        e.block_media(&"a".into(), MediaKind::Audio, false)
            .expect("unblock");
        // At once, before any tick: forwarded again from the next packet.
        assert_eq!(
            forward(&e, "a", MediaKind::Audio, "b"),
            (Quality::High, None)
        );
        assert_eq!(forward(&e, "a", MediaKind::Audio, "c").0, Quality::High);
        let blocked = e.stats.rtp_packets_blocked;
        packet(&mut e, "a", MediaKind::Audio, 141, 0);
        assert_eq!(e.stats.rtp_packets_blocked, blocked);
        assert_eq!(
            forward(&e, "a", MediaKind::Audio, "b"),
            (Quality::High, Some(String::new()))
        );
        // Its loudness was kept: it is the speaker again at the next tick.
        e.speakers_tick();
        assert_eq!(speaker(&e).as_deref(), Some("a"));
    }

    #[test]
    fn a_block_holds_for_tracks_published_later() {
        let mut e = engine();
        let _a = join(&mut e, "a", false);
        let _b = join(&mut e, "b", false);
        connect(&mut e, "b");
        // Joins muted: blocked before it publishes anything.
        e.block_media(&"a".into(), MediaKind::Audio, true)
            .expect("block");
        e.block_media(&"a".into(), MediaKind::Video, true)
            .expect("block");
        packet(&mut e, "a", MediaKind::Audio, 1, 0);
        packet(&mut e, "a", MediaKind::Video, 1, 0);
        // Published (b is subscribed), yet nothing forwarded.
        assert_eq!(e.stats.rtp_packets_blocked, 2);
        assert_eq!(e.participants["a"].tracks.len(), 2);
        assert_eq!(forward(&e, "a", MediaKind::Audio, "b").1, None);
        assert_eq!(forward(&e, "a", MediaKind::Video, "b").1, None);
        e.alloc_tick();
        assert_eq!(forward(&e, "a", MediaKind::Video, "b").0, Quality::Off);
        // The main view ignores blocked media: a has nothing to show.
        assert_eq!(e.main_source(&"r".to_owned()), None);

        // Video unblocked: the main view shows a's video (its audio stays
        // blocked), b's forward comes back and a keyframe is asked now.
        e.block_media(&"a".into(), MediaKind::Video, false)
            .expect("unblock");
        assert_eq!(
            e.main_source(&"r".to_owned())
                .map(|(p, a, v)| (p, a.is_some(), v.is_some())),
            Some(("a".to_owned(), false, true))
        );
        assert_eq!(forward(&e, "a", MediaKind::Video, "b").0, Quality::High);
        let video = e.participants["a"]
            .tracks
            .iter()
            .find(|t| t.kind == MediaKind::Video)
            .expect("video");
        assert!(
            video
                .keyframes
                .iter()
                .any(|k| k.layer.is_empty() && k.last.is_some()),
            "no keyframe asked after the video was unblocked"
        );
        packet(&mut e, "a", MediaKind::Video, 2, 0);
        assert_eq!(e.stats.rtp_packets_blocked, 2);
        assert_eq!(
            forward(&e, "a", MediaKind::Video, "b").1,
            Some(String::new())
        );
        // Audio is still blocked.
        packet(&mut e, "a", MediaKind::Audio, 2, 0);
        assert_eq!(e.stats.rtp_packets_blocked, 3);
    }

    #[test]
    fn an_unknown_participant_is_an_error() {
        let mut e = engine();
        let _a = join(&mut e, "a", false);
        assert!(matches!(
            e.block_media(&"nobody".into(), MediaKind::Audio, true),
            Err(SfuError::UnknownParticipant)
        ));
        // A participant that left is unknown too, and its block is gone.
        e.block_media(&"a".into(), MediaKind::Audio, true)
            .expect("block");
        e.leave(&"a".into());
        assert!(matches!(
            e.block_media(&"a".into(), MediaKind::Audio, false),
            Err(SfuError::UnknownParticipant)
        ));
        let _a = join(&mut e, "a", false);
        assert!(!e.participants["a"].blocked.of(MediaKind::Audio));
    }

    /// The handle's two controls, through the running engine.
    #[tokio::test]
    async fn the_handle_blocks_and_features_by_id() {
        let config = crate::SfuConfig {
            udp_bind: ([127, 0, 0, 1], 0).into(),
            tcp_bind: ([127, 0, 0, 1], 0).into(),
            announce_ips: Vec::new(),
            nat_1to1_ip: None,
            include_loopback: true,
            last_n: 0,
            audio_loudest: 3,
            tcp_max_per_address: 4,
            tcp_ice_timeout: std::time::Duration::from_secs(5),
            send_workers: 2,
            overload: crate::OverloadConfig::default(),
        };
        let sfu = crate::Sfu::start(config).await.expect("start");
        let (_p, _events) = sfu.join("r".into(), "p".into()).await.expect("join");
        sfu.block_media("p", MediaKind::Audio, true)
            .await
            .expect("block");
        sfu.block_media("p", MediaKind::Audio, false)
            .await
            .expect("unblock");
        sfu.set_featured_id("p", true).await.expect("feature");
        sfu.set_featured_id("p", false).await.expect("unfeature");
        assert!(matches!(
            sfu.block_media("q", MediaKind::Video, true).await,
            Err(SfuError::UnknownParticipant)
        ));
        assert!(matches!(
            sfu.set_featured_id("q", true).await,
            Err(SfuError::UnknownParticipant)
        ));
        sfu.shutdown().await;
    }
}
