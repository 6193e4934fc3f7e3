//! The meeting hub: who is in which meeting right now, their mute state and
//! live tracks, and the broadcasting of changes to the other sessions.
//!
//! Sessions register with [`Hub::join`] and get events through the channel
//! they hand in; every broadcast is serialized once. The lock is a plain
//! mutex held only while the maps change (no awaits under it).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde_json::{json, Value};

use crate::protocol::ServerMsg;

mod live;
pub use live::PresentedDocument;
pub use live::{spawn_media_ops, GateRefused, LiveRefused, MediaOp, Waited};

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
    /// Its meeting ended (or was cancelled).
    MeetingEnded,
    /// The chair removed it (a `removed` event with the reason came first).
    Removed,
}

impl KickReason {
    /// The `reason` the others (and the roster) see.
    pub fn as_str(self) -> &'static str {
        match self {
            KickReason::Replaced => "replaced",
            KickReason::Shutdown => "disconnected",
            KickReason::Revoked => "revoked",
            KickReason::MeetingEnded => "meeting_ended",
            KickReason::Removed => "removed",
        }
    }
}

/// A participant as the protocol shows it (`participant_joined`, `joined`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub audio_muted: bool,
    pub video_muted: bool,
    /// The chair blocked its audio (or video) in the media plane.
    pub audio_blocked: bool,
    pub video_blocked: bool,
    /// How it is connected: `participant` (WebSocket) or `whip` (an
    /// encoder). Shown in the operator's roster, not in protocol messages.
    #[serde(skip)]
    pub kind: &'static str,
}

impl ParticipantInfo {
    /// A participant as it enters: nothing muted or blocked yet.
    pub fn new(id: &str, name: &str, role: cabinet::Role, kind: &'static str) -> ParticipantInfo {
        ParticipantInfo {
            id: id.to_owned(),
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            audio_muted: false,
            video_muted: false,
            audio_blocked: false,
            video_blocked: false,
            kind,
        }
    }

    fn is_chair(&self) -> bool {
        self.role == cabinet::Role::Chair.as_str()
    }
}

/// A live track, as the protocol shows it (`track_published`, `joined`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackInfo {
    pub track_id: String,
    pub participant_id: String,
    /// `audio` or `video`.
    pub kind: &'static str,
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
    /// When it joined (Unix seconds), for the roster.
    joined_at: i64,
    /// The invitation it joined with: a second join with it replaces this one.
    invitation_id: String,
    tx: tokio::sync::mpsc::UnboundedSender<HubMsg>,
    /// Live tracks, in the order they went live.
    tracks: Vec<TrackInfo>,
    /// Order of joining, to list participants stably.
    seq: u64,
}

/// A WHEP player of a meeting's main view: not a participant (it sends
/// nothing and nobody sees it in the meeting), but the operator's roster
/// lists it, its invitation's cap counts it, and it ends with the meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerInfo {
    /// The WHEP session id.
    pub id: String,
    pub name: String,
    pub role: String,
}

struct Viewer {
    info: ViewerInfo,
    invitation_id: String,
    joined_at: i64,
    tx: tokio::sync::mpsc::UnboundedSender<HubMsg>,
}

/// A session that took over a live invitation from another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub invitation_id: String,
    pub name: String,
    pub old_participant_id: String,
    pub new_participant_id: String,
    /// Unix seconds.
    pub at: i64,
}

impl Replacement {
    pub fn to_json(&self) -> Value {
        json!({
            "invitation_id": self.invitation_id,
            "name": self.name,
            "old_participant_id": self.old_participant_id,
            "new_participant_id": self.new_participant_id,
            "at": self.at,
        })
    }
}

/// Replacements kept per meeting for the roster (the audit log keeps all).
const REPLACEMENTS_KEPT: usize = 50;
/// Resume tokens of sessions ended with their meeting, kept to answer
/// `meeting_closed` instead of `resume_failed` (cleared when over).
const ENDED_TOKENS_KEPT: usize = 10_000;

/// Now, in Unix seconds.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Why a viewer was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerRefused {
    /// The invitation has its cap of viewers already.
    TooMany,
}

#[derive(Default)]
struct Room {
    members: HashMap<String, Member>,
    /// WHEP players, by session id.
    viewers: HashMap<String, Viewer>,
}

impl Room {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.viewers.is_empty()
    }
}

impl Room {
    /// Sends a message to every member but `except` (serialized once).
    fn broadcast(&self, msg: &ServerMsg, except: Option<&str>) {
        let text: Arc<str> = Arc::from(msg.to_text(None));
        for (id, m) in &self.members {
            if Some(id.as_str()) != except {
                // A closed channel means the session is ending; it will leave.
                let _ = m.tx.send(HubMsg::Event(text.clone()));
            }
        }
    }

    /// Removes a member and tells the rest (its tracks go away first).
    fn remove(&mut self, pid: &str, reason: &'static str) -> Option<Member> {
        let m = self.members.remove(pid)?;
        for t in &m.tracks {
            self.broadcast(
                &ServerMsg::TrackUnpublished {
                    track_id: t.track_id.clone(),
                    participant_id: pid.to_owned(),
                },
                None,
            );
        }
        self.broadcast(
            &ServerMsg::ParticipantLeft {
                participant_id: pid.to_owned(),
                reason,
            },
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
    /// Resume tokens of sessions whose meeting ended: token -> meeting.
    ended_resumes: HashMap<String, String>,
    /// The latest replacements of live invitations, per meeting.
    replacements: HashMap<String, VecDeque<Replacement>>,
    /// The live state of each meeting in progress or awaited (floor,
    /// queue, blocks, lock, current item, waiting sockets): kept while its
    /// room empties, dropped when the meeting ends.
    lives: HashMap<String, live::LiveState>,
    /// Where the media plane's side of the chair's actions goes (blocks,
    /// the main view), in order; None without a media plane.
    media: Option<tokio::sync::mpsc::UnboundedSender<MediaOp>>,
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
    /// The session ended with its meeting.
    MeetingEnded,
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
            inner.forget_live(meeting_id, old_id);
        }
        let mut info = info;
        inner.on_enter(meeting_id, &mut info);
        if let Some(old_id) = &old {
            inner.resumes.retain(|_, r| &r.pid != old_id);
            let list = inner.replacements.entry(meeting_id.to_owned()).or_default();
            list.push_back(Replacement {
                invitation_id: invitation_id.to_owned(),
                name: info.name.clone(),
                old_participant_id: old_id.clone(),
                new_participant_id: info.id.clone(),
                at: now_unix(),
            });
            while list.len() > REPLACEMENTS_KEPT {
                list.pop_front();
            }
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
            &ServerMsg::ParticipantJoined {
                participant: info.clone(),
            },
            None,
        );
        room.members.insert(
            info.id.clone(),
            Member {
                info,
                joined_at: now_unix(),
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
    pub fn leave(&self, meeting_id: &str, pid: &str, reason: &'static str) -> bool {
        let mut inner = self.lock();
        inner.resumes.retain(|_, r| r.pid != pid);
        let Some(room) = inner.rooms.get_mut(meeting_id) else {
            return false;
        };
        let removed = room.remove(pid, reason).is_some();
        if room.is_empty() {
            inner.rooms.remove(meeting_id);
        }
        if removed {
            inner.forget_live(meeting_id, pid);
        }
        removed
    }

    /// Adds a WHEP player of the meeting's main view, unless its invitation
    /// has `per_invitation` viewers already. Its channel gets the kicks
    /// (revoked, meeting ended, shutdown).
    pub fn add_viewer(
        &self,
        meeting_id: &str,
        invitation_id: &str,
        info: ViewerInfo,
        per_invitation: usize,
        tx: tokio::sync::mpsc::UnboundedSender<HubMsg>,
    ) -> Result<(), ViewerRefused> {
        let mut inner = self.lock();
        let room = inner.rooms.entry(meeting_id.to_owned()).or_default();
        let same = room
            .viewers
            .values()
            .filter(|v| v.invitation_id == invitation_id)
            .count();
        if same >= per_invitation {
            if room.is_empty() {
                inner.rooms.remove(meeting_id);
            }
            return Err(ViewerRefused::TooMany);
        }
        room.viewers.insert(
            info.id.clone(),
            Viewer {
                info,
                invitation_id: invitation_id.to_owned(),
                joined_at: now_unix(),
                tx,
            },
        );
        Ok(())
    }

    /// Removes a WHEP player (no-op if it is gone already).
    pub fn remove_viewer(&self, meeting_id: &str, viewer_id: &str) {
        let mut inner = self.lock();
        let Some(room) = inner.rooms.get_mut(meeting_id) else {
            return;
        };
        room.viewers.remove(viewer_id);
        if room.is_empty() {
            inner.rooms.remove(meeting_id);
        }
    }

    /// Ends every live session of a meeting (it ended or was cancelled):
    /// participants, WHIP publishers and WHEP players are kicked with
    /// [`KickReason::MeetingEnded`]; their resume tokens then answer
    /// `meeting_closed`. Returns how many sessions were ended.
    pub fn end_meeting(&self, meeting_id: &str) -> usize {
        let mut inner = self.lock();
        inner.replacements.remove(meeting_id);
        let waiting = inner
            .lives
            .remove(meeting_id)
            .map(|l| l.end_waiting())
            .unwrap_or(0);
        let Some(room) = inner.rooms.remove(meeting_id) else {
            return waiting;
        };
        for m in room.members.values() {
            let _ = m.tx.send(HubMsg::Kick(KickReason::MeetingEnded));
        }
        for v in room.viewers.values() {
            let _ = v.tx.send(HubMsg::Kick(KickReason::MeetingEnded));
        }
        let ended: Vec<String> = inner
            .resumes
            .iter()
            .filter(|(_, r)| r.meeting_id == meeting_id)
            .map(|(t, _)| t.clone())
            .collect();
        if inner.ended_resumes.len() + ended.len() > ENDED_TOKENS_KEPT {
            inner.ended_resumes.clear();
        }
        for t in ended {
            inner.resumes.remove(&t);
            inner.ended_resumes.insert(t, meeting_id.to_owned());
        }
        room.members.len() + room.viewers.len() + waiting
    }

    /// Meetings with a live session now (participants or viewers).
    pub fn live_meetings(&self) -> Vec<String> {
        self.lock().rooms.keys().cloned().collect()
    }

    /// The operator's view of a meeting now: its participants (`kind`
    /// `participant` or `whip`), its WHEP viewers (`kind` `viewer`), and the
    /// latest replacements of a live invitation by a new session.
    pub fn roster(&self, meeting_id: &str) -> Value {
        let inner = self.lock();
        let replacements: Vec<Value> = inner
            .replacements
            .get(meeting_id)
            .map(|l| l.iter().map(Replacement::to_json).collect())
            .unwrap_or_default();
        let (mut participants, mut viewers) = (Vec::new(), Vec::new());
        if let Some(room) = inner.rooms.get(meeting_id) {
            let mut members: Vec<&Member> = room.members.values().collect();
            members.sort_by_key(|m| m.seq);
            for m in members {
                participants.push(json!({
                    "id": m.info.id,
                    "name": m.info.name,
                    "role": m.info.role,
                    "kind": m.info.kind,
                    "invitation_id": m.invitation_id,
                    "joined_at": m.joined_at,
                    "audio_muted": m.info.audio_muted,
                    "video_muted": m.info.video_muted,
                    "tracks": m.tracks.len(),
                }));
            }
            let mut vs: Vec<&Viewer> = room.viewers.values().collect();
            vs.sort_by(|a, b| (a.joined_at, &a.info.id).cmp(&(b.joined_at, &b.info.id)));
            for v in vs {
                viewers.push(json!({
                    "id": v.info.id,
                    "name": v.info.name,
                    "role": v.info.role,
                    "kind": "viewer",
                    "invitation_id": v.invitation_id,
                    "joined_at": v.joined_at,
                }));
            }
        }
        json!({
            "meeting_id": meeting_id,
            "participants": participants,
            "viewers": viewers,
            "replacements": replacements,
        })
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
        if let Some(m) = inner.ended_resumes.get(token) {
            if meeting_id.is_some_and(|want| want != m) {
                return Err(ResumeRefused::WrongMeeting);
            }
            return Err(ResumeRefused::MeetingEnded);
        }
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
        room.broadcast(&ServerMsg::TrackPublished { track }, None);
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
            &ServerMsg::TrackUnpublished {
                track_id: track_id.to_owned(),
                participant_id: pid.to_owned(),
            },
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
        let kind = match kind {
            "audio" => {
                m.info.audio_muted = muted;
                "audio"
            }
            "video" => {
                m.info.video_muted = muted;
                "video"
            }
            _ => return,
        };
        room.broadcast(
            &ServerMsg::MuteChanged {
                participant_id: pid.to_owned(),
                kind,
                muted,
            },
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
        let before = room.viewers.len();
        room.viewers.retain(|_, v| {
            let keep = v.invitation_id != invitation_id;
            if !keep {
                let _ = v.tx.send(HubMsg::Kick(KickReason::Revoked));
            }
            keep
        });
        let viewers_kicked = room.viewers.len() != before;
        let pid = room
            .members
            .values()
            .find(|m| m.invitation_id == invitation_id)
            .map(|m| m.info.id.clone());
        let Some(pid) = pid else {
            if room.is_empty() {
                inner.rooms.remove(meeting_id);
            }
            return viewers_kicked;
        };
        if let Some(m) = room.remove(&pid, "revoked") {
            let _ = m.tx.send(HubMsg::Kick(KickReason::Revoked));
        }
        if room.is_empty() {
            inner.rooms.remove(meeting_id);
        }
        inner.resumes.retain(|_, r| r.pid != pid);
        inner.forget_live(meeting_id, &pid);
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
                    .map(|m| m.invitation_id.clone())
                    .chain(r.viewers.values().map(|v| v.invitation_id.clone()))
                    .map(move |inv| (mid.clone(), inv))
            })
            .collect()
    }

    /// Sends an event to everyone in a meeting (nobody there: nothing).
    pub fn broadcast(&self, meeting_id: &str, msg: &ServerMsg) {
        let inner = self.lock();
        if let Some(room) = inner.rooms.get(meeting_id) {
            room.broadcast(msg, None);
        }
    }

    /// Sends an event to the participants of a meeting that came with
    /// invitation `invitation_id` (`None`: to every participant); players
    /// of the main view get nothing.
    pub fn send_to_invitation(
        &self,
        meeting_id: &str,
        invitation_id: Option<&str>,
        msg: &ServerMsg,
    ) {
        let inner = self.lock();
        let Some(room) = inner.rooms.get(meeting_id) else {
            return;
        };
        let text: Arc<str> = Arc::from(msg.to_text(None));
        for m in room.members.values() {
            if invitation_id.is_none_or(|i| m.invitation_id == i) {
                let _ = m.tx.send(HubMsg::Event(text.clone()));
            }
        }
    }

    /// Tells every session to end (the server stops).
    pub fn kick_all(&self) {
        let inner = self.lock();
        for room in inner.rooms.values() {
            for m in room.members.values() {
                let _ = m.tx.send(HubMsg::Kick(KickReason::Shutdown));
            }
            for v in room.viewers.values() {
                let _ = v.tx.send(HubMsg::Kick(KickReason::Shutdown));
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
        ParticipantInfo::new(id, id, cabinet::Role::Bridge, "participant")
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
    fn viewers_capped_and_everything_ends_with_the_meeting() {
        let hub = Hub::new();
        let viewer = |id: &str| ViewerInfo {
            id: id.into(),
            name: id.into(),
            role: "observer".into(),
        };
        let (ta, mut ra) = mpsc::unbounded_channel();
        let (tv, mut rv) = mpsc::unbounded_channel();
        hub.join("m", "inv-a", info("a"), ta);
        hub.set_resume_token("m", "a", "tok".into(), mpsc::unbounded_channel().0);
        assert!(hub
            .add_viewer("m", "inv-v", viewer("v1"), 1, tv.clone())
            .is_ok());
        assert_eq!(
            hub.add_viewer("m", "inv-v", viewer("v2"), 1, tv.clone()),
            Err(ViewerRefused::TooMany)
        );
        assert!(hub.add_viewer("m", "inv-w", viewer("w1"), 1, tv).is_ok());
        let r = hub.roster("m");
        assert_eq!(r["viewers"].as_array().map(Vec::len), Some(2));
        assert_eq!(r["viewers"][0]["kind"], "viewer");
        assert_eq!(r["participants"][0]["kind"], "participant");
        events(&mut ra);
        assert_eq!(hub.end_meeting("m"), 3);
        assert_eq!(events(&mut ra), vec!["kick:MeetingEnded"]);
        assert_eq!(
            events(&mut rv),
            vec!["kick:MeetingEnded", "kick:MeetingEnded"]
        );
        assert_eq!(hub.count("m"), 0);
        assert!(hub.live_meetings().is_empty());
        assert_eq!(
            hub.take_resume("tok", None).err(),
            Some(ResumeRefused::MeetingEnded)
        );
        assert_eq!(hub.end_meeting("m"), 0);
    }

    #[test]
    fn kick_invitation_and_broadcast() {
        let hub = Hub::new();
        let (ta, mut ra) = mpsc::unbounded_channel();
        let (tb, mut rb) = mpsc::unbounded_channel();
        hub.join("m", "inv-a", info("a"), ta);
        hub.join("m", "inv-b", info("b"), tb);
        events(&mut ra);
        let agenda = |m: &str| ServerMsg::AgendaChanged {
            meeting_id: m.to_owned(),
        };
        hub.broadcast("m", &agenda("m"));
        hub.broadcast("other", &agenda("other"));
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
