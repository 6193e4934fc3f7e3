//! Meetings, their lifecycle, and invitations.

use serde_json::json;

use crate::{
    new_id, now_unix, optional_text, parse_stored, required_text, BridgeLevel, Error, Invitation,
    Meeting, MeetingCopy, MeetingPatch, MeetingStatus, NewInvitation, NewMeeting, Pool, Result,
    Store,
};

const MEETING_COLUMNS: &str = "id, title, kind, status, starts_at, ends_at, location, \
                               chair_participant_id, created_at, updated_at, join_muted";
const INVITATION_COLUMNS: &str = "id, meeting_id, name, role, participant_id, bridge_point_id, \
                                  created_at, expires_at, revoked_at, answer, answer_reason, \
                                  substitute_name, substitute_position, answered_at, email";

#[derive(sqlx::FromRow)]
pub(crate) struct MeetingRow {
    id: String,
    title: String,
    kind: String,
    status: String,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    location: String,
    chair_participant_id: Option<String>,
    created_at: i64,
    updated_at: i64,
    join_muted: Option<bool>,
}

impl TryFrom<MeetingRow> for Meeting {
    type Error = Error;
    fn try_from(r: MeetingRow) -> Result<Meeting> {
        Ok(Meeting {
            kind: parse_stored(&r.kind, "meeting kind")?,
            status: parse_stored(&r.status, "meeting status")?,
            id: r.id,
            title: r.title,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            location: r.location,
            chair_participant_id: r.chair_participant_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            join_muted: r.join_muted,
        })
    }
}

#[derive(sqlx::FromRow)]
struct InvitationRow {
    id: String,
    meeting_id: String,
    name: String,
    role: String,
    participant_id: Option<String>,
    bridge_point_id: Option<String>,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    answer: Option<String>,
    answer_reason: String,
    substitute_name: String,
    substitute_position: String,
    answered_at: Option<i64>,
    email: String,
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = Error;
    fn try_from(r: InvitationRow) -> Result<Invitation> {
        Ok(Invitation {
            role: parse_stored(&r.role, "invitation role")?,
            answer: crate::answers::from_columns(
                r.answer.as_deref(),
                r.answer_reason,
                r.substitute_name,
                r.substitute_position,
                r.answered_at,
            )?,
            id: r.id,
            meeting_id: r.meeting_id,
            name: r.name,
            participant_id: r.participant_id,
            bridge_point_id: r.bridge_point_id,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            email: r.email,
        })
    }
}

/// Longest title, name or location accepted.
pub(crate) const MAX_TEXT: usize = 500;

fn check_schedule(starts_at: Option<i64>, ends_at: Option<i64>) -> Result<()> {
    if let (Some(s), Some(e)) = (starts_at, ends_at) {
        if e < s {
            return Err(Error::InvalidInput(
                "the meeting ends before it starts".into(),
            ));
        }
    }
    Ok(())
}

impl Store {
    /// Creates a regular draft meeting with only a title (the CLI's
    /// `meeting create`), audited as `actor`.
    pub async fn create_meeting(&self, title: &str) -> Result<Meeting> {
        self.add_meeting("cli", NewMeeting::titled(title)).await
    }

    /// Creates a meeting; it starts as `draft`.
    pub async fn add_meeting(&self, actor: &str, new: NewMeeting) -> Result<Meeting> {
        let title = required_text(&new.title, "meeting title", MAX_TEXT)?;
        let location = optional_text(&new.location, "location", MAX_TEXT)?;
        check_schedule(new.starts_at, new.ends_at)?;
        let now = now_unix();
        let meeting = Meeting {
            id: new_id(),
            title,
            kind: new.kind,
            status: MeetingStatus::Draft,
            starts_at: new.starts_at,
            ends_at: new.ends_at,
            location,
            chair_participant_id: None,
            created_at: now,
            updated_at: now,
            join_muted: new.join_muted,
        };
        in_tx!(self, tx => {
            sqlx::query(
                "INSERT INTO meetings (id, title, kind, status, starts_at, ends_at, location, \
                 chair_participant_id, created_at, updated_at, join_muted) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $8, $9)",
            )
            .bind(&meeting.id)
            .bind(&meeting.title)
            .bind(meeting.kind.as_str())
            .bind(meeting.status.as_str())
            .bind(meeting.starts_at)
            .bind(meeting.ends_at)
            .bind(&meeting.location)
            .bind(now)
            .bind(meeting.join_muted)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "meeting.create", "meeting", &meeting.id,
                json!({"title": meeting.title, "kind": meeting.kind, "join_muted": meeting.join_muted}));
        });
        Ok(meeting)
    }

    /// Copies a meeting (in any status) into a new draft, in one
    /// transaction: `title` (default: the old one), kind, location, the
    /// agenda items in order (title, presenter, duration; not their
    /// documents), the participants (name, position, role, voting, bridge
    /// point) and the chair, mapped to its copy. With `starts_at` the planned
    /// time moves there, keeping the old duration; without it the copy has
    /// no planned time (the old one is past). Invitations are not copied:
    /// the answer names the levels of the bridge points and the saved groups
    /// of units invited to the old meeting instead.
    pub async fn copy_meeting(
        &self,
        actor: &str,
        source_id: &str,
        title: Option<&str>,
        starts_at: Option<i64>,
    ) -> Result<MeetingCopy> {
        let sql = format!("SELECT {MEETING_COLUMNS} FROM meetings WHERE id = $1");
        let copy = in_tx!(self, tx => {
            let row: Option<MeetingRow> = sqlx::query_as(&sql)
                .bind(source_id)
                .fetch_optional(&mut *tx)
                .await?;
            let old = Meeting::try_from(
                row.ok_or_else(|| Error::MeetingNotFound(source_id.to_owned()))?,
            )?;
            let title = required_text(title.unwrap_or(&old.title), "meeting title", MAX_TEXT)?;
            let ends_at = match (starts_at, old.starts_at, old.ends_at) {
                (Some(s), Some(os), Some(oe)) => Some(s.saturating_add(oe.saturating_sub(os))),
                _ => None,
            };
            check_schedule(starts_at, ends_at)?;
            let now = now_unix();
            let mut meeting = Meeting {
                id: new_id(),
                title,
                kind: old.kind,
                status: MeetingStatus::Draft,
                starts_at,
                ends_at,
                location: old.location.clone(),
                chair_participant_id: None,
                created_at: now,
                updated_at: now,
                join_muted: old.join_muted,
            };
            sqlx::query(
                "INSERT INTO meetings (id, title, kind, status, starts_at, ends_at, location, \
                 chair_participant_id, created_at, updated_at, join_muted) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $8, $9)",
            )
            .bind(&meeting.id)
            .bind(&meeting.title)
            .bind(meeting.kind.as_str())
            .bind(meeting.status.as_str())
            .bind(meeting.starts_at)
            .bind(meeting.ends_at)
            .bind(&meeting.location)
            .bind(now)
            .bind(meeting.join_muted)
            .execute(&mut *tx)
            .await?;

            let items: Vec<(i64, String, String, Option<i64>)> = sqlx::query_as(
                "SELECT position, title, presenter, duration_minutes FROM agenda_items \
                 WHERE meeting_id = $1 ORDER BY position, id",
            )
            .bind(source_id)
            .fetch_all(&mut *tx)
            .await?;
            for (i, (_, item_title, presenter, duration)) in items.iter().enumerate() {
                let position = i64::try_from(i).unwrap_or(i64::MAX - 1) + 1;
                sqlx::query(
                    "INSERT INTO agenda_items (id, meeting_id, position, title, presenter, \
                     duration_minutes, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(new_id())
                .bind(&meeting.id)
                .bind(position)
                .bind(item_title)
                .bind(presenter)
                .bind(*duration)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }

            let people: Vec<(String, String, String, String, bool, Option<String>)> =
                sqlx::query_as(
                    "SELECT id, name, position, role, voting, bridge_point_id FROM participants \
                     WHERE meeting_id = $1 ORDER BY created_at, id",
                )
                .bind(source_id)
                .fetch_all(&mut *tx)
                .await?;
            // The copies share one creation time and are listed by id after
            // it: sorted new ids keep the old order.
            let mut ids: Vec<String> = people.iter().map(|_| new_id()).collect();
            ids.sort();
            for ((old_id, name, position, role, voting, bridge), new_pid) in
                people.iter().zip(ids)
            {
                sqlx::query(
                    "INSERT INTO participants (id, meeting_id, name, position, role, voting, \
                     bridge_point_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                )
                .bind(&new_pid)
                .bind(&meeting.id)
                .bind(name)
                .bind(position)
                .bind(role)
                .bind(*voting)
                .bind(bridge)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if old.chair_participant_id.as_deref() == Some(old_id.as_str()) {
                    meeting.chair_participant_id = Some(new_pid);
                }
            }
            if let Some(chair) = &meeting.chair_participant_id {
                sqlx::query("UPDATE meetings SET chair_participant_id = $1 WHERE id = $2")
                    .bind(chair)
                    .bind(&meeting.id)
                    .execute(&mut *tx)
                    .await?;
            }

            let level_names: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT b.level FROM invitations i \
                 JOIN bridge_points b ON b.id = i.bridge_point_id \
                 WHERE i.meeting_id = $1 AND i.revoked_at IS NULL ORDER BY b.level",
            )
            .bind(source_id)
            .fetch_all(&mut *tx)
            .await?;
            let invited_levels = level_names
                .iter()
                .map(|l| parse_stored::<BridgeLevel>(l, "bridge point level"))
                .collect::<Result<Vec<_>>>()?;
            let groups: Vec<(String, String)> = sqlx::query_as(
                "SELECT g.id, g.name FROM meeting_unit_groups m \
                 JOIN unit_groups g ON g.id = m.group_id WHERE m.meeting_id = $1 \
                 ORDER BY g.name, g.id",
            )
            .bind(source_id)
            .fetch_all(&mut *tx)
            .await?;
            let invited_groups = groups
                .into_iter()
                .map(|(id, name)| crate::UnitGroupRef { id, name })
                .collect();

            audit!(tx, actor, "meeting.copy", "meeting", &meeting.id, json!({
                "source": source_id, "title": meeting.title, "starts_at": meeting.starts_at,
                "ends_at": meeting.ends_at, "agenda_items": items.len(),
                "participants": people.len(), "chair_participant_id": meeting.chair_participant_id,
            }));
            MeetingCopy { meeting, invited_levels, invited_groups }
        });
        Ok(copy)
    }

    /// The meeting with this id, if any.
    pub async fn get_meeting(&self, id: &str) -> Result<Option<Meeting>> {
        let sql = format!("SELECT {MEETING_COLUMNS} FROM meetings WHERE id = $1");
        let row: Option<MeetingRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?;
        row.map(Meeting::try_from).transpose()
    }

    /// Every meeting, oldest first.
    pub async fn list_meetings(&self) -> Result<Vec<Meeting>> {
        let sql = format!("SELECT {MEETING_COLUMNS} FROM meetings ORDER BY created_at, id");
        let rows: Vec<MeetingRow> = with_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await)?;
        rows.into_iter().map(Meeting::try_from).collect()
    }

    /// Changes a meeting's details. Refused once it is ended or archived.
    pub async fn update_meeting(
        &self,
        actor: &str,
        id: &str,
        patch: MeetingPatch,
    ) -> Result<Meeting> {
        let sql = format!("SELECT {MEETING_COLUMNS} FROM meetings WHERE id = $1");
        let meeting = in_tx!(self, tx => {
            let row: Option<MeetingRow> = sqlx::query_as(&sql)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let mut m = Meeting::try_from(row.ok_or_else(|| Error::MeetingNotFound(id.to_owned()))?)?;
            if m.status.is_frozen() {
                return Err(Error::Frozen { status: m.status });
            }
            if let Some(t) = &patch.title {
                m.title = required_text(t, "meeting title", MAX_TEXT)?;
            }
            if let Some(k) = patch.kind {
                m.kind = k;
            }
            if let Some(s) = patch.starts_at {
                m.starts_at = s;
            }
            if let Some(e) = patch.ends_at {
                m.ends_at = e;
            }
            check_schedule(m.starts_at, m.ends_at)?;
            if let Some(l) = &patch.location {
                m.location = optional_text(l, "location", MAX_TEXT)?;
            }
            if let Some(j) = patch.join_muted {
                m.join_muted = j;
            }
            if let Some(chair) = &patch.chair_participant_id {
                if let Some(pid) = chair {
                    let of: Option<String> =
                        sqlx::query_scalar("SELECT meeting_id FROM participants WHERE id = $1")
                            .bind(pid)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if of.as_deref() != Some(id) {
                        return Err(Error::InvalidInput(format!(
                            "participant {pid} is not a participant of this meeting"
                        )));
                    }
                }
                m.chair_participant_id = chair.clone();
            }
            m.updated_at = now_unix();
            sqlx::query(
                "UPDATE meetings SET title = $1, kind = $2, starts_at = $3, ends_at = $4, \
                 location = $5, chair_participant_id = $6, updated_at = $7, join_muted = $9 \
                 WHERE id = $8",
            )
            .bind(&m.title)
            .bind(m.kind.as_str())
            .bind(m.starts_at)
            .bind(m.ends_at)
            .bind(&m.location)
            .bind(&m.chair_participant_id)
            .bind(m.updated_at)
            .bind(id)
            .bind(m.join_muted)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "meeting.update", "meeting", id, json!({
                "title": m.title, "kind": m.kind, "starts_at": m.starts_at, "ends_at": m.ends_at,
                "location": m.location, "chair_participant_id": m.chair_participant_id,
                "join_muted": m.join_muted,
            }));
            m
        });
        Ok(meeting)
    }

    /// Moves a meeting along its lifecycle ([`MeetingStatus::can_move_to`]);
    /// the same status again is a no-op. Returns the meeting as it now is.
    pub async fn change_meeting_status(
        &self,
        actor: &str,
        id: &str,
        to: MeetingStatus,
    ) -> Result<Meeting> {
        in_tx!(self, tx => {
            let status: Option<String> = sqlx::query_scalar("SELECT status FROM meetings WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let from: MeetingStatus = match status {
                Some(s) => parse_stored(&s, "meeting status")?,
                None => return Err(Error::MeetingNotFound(id.to_owned())),
            };
            if from != to {
                if !from.can_move_to(to) {
                    return Err(Error::BadTransition { from, to });
                }
                sqlx::query("UPDATE meetings SET status = $1, updated_at = $2 WHERE id = $3")
                    .bind(to.as_str())
                    .bind(now_unix())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                audit!(tx, actor, "meeting.status", "meeting", id,
                    json!({"from": from, "to": to}));
            }
        });
        self.get_meeting(id)
            .await?
            .ok_or_else(|| Error::MeetingNotFound(id.to_owned()))
    }

    /// [`Store::change_meeting_status`] by the CLI.
    pub async fn set_meeting_status(&self, id: &str, status: MeetingStatus) -> Result<()> {
        self.change_meeting_status("cli", id, status)
            .await
            .map(|_| ())
    }

    /// Creates an invitation to an existing meeting that is not frozen (the
    /// CLI's `invite`).
    pub async fn create_invitation(&self, new: NewInvitation) -> Result<Invitation> {
        self.add_invitation("cli", new).await
    }

    /// Creates an invitation, optionally tied to a participant of the same
    /// meeting and/or an active bridge point.
    pub async fn add_invitation(&self, actor: &str, new: NewInvitation) -> Result<Invitation> {
        let name = required_text(&new.name, "invitee's name", MAX_TEXT)?;
        let email = crate::mail::checked_email(&new.email)?;
        let now = now_unix();
        let inv = Invitation {
            id: new_id(),
            meeting_id: new.meeting_id,
            name,
            role: new.role,
            participant_id: new.participant_id,
            bridge_point_id: new.bridge_point_id,
            created_at: now,
            expires_at: now.saturating_add(new.ttl_seconds),
            revoked_at: None,
            answer: None,
            email,
        };
        in_tx!(self, tx => {
            require_open_meeting!(tx, &inv.meeting_id);
            if let Some(pid) = &inv.participant_id {
                let of: Option<String> =
                    sqlx::query_scalar("SELECT meeting_id FROM participants WHERE id = $1")
                        .bind(pid)
                        .fetch_optional(&mut *tx)
                        .await?;
                if of.as_deref() != Some(inv.meeting_id.as_str()) {
                    return Err(Error::InvalidInput(format!(
                        "participant {pid} is not a participant of this meeting"
                    )));
                }
            }
            if let Some(bid) = &inv.bridge_point_id {
                let active: Option<bool> =
                    sqlx::query_scalar("SELECT active FROM bridge_points WHERE id = $1")
                        .bind(bid)
                        .fetch_optional(&mut *tx)
                        .await?;
                match active {
                    None => return Err(Error::NotFound { what: "bridge point", id: bid.clone() }),
                    Some(false) => return Err(Error::InvalidInput(format!(
                        "bridge point {bid} is inactive"
                    ))),
                    Some(true) => {}
                }
            }
            sqlx::query(
                "INSERT INTO invitations (id, meeting_id, name, role, participant_id, \
                 bridge_point_id, created_at, expires_at, revoked_at, email) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9)",
            )
            .bind(&inv.id)
            .bind(&inv.meeting_id)
            .bind(&inv.name)
            .bind(inv.role.as_str())
            .bind(&inv.participant_id)
            .bind(&inv.bridge_point_id)
            .bind(inv.created_at)
            .bind(inv.expires_at)
            .bind(&inv.email)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "invitation.create", "invitation", &inv.id, json!({
                "meeting_id": inv.meeting_id, "name": inv.name, "role": inv.role,
                "participant_id": inv.participant_id, "bridge_point_id": inv.bridge_point_id,
                "expires_at": inv.expires_at, "email": inv.email,
            }));
        });
        Ok(inv)
    }

    /// The invitation with this id, if any.
    pub async fn get_invitation(&self, id: &str) -> Result<Option<Invitation>> {
        let sql = format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = $1");
        let row: Option<InvitationRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?;
        row.map(Invitation::try_from).transpose()
    }

    /// Revokes an invitation by the CLI; see [`Store::revoke_invitation_by`].
    pub async fn revoke_invitation(&self, id: &str) -> Result<Invitation> {
        self.revoke_invitation_by("cli", id).await
    }

    /// Revokes an invitation (idempotent: the first revocation time is kept;
    /// allowed in every meeting state). Returns the invitation as it now is.
    pub async fn revoke_invitation_by(&self, actor: &str, id: &str) -> Result<Invitation> {
        in_tx!(self, tx => {
            let n = sqlx::query(
                "UPDATE invitations SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now_unix())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                audit!(tx, actor, "invitation.revoke", "invitation", id, json!({}));
            }
        });
        self.get_invitation(id)
            .await?
            .ok_or_else(|| Error::InvitationNotFound(id.to_owned()))
    }

    /// The invitations of a meeting, oldest first.
    pub async fn list_invitations(&self, meeting_id: &str) -> Result<Vec<Invitation>> {
        let sql = format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE meeting_id = $1 ORDER BY created_at, id"
        );
        let rows: Vec<InvitationRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(meeting_id)
            .fetch_all(p)
            .await)?;
        rows.into_iter().map(Invitation::try_from).collect()
    }
}
