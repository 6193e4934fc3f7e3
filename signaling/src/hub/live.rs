//! The live meeting's control state, owned by the hub with its rooms (one
//! owner per meeting: every change happens under the hub's lock, without
//! awaits, and is pushed to the sessions concerned in the same step):
//! the floor, the speaking queue, the chair's blocks of participants'
//! media, the lock, the current agenda item, the meeting's status as the
//! room sees it, and the sockets waiting for the start.
//!
//! The media plane's side of an action (stop forwarding a blocked track,
//! make the floor holder the main view) leaves as [`MediaOp`]s on one
//! channel, applied in order by [`spawn_media_ops`]; the hub never awaits
//! the media plane.

use std::collections::HashSet;

use tokio::sync::mpsc::UnboundedSender;

use super::{now_unix, Hub, HubInner, HubMsg, KickReason, ParticipantInfo};
use crate::protocol::{
    FloorMsg, HandKind, HandMsg, LiveStateMsg, PresentationMsg, PresentationStateMsg, ServerMsg,
};

/// What the media plane must do after a change of the live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaOp {
    /// Forward (or stop forwarding) a participant's audio or video.
    Block {
        pid: String,
        kind: sfu::MediaKind,
        blocked: bool,
    },
    /// Make a participant the main view (WHEP players, the featured slot),
    /// or stop.
    Feature { pid: String, featured: bool },
}

/// Applies the hub's media operations to the media plane, in the order the
/// hub made them. Returns the sender to give [`Hub::set_media`].
pub fn spawn_media_ops(sfu: sfu::Sfu) -> UnboundedSender<MediaOp> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<MediaOp>();
    tokio::spawn(async move {
        while let Some(op) = rx.recv().await {
            let done = match &op {
                MediaOp::Block { pid, kind, blocked } => {
                    sfu.block_media(pid, *kind, *blocked).await
                }
                MediaOp::Feature { pid, featured } => sfu.set_featured_id(pid, *featured).await,
            };
            // A participant that left meanwhile is no error worth more.
            if let Err(e) = done {
                tracing::debug!(error = %e, ?op, "a media operation of the live meeting failed");
            }
        }
    });
    tx
}

/// Why the hub refused a chair's (or a participant's) action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveRefused {
    /// The participant named is not in the meeting.
    NotInMeeting,
    /// The participant named has no raised hand.
    NoHand,
    /// A chair is never blocked or removed, an observer never gets the floor.
    Forbidden(&'static str),
    /// The document presented is not one of the current agenda item's.
    NotCurrentItem,
    /// Nothing is presented, or the sender is not its presenter.
    NotPresenter,
}

/// A document to present, as the cabinet knows it (the caller checked it
/// is the meeting's, readable and not withdrawn).
#[derive(Debug, Clone)]
pub struct PresentedDocument {
    pub document_id: String,
    /// The version everyone loads (the newest when it began).
    pub version: i64,
    pub item_id: String,
    pub title: String,
}

/// Why a new participant may not enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateRefused {
    Locked,
    Removed,
}

/// What [`Hub::wait_for_start`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The socket waits.
    Waiting,
    /// The meeting started meanwhile: join now.
    Started,
    /// Too many sockets wait already.
    Full,
}

/// Waiting sockets kept per meeting at most (closed ones are pruned first).
const WAITING_KEPT: usize = 5_000;

#[derive(Debug, Clone)]
struct Hand {
    pid: String,
    name: String,
    kind: HandKind,
    since: i64,
}

#[derive(Debug, Clone)]
struct Floor {
    pid: String,
    since: i64,
}

/// One meeting's live state.
pub(super) struct LiveState {
    /// The meeting's status as the room knows it (`in_progress` once started).
    status: &'static str,
    locked: bool,
    floor: Option<Floor>,
    /// The speaking queue, in the order the hands went up.
    hands: Vec<Hand>,
    current_item: Option<String>,
    /// Bridge points and delegates enter with their audio blocked.
    join_muted: bool,
    /// Invitations the chair removed: they do not enter again (the audit
    /// log keeps the removal; after a restart [`Hub::open_live`] reads it
    /// back).
    removed: HashSet<String>,
    /// Whether the chair's stored decisions (lock, removals, current item:
    /// [`cabinet::LiveControl`]) were read into this state.
    loaded: bool,
    /// Sockets that joined before the start, told `meeting_started`.
    waiting: Vec<UnboundedSender<HubMsg>>,
    /// The document presented now, its page and zoom.
    presentation: Option<PresentationMsg>,
    /// Whether the floor holder may present (the chair's `allow_presenting`).
    floor_may_present: bool,
    /// Counts the presentation's changes (`seq`).
    presentation_seq: u64,
}

impl LiveState {
    fn new(status: &'static str, join_muted: bool) -> LiveState {
        LiveState {
            status,
            locked: false,
            floor: None,
            hands: Vec::new(),
            current_item: None,
            join_muted,
            removed: HashSet::new(),
            loaded: false,
            waiting: Vec::new(),
            presentation: None,
            floor_may_present: false,
            presentation_seq: 0,
        }
    }

    /// Takes in the chair's stored decisions, once: what changed since
    /// the state was made (it was made without them) stays.
    fn load(&mut self, saved: cabinet::LiveControl) {
        if self.loaded {
            return;
        }
        self.loaded = true;
        self.locked |= saved.locked;
        if self.current_item.is_none() {
            self.current_item = saved.current_item_id;
        }
        self.removed.extend(saved.removed);
    }

    fn presentation_msg(&self) -> ServerMsg {
        ServerMsg::Presentation(PresentationStateMsg {
            presentation: self.presentation.clone(),
            floor_may_present: self.floor_may_present,
        })
    }

    /// Ends the presentation if `pid` presents it. Returns whether it did.
    fn stop_if_presenter(&mut self, pid: &str) -> bool {
        if self
            .presentation
            .as_ref()
            .is_some_and(|p| p.presenter_id == pid)
        {
            self.presentation = None;
            self.presentation_seq += 1;
            return true;
        }
        false
    }

    fn msg(&self) -> LiveStateMsg {
        LiveStateMsg {
            status: self.status,
            locked: self.locked,
            floor: self.floor.as_ref().map(|f| FloorMsg {
                participant_id: f.pid.clone(),
                since: f.since,
            }),
            current_item_id: self.current_item.clone(),
            join_muted: self.join_muted,
        }
    }

    fn hands_msg(&self) -> ServerMsg {
        ServerMsg::Hands {
            queue: self
                .hands
                .iter()
                .map(|h| HandMsg {
                    participant_id: h.pid.clone(),
                    name: h.name.clone(),
                    kind: h.kind,
                    since: h.since,
                })
                .collect(),
        }
    }

    /// Closes the waiting sockets (the meeting ended). Returns how many.
    pub(super) fn end_waiting(self) -> usize {
        let n = self.waiting.iter().filter(|t| !t.is_closed()).count();
        for t in &self.waiting {
            let _ = t.send(HubMsg::Kick(KickReason::MeetingEnded));
        }
        n
    }
}

/// Whether a participant presents by its role alone (the chair, the
/// secretary), not only through the floor.
fn moderates(info: &ParticipantInfo) -> bool {
    info.role == cabinet::Role::Chair.as_str() || info.role == cabinet::Role::Secretary.as_str()
}

fn text(msg: &ServerMsg) -> std::sync::Arc<str> {
    std::sync::Arc::from(msg.to_text(None))
}

impl HubInner {
    fn send_media(&self, op: MediaOp) {
        if let Some(tx) = &self.media {
            let _ = tx.send(op);
        }
    }

    fn broadcast_msg(&self, meeting_id: &str, msg: &ServerMsg) {
        if let Some(room) = self.rooms.get(meeting_id) {
            room.broadcast(msg, None);
        }
    }

    fn broadcast_state(&self, meeting_id: &str) {
        if let Some(l) = self.lives.get(meeting_id) {
            self.broadcast_msg(meeting_id, &ServerMsg::MeetingState(l.msg()));
        }
    }

    fn broadcast_presentation(&self, meeting_id: &str) {
        if let Some(l) = self.lives.get(meeting_id) {
            self.broadcast_msg(meeting_id, &l.presentation_msg());
        }
    }

    fn broadcast_hands(&self, meeting_id: &str) {
        if let Some(l) = self.lives.get(meeting_id) {
            self.broadcast_msg(meeting_id, &l.hands_msg());
        }
    }

    /// The chairs in the room now (the main view when nobody has the floor).
    fn chairs(&self, meeting_id: &str) -> Vec<String> {
        self.rooms.get(meeting_id).map_or_else(Vec::new, |r| {
            r.members
                .values()
                .filter(|m| m.info.is_chair())
                .map(|m| m.info.id.clone())
                .collect()
        })
    }

    /// A participant enters: blocked if the meeting joins muted, the main
    /// view if it chairs and nobody has the floor.
    pub(super) fn on_enter(&mut self, meeting_id: &str, info: &mut ParticipantInfo) {
        let Some(l) = self.lives.get(meeting_id) else {
            if info.is_chair() {
                self.send_media(MediaOp::Feature {
                    pid: info.id.clone(),
                    featured: true,
                });
            }
            return;
        };
        let bridge_like = info.role == cabinet::Role::Bridge.as_str()
            || info.role == cabinet::Role::Delegate.as_str();
        let block = l.join_muted && bridge_like;
        let feature = info.is_chair() && l.floor.is_none();
        if block {
            info.audio_blocked = true;
            self.send_media(MediaOp::Block {
                pid: info.id.clone(),
                kind: sfu::MediaKind::Audio,
                blocked: true,
            });
        }
        if feature {
            self.send_media(MediaOp::Feature {
                pid: info.id.clone(),
                featured: true,
            });
        }
    }

    /// A participant left (or was replaced, revoked, removed): its hand
    /// goes down, and if it had the floor, the chair is the main view again.
    pub(super) fn forget_live(&mut self, meeting_id: &str, pid: &str) {
        let Some(l) = self.lives.get_mut(meeting_id) else {
            return;
        };
        let had_hand = l.hands.len();
        l.hands.retain(|h| h.pid != pid);
        let had_hand = had_hand != l.hands.len();
        let had_floor = l.floor.as_ref().is_some_and(|f| f.pid == pid);
        if had_floor {
            l.floor = None;
        }
        if l.stop_if_presenter(pid) {
            self.broadcast_presentation(meeting_id);
        }
        if had_hand {
            self.broadcast_hands(meeting_id);
        }
        if had_floor {
            for c in self.chairs(meeting_id) {
                self.send_media(MediaOp::Feature {
                    pid: c,
                    featured: true,
                });
            }
            self.broadcast_state(meeting_id);
        }
    }

    fn member_info(&self, meeting_id: &str, pid: &str) -> Result<ParticipantInfo, LiveRefused> {
        self.rooms
            .get(meeting_id)
            .and_then(|r| r.members.get(pid))
            .map(|m| m.info.clone())
            .ok_or(LiveRefused::NotInMeeting)
    }

    /// Sets the chair's block of a participant's media and tells everyone.
    /// Returns whether it changed.
    fn set_block(
        &mut self,
        meeting_id: &str,
        pid: &str,
        kind: sfu::MediaKind,
        blocked: bool,
    ) -> bool {
        let Some(m) = self
            .rooms
            .get_mut(meeting_id)
            .and_then(|r| r.members.get_mut(pid))
        else {
            return false;
        };
        let flag = match kind {
            sfu::MediaKind::Audio => &mut m.info.audio_blocked,
            sfu::MediaKind::Video => &mut m.info.video_blocked,
        };
        if *flag == blocked {
            return false;
        }
        *flag = blocked;
        let msg = ServerMsg::MediaBlocked {
            participant_id: pid.to_owned(),
            audio_blocked: m.info.audio_blocked,
            video_blocked: m.info.video_blocked,
        };
        self.send_media(MediaOp::Block {
            pid: pid.to_owned(),
            kind,
            blocked,
        });
        self.broadcast_msg(meeting_id, &msg);
        true
    }

    fn live_mut(&mut self, meeting_id: &str) -> &mut LiveState {
        self.lives
            .entry(meeting_id.to_owned())
            .or_insert_with(|| LiveState::new("in_progress", false))
    }
}

impl Hub {
    /// Hands the hub the channel of [`spawn_media_ops`].
    pub fn set_media(&self, tx: UnboundedSender<MediaOp>) {
        self.lock().media = Some(tx);
    }

    /// Whether the meeting's live state still needs the chair's stored
    /// decisions ([`Hub::open_live`]'s `saved`): it has none yet, or one
    /// made without them.
    pub fn needs_saved(&self, meeting_id: &str) -> bool {
        self.lock().lives.get(meeting_id).is_none_or(|l| !l.loaded)
    }

    /// Makes sure the meeting has a live state, from what the cabinet says
    /// of it (its status, whether its bridge points join muted, and, in
    /// `saved`, the chair's decisions recorded before: lock, removals,
    /// current item; read in once); an existing one takes the status
    /// (never back from `in_progress`) and the join-muted setting.
    pub fn open_live(
        &self,
        meeting_id: &str,
        status: &'static str,
        join_muted: bool,
        saved: Option<cabinet::LiveControl>,
    ) {
        let mut inner = self.lock();
        let l = inner
            .lives
            .entry(meeting_id.to_owned())
            .or_insert_with(|| LiveState::new(status, join_muted));
        // A reading from before the start never takes the room back; the
        // join-muted setting applies to whoever enters next.
        if l.status != "in_progress" {
            l.status = status;
        }
        l.join_muted = join_muted;
        if let Some(saved) = saved {
            l.load(saved);
        }
    }

    /// Whether an invitation of `role` may enter the meeting now: not when
    /// the chair removed it, nor when the meeting is locked (the chair,
    /// the secretary, and a new session of an invitation already inside
    /// still enter).
    pub fn gate(
        &self,
        meeting_id: &str,
        invitation_id: &str,
        role: cabinet::Role,
    ) -> Result<(), GateRefused> {
        let inner = self.lock();
        let Some(l) = inner.lives.get(meeting_id) else {
            return Ok(());
        };
        if l.removed.contains(invitation_id) {
            return Err(GateRefused::Removed);
        }
        let inside = inner
            .rooms
            .get(meeting_id)
            .is_some_and(|r| r.members.values().any(|m| m.invitation_id == invitation_id));
        if l.locked && !inside && !matches!(role, cabinet::Role::Chair | cabinet::Role::Secretary) {
            return Err(GateRefused::Locked);
        }
        Ok(())
    }

    /// The live state as `meeting_state` and `hands` show it.
    pub fn live_messages(&self, meeting_id: &str) -> (LiveStateMsg, ServerMsg) {
        let mut inner = self.lock();
        let l = inner.live_mut(meeting_id);
        (l.msg(), l.hands_msg())
    }

    /// A socket waits for the start; it gets `meeting_started` (or the
    /// meeting-ended kick).
    pub fn wait_for_start(&self, meeting_id: &str, tx: UnboundedSender<HubMsg>) -> Waited {
        let mut inner = self.lock();
        let l = inner.live_mut(meeting_id);
        if l.status == "in_progress" {
            return Waited::Started;
        }
        if l.waiting.len() >= WAITING_KEPT {
            l.waiting.retain(|t| !t.is_closed());
            if l.waiting.len() >= WAITING_KEPT {
                return Waited::Full;
            }
        }
        l.waiting.push(tx);
        Waited::Waiting
    }

    /// Meetings that sockets wait for (not started as far as the room knows).
    pub fn awaited_meetings(&self) -> Vec<String> {
        let inner = self.lock();
        inner
            .lives
            .iter()
            .filter(|(_, l)| l.status != "in_progress" && !l.waiting.is_empty())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The meeting started: the waiting sockets are told, the room sees
    /// the new status.
    pub fn meeting_started(&self, meeting_id: &str) {
        let mut inner = self.lock();
        let l = inner.live_mut(meeting_id);
        l.status = "in_progress";
        let t = text(&ServerMsg::MeetingStarted {});
        for w in std::mem::take(&mut l.waiting) {
            let _ = w.send(HubMsg::Event(t.clone()));
        }
        inner.broadcast_state(meeting_id);
    }

    /// `pid` raises its hand (again: the kind changes, the place stays).
    pub fn raise_hand(
        &self,
        meeting_id: &str,
        pid: &str,
        kind: HandKind,
    ) -> Result<(), LiveRefused> {
        let mut inner = self.lock();
        let info = inner.member_info(meeting_id, pid)?;
        let l = inner.live_mut(meeting_id);
        match l.hands.iter_mut().find(|h| h.pid == pid) {
            Some(h) => h.kind = kind,
            None => l.hands.push(Hand {
                pid: pid.to_owned(),
                name: info.name,
                kind,
                since: now_unix(),
            }),
        }
        inner.broadcast_hands(meeting_id);
        Ok(())
    }

    /// `pid` lowers its hand (no hand: nothing changes).
    pub fn lower_hand(&self, meeting_id: &str, pid: &str) {
        let mut inner = self.lock();
        let l = inner.live_mut(meeting_id);
        let before = l.hands.len();
        l.hands.retain(|h| h.pid != pid);
        if l.hands.len() != before {
            inner.broadcast_hands(meeting_id);
        }
    }

    /// The chair clears a raised hand.
    pub fn clear_hand(&self, meeting_id: &str, pid: &str) -> Result<(), LiveRefused> {
        let mut inner = self.lock();
        let l = inner.live_mut(meeting_id);
        let before = l.hands.len();
        l.hands.retain(|h| h.pid != pid);
        if l.hands.len() == before {
            return Err(LiveRefused::NoHand);
        }
        inner.broadcast_hands(meeting_id);
        Ok(())
    }

    /// The chair gives `pid` the floor: its hand goes down, the chair's
    /// blocks of its audio and its video are lifted (a floor holder
    /// without a picture would be a blank main view), it becomes the main
    /// view.
    pub fn give_floor(&self, meeting_id: &str, pid: &str) -> Result<(), LiveRefused> {
        let mut inner = self.lock();
        let info = inner.member_info(meeting_id, pid)?;
        if info.role == cabinet::Role::Observer.as_str() {
            return Err(LiveRefused::Forbidden("an observer cannot take the floor"));
        }
        let l = inner.live_mut(meeting_id);
        l.hands.retain(|h| h.pid != pid);
        let previous = l.floor.replace(Floor {
            pid: pid.to_owned(),
            since: now_unix(),
        });
        // The previous floor holder's presentation ends with its floor.
        let stop_prev = previous.as_ref().filter(|p| p.pid != pid).is_some_and(|p| {
            !inner
                .member_info(meeting_id, &p.pid)
                .is_ok_and(|i| moderates(&i))
        });
        if stop_prev {
            if let Some(prev) = &previous {
                let prev = prev.pid.clone();
                if inner.live_mut(meeting_id).stop_if_presenter(&prev) {
                    inner.broadcast_presentation(meeting_id);
                }
            }
        }
        if let Some(prev) = previous.filter(|p| p.pid != pid) {
            inner.send_media(MediaOp::Feature {
                pid: prev.pid,
                featured: false,
            });
        }
        for c in inner.chairs(meeting_id) {
            if c != pid {
                inner.send_media(MediaOp::Feature {
                    pid: c,
                    featured: false,
                });
            }
        }
        inner.set_block(meeting_id, pid, sfu::MediaKind::Audio, false);
        inner.set_block(meeting_id, pid, sfu::MediaKind::Video, false);
        inner.send_media(MediaOp::Feature {
            pid: pid.to_owned(),
            featured: true,
        });
        inner.broadcast_hands(meeting_id);
        inner.broadcast_state(meeting_id);
        Ok(())
    }

    /// The chair takes the floor back: the chair is the main view again;
    /// in a meeting whose bridge points join muted, the speaker's audio is
    /// blocked again. Returns who had it (None: nobody).
    pub fn take_floor(&self, meeting_id: &str) -> Option<String> {
        let mut inner = self.lock();
        let l = inner.live_mut(meeting_id);
        let join_muted = l.join_muted;
        let prev = l.floor.take()?;
        let info = inner.member_info(meeting_id, &prev.pid).ok();
        if info.as_ref().is_some_and(|i| !i.is_chair()) {
            inner.send_media(MediaOp::Feature {
                pid: prev.pid.clone(),
                featured: false,
            });
        }
        let bridge_like = info.as_ref().is_some_and(|i| {
            i.role == cabinet::Role::Bridge.as_str() || i.role == cabinet::Role::Delegate.as_str()
        });
        if join_muted && bridge_like {
            inner.set_block(meeting_id, &prev.pid, sfu::MediaKind::Audio, true);
        }
        // Its right to present came with the floor.
        if !info.as_ref().is_some_and(moderates)
            && inner.live_mut(meeting_id).stop_if_presenter(&prev.pid)
        {
            inner.broadcast_presentation(meeting_id);
        }
        for c in inner.chairs(meeting_id) {
            inner.send_media(MediaOp::Feature {
                pid: c,
                featured: true,
            });
        }
        inner.broadcast_state(meeting_id);
        Some(prev.pid)
    }

    /// The chair blocks (or unblocks) a participant's audio or video in the
    /// media plane. A chair is never blocked. Returns whether it changed.
    pub fn block(
        &self,
        meeting_id: &str,
        pid: &str,
        kind: sfu::MediaKind,
        blocked: bool,
    ) -> Result<bool, LiveRefused> {
        let mut inner = self.lock();
        let info = inner.member_info(meeting_id, pid)?;
        if info.is_chair() && blocked {
            return Err(LiveRefused::Forbidden("the chair cannot be muted"));
        }
        Ok(inner.set_block(meeting_id, pid, kind, blocked))
    }

    /// Blocks the audio of everyone but the chairs and the floor holder.
    /// Returns the participants newly blocked.
    pub fn mute_all(&self, meeting_id: &str) -> Vec<String> {
        let mut inner = self.lock();
        let floor = inner
            .lives
            .get(meeting_id)
            .and_then(|l| l.floor.as_ref().map(|f| f.pid.clone()));
        let targets: Vec<String> = inner.rooms.get(meeting_id).map_or_else(Vec::new, |r| {
            let mut ms: Vec<_> = r.members.values().collect();
            ms.sort_by_key(|m| m.seq);
            ms.into_iter()
                .filter(|m| !m.info.is_chair() && !m.info.audio_blocked)
                .filter(|m| Some(&m.info.id) != floor.as_ref())
                .map(|m| m.info.id.clone())
                .collect()
        });
        for t in &targets {
            inner.set_block(meeting_id, t, sfu::MediaKind::Audio, true);
        }
        targets
    }

    /// Locks (or unlocks) the meeting to new participants.
    pub fn lock_meeting(&self, meeting_id: &str, locked: bool) {
        let mut inner = self.lock();
        inner.live_mut(meeting_id).locked = locked;
        inner.broadcast_state(meeting_id);
    }

    /// The chair removes a participant: it is told why and kicked, the
    /// others see it leave with `removed`, its invitation's WHEP players
    /// end, its invitation cannot enter again (the caller records it, so
    /// that a restart keeps it out too). Returns its invitation id and name.
    pub fn remove_participant(
        &self,
        meeting_id: &str,
        pid: &str,
        reason: &str,
    ) -> Result<(String, String), LiveRefused> {
        let mut inner = self.lock();
        let info = inner.member_info(meeting_id, pid)?;
        if info.is_chair() {
            return Err(LiveRefused::Forbidden("the chair cannot be removed"));
        }
        let Some(room) = inner.rooms.get_mut(meeting_id) else {
            return Err(LiveRefused::NotInMeeting);
        };
        let Some(m) = room.remove(pid, "removed") else {
            return Err(LiveRefused::NotInMeeting);
        };
        let _ = m.tx.send(HubMsg::Event(text(&ServerMsg::Removed {
            reason: reason.to_owned(),
        })));
        let _ = m.tx.send(HubMsg::Kick(KickReason::Removed));
        room.viewers.retain(|_, v| {
            let keep = v.invitation_id != m.invitation_id;
            if !keep {
                let _ = v.tx.send(HubMsg::Kick(KickReason::Removed));
            }
            keep
        });
        if room.is_empty() {
            inner.rooms.remove(meeting_id);
        }
        inner.resumes.retain(|_, r| r.pid != pid);
        inner
            .live_mut(meeting_id)
            .removed
            .insert(m.invitation_id.clone());
        inner.forget_live(meeting_id, pid);
        Ok((m.invitation_id, info.name))
    }

    /// Sets the current agenda item (the caller checked it is the
    /// meeting's): everyone's agenda follows.
    pub fn set_current_item(&self, meeting_id: &str, item_id: Option<String>) {
        let mut inner = self.lock();
        let l = inner.live_mut(meeting_id);
        // A document of the item left is no longer presented.
        let stop = l
            .presentation
            .as_ref()
            .is_some_and(|p| Some(&p.item_id) != item_id.as_ref());
        if stop {
            l.presentation = None;
            l.presentation_seq += 1;
        }
        l.current_item = item_id;
        inner.broadcast_state(meeting_id);
        if stop {
            inner.broadcast_presentation(meeting_id);
        }
    }

    /// The presentation as `presentation` shows it (sent after `joined`).
    pub fn presentation_message(&self, meeting_id: &str) -> ServerMsg {
        self.lock().live_mut(meeting_id).presentation_msg()
    }

    /// Whether `info` may present now: the chair and the secretary always;
    /// another role while it holds the floor, when the chair allows it.
    fn may_present(l: &LiveState, info: &ParticipantInfo) -> Result<(), LiveRefused> {
        if moderates(info) {
            return Ok(());
        }
        if info.role == cabinet::Role::Observer.as_str() {
            return Err(LiveRefused::Forbidden("an observer does not present"));
        }
        let holds_floor = l.floor.as_ref().is_some_and(|f| f.pid == info.id);
        if !holds_floor {
            return Err(LiveRefused::Forbidden(
                "only the chair, the secretary or the floor holder presents",
            ));
        }
        if !l.floor_may_present {
            return Err(LiveRefused::Forbidden(
                "the chair has not allowed the floor holder to present",
            ));
        }
        Ok(())
    }

    /// `pid` presents `doc` (of the current agenda item) at `page` and
    /// `zoom_percent`; it replaces any presentation; everyone follows.
    pub fn present_document(
        &self,
        meeting_id: &str,
        pid: &str,
        doc: PresentedDocument,
        page: u32,
        zoom_percent: u32,
    ) -> Result<PresentationMsg, LiveRefused> {
        let mut inner = self.lock();
        let info = inner.member_info(meeting_id, pid)?;
        let l = inner.live_mut(meeting_id);
        Self::may_present(l, &info)?;
        if l.current_item.as_deref() != Some(doc.item_id.as_str()) {
            return Err(LiveRefused::NotCurrentItem);
        }
        l.presentation_seq += 1;
        let p = PresentationMsg {
            document_id: doc.document_id,
            version: doc.version,
            item_id: doc.item_id,
            title: doc.title,
            page,
            zoom_percent,
            presenter_id: pid.to_owned(),
            presenter_name: info.name,
            since: now_unix(),
            seq: l.presentation_seq,
        };
        l.presentation = Some(p.clone());
        inner.broadcast_presentation(meeting_id);
        Ok(p)
    }

    /// The presenter (or the chair or secretary) turns the page and, if
    /// given, zooms.
    pub fn present_page(
        &self,
        meeting_id: &str,
        pid: &str,
        page: u32,
        zoom_percent: Option<u32>,
    ) -> Result<(), LiveRefused> {
        let mut inner = self.lock();
        let info = inner.member_info(meeting_id, pid)?;
        let l = inner.live_mut(meeting_id);
        let seq = l.presentation_seq + 1;
        let Some(p) = l.presentation.as_mut() else {
            return Err(LiveRefused::NotPresenter);
        };
        if p.presenter_id != pid && !moderates(&info) {
            return Err(LiveRefused::NotPresenter);
        }
        if p.page == page && zoom_percent.is_none_or(|z| z == p.zoom_percent) {
            return Ok(());
        }
        p.page = page;
        if let Some(z) = zoom_percent {
            p.zoom_percent = z;
        }
        p.seq = seq;
        l.presentation_seq = seq;
        inner.broadcast_presentation(meeting_id);
        Ok(())
    }

    /// The presenter (or the chair or secretary) stops presenting.
    /// Returns the document that was presented.
    pub fn stop_presenting(&self, meeting_id: &str, pid: &str) -> Result<String, LiveRefused> {
        let mut inner = self.lock();
        let info = inner.member_info(meeting_id, pid)?;
        let l = inner.live_mut(meeting_id);
        let Some(p) = l.presentation.as_ref() else {
            return Err(LiveRefused::NotPresenter);
        };
        if p.presenter_id != pid && !moderates(&info) {
            return Err(LiveRefused::NotPresenter);
        }
        let doc = p.document_id.clone();
        l.presentation = None;
        l.presentation_seq += 1;
        inner.broadcast_presentation(meeting_id);
        Ok(doc)
    }

    /// The chair lets the floor holder present (or not). A floor holder
    /// presenting now stops when it is no longer allowed.
    pub fn allow_presenting(&self, meeting_id: &str, allowed: bool) {
        let mut inner = self.lock();
        let floor = inner
            .lives
            .get(meeting_id)
            .and_then(|l| l.floor.as_ref().map(|f| f.pid.clone()));
        let floor_moderates = floor
            .as_deref()
            .and_then(|f| inner.member_info(meeting_id, f).ok())
            .is_some_and(|i| moderates(&i));
        let l = inner.live_mut(meeting_id);
        l.floor_may_present = allowed;
        if !allowed && !floor_moderates {
            if let Some(f) = floor {
                l.stop_if_presenter(&f);
            }
        }
        inner.broadcast_presentation(meeting_id);
    }

    /// Sends a message to every participant of a meeting.
    pub fn send_to_all(&self, meeting_id: &str, msg: &ServerMsg) {
        self.lock().broadcast_msg(meeting_id, msg);
    }

    /// Sends a message to the participants of a meeting whose role is one
    /// of `roles` (the chair console's events).
    pub fn send_to_roles(&self, meeting_id: &str, roles: &[cabinet::Role], msg: &ServerMsg) {
        let inner = self.lock();
        let Some(room) = inner.rooms.get(meeting_id) else {
            return;
        };
        let t = text(msg);
        for m in room.members.values() {
            if roles.iter().any(|r| r.as_str() == m.info.role) {
                let _ = m.tx.send(HubMsg::Event(t.clone()));
            }
        }
    }

    /// Who has the floor now.
    pub fn floor(&self, meeting_id: &str) -> Option<String> {
        let inner = self.lock();
        inner
            .lives
            .get(meeting_id)
            .and_then(|l| l.floor.as_ref().map(|f| f.pid.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn events(rx: &mut mpsc::UnboundedReceiver<HubMsg>) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            if let HubMsg::Event(t) = m {
                out.push(serde_json::from_str(&t).expect("json"));
            }
        }
        out
    }

    fn types(evs: &[serde_json::Value]) -> Vec<String> {
        evs.iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn join(hub: &Hub, pid: &str, role: cabinet::Role) -> mpsc::UnboundedReceiver<HubMsg> {
        let (tx, rx) = mpsc::unbounded_channel();
        hub.join(
            "m",
            &format!("inv-{pid}"),
            ParticipantInfo::new(pid, pid, role, "participant"),
            tx,
        );
        rx
    }

    fn ops(rx: &mut mpsc::UnboundedReceiver<MediaOp>) -> Vec<MediaOp> {
        let mut out = Vec::new();
        while let Ok(op) = rx.try_recv() {
            out.push(op);
        }
        out
    }

    #[test]
    fn floor_queue_and_blocks() {
        let hub = Hub::new();
        let (mtx, mut mrx) = mpsc::unbounded_channel();
        hub.set_media(mtx);
        hub.open_live("m", "in_progress", true, None);
        let mut chair = join(&hub, "c", cabinet::Role::Chair);
        let mut a = join(&hub, "a", cabinet::Role::Bridge);
        let _b = join(&hub, "b", cabinet::Role::Bridge);
        // The meeting joins muted: the bridge points enter blocked; the
        // chair is the main view.
        let first = ops(&mut mrx);
        assert!(first.contains(&MediaOp::Feature {
            pid: "c".into(),
            featured: true
        }));
        assert!(first.contains(&MediaOp::Block {
            pid: "a".into(),
            kind: sfu::MediaKind::Audio,
            blocked: true
        }));
        assert_eq!(
            hub.participant("m", "a").map(|p| p.audio_blocked),
            Some(true)
        );
        events(&mut chair);
        events(&mut a);

        hub.raise_hand("m", "a", HandKind::Speak).expect("raise");
        hub.raise_hand("m", "b", HandKind::Question).expect("raise");
        hub.raise_hand("m", "a", HandKind::PointOfOrder)
            .expect("again");
        events(&mut a);
        let evs = events(&mut chair);
        let last = evs.last().expect("hands");
        assert_eq!(last["type"], "hands");
        assert_eq!(last["queue"][0]["participant_id"], "a");
        assert_eq!(last["queue"][0]["kind"], "point_of_order");
        assert_eq!(last["queue"][1]["participant_id"], "b");

        hub.give_floor("m", "a").expect("floor");
        let got = ops(&mut mrx);
        assert!(got.contains(&MediaOp::Block {
            pid: "a".into(),
            kind: sfu::MediaKind::Audio,
            blocked: false
        }));
        assert!(got.contains(&MediaOp::Feature {
            pid: "c".into(),
            featured: false
        }));
        assert_eq!(
            got.last(),
            Some(&MediaOp::Feature {
                pid: "a".into(),
                featured: true
            })
        );
        let evs = events(&mut a);
        assert_eq!(types(&evs), vec!["media_blocked", "hands", "meeting_state"]);
        assert_eq!(evs[2]["floor"]["participant_id"], "a");
        assert_eq!(evs[1]["queue"].as_array().map(Vec::len), Some(1));

        // mute_all spares the chair and the floor holder.
        assert!(hub.mute_all("m").is_empty(), "b is blocked already");
        assert_eq!(hub.take_floor("m"), Some("a".into()));
        let got = ops(&mut mrx);
        assert!(got.contains(&MediaOp::Block {
            pid: "a".into(),
            kind: sfu::MediaKind::Audio,
            blocked: true
        }));
        assert!(got.contains(&MediaOp::Feature {
            pid: "c".into(),
            featured: true
        }));
        assert_eq!(
            hub.block("m", "c", sfu::MediaKind::Audio, true),
            Err(LiveRefused::Forbidden("the chair cannot be muted"))
        );
        assert_eq!(hub.clear_hand("m", "a"), Err(LiveRefused::NoHand));
        hub.clear_hand("m", "b").expect("b had a hand");
        assert_eq!(
            hub.give_floor("m", "nobody"),
            Err(LiveRefused::NotInMeeting)
        );
    }

    fn doc(item: &str) -> PresentedDocument {
        PresentedDocument {
            document_id: "d".into(),
            version: 2,
            item_id: item.into(),
            title: "Báo cáo".into(),
        }
    }

    fn last_presentation(rx: &mut mpsc::UnboundedReceiver<HubMsg>) -> Option<serde_json::Value> {
        events(rx)
            .into_iter()
            .rev()
            .find(|e| e["type"] == "presentation")
    }

    #[test]
    fn presentation_follows_the_rights_and_the_current_item() {
        let hub = Hub::new();
        let saved = cabinet::LiveControl {
            current_item_id: Some("i1".into()),
            ..cabinet::LiveControl::default()
        };
        hub.open_live("m", "in_progress", false, Some(saved));
        let mut chair = join(&hub, "c", cabinet::Role::Chair);
        let _a = join(&hub, "a", cabinet::Role::Bridge);
        let _o = join(&hub, "o", cabinet::Role::Observer);
        // Only the current item's documents; a bridge point needs the
        // floor and the chair's leave; an observer never presents.
        assert_eq!(
            hub.present_document("m", "c", doc("i2"), 1, 100).err(),
            Some(LiveRefused::NotCurrentItem)
        );
        assert!(matches!(
            hub.present_document("m", "a", doc("i1"), 1, 100),
            Err(LiveRefused::Forbidden(_))
        ));
        assert!(matches!(
            hub.present_document("m", "o", doc("i1"), 1, 100),
            Err(LiveRefused::Forbidden(_))
        ));
        hub.give_floor("m", "a").expect("floor");
        assert!(hub.present_document("m", "a", doc("i1"), 1, 100).is_err());
        hub.allow_presenting("m", true);
        let p = hub
            .present_document("m", "a", doc("i1"), 3, 100)
            .expect("present");
        assert_eq!((p.page, p.presenter_id.as_str()), (3, "a"));
        events(&mut chair);
        // Turning: the presenter and the chair; not another.
        assert_eq!(
            hub.present_page("m", "o", 4, None),
            Err(LiveRefused::NotPresenter)
        );
        hub.present_page("m", "a", 4, Some(150)).expect("turn");
        let ev = last_presentation(&mut chair).expect("pushed");
        assert_eq!(ev["presentation"]["page"], 4);
        assert_eq!(ev["presentation"]["zoom_percent"], 150);
        let seq = ev["presentation"]["seq"].as_u64().unwrap_or_default();
        // The same page again sends nothing.
        hub.present_page("m", "a", 4, None).expect("same");
        assert!(last_presentation(&mut chair).is_none());
        // A late joiner gets it.
        let mut late = join(&hub, "l", cabinet::Role::Member);
        events(&mut late);
        let msg = serde_json::to_value(hub.presentation_message("m")).expect("json");
        assert_eq!(msg["presentation"]["page"], 4);
        // The floor taken back ends the bridge point's presentation.
        hub.take_floor("m");
        let ev = last_presentation(&mut chair).expect("pushed");
        assert!(ev["presentation"].is_null());
        // The chair presents; a new current item ends it.
        hub.present_document("m", "c", doc("i1"), 1, 100)
            .expect("chair");
        let ev = last_presentation(&mut chair).expect("pushed");
        assert!(ev["presentation"]["seq"].as_u64().unwrap_or_default() > seq);
        hub.set_current_item("m", Some("i2".into()));
        let ev = last_presentation(&mut chair).expect("pushed");
        assert!(ev["presentation"].is_null());
        assert_eq!(
            hub.stop_presenting("m", "c"),
            Err(LiveRefused::NotPresenter)
        );
    }

    #[test]
    fn leaving_with_the_floor_gives_the_main_view_back() {
        let hub = Hub::new();
        let (mtx, mut mrx) = mpsc::unbounded_channel();
        hub.set_media(mtx);
        hub.open_live("m", "in_progress", false, None);
        let mut chair = join(&hub, "c", cabinet::Role::Chair);
        let _a = join(&hub, "a", cabinet::Role::Bridge);
        hub.raise_hand("m", "a", HandKind::Speak).expect("raise");
        hub.give_floor("m", "a").expect("floor");
        ops(&mut mrx);
        events(&mut chair);
        assert!(hub.leave("m", "a", "left"));
        assert_eq!(
            ops(&mut mrx),
            vec![MediaOp::Feature {
                pid: "c".into(),
                featured: true
            }]
        );
        let evs = events(&mut chair);
        assert!(evs
            .iter()
            .any(|e| e["type"] == "meeting_state" && e["floor"].is_null()));
        assert_eq!(hub.floor("m"), None);
    }

    #[test]
    fn the_floor_lifts_a_video_block_too() {
        let hub = Hub::new();
        let (mtx, mut mrx) = mpsc::unbounded_channel();
        hub.set_media(mtx);
        hub.open_live("m", "in_progress", false, None);
        let mut chair = join(&hub, "c", cabinet::Role::Chair);
        let _a = join(&hub, "a", cabinet::Role::Bridge);
        assert_eq!(hub.block("m", "a", sfu::MediaKind::Video, true), Ok(true));
        assert_eq!(hub.block("m", "a", sfu::MediaKind::Audio, true), Ok(true));
        ops(&mut mrx);
        events(&mut chair);
        hub.give_floor("m", "a").expect("floor");
        let got = ops(&mut mrx);
        for kind in [sfu::MediaKind::Audio, sfu::MediaKind::Video] {
            assert!(
                got.contains(&MediaOp::Block {
                    pid: "a".into(),
                    kind,
                    blocked: false
                }),
                "{kind:?} unblocked: {got:?}"
            );
        }
        let p = hub.participant("m", "a").expect("a");
        assert!(!p.audio_blocked && !p.video_blocked);
        let evs = events(&mut chair);
        let last_block = evs
            .iter()
            .rev()
            .find(|e| e["type"] == "media_blocked")
            .expect("media_blocked");
        assert_eq!(last_block["video_blocked"], false);
        assert_eq!(last_block["audio_blocked"], false);
    }

    #[test]
    fn stored_decisions_are_read_in_once() {
        let hub = Hub::new();
        // The meeting was started (through the API) before anyone joined
        // after a restart: its state was made without the stored decisions.
        hub.meeting_started("m");
        assert!(hub.needs_saved("m"));
        assert_eq!(hub.gate("m", "inv-a", cabinet::Role::Bridge), Ok(()));
        let saved = cabinet::LiveControl {
            locked: true,
            current_item_id: Some("i2".into()),
            removed: vec!["inv-a".into()],
        };
        hub.open_live("m", "in_progress", false, Some(saved));
        assert!(!hub.needs_saved("m"));
        assert_eq!(
            hub.gate("m", "inv-a", cabinet::Role::Bridge),
            Err(GateRefused::Removed)
        );
        assert_eq!(
            hub.gate("m", "inv-b", cabinet::Role::Bridge),
            Err(GateRefused::Locked)
        );
        let st = hub.live_messages("m").0;
        assert!(st.locked);
        assert_eq!(st.current_item_id.as_deref(), Some("i2"));
        // Read in once: what the chair changes afterwards is not undone.
        hub.lock_meeting("m", false);
        hub.open_live(
            "m",
            "in_progress",
            false,
            Some(cabinet::LiveControl {
                locked: true,
                ..cabinet::LiveControl::default()
            }),
        );
        assert!(!hub.live_messages("m").0.locked);
        // A fresh meeting takes them as they are.
        hub.open_live(
            "n",
            "scheduled",
            false,
            Some(cabinet::LiveControl::default()),
        );
        assert!(!hub.needs_saved("n"));
        assert_eq!(hub.live_messages("n").0.status, "scheduled");
    }

    #[test]
    fn lock_remove_and_wait() {
        let hub = Hub::new();
        hub.open_live("m", "scheduled", false, None);
        let (wtx, mut wrx) = mpsc::unbounded_channel();
        assert_eq!(hub.wait_for_start("m", wtx), Waited::Waiting);
        let _chair = join(&hub, "c", cabinet::Role::Chair);
        let mut a = join(&hub, "a", cabinet::Role::Bridge);
        hub.lock_meeting("m", true);
        assert_eq!(
            hub.gate("m", "inv-new", cabinet::Role::Bridge),
            Err(GateRefused::Locked)
        );
        assert_eq!(hub.gate("m", "inv-new", cabinet::Role::Secretary), Ok(()));
        assert_eq!(hub.gate("m", "inv-a", cabinet::Role::Bridge), Ok(()));
        events(&mut a);
        let (inv, _) = hub.remove_participant("m", "a", "ồn ào").expect("removed");
        assert_eq!(inv, "inv-a");
        let mut got = Vec::new();
        while let Ok(m) = a.try_recv() {
            got.push(m);
        }
        assert!(matches!(&got[0], HubMsg::Event(t) if t.contains("\"removed\"")));
        assert!(matches!(got[1], HubMsg::Kick(KickReason::Removed)));
        hub.lock_meeting("m", false);
        assert_eq!(
            hub.gate("m", "inv-a", cabinet::Role::Bridge),
            Err(GateRefused::Removed)
        );
        assert_eq!(
            hub.remove_participant("m", "c", "x"),
            Err(LiveRefused::Forbidden("the chair cannot be removed"))
        );
        hub.meeting_started("m");
        assert!(matches!(wrx.try_recv(), Ok(HubMsg::Event(t)) if t.contains("meeting_started")));
        assert_eq!(hub.live_messages("m").0.status, "in_progress");
        hub.open_live("m", "scheduled", false, None);
        assert_eq!(hub.live_messages("m").0.status, "in_progress");
        let (wtx, _wrx) = mpsc::unbounded_channel();
        assert_eq!(hub.wait_for_start("m", wtx), Waited::Started);
    }
}
