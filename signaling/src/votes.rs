//! Live votes (docs/protocol.md, "Votes"): the chair or the secretary
//! opens a poll (`open_vote`), the voters cast one ballot each
//! (`cast_vote`), the chair closes it (`close_vote`) and the result,
//! computed under the meeting's rules against the attendance, is stored
//! and never changes. The cabinet keeps the polls and ballots (one ballot
//! per voter enforced by the database; secret polls keep who voted apart
//! from what was voted); this module checks the requests of a session and
//! pushes the events through the hub.

use serde_json::Value;

use crate::protocol::{CastVoteReq, ErrorCode, Fail, OpenVoteReq, PollReq, ServerMsg};
use crate::AppState;

/// Who sends a vote message: the session's participant.
pub struct Voter<'a> {
    pub meeting_id: &'a str,
    pub invitation_id: &'a str,
    pub role: cabinet::Role,
}

impl Voter<'_> {
    fn actor(&self) -> String {
        format!("invitation:{}", self.invitation_id)
    }
}

/// The roles told of every ballot (counts, and names for a named poll).
const WATCHERS: [cabinet::Role; 2] = [cabinet::Role::Chair, cabinet::Role::Secretary];

fn internal(e: cabinet::Error) -> Fail {
    tracing::error!(error = %e, "a vote could not be stored");
    Fail::new(ErrorCode::Internal, "the vote could not be stored")
}

/// A cabinet refusal as the client's error.
fn refused(e: cabinet::Error) -> Fail {
    use cabinet::Error as E;
    match e {
        E::AlreadyVoted(m) => Fail::new(ErrorCode::AlreadyVoted, m),
        E::PollClosed(m) => Fail::new(ErrorCode::PollClosed, m),
        E::NotEligible(m) => Fail::new(ErrorCode::NotEligible, m),
        E::PollOpen(m) => Fail::new(ErrorCode::PollOpen, m),
        E::InvalidInput(m) => Fail::new(ErrorCode::BadRequest, m),
        E::Frozen { .. } => Fail::new(ErrorCode::MeetingClosed, "the meeting has ended"),
        other => internal(other),
    }
}

fn poll_value(p: &cabinet::Poll) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// The poll `poll_id` if it is of the sender's meeting.
async fn poll_of(state: &AppState, v: &Voter<'_>, poll_id: &str) -> Result<cabinet::Poll, Fail> {
    match state.store.get_poll(poll_id).await.map_err(internal)? {
        Some(p) if p.meeting_id == v.meeting_id => Ok(p),
        _ => Err(Fail::new(
            ErrorCode::PollNotFound,
            "no such poll in this meeting",
        )),
    }
}

/// Tells the chair and the secretary how many have voted (and who, for a
/// named poll).
async fn progress(state: &AppState, poll: &cabinet::Poll) {
    if let Some(msg) = progress_msg(state, poll).await {
        state.hub.send_to_roles(&poll.meeting_id, &WATCHERS, &msg);
    }
}

/// The `vote_progress` of a poll now.
async fn progress_msg(state: &AppState, poll: &cabinet::Poll) -> Option<ServerMsg> {
    let voters = match state.store.poll_voters(&poll.id).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read who voted");
            return None;
        }
    };
    let names = if poll.secret {
        None
    } else {
        let invitations = state
            .store
            .list_invitations(&poll.meeting_id)
            .await
            .unwrap_or_default();
        Some(
            voters
                .iter()
                .map(|id| {
                    invitations
                        .iter()
                        .find(|i| &i.id == id)
                        .map_or_else(|| id.clone(), |i| i.name.clone())
                })
                .collect(),
        )
    };
    Some(ServerMsg::VoteProgress {
        poll_id: poll.id.clone(),
        voted: u32::try_from(voters.len()).unwrap_or(u32::MAX),
        eligible: poll.eligible,
        voters: names,
    })
}

/// `open_vote`.
pub async fn open(state: &AppState, v: &Voter<'_>, req: OpenVoteReq) -> Result<(), Fail> {
    let checked = req.checked()?;
    if let Some(item_id) = &req.item_id {
        let item = state
            .store
            .get_agenda_item(item_id)
            .await
            .map_err(internal)?;
        if item.is_none_or(|i| i.meeting_id != v.meeting_id) {
            return Err(Fail::new(
                ErrorCode::AgendaItemNotFound,
                "no such agenda item in this meeting",
            ));
        }
    }
    let eligible = state
        .store
        .list_invitations(v.meeting_id)
        .await
        .map_err(internal)?
        .iter()
        .filter(|i| !i.is_revoked() && checked.voters.contains(&i.role))
        .count();
    let poll = state
        .store
        .open_poll(
            &v.actor(),
            v.meeting_id,
            cabinet::NewPoll {
                agenda_item_id: req.item_id.clone(),
                question: checked.question,
                secret: req.secret,
                rule: checked.rule,
                voter_roles: checked.voters,
            },
            u32::try_from(eligible).unwrap_or(u32::MAX),
        )
        .await
        .map_err(refused)?;
    tracing::info!(meeting = %v.meeting_id, poll = %poll.id, secret = poll.secret, "a vote opened");
    state.hub.send_to_all(
        v.meeting_id,
        &ServerMsg::VoteOpened {
            poll: poll_value(&poll),
            voted: None,
        },
    );
    progress(state, &poll).await;
    Ok(())
}

/// `cast_vote`: one ballot per invitation, stored before the `ok`.
pub async fn cast(state: &AppState, v: &Voter<'_>, req: CastVoteReq) -> Result<(), Fail> {
    let choice = req.choice()?;
    let poll = poll_of(state, v, &req.poll_id).await?;
    state
        .store
        .cast_ballot(&poll.id, v.invitation_id, v.role, choice)
        .await
        .map_err(refused)?;
    progress(state, &poll).await;
    Ok(())
}

/// `close_vote`: the result is computed under the rule against the
/// committee and the members present now (the attendance), stored, and
/// sent to everyone.
pub async fn close(state: &AppState, v: &Voter<'_>, req: PollReq) -> Result<(), Fail> {
    let poll = poll_of(state, v, &req.poll_id).await?;
    let quorum = &state.api.quorum;
    let report = state
        .store
        .attendance(v.meeting_id, quorum, crate::hub::now_unix())
        .await
        .map_err(internal)?;
    let poll = state
        .store
        .close_poll(
            &v.actor(),
            &poll.id,
            report.summary.committee_members,
            report.summary.members_present,
            (quorum.numerator, quorum.denominator),
        )
        .await
        .map_err(refused)?;
    tracing::info!(meeting = %v.meeting_id, poll = %poll.id, "a vote closed");
    state.hub.send_to_all(
        v.meeting_id,
        &ServerMsg::VoteClosed {
            poll: poll_value(&poll),
        },
    );
    Ok(())
}

/// The open poll of a meeting for a participant that (re)joins: the
/// `vote_opened` with whether its invitation has voted (its voting card
/// comes back), and for the chair and the secretary the `vote_progress`.
pub async fn open_poll_for(
    state: &AppState,
    meeting_id: &str,
    invitation_id: &str,
    role: cabinet::Role,
) -> Vec<ServerMsg> {
    let mut out = Vec::new();
    let Some((card, poll)) = card_for(state, meeting_id, invitation_id).await else {
        return out;
    };
    out.push(card);
    if WATCHERS.contains(&role) {
        out.extend(progress_msg(state, &poll).await);
    }
    out
}

async fn card_for(
    state: &AppState,
    meeting_id: &str,
    invitation_id: &str,
) -> Option<(ServerMsg, cabinet::Poll)> {
    let poll = match state.store.open_poll_of(meeting_id).await {
        Ok(p) => p?,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open poll");
            return None;
        }
    };
    let voted = state
        .store
        .poll_voters(&poll.id)
        .await
        .map(|v| v.iter().any(|i| i == invitation_id))
        .unwrap_or(false);
    Some((
        ServerMsg::VoteOpened {
            poll: poll_value(&poll),
            voted: Some(voted),
        },
        poll,
    ))
}
