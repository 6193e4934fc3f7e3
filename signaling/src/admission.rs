//! The one way into a live meeting, for WebSocket participants
//! ([`crate::session`]), WHIP publishers and WHEP players ([`crate::whip`])
//! alike: [`check`] decides whether an invitation may enter now (placement,
//! the meeting's status, the chair's lock and removals, read back from the
//! cabinet after a restart), [`enter`] puts the
//! participant in the hub's room and records the facts (audit log,
//! attendance, a replaced session).

use serde_json::json;
use tokio::sync::mpsc::UnboundedSender;

use cabinet::{Invitation, Meeting, MeetingStatus, Role};

use crate::hub::{GateRefused, HubMsg, JoinOutcome, ParticipantInfo};
use crate::placement::Placed;
use crate::protocol::{ErrorCode, Fail};
use crate::AppState;

/// How a participant connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    WebSocket,
    Whip,
    /// A WHEP player: it only receives the main view, and is not a
    /// participant ([`enter`] is not for it), but enters under the same
    /// rules.
    Whep,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::WebSocket => "websocket",
            Via::Whip => "whip",
            Via::Whep => "whep",
        }
    }
}

/// What [`check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Enter now.
    Enter,
    /// The meeting has not started: wait for `meeting_started`.
    Wait,
}

/// Whether the meeting's bridge points and delegates enter with their
/// audio blocked: meetings with at least `signaling.join_muted_from`
/// invitations (0: never).
async fn join_muted(state: &AppState, meeting: &Meeting) -> bool {
    if let Some(set) = meeting.join_muted {
        return set;
    }
    let from = state.limits.join_muted_from;
    if from == 0 {
        return false;
    }
    match state.store.list_invitations(&meeting.id).await {
        Ok(list) => list.iter().filter(|i| !i.is_revoked()).count() >= from,
        Err(e) => {
            tracing::warn!(error = %e, "cannot count a meeting's invitations; it joins unmuted");
            false
        }
    }
}

/// Whether `inv` may enter `meeting` now (its token was checked).
///
/// - the meeting must be hosted here ([`crate::placement`]);
/// - before the start (draft, scheduled) only the chair and the secretary
///   enter (they prepare the room, and the chair may start it); the others
///   wait ([`Entry::Wait`]), and a WHIP encoder or a WHEP player, which
///   cannot wait, is refused with `meeting_not_started`;
/// - the chair's removals and lock ([`crate::hub::Hub::gate`]), read from
///   the cabinet when the live meeting opens (so they survive a restart).
pub async fn check(
    state: &AppState,
    meeting: &Meeting,
    inv: &Invitation,
    via: Via,
) -> Result<Entry, Fail> {
    if let Placed::Elsewhere(url) = state.placement.place(&meeting.id) {
        return Err(Fail::new(
            ErrorCode::MeetingElsewhere,
            format!("this meeting is hosted at {url}"),
        ));
    }
    if meeting.status.is_frozen() {
        return Err(Fail::new(ErrorCode::MeetingClosed, "the meeting has ended"));
    }
    let started = meeting.status == MeetingStatus::InProgress;
    let saved = if state.hub.needs_saved(&meeting.id) {
        // Without them a removed invitation could come back: no entry.
        let saved = state.store.live_control(&meeting.id).await.map_err(|e| {
            tracing::error!(error = %e, meeting = %meeting.id, "cannot read the chair's decisions of a live meeting");
            Fail::new(ErrorCode::Internal, "the meeting's live state cannot be read")
        })?;
        Some(saved)
    } else {
        None
    };
    state.hub.open_live(
        &meeting.id,
        meeting.status.as_str(),
        join_muted(state, meeting).await,
        saved,
    );
    match state.hub.gate(&meeting.id, &inv.id, inv.role) {
        Err(GateRefused::Locked) => {
            return Err(Fail::new(
                ErrorCode::MeetingLocked,
                "the chair locked the meeting",
            ))
        }
        Err(GateRefused::Removed) => {
            return Err(Fail::new(
                ErrorCode::RemovedFromMeeting,
                "the chair removed this invitation from the meeting",
            ))
        }
        Ok(()) => {}
    }
    if started || matches!(inv.role, Role::Chair | Role::Secretary) {
        return Ok(Entry::Enter);
    }
    match via {
        Via::WebSocket => Ok(Entry::Wait),
        Via::Whip => Err(Fail::new(
            ErrorCode::MeetingNotStarted,
            "the meeting has not started; publish once the chair starts it",
        )),
        Via::Whep => Err(Fail::new(
            ErrorCode::MeetingNotStarted,
            "the meeting has not started; play once the chair starts it",
        )),
    }
}

/// Puts a participant (its media already in the media plane) in the
/// meeting's room, and records it: `session.join` in the audit log, the
/// start of an attendance interval, and the replaced session if another
/// one of the same invitation was live.
pub async fn enter(
    state: &AppState,
    meeting: &Meeting,
    inv: &Invitation,
    info: ParticipantInfo,
    tx: UnboundedSender<HubMsg>,
    via: Via,
) -> JoinOutcome {
    let pid = info.id.clone();
    let out = state.hub.join(&meeting.id, &inv.id, info, tx);
    tracing::info!(participant = %pid, meeting = %meeting.id, invitation = %inv.id,
        via = via.as_str(), replaced = ?out.replaced, "participant joined");
    crate::api::audit::record_now(
        state,
        format!("invitation:{}", inv.id),
        "session.join",
        "meeting",
        meeting.id.clone(),
        json!({"participant_id": pid, "name": inv.name, "role": inv.role.as_str(), "via": via.as_str()}),
    )
    .await;
    if let Some(old) = &out.replaced {
        crate::session::record_replacement(state, &meeting.id, inv, old, &pid, via.as_str()).await;
        left(state, old).await;
    }
    if let Err(e) = state
        .store
        .attendance_joined(
            &meeting.id,
            &inv.id,
            &pid,
            via.as_str(),
            crate::hub::now_unix(),
        )
        .await
    {
        tracing::error!(error = %e, participant = %pid, "cannot record the start of an attendance interval");
    }
    out
}

/// Ends the attendance interval of a live participant that left.
pub async fn left(state: &AppState, pid: &str) {
    if let Err(e) = state
        .store
        .attendance_left(pid, crate::hub::now_unix())
        .await
    {
        tracing::error!(error = %e, participant = %pid, "cannot record the end of an attendance interval");
    }
}
