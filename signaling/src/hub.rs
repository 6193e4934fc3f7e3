//! The meeting hub: who is in which meeting right now, their mute state and
//! live tracks, and the broadcasting of changes to the other sessions.
//!
//! Sessions register with [`Hub::join`] and get events through the channel
//! they hand in; every broadcast is serialized once. The lock is a plain
//! mutex held only while the maps change (no awaits under it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

/// What the hub sends a session.
#[derive(Debug, Clone)]
pub enum HubMsg {
    /// A protocol event to forward as it is (a JSON text).
    Event(Arc<str>),
    /// The session must end: `replaced` (same invitation joined again) or
    /// `shutdown` (the server stops).
    Kick(KickReason),
}

/// Why the hub ends a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickReason {
    Replaced,
    Shutdown,
    /// Its invitation was revoked.
    Revoked,
}

/// A participant as the protocol shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub audio_muted: bool,
    pub video_muted: bool,
}

impl ParticipantInfo {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "audio_muted": self.audio_muted,
            "video_muted": self.video_muted,
        })
    }
}

/// A live track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub track_id: String,
    pub participant_id: String,
    pub kind: &'static str,
}

impl TrackInfo {
    pub fn to_json(&self) -> Value {
        json!({"track_id": self.track_id, "participant_id": self.participant_id, "kind": self.kind})
    }
}

/// What a joining session learns.
#[derive(Debug, Clone)]
pub struct JoinOutcome {
    /// The others already in the meeting.
    pub others: Vec<ParticipantInfo>,
    /// Their live tracks.
    pub tracks: Vec<TrackInfo>,
    /// The participant id this session replaced (same invitation), if any.
    pub replaced: Option<String>,
}

struct Member {
    info: ParticipantInfo,
    /// The invitation it joined with: a second join with it replaces this one.
    invitation_id: String,
    tx: tokio::sync::mpsc::UnboundedSender<HubMsg>,
    /// Live tracks, in the order they went live.
    tracks: Vec<TrackInfo>,
    /// Order of joining, to list participants stably.
    seq: u64,
}

#[derive(Default)]
struct Room {
    members: HashMap<String, Member>,
}

impl Room {
    fn broadcast(&self, event: &Value, except: Option<&str>) {
        let text: Arc<str> = Arc::from(event.to_string());
        for (id, m) in &self.members {
            if Some(id.as_str()) != except {
                // A closed channel means the session is ending; it will leave.
                let _ = m.tx.send(HubMsg::Event(text.clone()));
            }
        }
    }

    /// Removes a member and tells the rest (its tracks go away first).
    fn remove(&mut self, pid: &str, reason: &str) -> Option<Member> {
        let m = self.members.remove(pid)?;
        for t in &m.tracks {
            self.broadcast(
                &json!({"type": "track_unpublished", "track_id": t.track_id, "participant_id": pid}),
                None,
            );
        }
        self.broadcast(
            &json!({"type": "participant_left", "participant_id": pid, "reason": reason}),
            None,
        );
        Some(m)
    }
}

/// Every meeting with someone in it.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<HubInner>,
}

#[derive(Default)]
struct HubInner {
    rooms: HashMap<String, Room>,
    next_seq: u64,
    /// Resume tokens of live sessions: token -> where a resuming socket goes.
    resumes: HashMap<String, Resumable>,
}

/// A session that a new WebSocket may take over with its resume token.
struct Resumable {
    meeting_id: String,
    pid: String,
    /// The session's task: it takes the new socket from here.
    tx: tokio::sync::mpsc::UnboundedSender<crate::session::Attach>,
}

/// Why a resume token was not accepted (all answered `resume_failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeRefused {
    /// Unknown, already used, or its session has ended (grace over, left).
    Unknown,
    /// The token belongs to a session of another meeting than the one named.
    WrongMeeting,
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    fn lock(&self) -> MutexGuard<'_, HubInner> {
        // A panic elsewhere while holding the lock leaves the maps consistent
        // (every change is a single insert/remove), so keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a participant. Another session of the same invitation is removed
    /// (the others see it leave with `replaced`) and kicked. The others get
    /// `participant_joined`.
    pub fn join(
        &self,
        meeting_id: &str,
        invitation_id: &str,
        info: ParticipantInfo,
        tx: tokio::sync::mpsc::UnboundedSender<HubMsg>,
    ) -> JoinOutcome {
        let mut inner = self.lock();
        inner.next_seq += 1;
        let seq = inner.next_seq;
        let room = inner.rooms.entry(meeting_id.to_owned()).or_default();
        let old = room
            .members
            .values()
            .find(|m| m.invitation_id == invitation_id)
            .map(|m| m.info.id.clone());
        if let Some(old_id) = &old {
            if let Some(m) = room.remove(old_id, "replaced") {
                let _ = m.tx.send(HubMsg::Kick(KickReason::Replaced));
            }
        }
        if let Some(old_id) = &old {
            inner.resumes.retain(|_, r| &r.pid != old_id);
        }
        let Some(room) = inner.rooms.get_mut(meeting_id) else {
            return JoinOutcome {
                others: Vec::new(),
                tracks: Vec::new(),
                replaced: old,
            };
        };
        let mut members: Vec<&Member> = room.members.values().collect();
        members.sort_by_key(|m| m.seq);
        let others = members.iter().map(|m| m.info.clone()).collect();
        let tracks = members
            .iter()
            .flat_map(|m| m.tracks.iter().cloned())
            .collect();
        room.broadcast(
            &json!({"type": "participant_joined", "participant": info.to_json()}),
            None,
        );
        room.members.insert(
            info.id.clone(),
            Member {
                info,
                invitation_id: invitation_id.to_owned(),
                tx,
                tracks: Vec::new(),
                seq,
            },
        );
        JoinOutcome {
            others,
            tracks,
            replaced: old,
        }
    }

    /// Removes a participant if it is still there (a replaced one is not).
    /// Returns whether it was. Its resume token stops working.
    pub fn leave(&self, meeting_id: &str, pid: &str, reason: &str) -> bool {
        let mut inner = self.lock();
        inner.resumes.retain(|_, r| r.pid != pid);
        let Some(room) = inner.rooms.get_mut(meeting_id) else {
            return false;
        };
        let removed = room.remove(pid, reason).is_some();
        if room.members.is_empty() {
            inner.rooms.remove(meeting_id);
        }
        removed
    }

    /// Makes `token` the one resume token of participant `pid` (an earlier
    /// one stops working). A socket that presents it reaches the session
    /// through `tx`.
    pub fn set_resume_token(
        &self,
        meeting_id: &str,
        pid: &str,
        token: String,
        tx: tokio::sync::mpsc::UnboundedSender<crate::session::Attach>,
    ) {
        let mut inner = self.lock();
        inner.resumes.retain(|_, r| r.pid != pid);
        inner.resumes.insert(
            token,
            Resumable {
                meeting_id: meeting_id.to_owned(),
                pid: pid.to_owned(),
                tx,
            },
        );
    }

    /// Takes a resume token (it works once): the session's channel, its
    /// meeting and participant id. With `meeting_id`, the token must be of a
    /// session in that meeting (otherwise it is left as it was).
    pub fn take_resume(
        &self,
        token: &str,
        meeting_id: Option<&str>,
    ) -> Result<
        (
            String,
            String,
            tokio::sync::mpsc::UnboundedSender<crate::session::Attach>,
        ),
        ResumeRefused,
    > {
        let mut inner = self.lock();
        let r = inner.resumes.get(token).ok_or(ResumeRefused::Unknown)?;
        if meeting_id.is_some_and(|m| m != r.meeting_id) {
            return Err(ResumeRefused::WrongMeeting);
        }
        let live = inner
            .rooms
            .get(&r.meeting_id)
            .is_some_and(|room| room.members.contains_key(&r.pid));
        let r = inner.resumes.remove(token).ok_or(ResumeRefused::Unknown)?;
        if !live || r.tx.is_closed() {
            return Err(ResumeRefused::Unknown);
        }
        Ok((r.meeting_id, r.pid, r.tx))
    }

    /// The participant as the others see it now (role, mute states).
    pub fn participant(&self, meeting_id: &str, pid: &str) -> Option<ParticipantInfo> {
        let inner = self.lock();
        let m = inner.rooms.get(meeting_id)?.members.get(pid)?;
        Some(m.info.clone())
    }

    /// A track of `pid` is live: everyone (the publisher too) is told.
    pub fn track_published(&self, meeting_id: &str, pid: &str, track: TrackInfo) {
        let mut inner = self.lock();
        let Some(room) = inner.rooms.get_mut(meeting_id) else {
            return;
        };
        let Some(m) = room.members.get_mut(pid) else {
            return;
        };
        if m.tracks.iter().any(|t| t.track_id == track.track_id) {
            return;
        }
        m.tracks.push(track.clone());
        room.broadcast(
            &json!({"type": "track_published", "track": track.to_json()}),
            None,
        );
    }

    /// A track of `pid` went away: everyone is told.
    pub fn track_unpublished(&self, meeting_id: &str, pid: &str, track_id: &str) {
        let mut inner = self.lock();
        let Some(room) = inner.rooms.get_mut(meeting_id) else {
            return;
        };
        let Some(m) = room.members.get_mut(pid) else {
            return;
        };
        let before = m.tracks.len();
        m.tracks.retain(|t| t.track_id != track_id);
        if m.tracks.len() == before {
            return;
        }
        room.broadcast(
            &json!({"type": "track_unpublished", "track_id": track_id, "participant_id": pid}),
            None,
        );
    }

    /// `pid` muted or unmuted its audio or video: the others are told.
    pub fn mute(&self, meeting_id: &str, pid: &str, kind: &str, muted: bool) {
        let mut inner = self.lock();
        let Some(room) = inner.rooms.get_mut(meeting_id) else {
            return;
        };
        let Some(m) = room.members.get_mut(pid) else {
            return;
        };
        match kind {
            "audio" => m.info.audio_muted = muted,
            "video" => m.info.video_muted = muted,
            _ => return,
        }
        room.broadcast(
            &json!({"type": "mute_changed", "participant_id": pid, "kind": kind, "muted": muted}),
            Some(pid),
        );
    }

    /// Ends the session of an invitation, if one is in the meeting: the
    /// others see it leave with `revoked`, the session is kicked. Returns
    /// whether there was one.
    pub fn kick_invitation(&self, meeting_id: &str, invitation_id: &str) -> bool {
        let mut inner = self.lock();
        let Some(room) = inner.rooms.get_mut(meeting_id) else {
            return false;
        };
        let pid = room
            .members
            .values()
            .find(|m| m.invitation_id == invitation_id)
            .map(|m| m.info.id.clone());
        let Some(pid) = pid else {
            return false;
        };
        if let Some(m) = room.remove(&pid, "revoked") {
            let _ = m.tx.send(HubMsg::Kick(KickReason::Revoked));
        }
        if room.members.is_empty() {
            inner.rooms.remove(meeting_id);
        }
        inner.resumes.retain(|_, r| r.pid != pid);
        true
    }

    /// (meeting id, invitation id) of every session in a meeting now.
    pub fn live_invitations(&self) -> Vec<(String, String)> {
        let inner = self.lock();
        inner
            .rooms
            .iter()
            .flat_map(|(mid, r)| {
                r.members
                    .values()
                    .map(move |m| (mid.clone(), m.invitation_id.clone()))
            })
            .collect()
    }

    /// Sends an event to everyone in a meeting (nobody there: nothing).
    pub fn broadcast(&self, meeting_id: &str, event: &Value) {
        let inner = self.lock();
        if let Some(room) = inner.rooms.get(meeting_id) {
            room.broadcast(event, None);
        }
    }

    /// Tells every session to end (the server stops).
    pub fn kick_all(&self) {
        let inner = self.lock();
        for room in inner.rooms.values() {
            for m in room.members.values() {
                let _ = m.tx.send(HubMsg::Kick(KickReason::Shutdown));
            }
        }
    }

    /// Meetings with someone in them, participants, and live tracks, now.
    pub fn totals(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        let members = || inner.rooms.values().flat_map(|r| r.members.values());
        let participants = members().count();
        let tracks = members().map(|m| m.tracks.len()).sum();
        (inner.rooms.len(), participants, tracks)
    }

    /// Number of participants in a meeting now.
    pub fn count(&self, meeting_id: &str) -> usize {
        self.lock()
            .rooms
            .get(meeting_id)
            .map_or(0, |r| r.members.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn info(id: &str) -> ParticipantInfo {
        ParticipantInfo {
            id: id.into(),
            name: id.into(),
            role: "bridge".into(),
            audio_muted: false,
            video_muted: false,
        }
    }

    fn events(rx: &mut mpsc::UnboundedReceiver<HubMsg>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            match m {
                HubMsg::Event(t) => {
                    let v: Value = serde_json::from_str(&t).expect("json");
                    out.push(v["type"].as_str().unwrap_or_default().to_owned());
                }
                HubMsg::Kick(r) => out.push(format!("kick:{r:?}")),
            }
        }
        out
    }

    #[test]
    fn join_broadcast_replace_leave() {
        let hub = Hub::new();
        let (ta, mut ra) = mpsc::unbounded_channel();
        let (tb, mut rb) = mpsc::unbounded_channel();
        let out = hub.join("m", "inv-a", info("a"), ta);
        assert!(out.others.is_empty());
        let out = hub.join("m", "inv-b", info("b"), tb);
        assert_eq!(out.others, vec![info("a")]);
        assert_eq!(events(&mut ra), vec!["participant_joined"]);
        hub.track_published(
            "m",
            "a",
            TrackInfo {
                track_id: "t1".into(),
                participant_id: "a".into(),
                kind: "audio",
            },
        );
        assert_eq!(events(&mut ra), vec!["track_published"]);
        assert_eq!(events(&mut rb), vec!["track_published"]);
        hub.mute("m", "a", "audio", true);
        assert!(events(&mut ra).is_empty());
        assert_eq!(events(&mut rb), vec!["mute_changed"]);

        // a rejoins: old a is kicked, b sees a's track go, a leave, a2 join
        let (ta2, mut ra2) = mpsc::unbounded_channel();
        let out = hub.join("m", "inv-a", info("a2"), ta2);
        assert_eq!(out.replaced.as_deref(), Some("a"));
        assert_eq!(out.others, vec![info("b")]);
        assert_eq!(events(&mut ra), vec!["kick:Replaced"]);
        assert_eq!(
            events(&mut rb),
            vec![
                "track_unpublished",
                "participant_left",
                "participant_joined"
            ]
        );
        assert!(!hub.leave("m", "a", "disconnected"), "already gone");
        assert!(hub.leave("m", "b", "left"));
        assert_eq!(events(&mut ra2), vec!["participant_left"]);
        assert!(hub.leave("m", "a2", "left"));
        assert_eq!(hub.count("m"), 0);
    }

    #[test]
    fn kick_invitation_and_broadcast() {
        let hub = Hub::new();
        let (ta, mut ra) = mpsc::unbounded_channel();
        let (tb, mut rb) = mpsc::unbounded_channel();
        hub.join("m", "inv-a", info("a"), ta);
        hub.join("m", "inv-b", info("b"), tb);
        events(&mut ra);
        hub.broadcast("m", &json!({"type": "agenda_changed", "meeting_id": "m"}));
        hub.broadcast("other", &json!({"type": "agenda_changed"}));
        assert_eq!(events(&mut ra), vec!["agenda_changed"]);
        assert_eq!(events(&mut rb), vec!["agenda_changed"]);
        assert!(hub.kick_invitation("m", "inv-a"));
        assert_eq!(events(&mut ra), vec!["kick:Revoked"]);
        assert_eq!(events(&mut rb), vec!["participant_left"]);
        assert!(!hub.kick_invitation("m", "inv-a"), "already gone");
        assert!(
            !hub.leave("m", "a", "revoked"),
            "the session's own leave is a no-op"
        );
        assert_eq!(hub.count("m"), 1);
    }
}
