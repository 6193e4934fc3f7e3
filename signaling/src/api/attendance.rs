//! Attendance ("điểm danh") of a meeting: the table (JSON and CSV) and the
//! secretariat's marks (present in the hall, excused). The live sessions
//! record join and leave times and the bridge points' declarations
//! themselves (`cabinet::Store::attendance_joined` and the rest).
//!
//! Who: staff admin, secretary, operator read; admin and secretary mark.
//! An invitation token of the meeting's chair or secretary does both (for
//! its own meeting, while it is open: the token stops at the end).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::{AttendanceMark, AttendanceReport, AttendanceRow, Role, StaffRole};
use serde::{Deserialize, Deserializer};

use super::{ApiError, ApiJson, ApiResult, Caller, PREPARE, READ};
use crate::AppState;

/// Whether an invitation of `role` runs the meeting's attendance: the
/// permission table's `Moderate` (the chair and the secretary).
fn runs_attendance(role: Role) -> bool {
    crate::permissions::allows(role, crate::permissions::Permission::Moderate)
}

/// Staff with one of `staff`, or the chair's or secretary's invitation to
/// this meeting; else 403.
fn allowed(caller: &Caller, meeting_id: &str, staff: &[StaffRole]) -> ApiResult<()> {
    match caller {
        Caller::Staff(u) if staff.contains(&u.role) => Ok(()),
        Caller::Invitee {
            invitation,
            meeting,
            ..
        } if meeting.id == meeting_id && runs_attendance(invitation.role) => Ok(()),
        _ => Err(ApiError::forbidden()),
    }
}

async fn report(state: &AppState, meeting_id: &str) -> ApiResult<AttendanceReport> {
    Ok(state
        .store
        .attendance(meeting_id, &state.api.quorum, cabinet::now_unix())
        .await?)
}

/// `GET /api/meetings/{id}/attendance`
pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allowed(&caller, &id, READ)?;
    let r = report(&state, &id).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(r)).into_response())
}

/// `GET /api/meetings/{id}/attendance.csv`: the rows for spreadsheets.
pub async fn csv(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allowed(&caller, &id, READ)?;
    let r = report(&state, &id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"attendance.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        to_csv(&r),
    )
        .into_response())
}

/// The CSV header row.
pub const CSV_HEADER: &str = "name,role,unit,level,present,mark,note,leader,attendees,answer,\
                              first_joined,intervals,present_minutes";

/// The report's rows as CSV: UTF-8 with a BOM (for Excel), CRLF, one header
/// row; times in Vietnam's time.
fn to_csv(r: &AttendanceReport) -> String {
    let mut out = format!("\u{feff}{CSV_HEADER}\r\n");
    for row in &r.rows {
        let intervals = row
            .intervals
            .iter()
            .map(|i| {
                let end = i
                    .left_at
                    .map_or_else(|| "now".to_owned(), super::handlers::vn_time);
                format!(
                    "{} - {end} ({})",
                    super::handlers::vn_time(i.joined_at),
                    i.via
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let cells = [
            row.name.clone(),
            row.role.as_str().to_owned(),
            row.unit.clone().unwrap_or_default(),
            row.level.map(|l| l.as_str().to_owned()).unwrap_or_default(),
            if row.present { "yes" } else { "no" }.to_owned(),
            row.mark.map(|m| m.as_str().to_owned()).unwrap_or_default(),
            row.note.clone(),
            row.leader.clone().unwrap_or_default(),
            row.attendees.map(|n| n.to_string()).unwrap_or_default(),
            row.answer
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            row.first_joined_at
                .map(super::handlers::vn_time)
                .unwrap_or_default(),
            intervals,
            (row.present_seconds / 60).to_string(),
        ];
        let line: Vec<String> = cells.iter().map(|c| super::handlers::csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Tells a present `null` (clear the mark) from an absent field.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<AttendanceMark>>, D::Error> {
    Option::<AttendanceMark>::deserialize(d).map(Some)
}

/// The body of `PUT /api/meetings/{id}/attendance/{invitation_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkRequest {
    /// Required: `present_in_hall`, `excused`, or `null` to clear.
    #[serde(default, deserialize_with = "present")]
    mark: Option<Option<AttendanceMark>>,
    #[serde(default)]
    note: String,
}

/// `PUT /api/meetings/{id}/attendance/{invitation_id}`: the invitation's
/// row as it now is (204 when a revoked invitation that never connected
/// leaves the table).
pub async fn mark(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, invitation_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<MarkRequest>,
) -> ApiResult<Response> {
    allowed(&caller, &id, PREPARE)?;
    let Some(mark) = req.mark else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            crate::protocol::ErrorCode::InvalidInput,
            "the mark is missing (present_in_hall, excused, or null to clear it)",
        ));
    };
    state
        .store
        .mark_attendance(&caller.actor(), &id, &invitation_id, mark, &req.note)
        .await?;
    let r = report(&state, &id).await?;
    let row: Option<AttendanceRow> = r
        .rows
        .into_iter()
        .find(|x| x.invitation_id == invitation_id);
    Ok(match row {
        Some(row) => Json(row).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cabinet::{AttendanceInterval, AttendanceSummary, AttendanceVia, BridgeLevel};

    #[test]
    fn csv_has_a_bom_a_header_and_safe_cells() {
        let row = AttendanceRow {
            invitation_id: "i".into(),
            name: "=UBND xã A, tỉnh B".into(),
            role: Role::Bridge,
            unit: Some("Xã A".into()),
            level: Some(BridgeLevel::Commune),
            present: true,
            mark: None,
            note: String::new(),
            leader: Some("Ông A".into()),
            attendees: Some(12),
            answer: None,
            intervals: vec![AttendanceInterval {
                joined_at: 0,
                left_at: None,
                via: AttendanceVia::Whip,
            }],
            first_joined_at: Some(0),
            present_seconds: 125,
            revoked: false,
        };
        let r = AttendanceReport {
            meeting_id: "m".into(),
            rows: vec![row],
            summary: AttendanceSummary {
                expected: 1,
                present: 1,
                absent: 0,
                excused: 0,
                committee_members: 0,
                members_present: 0,
                quorum_needed: 0,
                quorum_met: false,
                attendees_declared: 12,
            },
        };
        let csv = to_csv(&r);
        let mut lines = csv.split("\r\n");
        assert_eq!(lines.next(), Some(format!("\u{feff}{CSV_HEADER}").as_str()));
        let line = lines.next().expect("a row");
        assert!(line.starts_with("\"'=UBND xã A, tỉnh B\",bridge,Xã A,commune,yes,,,Ông A,12,,"));
        assert!(
            line.ends_with("1970-01-01 07:00 (UTC+7) - now (whip),2"),
            "{line}"
        );
    }

    #[test]
    fn the_mark_must_be_given() {
        let r: MarkRequest = serde_json::from_str(r#"{"mark": null}"#).expect("null");
        assert_eq!(r.mark, Some(None));
        let r: MarkRequest = serde_json::from_str(r#"{"note": "x"}"#).expect("absent");
        assert_eq!(r.mark, None);
        assert!(serde_json::from_str::<MarkRequest>(r#"{"mark": "here"}"#).is_err());
        assert!(serde_json::from_str::<MarkRequest>(r#"{"mark": null, "x": 1}"#).is_err());
    }
}
