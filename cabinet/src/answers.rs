//! Invitees' answers before a meeting: attend, absent (with a reason) or
//! send a substitute ("cử người dự thay", with a name and position).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{now_unix, optional_text, required_text, Error, Invitation, Pool, Result, Store};

/// Longest reason, substitute name or position accepted.
pub const MAX_ANSWER_TEXT: usize = 500;

/// What an invitee answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKind {
    /// Will attend.
    Attend,
    /// Will not attend (a reason is required).
    Absent,
    /// Sends someone in its place (their name is required).
    Substitute,
}

impl AnswerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::Attend => "attend",
            AnswerKind::Absent => "absent",
            AnswerKind::Substitute => "substitute",
        }
    }
}

impl fmt::Display for AnswerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AnswerKind {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<AnswerKind, ()> {
        match s {
            "attend" => Ok(AnswerKind::Attend),
            "absent" => Ok(AnswerKind::Absent),
            "substitute" => Ok(AnswerKind::Substitute),
            _ => Err(()),
        }
    }
}

/// An invitee's answer as stored (the last one given counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationAnswer {
    pub answer: AnswerKind,
    /// Why it is absent; empty otherwise.
    pub reason: String,
    /// Who attends in its place; empty otherwise.
    pub substitute_name: String,
    pub substitute_position: String,
    /// Unix seconds.
    pub answered_at: i64,
}

/// What an invitee sends (see [`Store::answer_invitation`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAnswer {
    pub answer: Option<AnswerKind>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub substitute_name: String,
    #[serde(default)]
    pub substitute_position: String,
}

impl NewAnswer {
    /// Checks and normalizes: a reason for `absent`, a name for
    /// `substitute`; fields that do not belong to the answer are dropped.
    fn validate(&self, now: i64) -> Result<InvitationAnswer> {
        let Some(answer) = self.answer else {
            return Err(Error::InvalidInput("the answer is missing".into()));
        };
        let (reason, name, position) = match answer {
            AnswerKind::Attend => (String::new(), String::new(), String::new()),
            AnswerKind::Absent => (
                required_text(&self.reason, "reason for absence", MAX_ANSWER_TEXT)?,
                String::new(),
                String::new(),
            ),
            AnswerKind::Substitute => (
                optional_text(&self.reason, "reason", MAX_ANSWER_TEXT)?,
                required_text(&self.substitute_name, "substitute's name", MAX_ANSWER_TEXT)?,
                optional_text(
                    &self.substitute_position,
                    "substitute's position",
                    MAX_ANSWER_TEXT,
                )?,
            ),
        };
        Ok(InvitationAnswer {
            answer,
            reason,
            substitute_name: name,
            substitute_position: position,
            answered_at: now,
        })
    }
}

/// Builds the stored answer from its columns (NULL answer: none yet).
pub(crate) fn from_columns(
    answer: Option<&str>,
    reason: String,
    substitute_name: String,
    substitute_position: String,
    answered_at: Option<i64>,
) -> Result<Option<InvitationAnswer>> {
    let Some(a) = answer else { return Ok(None) };
    Ok(Some(InvitationAnswer {
        answer: crate::parse_stored(a, "invitation answer")?,
        reason,
        substitute_name,
        substitute_position,
        answered_at: answered_at.unwrap_or_default(),
    }))
}

impl Store {
    /// Records the answer of invitation `id` (replacing an earlier one),
    /// audited as `actor` in the same transaction. Refused when the
    /// invitation is revoked or its meeting is frozen (ended, archived).
    pub async fn answer_invitation(
        &self,
        actor: &str,
        id: &str,
        new: &NewAnswer,
    ) -> Result<Invitation> {
        let a = new.validate(now_unix())?;
        in_tx!(self, tx => {
            let row: Option<(String, Option<i64>)> =
                sqlx::query_as("SELECT meeting_id, revoked_at FROM invitations WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((meeting_id, revoked_at)) = row else {
                return Err(Error::InvitationNotFound(id.to_owned()));
            };
            require_open_meeting!(tx, &meeting_id);
            if revoked_at.is_some() {
                return Err(Error::Conflict("the invitation was revoked".into()));
            }
            sqlx::query(
                "UPDATE invitations SET answer = $1, answer_reason = $2, substitute_name = $3, \
                 substitute_position = $4, answered_at = $5 WHERE id = $6",
            )
            .bind(a.answer.as_str())
            .bind(&a.reason)
            .bind(&a.substitute_name)
            .bind(&a.substitute_position)
            .bind(a.answered_at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "invitation.answer", "invitation", id, json!({
                "meeting_id": meeting_id, "answer": a.answer, "reason": a.reason,
                "substitute_name": a.substitute_name,
                "substitute_position": a.substitute_position,
            }));
        });
        self.get_invitation(id)
            .await?
            .ok_or_else(|| Error::InvitationNotFound(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MeetingStatus, NewInvitation, Role};

    fn answer(kind: AnswerKind, reason: &str, name: &str, position: &str) -> NewAnswer {
        NewAnswer {
            answer: Some(kind),
            reason: reason.into(),
            substitute_name: name.into(),
            substitute_position: position.into(),
        }
    }

    #[tokio::test]
    async fn answers_are_checked_stored_and_refused_when_frozen_or_revoked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let s = Store::connect(&url).await.expect("open sqlite");
        let m = s.create_meeting("Giao ban").await.expect("meeting");
        let invite = |name: &str| NewInvitation {
            meeting_id: m.id.clone(),
            name: name.into(),
            role: Role::Bridge,
            ttl_seconds: 3600,
            participant_id: None,
            bridge_point_id: None,
            email: String::new(),
        };
        let a = s.create_invitation(invite("A")).await.expect("invite A");
        let b = s.create_invitation(invite("B")).await.expect("invite B");

        // Refused before anything is stored.
        for bad in [
            NewAnswer::default(),
            answer(AnswerKind::Absent, "  ", "", ""),
            answer(AnswerKind::Substitute, "", "", "Phó"),
            answer(AnswerKind::Absent, &"x".repeat(MAX_ANSWER_TEXT + 1), "", ""),
        ] {
            assert!(matches!(
                s.answer_invitation("t", &a.id, &bad).await,
                Err(Error::InvalidInput(_))
            ));
        }
        assert!(matches!(
            s.answer_invitation("t", "missing", &answer(AnswerKind::Attend, "", "", ""))
                .await,
            Err(Error::InvitationNotFound(_))
        ));
        let got = s.get_invitation(&a.id).await.expect("get").expect("A");
        assert_eq!(got.answer, None);

        // Stored, trimmed, and the fields of other kinds dropped.
        let inv = s
            .answer_invitation(
                "t",
                &a.id,
                &answer(AnswerKind::Substitute, "", " Nguyễn Văn B ", "Phó GĐ"),
            )
            .await
            .expect("substitute");
        let ans = inv.answer.expect("answer");
        assert_eq!(ans.answer, AnswerKind::Substitute);
        assert_eq!(ans.substitute_name, "Nguyễn Văn B");
        assert_eq!(ans.substitute_position, "Phó GĐ");
        let inv = s
            .answer_invitation("t", &a.id, &answer(AnswerKind::Attend, "x", "y", "z"))
            .await
            .expect("attend");
        let ans = inv.answer.expect("answer");
        assert_eq!(
            (ans.reason.as_str(), ans.substitute_name.as_str()),
            ("", "")
        );

        // A revoked invitation cannot answer.
        s.revoke_invitation(&b.id).await.expect("revoke");
        assert!(matches!(
            s.answer_invitation("t", &b.id, &answer(AnswerKind::Attend, "", "", ""))
                .await,
            Err(Error::Conflict(_))
        ));

        // Nor anyone once the meeting has ended; the answer stays.
        s.set_meeting_status(&m.id, MeetingStatus::Ended)
            .await
            .expect("end");
        assert!(matches!(
            s.answer_invitation("t", &a.id, &answer(AnswerKind::Absent, "ốm", "", ""))
                .await,
            Err(Error::Frozen { .. })
        ));
        let got = s.get_invitation(&a.id).await.expect("get").expect("A");
        assert_eq!(got.answer.map(|x| x.answer), Some(AnswerKind::Attend));
    }
}
