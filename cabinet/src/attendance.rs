//! Attendance ("điểm danh"): when each invitation was connected (one
//! interval per live session, several when a point drops and returns), what
//! a bridge point declared on joining (its presiding leader, how many attend
//! in its room), and the secretariat's marks (present in the hall, excused);
//! [`Store::attendance`] puts them together with the quorum.
//!
//! The live sessions call `attendance_joined` / `attendance_left` (not
//! audited: the intervals are the record); declarations and marks are
//! audited.

use std::collections::HashMap;

use serde_json::json;

use crate::{
    now_unix, optional_text, parse_stored, required_text, AttendanceInterval, AttendanceMark,
    AttendanceReport, AttendanceRow, AttendanceSummary, AttendanceVia, BridgeLevel, Error,
    MeetingStatus, Pool, QuorumRule, Result, Role, Store,
};

/// Longest note of a mark, in characters.
pub const MAX_ATTENDANCE_NOTE: usize = 2000;
/// Longest declared leader's name, in characters.
pub const MAX_LEADER: usize = 200;
/// Most attendees a bridge point may declare.
pub const MAX_ATTENDEES: u32 = 10_000;

/// The meeting an invitation belongs to, read inside `$tx`:
/// [`Error::InvitationNotFound`] when it is not one of `$meeting`'s.
/// Evaluates to its `revoked_at`.
macro_rules! invitation_of {
    ($tx:ident, $meeting:expr, $invitation:expr) => {{
        let row: Option<(String, Option<i64>)> =
            sqlx::query_as("SELECT meeting_id, revoked_at FROM invitations WHERE id = $1")
                .bind($invitation)
                .fetch_optional(&mut *$tx)
                .await?;
        match row {
            Some((m, revoked_at)) if m == $meeting => revoked_at,
            _ => return Err(Error::InvitationNotFound(String::from($invitation))),
        }
    }};
}

/// Role order of the table: chair, member, secretary, bridge, delegate,
/// observer.
fn role_rank(r: Role) -> usize {
    Role::ALL
        .iter()
        .position(|x| *x == r)
        .unwrap_or(Role::ALL.len())
}

/// Seconds covered by `intervals` (overlaps counted once), open ones up to
/// `now`.
fn covered_seconds(intervals: &[AttendanceInterval], now: i64) -> i64 {
    let mut spans: Vec<(i64, i64)> = intervals
        .iter()
        .map(|i| (i.joined_at, i.left_at.unwrap_or(now).max(i.joined_at)))
        .collect();
    spans.sort_unstable();
    let mut total = 0i64;
    let mut cur: Option<(i64, i64)> = None;
    for (s, e) in spans {
        cur = match cur {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total = total.saturating_add(ce - cs);
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = cur {
        total = total.saturating_add(ce - cs);
    }
    total
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[derive(sqlx::FromRow)]
struct InvitationLine {
    id: String,
    name: String,
    role: String,
    revoked_at: Option<i64>,
    answer: Option<String>,
    unit: Option<String>,
    level: Option<String>,
}

#[derive(sqlx::FromRow)]
struct IntervalLine {
    invitation_id: String,
    via: String,
    joined_at: i64,
    left_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct DeclarationLine {
    invitation_id: String,
    leader: String,
    attendees: i64,
}

#[derive(sqlx::FromRow)]
struct MarkLine {
    invitation_id: String,
    status: String,
    note: String,
}

impl Store {
    /// A live session of `invitation_id` (live id `participant_id`, `via`
    /// `websocket` or `whip`) joined meeting `meeting_id` at `at`: opens an
    /// interval. Nothing changes when that live id already has an open one
    /// (a resumed session).
    pub async fn attendance_joined(
        &self,
        meeting_id: &str,
        invitation_id: &str,
        participant_id: &str,
        via: &str,
        at: i64,
    ) -> Result<()> {
        let via: AttendanceVia = via.parse()?;
        if participant_id.is_empty() {
            return Err(Error::InvalidInput(
                "the live participant id is empty".into(),
            ));
        }
        in_tx!(self, tx => {
            meeting_status!(tx, meeting_id);
            invitation_of!(tx, meeting_id, invitation_id);
            let open: Option<String> = sqlx::query_scalar(
                "SELECT id FROM attendance_intervals WHERE participant_id = $1 AND left_at IS NULL",
            )
            .bind(participant_id)
            .fetch_optional(&mut *tx)
            .await?;
            if open.is_none() {
                sqlx::query(
                    "INSERT INTO attendance_intervals (id, meeting_id, invitation_id, \
                     participant_id, via, joined_at, left_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
                )
                .bind(crate::new_id())
                .bind(meeting_id)
                .bind(invitation_id)
                .bind(participant_id)
                .bind(via.as_str())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    /// The live session `participant_id` left at `at`: closes its open
    /// interval (no-op if it has none).
    pub async fn attendance_left(&self, participant_id: &str, at: i64) -> Result<()> {
        with_pool!(self, p => sqlx::query(
            "UPDATE attendance_intervals SET left_at = \
             CASE WHEN joined_at > $1 THEN joined_at ELSE $1 END \
             WHERE participant_id = $2 AND left_at IS NULL",
        )
        .bind(at)
        .bind(participant_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes every open interval at `at` (at server start: the server was
    /// down, so nobody stayed connected). Returns how many were closed.
    pub async fn attendance_close_open(&self, at: i64) -> Result<u64> {
        let n = with_pool!(self, p => sqlx::query(
            "UPDATE attendance_intervals SET left_at = \
             CASE WHEN joined_at > $1 THEN joined_at ELSE $1 END WHERE left_at IS NULL",
        )
        .bind(at)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n)
    }

    /// Records what the bridge point of `invitation_id` declared on joining
    /// meeting `meeting_id`: its presiding leader (1 to 200 characters) and
    /// how many attend in its room (at most 10000). The last declaration
    /// counts; each one is audited as `invitation:<id>`. Refused when the
    /// meeting is frozen (ended, archived).
    pub async fn declare_attendance(
        &self,
        meeting_id: &str,
        invitation_id: &str,
        leader: &str,
        attendees: u32,
    ) -> Result<()> {
        let leader = required_text(leader, "presiding leader", MAX_LEADER)?;
        if attendees > MAX_ATTENDEES {
            return Err(Error::InvalidInput(format!(
                "the number of attendees is more than {MAX_ATTENDEES}"
            )));
        }
        let at = now_unix();
        in_tx!(self, tx => {
            let status = meeting_status!(tx, meeting_id);
            if status.is_frozen() {
                return Err(Error::Frozen { status });
            }
            invitation_of!(tx, meeting_id, invitation_id);
            sqlx::query(
                "INSERT INTO attendance_declarations (meeting_id, invitation_id, leader, \
                 attendees, declared_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (meeting_id, invitation_id) DO UPDATE SET \
                 leader = excluded.leader, attendees = excluded.attendees, \
                 declared_at = excluded.declared_at",
            )
            .bind(meeting_id)
            .bind(invitation_id)
            .bind(&leader)
            .bind(i64::from(attendees))
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let actor = format!("invitation:{invitation_id}");
            audit!(tx, actor.as_str(), "attendance.declare", "invitation", invitation_id, json!({
                "meeting_id": meeting_id, "leader": leader, "attendees": attendees,
            }));
        });
        Ok(())
    }

    /// The secretariat marks `invitation_id` (of meeting `meeting_id`)
    /// present in the hall or excused, with a note (at most 2000
    /// characters); `None` clears the mark. Audited as `actor`. Allowed
    /// after the meeting ended (the record is fixed afterwards), refused
    /// once it is archived ([`Error::Frozen`]); a revoked invitation cannot
    /// get a new mark ([`Error::Conflict`]).
    pub async fn mark_attendance(
        &self,
        actor: &str,
        meeting_id: &str,
        invitation_id: &str,
        mark: Option<AttendanceMark>,
        note: &str,
    ) -> Result<()> {
        let note = optional_text(note, "note", MAX_ATTENDANCE_NOTE)?;
        let at = now_unix();
        in_tx!(self, tx => {
            let status = meeting_status!(tx, meeting_id);
            if status == MeetingStatus::Archived {
                return Err(Error::Frozen { status });
            }
            let revoked_at = invitation_of!(tx, meeting_id, invitation_id);
            match mark {
                Some(m) => {
                    if revoked_at.is_some() {
                        return Err(Error::Conflict("the invitation was revoked".into()));
                    }
                    sqlx::query(
                        "INSERT INTO attendance_marks (meeting_id, invitation_id, status, note, \
                         marked_by, marked_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (meeting_id, invitation_id) DO UPDATE SET \
                         status = excluded.status, note = excluded.note, \
                         marked_by = excluded.marked_by, marked_at = excluded.marked_at",
                    )
                    .bind(meeting_id)
                    .bind(invitation_id)
                    .bind(m.as_str())
                    .bind(&note)
                    .bind(actor)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query(
                        "DELETE FROM attendance_marks WHERE meeting_id = $1 AND invitation_id = $2",
                    )
                    .bind(meeting_id)
                    .bind(invitation_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            audit!(tx, actor, "attendance.mark", "invitation", invitation_id, json!({
                "meeting_id": meeting_id, "mark": mark, "note": note,
            }));
        });
        Ok(())
    }

    /// The attendance of meeting `meeting_id` at time `now`: one row per
    /// invitation (revoked ones only when they were connected before, and
    /// then outside the summary), and the figures with the quorum of
    /// `rules`.
    pub async fn attendance(
        &self,
        meeting_id: &str,
        rules: &QuorumRule,
        now: i64,
    ) -> Result<AttendanceReport> {
        if self.get_meeting(meeting_id).await?.is_none() {
            return Err(Error::MeetingNotFound(meeting_id.to_owned()));
        }
        let invitations: Vec<InvitationLine> = with_pool!(self, p => sqlx::query_as(
            "SELECT i.id, i.name, i.role, i.revoked_at, i.answer, b.name AS unit, b.level \
             FROM invitations i \
             LEFT JOIN participants pa ON pa.id = i.participant_id \
             LEFT JOIN bridge_points b ON b.id = COALESCE(i.bridge_point_id, pa.bridge_point_id) \
             WHERE i.meeting_id = $1",
        )
        .bind(meeting_id)
        .fetch_all(p)
        .await)?;
        let intervals: Vec<IntervalLine> = with_pool!(self, p => sqlx::query_as(
            "SELECT invitation_id, via, joined_at, left_at FROM attendance_intervals \
             WHERE meeting_id = $1 ORDER BY joined_at, id",
        )
        .bind(meeting_id)
        .fetch_all(p)
        .await)?;
        let declarations: Vec<DeclarationLine> = with_pool!(self, p => sqlx::query_as(
            "SELECT invitation_id, leader, attendees FROM attendance_declarations \
             WHERE meeting_id = $1",
        )
        .bind(meeting_id)
        .fetch_all(p)
        .await)?;
        let marks: Vec<MarkLine> = with_pool!(self, p => sqlx::query_as(
            "SELECT invitation_id, status, note FROM attendance_marks WHERE meeting_id = $1",
        )
        .bind(meeting_id)
        .fetch_all(p)
        .await)?;

        let mut by_inv: HashMap<String, Vec<AttendanceInterval>> = HashMap::new();
        for i in intervals {
            by_inv
                .entry(i.invitation_id)
                .or_default()
                .push(AttendanceInterval {
                    joined_at: i.joined_at,
                    left_at: i.left_at,
                    via: parse_stored(&i.via, "attendance channel")?,
                });
        }
        let mut declared: HashMap<String, DeclarationLine> = declarations
            .into_iter()
            .map(|d| (d.invitation_id.clone(), d))
            .collect();
        let mut marked: HashMap<String, MarkLine> = marks
            .into_iter()
            .map(|m| (m.invitation_id.clone(), m))
            .collect();

        let mut rows = Vec::with_capacity(invitations.len());
        for inv in invitations {
            let ivs = by_inv.remove(&inv.id).unwrap_or_default();
            let revoked = inv.revoked_at.is_some();
            if revoked && ivs.is_empty() {
                continue;
            }
            let mark = marked.remove(&inv.id);
            let mark_kind: Option<AttendanceMark> = mark
                .as_ref()
                .map(|m| parse_stored(&m.status, "attendance mark"))
                .transpose()?;
            let decl = declared.remove(&inv.id);
            let connected = ivs.iter().any(|i| i.left_at.is_none());
            rows.push(AttendanceRow {
                role: parse_stored(&inv.role, "invitation role")?,
                level: inv
                    .level
                    .as_deref()
                    .map(|l| parse_stored::<BridgeLevel>(l, "bridge point level"))
                    .transpose()?,
                answer: inv
                    .answer
                    .as_deref()
                    .map(|a| parse_stored(a, "invitation answer"))
                    .transpose()?,
                present: connected || mark_kind == Some(AttendanceMark::PresentInHall),
                mark: mark_kind,
                note: mark.map(|m| m.note).unwrap_or_default(),
                leader: decl.as_ref().map(|d| d.leader.clone()),
                attendees: decl
                    .as_ref()
                    .map(|d| u32::try_from(d.attendees).unwrap_or(u32::MAX)),
                first_joined_at: ivs.iter().map(|i| i.joined_at).min(),
                present_seconds: covered_seconds(&ivs, now),
                intervals: ivs,
                invitation_id: inv.id,
                name: inv.name,
                unit: inv.unit,
                revoked,
            });
        }
        rows.sort_by(|a, b| {
            role_rank(a.role)
                .cmp(&role_rank(b.role))
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.invitation_id.cmp(&b.invitation_id))
        });

        let counted: Vec<&AttendanceRow> = rows.iter().filter(|r| !r.revoked).collect();
        let present = counted.iter().filter(|r| r.present).count();
        let excused = counted
            .iter()
            .filter(|r| !r.present && r.mark == Some(AttendanceMark::Excused))
            .count();
        let members = |r: &&&AttendanceRow| matches!(r.role, Role::Chair | Role::Member);
        let committee = rules
            .committee_members
            .unwrap_or_else(|| count(counted.iter().filter(members).count()));
        let members_present = count(counted.iter().filter(members).filter(|r| r.present).count());
        let quorum_needed = rules.needed(committee);
        let attendees_declared = counted
            .iter()
            .filter_map(|r| r.attendees)
            .fold(0u32, u32::saturating_add);
        Ok(AttendanceReport {
            meeting_id: meeting_id.to_owned(),
            summary: AttendanceSummary {
                expected: count(counted.len()),
                present: count(present),
                absent: count(counted.len() - present - excused),
                excused: count(excused),
                committee_members: committee,
                members_present,
                quorum_needed,
                quorum_met: committee > 0 && members_present >= quorum_needed,
                attendees_declared,
            },
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{pg_store, sqlite_store};

    const ACTOR: &str = "user:test";

    use crate::tests::invite;

    async fn scenario(s: &Store) {
        let m = s.create_meeting("Giao ban").await.expect("meeting").id;
        let other = s.create_meeting("Another").await.expect("meeting").id;
        let mut members = Vec::new();
        for n in ["E", "D", "C", "B"] {
            members.push(invite(s, &m, n, Role::Member).await);
        }
        let chair = invite(s, &m, "Chủ tịch", Role::Chair).await;
        let bridge = invite(s, &m, "Xã A", Role::Bridge).await;
        let bridge2 = invite(s, &m, "Xã B", Role::Bridge).await;
        let secretary = invite(s, &m, "Văn phòng", Role::Secretary).await;
        let elsewhere = invite(s, &other, "Other", Role::Member).await;
        let rules = QuorumRule::default();

        // Nobody yet: 5 committee members, 4 needed.
        let r = s.attendance(&m, &rules, 100).await.expect("report");
        assert_eq!(r.rows.len(), 8);
        let roles: Vec<Role> = r.rows.iter().map(|x| x.role).collect();
        assert_eq!(roles[0], Role::Chair);
        assert_eq!(roles[5], Role::Secretary);
        assert_eq!(r.rows[1].name, "B", "members by name");
        assert_eq!(r.summary.expected, 8);
        assert_eq!(r.summary.absent, 8);
        assert_eq!(r.summary.committee_members, 5);
        assert_eq!(r.summary.quorum_needed, 4);
        assert!(!r.summary.quorum_met);

        // Intervals: a point drops and returns; whip and websocket overlap.
        s.attendance_joined(&m, &bridge, "p1", "websocket", 1000)
            .await
            .expect("join");
        s.attendance_joined(&m, &bridge, "p1", "websocket", 1005)
            .await
            .expect("join again: no-op");
        s.attendance_left("p1", 1100).await.expect("left");
        s.attendance_left("p1", 1200)
            .await
            .expect("left twice: no-op");
        s.attendance_left("nobody", 1200)
            .await
            .expect("unknown: no-op");
        s.attendance_joined(&m, &bridge, "p2", "websocket", 1300)
            .await
            .expect("rejoin");
        s.attendance_joined(&m, &bridge, "w1", "whip", 1350)
            .await
            .expect("whip");
        s.attendance_left("w1", 1400).await.expect("whip left");
        s.attendance_joined(&m, &chair, "c1", "websocket", 900)
            .await
            .expect("chair");
        assert!(matches!(
            s.attendance_joined(&m, &bridge, "x", "carrier_pigeon", 1)
                .await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            s.attendance_joined(&m, &elsewhere, "x", "whip", 1).await,
            Err(Error::InvitationNotFound(_))
        ));
        assert!(matches!(
            s.attendance_joined("missing", &bridge, "x", "whip", 1)
                .await,
            Err(Error::MeetingNotFound(_))
        ));

        // Declarations: checked, the last one counts.
        assert!(matches!(
            s.declare_attendance(&m, &bridge, " ", 3).await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            s.declare_attendance(&m, &bridge, &"x".repeat(MAX_LEADER + 1), 3)
                .await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            s.declare_attendance(&m, &bridge, "A", MAX_ATTENDEES + 1)
                .await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            s.declare_attendance(&m, &elsewhere, "A", 1).await,
            Err(Error::InvitationNotFound(_))
        ));
        s.declare_attendance(&m, &bridge, "Ông A", 12)
            .await
            .expect("declare");
        s.declare_attendance(&m, &bridge, " Bà B ", 15)
            .await
            .expect("declare again");
        s.declare_attendance(&m, &bridge2, "Ông C", 7)
            .await
            .expect("declare 2");

        // Marks: checked, audited, cleared by None.
        assert!(matches!(
            s.mark_attendance(
                ACTOR,
                &m,
                &members[0],
                Some(AttendanceMark::Excused),
                &"n".repeat(MAX_ATTENDANCE_NOTE + 1)
            )
            .await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            s.mark_attendance(ACTOR, &m, &elsewhere, Some(AttendanceMark::Excused), "")
                .await,
            Err(Error::InvitationNotFound(_))
        ));
        assert!(matches!(
            s.mark_attendance(ACTOR, "missing", &bridge, Some(AttendanceMark::Excused), "")
                .await,
            Err(Error::MeetingNotFound(_))
        ));
        for id in &members[..2] {
            s.mark_attendance(ACTOR, &m, id, Some(AttendanceMark::PresentInHall), "")
                .await
                .expect("mark");
        }
        s.mark_attendance(
            ACTOR,
            &m,
            &members[2],
            Some(AttendanceMark::Excused),
            " ốm ",
        )
        .await
        .expect("excused");
        s.mark_attendance(ACTOR, &m, &secretary, Some(AttendanceMark::Excused), "x")
            .await
            .expect("excused");
        s.mark_attendance(ACTOR, &m, &secretary, None, "")
            .await
            .expect("cleared");
        let audit = s.audit_of("invitation", &secretary).await.expect("audit");
        assert_eq!(
            audit
                .iter()
                .filter(|a| a.action == "attendance.mark")
                .count(),
            2
        );

        let r = s.attendance(&m, &rules, 2000).await.expect("report");
        let row = |id: &str| {
            r.rows
                .iter()
                .find(|x| x.invitation_id == id)
                .expect("row")
                .clone()
        };
        let b = row(&bridge);
        assert!(b.present);
        assert_eq!(b.intervals.len(), 3);
        assert_eq!(b.first_joined_at, Some(1000));
        assert_eq!(b.intervals[0].left_at, Some(1100));
        assert_eq!(b.intervals[2].via, AttendanceVia::Whip);
        // 1000-1100, then 1300-2000 (the whip session inside it counted once).
        assert_eq!(b.present_seconds, 100 + 700);
        assert_eq!(b.leader.as_deref(), Some("Bà B"));
        assert_eq!(b.attendees, Some(15));
        let ex = row(&members[2]);
        assert_eq!(
            (ex.present, ex.mark, ex.note.as_str()),
            (false, Some(AttendanceMark::Excused), "ốm")
        );
        assert!(row(&members[0]).present);
        assert_eq!(row(&secretary).mark, None);
        assert!(!row(&bridge2).present, "declared but not connected");
        // Present: chair (connected), 2 members in the hall, the bridge.
        assert_eq!(r.summary.present, 4);
        assert_eq!(r.summary.excused, 1);
        assert_eq!(r.summary.absent, 3);
        assert_eq!(r.summary.members_present, 3);
        assert!(!r.summary.quorum_met);
        assert_eq!(r.summary.attendees_declared, 22);
        s.mark_attendance(
            ACTOR,
            &m,
            &members[3],
            Some(AttendanceMark::PresentInHall),
            "",
        )
        .await
        .expect("mark");
        let r = s.attendance(&m, &rules, 2000).await.expect("report");
        assert_eq!(r.summary.members_present, 4);
        assert!(r.summary.quorum_met);

        // A configured committee size and rule.
        let fixed = QuorumRule {
            numerator: 1,
            denominator: 2,
            committee_members: Some(9),
        };
        let r = s.attendance(&m, &fixed, 2000).await.expect("report");
        assert_eq!(
            (r.summary.committee_members, r.summary.quorum_needed),
            (9, 5)
        );
        assert!(!r.summary.quorum_met);

        // Revoked: kept in the table when it was connected, out of the figures.
        s.revoke_invitation(&members[3]).await.expect("revoke");
        s.revoke_invitation(&bridge2).await.expect("revoke");
        assert!(matches!(
            s.mark_attendance(ACTOR, &m, &bridge2, Some(AttendanceMark::Excused), "")
                .await,
            Err(Error::Conflict(_))
        ));
        let r = s.attendance(&m, &rules, 2000).await.expect("report");
        assert!(r
            .rows
            .iter()
            .all(|x| x.invitation_id != members[3] && x.invitation_id != bridge2));
        assert_eq!(r.summary.expected, 6);
        assert_eq!(r.summary.committee_members, 4);
        assert_eq!(r.summary.attendees_declared, 15);

        // The server restarts: open intervals are closed.
        assert_eq!(s.attendance_close_open(3000).await.expect("close"), 2);
        assert_eq!(s.attendance_close_open(3001).await.expect("close"), 0);
        let r = s.attendance(&m, &rules, 5000).await.expect("report");
        let b = r
            .rows
            .iter()
            .find(|x| x.invitation_id == bridge)
            .expect("bridge");
        assert!(!b.present);
        assert_eq!(b.present_seconds, 100 + 1700);
        // A live id can open a new interval once its old one is closed.
        s.attendance_joined(&m, &bridge, "p2", "websocket", 3100)
            .await
            .expect("same id again");

        // Ended: marks allowed, declarations not; archived: nothing.
        s.set_meeting_status(&m, MeetingStatus::Ended)
            .await
            .expect("end");
        s.mark_attendance(ACTOR, &m, &members[0], Some(AttendanceMark::Excused), "")
            .await
            .expect("fixed after the meeting");
        assert!(matches!(
            s.declare_attendance(&m, &bridge, "A", 1).await,
            Err(Error::Frozen { .. })
        ));
        s.set_meeting_status(&m, MeetingStatus::Archived)
            .await
            .expect("archive");
        assert!(matches!(
            s.mark_attendance(ACTOR, &m, &members[0], None, "").await,
            Err(Error::Frozen { .. })
        ));
        assert!(
            s.attendance(&m, &rules, 5000).await.is_ok(),
            "still readable"
        );
        assert!(matches!(
            s.attendance("missing", &rules, 0).await,
            Err(Error::MeetingNotFound(_))
        ));
    }

    #[test]
    fn quorum_and_overlaps() {
        let r = QuorumRule::default();
        assert_eq!(
            (r.needed(5), r.needed(6), r.needed(0), r.needed(1)),
            (4, 4, 0, 1)
        );
        let iv = |j, l| AttendanceInterval {
            joined_at: j,
            left_at: l,
            via: AttendanceVia::Websocket,
        };
        assert_eq!(covered_seconds(&[], 10), 0);
        assert_eq!(
            covered_seconds(&[iv(0, Some(10)), iv(5, Some(20)), iv(30, None)], 40),
            30
        );
        assert_eq!(
            covered_seconds(&[iv(50, None)], 40),
            0,
            "clock before the join"
        );
    }

    #[tokio::test]
    async fn sqlite_attendance() {
        let (s, _db) = sqlite_store().await;
        scenario(&s).await;
    }

    #[tokio::test]
    async fn pg_attendance() {
        if let Some((s, schema)) = pg_store().await {
            scenario(&s).await;
            schema.drop_now(s).await;
        }
    }
}
