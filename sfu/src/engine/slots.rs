//! Receiving in slots: a subscriber connection that negotiates a few sent
//! tracks per kind (slots) and gets publishers' tracks moved onto them, in
//! place of one sent track per published track.
//!
//! A subscriber receives at most last-N videos and the few loudest audios,
//! yet a connection with a sent track per published track negotiates every
//! one of them: at 99 participants 196 tracks per connection, whose SDP the
//! stack copies on every offer and answer (N² memory and CPU in all).
//! In slots, the connection has only as many tracks of a kind as the
//! allocation forwards at once. A track the allocation forwards takes a free
//! slot of its kind; one it stops forwarding gives the slot back; a slot
//! keeps its SSRC and continues its sequence numbers, timestamps and VP8
//! picture ids across the tracks it carries, each starting at a keyframe
//! ([`Forward::take_slot`]). When more tracks are forwarded at once than
//! there are slots, the connection gets more slots (a renegotiation); it
//! never gets fewer. The client learns what each slot carries from
//! [`SfuEvent::Slots`], not from the `msid` (which names the slot).
//!
//! The first track of a kind a subscriber gets fixes the codec of that
//! kind's slots; a track in another codec (an H.264 encoder among VP8
//! browsers) is sent on a track of its own, as without slots.

use super::{Engine, PeerKey};
use crate::forward::{Forward, Rewriter};
use crate::peer::Codec;
use crate::{MediaKind, ParticipantId, SfuEvent, SlotInfo};

/// One participant's slots.
#[derive(Debug, Default)]
pub(super) struct Slots {
    /// The codec of the audio slots and of the video slots, fixed by the
    /// first track of each kind.
    audio_codec: Option<Codec>,
    video_codec: Option<Codec>,
    list: Vec<Slot>,
    /// What the slots carry changed since it was last announced.
    dirty: bool,
}

#[derive(Debug)]
struct Slot {
    /// The sent track's name (and msid): `slot-a0`, `slot-v3`.
    name: String,
    kind: MediaKind,
    /// The track it carries now: (publisher, room-wide track id).
    source: Option<(ParticipantId, String)>,
    /// The slot's outgoing stream while no track holds it (a track that
    /// holds the slot holds the stream in its [`Forward`]).
    stream: Option<Rewriter>,
    /// In an offer sent to the client.
    offered: bool,
    /// Negotiated (an answer to an offer with it came): tracks may take it.
    ready: bool,
}

impl Slots {
    /// Whether a track of `kind` in `codec` goes in slots; the first of a
    /// kind fixes its slots' codec.
    pub fn admits(&mut self, kind: MediaKind, codec: &Codec) -> bool {
        let fixed = match kind {
            MediaKind::Audio => &mut self.audio_codec,
            MediaKind::Video => &mut self.video_codec,
        };
        match fixed {
            Some(c) => c.mime_type.eq_ignore_ascii_case(&codec.mime_type),
            None => {
                *fixed = Some(codec.clone());
                true
            }
        }
    }

    /// The track slot `name` carries now.
    pub fn source_of(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.source.as_ref())
            .map(|(_, t)| t.as_str())
    }

    /// An offer was made: it carries every slot there is.
    pub fn offered(&mut self) {
        for s in &mut self.list {
            s.offered = true;
        }
    }

    /// The outstanding offer was answered: its slots are negotiated.
    pub fn answered(&mut self) {
        for s in &mut self.list {
            s.ready |= s.offered;
        }
    }

    /// A track gave slot `name` back (it went away).
    pub fn give_back(&mut self, name: &str, stream: Rewriter) {
        if let Some(s) = self.list.iter_mut().find(|s| s.name == name) {
            s.source = None;
            s.stream = Some(stream);
            self.dirty = true;
        }
    }

    fn infos(&self) -> Vec<SlotInfo> {
        self.list
            .iter()
            .map(|s| SlotInfo {
                slot: s.name.clone(),
                kind: s.kind,
                source: s.source.clone(),
            })
            .collect()
    }
}

impl Engine {
    /// Moves tracks onto `sub`'s slots: `wanted` are the tracks the
    /// allocation forwards to it now (publisher, track id). A slot whose
    /// track is not wanted any more is freed; a wanted track without a slot
    /// takes a free negotiated one of its kind, or waits for new slots,
    /// added here (one offer for all). Announces the slots when what they
    /// carry changed.
    pub(super) fn assign_slots(
        &mut self,
        sub: &ParticipantId,
        sub_key: PeerKey,
        wanted: &[(ParticipantId, String)],
    ) {
        let Some(mut slots) = self.participants.get_mut(sub).and_then(|p| p.slots.take()) else {
            return;
        };
        // Free the slots of tracks no longer forwarded.
        for s in &mut slots.list {
            let Some((publisher, track)) = s.source.clone() else {
                continue;
            };
            if wanted.iter().any(|(p, t)| *p == publisher && *t == track) {
                continue;
            }
            let stream = self
                .forward_mut(&publisher, &track, sub_key)
                .and_then(Forward::leave_slot)
                .map(|(_, rw)| rw)
                .unwrap_or_default();
            s.source = None;
            s.stream = Some(stream);
            slots.dirty = true;
        }
        // Give the wanted tracks free slots; count those left waiting.
        let mut waiting = [0usize; 2];
        for (publisher, track) in wanted {
            let held = slots.list.iter().any(|s| {
                s.source
                    .as_ref()
                    .is_some_and(|(p, t)| p == publisher && t == track)
            });
            if held {
                continue;
            }
            let Some(kind) = self
                .participants
                .get(publisher)
                .and_then(|p| p.tracks.iter().find(|t| t.id == *track))
                .map(|t| t.kind)
            else {
                continue;
            };
            let Some(f) = self
                .forward_mut(publisher, track, sub_key)
                .filter(|f| f.via_slots())
            else {
                continue;
            };
            match slots
                .list
                .iter_mut()
                .find(|s| s.kind == kind && s.ready && s.source.is_none())
            {
                Some(s) => {
                    f.take_slot(s.name.clone(), s.stream.take().unwrap_or_default());
                    s.source = Some((publisher.clone(), track.clone()));
                    slots.dirty = true;
                }
                None => waiting[kind_index(kind)] += 1,
            }
        }
        // New slots for the waiting tracks, less the free ones still being
        // negotiated (those are theirs once answered).
        let mut added = false;
        for kind in [MediaKind::Audio, MediaKind::Video] {
            let pending = slots
                .list
                .iter()
                .filter(|s| s.kind == kind && !s.ready && s.source.is_none())
                .count();
            let codec = match kind {
                MediaKind::Audio => slots.audio_codec.clone(),
                MediaKind::Video => slots.video_codec.clone(),
            };
            let Some(codec) = codec else { continue };
            for _ in pending..waiting[kind_index(kind)] {
                let n = slots.list.iter().filter(|s| s.kind == kind).count();
                let name = format!(
                    "slot-{}{n}",
                    match kind {
                        MediaKind::Audio => 'a',
                        MediaKind::Video => 'v',
                    }
                );
                let Some(peer) = self.peers.get_mut(&sub_key) else {
                    break;
                };
                match peer.peer.add_send_track(&name, &name, kind, &codec) {
                    Ok(()) => {
                        slots.list.push(Slot {
                            name,
                            kind,
                            source: None,
                            stream: Some(Rewriter::default()),
                            offered: false,
                            ready: false,
                        });
                        slots.dirty = true;
                        added = true;
                    }
                    Err(e) => {
                        tracing::warn!(subscriber = %sub, "add slot {name}: {e}");
                        break;
                    }
                }
            }
        }
        let announce = std::mem::take(&mut slots.dirty).then(|| slots.infos());
        let Some(p) = self.participants.get_mut(sub) else {
            return;
        };
        p.slots = Some(slots);
        if let Some(slots) = announce {
            let _ = p.events.send(SfuEvent::Slots { slots });
        }
        if added {
            p.sub_dirty = true;
            self.renegotiate(sub);
        }
    }

    /// Subscriber `sub_key`'s forward of `publisher`'s track.
    fn forward_mut(
        &mut self,
        publisher: &ParticipantId,
        track: &str,
        sub_key: PeerKey,
    ) -> Option<&mut Forward> {
        self.participants
            .get_mut(publisher)?
            .tracks
            .iter_mut()
            .find(|t| t.id == track)?
            .subscribers
            .iter_mut()
            .find(|f| f.sub == sub_key)
    }

    /// A track goes away: the slots it holds go back to their subscribers.
    pub(super) fn return_slots(&mut self, track: &mut super::PubTrack) {
        for f in &mut track.subscribers {
            let Some((name, stream)) = f.leave_slot() else {
                continue;
            };
            let owner = self.peers.get(&f.sub).map(|s| s.owner.clone());
            if let Some(slots) = owner
                .and_then(|o| self.participants.get_mut(&o))
                .and_then(|p| p.slots.as_mut())
            {
                slots.give_back(&name, stream);
            }
        }
    }
}

fn kind_index(kind: MediaKind) -> usize {
    match kind {
        MediaKind::Audio => 0,
        MediaKind::Video => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(mime: &str) -> Codec {
        Codec {
            mime_type: mime.to_owned(),
            clock_rate: 90000,
            channels: 0,
            fmtp: String::new(),
        }
    }

    fn slot(name: &str, kind: MediaKind) -> Slot {
        Slot {
            name: name.to_owned(),
            kind,
            source: None,
            stream: Some(Rewriter::default()),
            offered: false,
            ready: false,
        }
    }

    #[test]
    fn the_first_track_of_a_kind_fixes_its_slots_codec() {
        let mut s = Slots::default();
        assert!(s.admits(MediaKind::Video, &codec("video/VP8")));
        assert!(s.admits(MediaKind::Video, &codec("video/vp8")));
        assert!(!s.admits(MediaKind::Video, &codec("video/H264")));
        // Audio is fixed on its own.
        assert!(s.admits(MediaKind::Audio, &codec("audio/opus")));
        assert!(!s.admits(MediaKind::Audio, &codec("audio/PCMU")));
    }

    #[test]
    fn a_slot_is_ready_only_once_an_offer_with_it_is_answered() {
        let mut s = Slots::default();
        s.list.push(slot("slot-v0", MediaKind::Video));
        s.answered();
        assert!(!s.list[0].ready, "answered before it was offered");
        s.offered();
        s.list.push(slot("slot-v1", MediaKind::Video));
        s.answered();
        assert!(s.list[0].ready);
        assert!(!s.list[1].ready, "added after the offer that was answered");
        s.offered();
        s.answered();
        assert!(s.list[1].ready);
    }

    #[test]
    fn a_slot_given_back_is_free_and_announced() {
        let mut s = Slots::default();
        let mut v = slot("slot-v0", MediaKind::Video);
        v.source = Some(("p-1".into(), "t-1".into()));
        v.stream = None;
        s.list.push(v);
        assert_eq!(s.source_of("slot-v0"), Some("t-1"));
        s.give_back("slot-v0", Rewriter::default());
        assert_eq!(s.source_of("slot-v0"), None);
        assert!(s.list[0].stream.is_some() && s.dirty);
        assert_eq!(
            s.infos(),
            vec![SlotInfo {
                slot: "slot-v0".into(),
                kind: MediaKind::Video,
                source: None
            }]
        );
    }
}
