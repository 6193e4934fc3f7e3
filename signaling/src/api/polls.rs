//! The live votes of a meeting, read over REST (opened, cast and closed over
//! the WebSocket: docs/protocol.md, "Votes"): the list with each closed
//! poll's outcome, and one poll's details: the ballots of a named poll, who
//! voted in a secret one (never next to a choice: nothing stored says it).
//!
//! Who: staff admin, secretary and operator read both. An invitation to
//! the meeting reads the list (the outcomes); the details only with the
//! chair's or secretary's invitation (the permission table's `Moderate`,
//! as for the live `vote_progress`).
//!
//! While a poll is open its details give who voted but no choice and no
//! counts: a running tally next to a growing list of voters would tell a
//! secret ballot (poll the details after each new voter), and would show
//! the voters of a named poll the trend before they vote.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::{Choice, Poll, PollStatus, Role, Tally};
use serde::Serialize;

use super::{ApiError, ApiResult, Caller, READ};
use crate::permissions::{allows, Permission};
use crate::AppState;

/// Staff that read, or an invitation to `meeting_id` with `permission`.
fn allowed(caller: &Caller, meeting_id: &str, permission: Permission) -> ApiResult<()> {
    match caller {
        Caller::Staff(u) if READ.contains(&u.role) => Ok(()),
        Caller::Invitee {
            invitation,
            meeting,
            ..
        } if meeting.id == meeting_id && allows(invitation.role, permission) => Ok(()),
        _ => Err(ApiError::forbidden()),
    }
}

fn no_store(body: impl Serialize) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// `GET /api/meetings/{id}/polls`: the meeting's polls, oldest first, each
/// with its outcome once closed.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allowed(&caller, &id, Permission::Join)?;
    if matches!(caller, Caller::Staff(_)) && state.store.get_meeting(&id).await?.is_none() {
        return Err(cabinet::Error::MeetingNotFound(id).into());
    }
    Ok(no_store(state.store.list_polls(&id).await?))
}

/// A named poll's ballot.
#[derive(Debug, Serialize)]
pub struct Ballot {
    pub invitation_id: String,
    pub name: String,
    pub role: Role,
    /// `null` while the poll is open.
    pub choice: Option<Choice>,
}

/// Someone who voted in a secret poll (no choice: none is stored).
#[derive(Debug, Serialize)]
pub struct Voter {
    pub invitation_id: String,
    pub name: String,
    pub role: Role,
}

/// The answer of `GET /api/polls/{id}`.
#[derive(Debug, Serialize)]
pub struct PollDetails {
    pub poll: Poll,
    /// The counts once closed (the outcome's); `null` while open.
    pub tally: Option<Tally>,
    /// Named polls: each ballot, by name. `null` for a secret poll.
    pub ballots: Option<Vec<Ballot>>,
    /// Secret polls: who voted, by name. `null` for a named poll.
    pub voters: Option<Vec<Voter>>,
}

/// `GET /api/polls/{id}`: one poll with its ballots (named) or its voters
/// (secret).
pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let Some(poll) = state.store.get_poll(&id).await? else {
        // Staff learn that it does not exist; others only that they may not.
        caller.staff_in(READ)?;
        return Err(cabinet::Error::NotFound {
            what: "poll",
            id: id.clone(),
        }
        .into());
    };
    allowed(&caller, &poll.meeting_id, Permission::Moderate)?;
    let closed = poll.status == PollStatus::Closed;
    let voted = state.store.poll_voters(&poll.id).await?;
    let invitations = state.store.list_invitations(&poll.meeting_id).await?;
    let who = |inv_id: &str| -> (String, Role) {
        invitations.iter().find(|i| i.id == inv_id).map_or_else(
            || (inv_id.to_owned(), Role::Member),
            |i| (i.name.clone(), i.role),
        )
    };
    let (ballots, voters) = if poll.secret {
        let mut v: Vec<Voter> = voted
            .iter()
            .map(|inv_id| {
                let (name, role) = who(inv_id);
                Voter {
                    invitation_id: inv_id.clone(),
                    name,
                    role,
                }
            })
            .collect();
        // By name: neither the order of the votes nor of the ids.
        v.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then(a.invitation_id.cmp(&b.invitation_id))
        });
        (None, Some(v))
    } else {
        let mut b = Vec::with_capacity(voted.len());
        for inv_id in &voted {
            let (name, role) = who(inv_id);
            let choice = if closed {
                state.store.ballot_of(&poll.id, inv_id).await?
            } else {
                None
            };
            b.push(Ballot {
                invitation_id: inv_id.clone(),
                name,
                role,
                choice,
            });
        }
        b.sort_by(|x: &Ballot, y: &Ballot| {
            x.name
                .cmp(&y.name)
                .then(x.invitation_id.cmp(&y.invitation_id))
        });
        (Some(b), None)
    };
    let tally = poll.outcome.map(|o| o.tally);
    Ok(no_store(PollDetails {
        poll,
        tally,
        ballots,
        voters,
    }))
}
