//! The notice of conclusions ("thông báo kết luận") of a meeting: generated
//! from its record like the minutes (the meeting's data, its chair, the
//! conclusion of each agenda item with the votes taken on it), as HTML and
//! as PDF in the layout of Decree 30/2020/NĐ-CP (shared with the minutes,
//! `docfmt`), and its due date: a number of working days after the meeting
//! (5 by default, Decision 45/2018/QĐ-TTg; `notes/meeting-rules.md`),
//! counted in the [`Calendar`], until the secretariat marks it issued
//! (stored with who, when and the number given; audited `notice.issued`).
//!
//! Assignments are not a separate record: a conclusion's own lines ("Giao
//! Sở Tài chính ...") are its paragraphs.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::docfmt::{self, clean, note, para, Block, Sheet, Signer};
use crate::minutes::{MinutesHeader, MinutesRecord, Person};
use crate::workdays::{format_date, vn_date, vn_end_of_day, Calendar};
use crate::{
    now_unix, parse_stored, Error, MeetingKind, MeetingStatus, PollStatus, Pool, QuorumRule,
    Result, Store,
};

/// Longest number the clerical office gives a notice, in characters.
pub const MAX_NOTICE_NUMBER: usize = 30;

/// How the notice is headed and signed (the `[notice]` settings; the
/// issuer and place are the minutes').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeSettings {
    /// The symbol after the number ("TB-UBND").
    pub symbol: String,
    /// The signer's lines, bold ("TL. CHỦ TỊCH", "CHÁNH VĂN PHÒNG").
    pub signer_title: Vec<String>,
    /// The signer's name; empty: left for the signer to write.
    pub signer_name: String,
    /// "Nơi nhận": one entry a line.
    pub recipients: Vec<String>,
    /// Working days after the meeting the notice is due.
    pub due_working_days: u32,
}

impl Default for NoticeSettings {
    fn default() -> NoticeSettings {
        NoticeSettings {
            symbol: "TB-UBND".into(),
            signer_title: vec!["TL. CHỦ TỊCH".into(), "CHÁNH VĂN PHÒNG".into()],
            signer_name: String::new(),
            recipients: vec![
                "Thành viên UBND".into(),
                "Các cơ quan, đơn vị dự họp".into(),
                "Lưu: VT.".into(),
            ],
            due_working_days: 5,
        }
    }
}

/// That the notice was issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct NoticeIssue {
    pub meeting_id: String,
    /// An actor, as in the audit log.
    pub issued_by: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// The number the clerical office gave it; may be empty.
    pub number: String,
}

/// Where the notice of a meeting stands: its due date and whether it was
/// issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeStatus {
    pub meeting_id: String,
    /// The meeting's date (`YYYY-MM-DD`, in Vietnam): its planned start,
    /// else its first connection; `None` when it has neither.
    pub meeting_date: Option<String>,
    /// Working days after the meeting the notice is due (the setting).
    pub due_working_days: u32,
    /// `YYYY-MM-DD`; `None` without a meeting date.
    pub due_date: Option<String>,
    /// The end of the due date in Vietnam (23:59:59 UTC+7), Unix seconds.
    pub due_at: Option<i64>,
    /// Working days from today to the due date: 0 on the due date itself,
    /// negative past it. `None` without a due date.
    pub working_days_left: Option<i64>,
    /// Not issued and the due date is past.
    pub overdue: bool,
    /// Set once the secretariat marked it issued.
    pub issued: Option<NoticeIssue>,
}

/// The documents' deadline of a meeting: they must reach the members a
/// number of working days before it (3 before a regular meeting, 1 before
/// a thematic or extraordinary one, settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentsDeadline {
    pub meeting_id: String,
    pub kind: MeetingKind,
    /// `YYYY-MM-DD` in Vietnam; `None` when the meeting has no planned
    /// start.
    pub meeting_date: Option<String>,
    /// The setting for this kind of meeting.
    pub working_days_before: u32,
    /// `YYYY-MM-DD`: the last day to send documents.
    pub deadline: Option<String>,
    /// Its end in Vietnam (23:59:59 UTC+7), Unix seconds.
    pub deadline_at: Option<i64>,
    /// Working days from today to the deadline (0 on it, negative past it).
    pub working_days_left: Option<i64>,
    /// Some document in effect (not withdrawn) was added, or got a new
    /// version, after the deadline.
    pub missed: bool,
    /// Those documents, oldest first.
    pub late: Vec<LateDocument>,
}

/// A document sent after the deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LateDocument {
    pub document_id: String,
    pub agenda_item_id: String,
    pub title: String,
    /// The first version uploaded after the deadline.
    pub version: i64,
    /// When, Unix seconds.
    pub uploaded_at: i64,
    /// Whether it replaced another document.
    pub replaces: Option<String>,
}

/// Working days before the meeting its documents are due, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentsDeadlineRule {
    /// Regular meetings (3 by default).
    pub regular: u32,
    /// Thematic and extraordinary ones (1 by default).
    pub thematic: u32,
}

impl Default for DocumentsDeadlineRule {
    fn default() -> DocumentsDeadlineRule {
        DocumentsDeadlineRule {
            regular: 3,
            thematic: 1,
        }
    }
}

const COLUMNS: &str = "meeting_id, issued_by, issued_at, number";

impl Store {
    /// The notice's issue record of a meeting, if marked issued.
    pub async fn notice_issue(&self, meeting_id: &str) -> Result<Option<NoticeIssue>> {
        let sql = format!("SELECT {COLUMNS} FROM notices WHERE meeting_id = $1");
        let row: Option<NoticeIssue> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(meeting_id)
            .fetch_optional(p)
            .await)?;
        Ok(row)
    }

    /// Marks the notice of meeting `meeting_id` issued (with `number`, the
    /// clerical office's, trimmed, at most [`MAX_NOTICE_NUMBER`]
    /// characters, may be empty) or, with `issued` false, not issued.
    /// Only once the meeting has ended (or is archived): before, there is
    /// nothing to conclude ([`Error::Conflict`]). Marking it issued again
    /// keeps the first who and when and updates the number; every change
    /// is audited (`notice.issued`, `notice.unissued`).
    pub async fn set_notice_issued(
        &self,
        actor: &str,
        meeting_id: &str,
        issued: bool,
        number: &str,
    ) -> Result<Option<NoticeIssue>> {
        if number.chars().count() > MAX_NOTICE_NUMBER {
            return Err(Error::InvalidInput(format!(
                "the notice's number is longer than {MAX_NOTICE_NUMBER} characters"
            )));
        }
        let number = clean(number);
        if number.contains('\0') {
            return Err(Error::InvalidInput(
                "the notice's number contains a NUL character".into(),
            ));
        }
        let now = now_unix();
        let sql = format!("SELECT {COLUMNS} FROM notices WHERE meeting_id = $1");
        let out = in_tx!(self, tx => {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM meetings WHERE id = $1")
                    .bind(meeting_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let status: MeetingStatus = match status {
                Some(s) => parse_stored(&s, "meeting status")?,
                None => return Err(Error::MeetingNotFound(meeting_id.to_owned())),
            };
            if !status.is_frozen() {
                return Err(Error::Conflict(format!(
                    "the meeting is {status}: its notice of conclusions can be marked issued once it has ended"
                )));
            }
            let current: Option<NoticeIssue> = sqlx::query_as(&sql)
                .bind(meeting_id)
                .fetch_optional(&mut *tx)
                .await?;
            match (issued, current) {
                (false, None) => None,
                (false, Some(_)) => {
                    sqlx::query("DELETE FROM notices WHERE meeting_id = $1")
                        .bind(meeting_id)
                        .execute(&mut *tx)
                        .await?;
                    audit!(tx, actor, "notice.unissued", "meeting", meeting_id, json!({}));
                    None
                }
                (true, Some(c)) if c.number == number => Some(c),
                (true, Some(c)) => {
                    sqlx::query("UPDATE notices SET number = $2 WHERE meeting_id = $1")
                        .bind(meeting_id)
                        .bind(&number)
                        .execute(&mut *tx)
                        .await?;
                    audit!(tx, actor, "notice.issued", "meeting", meeting_id, json!({
                        "number": number, "issued_at": c.issued_at,
                    }));
                    Some(NoticeIssue { number, ..c })
                }
                (true, None) => {
                    sqlx::query(
                        "INSERT INTO notices (meeting_id, issued_by, issued_at, number) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(meeting_id)
                    .bind(actor)
                    .bind(now)
                    .bind(&number)
                    .execute(&mut *tx)
                    .await?;
                    audit!(tx, actor, "notice.issued", "meeting", meeting_id, json!({
                        "number": number, "issued_at": now,
                    }));
                    Some(NoticeIssue {
                        meeting_id: meeting_id.to_owned(),
                        issued_by: actor.to_owned(),
                        issued_at: now,
                        number,
                    })
                }
            }
        });
        Ok(out)
    }

    /// The date the meeting took place: its planned start, else its first
    /// connection (Unix seconds).
    async fn meeting_moment(&self, meeting: &crate::Meeting) -> Result<Option<i64>> {
        if let Some(s) = meeting.starts_at {
            return Ok(Some(s));
        }
        let first: Option<i64> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT MIN(joined_at) FROM attendance_intervals WHERE meeting_id = $1",
        )
        .bind(&meeting.id)
        .fetch_one(p)
        .await)?;
        Ok(first)
    }

    /// Where the notice of meeting `meeting_id` stands at time `now`
    /// ([`Error::MeetingNotFound`] for an unknown meeting).
    pub async fn notice_status(
        &self,
        meeting_id: &str,
        calendar: &Calendar,
        due_working_days: u32,
        now: i64,
    ) -> Result<NoticeStatus> {
        let meeting = self
            .get_meeting(meeting_id)
            .await?
            .ok_or_else(|| Error::MeetingNotFound(meeting_id.to_owned()))?;
        let issued = self.notice_issue(meeting_id).await?;
        let date = self.meeting_moment(&meeting).await?.map(vn_date);
        let due = date.map(|d| calendar.add_working_days(d, i64::from(due_working_days)));
        let today = vn_date(now);
        Ok(NoticeStatus {
            meeting_id: meeting.id,
            meeting_date: date.map(format_date),
            due_working_days,
            due_date: due.map(format_date),
            due_at: due.map(vn_end_of_day),
            working_days_left: due.map(|d| calendar.working_days_between(today, d)),
            overdue: issued.is_none() && due.is_some_and(|d| today > d),
            issued,
        })
    }

    /// The documents' deadline of meeting `meeting_id` at time `now`, and
    /// the documents sent after it ([`Error::MeetingNotFound`]).
    pub async fn documents_deadline(
        &self,
        meeting_id: &str,
        calendar: &Calendar,
        rule: DocumentsDeadlineRule,
        now: i64,
    ) -> Result<DocumentsDeadline> {
        let meeting = self
            .get_meeting(meeting_id)
            .await?
            .ok_or_else(|| Error::MeetingNotFound(meeting_id.to_owned()))?;
        let days = match meeting.kind {
            MeetingKind::Regular => rule.regular,
            MeetingKind::Thematic | MeetingKind::Extraordinary => rule.thematic,
        };
        let date = meeting.starts_at.map(vn_date);
        let deadline = date.map(|d| calendar.add_working_days(d, -i64::from(days)));
        let deadline_at = deadline.map(vn_end_of_day);
        let mut late = Vec::new();
        if let Some(limit) = deadline_at {
            for item in self.list_agenda(meeting_id).await? {
                for d in self.list_documents(&item.id).await? {
                    if d.is_withdrawn() {
                        continue;
                    }
                    if let Some(v) = d.versions.iter().find(|v| v.uploaded_at > limit) {
                        late.push(LateDocument {
                            document_id: d.id.clone(),
                            agenda_item_id: d.agenda_item_id.clone(),
                            title: d.title.clone(),
                            version: v.version,
                            uploaded_at: v.uploaded_at,
                            replaces: d.replaces.clone(),
                        });
                    }
                }
            }
        }
        late.sort_by(|a, b| (a.uploaded_at, &a.document_id).cmp(&(b.uploaded_at, &b.document_id)));
        let today = vn_date(now);
        Ok(DocumentsDeadline {
            meeting_id: meeting.id,
            kind: meeting.kind,
            meeting_date: date.map(format_date),
            working_days_before: days,
            deadline: deadline.map(format_date),
            deadline_at,
            working_days_left: deadline.map(|d| calendar.working_days_between(today, d)),
            missed: !late.is_empty(),
            late,
        })
    }

    /// The record the notice shows: the minutes' record (the conclusions,
    /// the votes, the chair) and the issue, if any.
    pub async fn notice_record(
        &self,
        meeting_id: &str,
        header: MinutesHeader,
        rules: &QuorumRule,
        settings: &NoticeSettings,
    ) -> Result<NoticeRecord> {
        let record = self.minutes_record(meeting_id, header, rules).await?;
        let issued = self.notice_issue(meeting_id).await?;
        Ok(NoticeRecord {
            record,
            settings: settings.clone(),
            issued,
        })
    }
}

/// Everything the notice shows ([`Store::notice_record`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeRecord {
    /// The meeting's record, as the minutes read it.
    pub record: MinutesRecord,
    pub settings: NoticeSettings,
    pub issued: Option<NoticeIssue>,
}

/// "Nguyễn Văn A, Chủ tịch UBND tỉnh".
fn named(p: &Person) -> String {
    let (n, pos) = (clean(&p.name), clean(&p.position));
    if pos.is_empty() {
        n
    } else {
        format!("{n}, {pos}")
    }
}

fn blocks(n: &NoticeRecord) -> Vec<Block> {
    let r = &n.record;
    let m = &r.meeting;
    let mut out = Vec::new();
    let chair = r
        .chair
        .as_ref()
        .map(named)
        .unwrap_or_else(|| "Chủ tọa".into());
    let mut intro = String::new();
    if let Some(s) = m.starts_at {
        let _ = write!(
            intro,
            "vào lúc {}, ",
            docfmt::moment(s).replace(", ngày", " ngày")
        );
    }
    let place = clean(&m.location);
    if !place.is_empty() {
        let _ = write!(intro, "tại {place}, ");
    }
    let _ = write!(intro, "{chair} chủ trì cuộc họp {}.", clean(&m.title));
    // Start with a capital letter whatever comes first.
    let mut chars = intro.chars();
    let intro = match chars.next() {
        Some(c) => c.to_uppercase().collect::<String>() + chars.as_str(),
        None => intro,
    };
    out.push(para("", intro));
    let s = &r.attendance.summary;
    let bridges = r
        .attendance
        .rows
        .iter()
        .filter(|x| !x.revoked && x.role == crate::Role::Bridge && x.present)
        .count();
    let mut who = format!(
        "Tham dự cuộc họp có {}/{} thành viên Ủy ban nhân dân",
        s.members_present, s.committee_members
    );
    if bridges > 0 {
        let _ = write!(who, " và {bridges} điểm cầu");
    }
    who.push('.');
    out.push(para("", who));
    out.push(para(
        "",
        "Sau khi nghe báo cáo và ý kiến của các đại biểu dự họp, Chủ tọa kết luận như sau:",
    ));
    if r.items.is_empty() {
        out.push(note("Cuộc họp không có chương trình."));
    }
    for it in &r.items {
        out.push(Block::Sub(format!(
            "{}. {}",
            it.item.position,
            clean(&it.item.title)
        )));
        match it.conclusion.as_deref() {
            Some(text) => {
                for line in text.lines().map(clean).filter(|l| !l.is_empty()) {
                    out.push(para("", line));
                }
            }
            None => out.push(note("(Chưa có kết luận.)")),
        }
        for p in r.polls.iter().filter(|p| {
            p.status == PollStatus::Closed
                && p.agenda_item_id.as_deref() == Some(it.item.id.as_str())
        }) {
            if let Some(o) = p.outcome {
                out.push(para(
                    "Biểu quyết: ",
                    format!(
                        "{}: {} (tán thành {}, không tán thành {}, không biểu quyết {}).",
                        clean(&p.question),
                        if o.passed {
                            "thông qua"
                        } else {
                            "không thông qua"
                        },
                        o.tally.for_,
                        o.tally.against,
                        o.tally.abstain
                    ),
                ));
            }
        }
    }
    out.push(para(
        "",
        "Thông báo để các cơ quan, đơn vị, địa phương liên quan biết, thực hiện./.",
    ));
    out
}

/// "Nơi nhận" as Decree 30 writes it: each entry ends with ";", the last
/// with "." (unless it already ends with a punctuation mark).
fn recipients(list: &[String]) -> Vec<String> {
    let list: Vec<String> = list
        .iter()
        .map(|x| clean(x))
        .filter(|x| !x.is_empty())
        .collect();
    let last = list.len().saturating_sub(1);
    list.into_iter()
        .enumerate()
        .map(|(i, x)| {
            if x.ends_with(['.', ';', ',', ':']) {
                x
            } else if i == last {
                format!("{x}.")
            } else {
                format!("{x};")
            }
        })
        .collect()
}

fn sheet(n: &NoticeRecord) -> Sheet {
    let r = &n.record;
    let title = clean(&r.meeting.title);
    let subtitle = match &r.chair {
        Some(p) => format!("Kết luận của {} tại cuộc họp {title}", named(p)),
        None => format!("Kết luận của Chủ tọa tại cuộc họp {title}"),
    };
    let mut header = r.header.clone();
    header.symbol = n.settings.symbol.clone();
    Sheet {
        header,
        number: n
            .issued
            .as_ref()
            .map(|i| i.number.clone())
            .unwrap_or_default(),
        date: n.issued.as_ref().map(|i| i.issued_at),
        date_year: docfmt::vn(r.meeting.starts_at.unwrap_or(r.meeting.created_at)).year(),
        kind: "THÔNG BÁO",
        subtitle,
        blocks: blocks(n),
        recipients: recipients(&n.settings.recipients),
        signers: vec![Signer {
            titles: n.settings.signer_title.clone(),
            hint: None,
            name: n.settings.signer_name.clone(),
        }],
        title: format!("Thông báo kết luận - {title}"),
        document_id: format!("giaoban-notice-{}", r.meeting.id),
    }
}

/// The notice as a standalone HTML page (UTF-8; every text from the
/// record escaped; [`crate::minutes::html_csp`] applies).
pub fn html(n: &NoticeRecord) -> String {
    docfmt::html(&sheet(n))
}

/// The notice as PDF bytes (A4, the fonts embedded as subsets). The same
/// record gives the same bytes.
pub fn pdf(n: &NoticeRecord) -> std::result::Result<Vec<u8>, docfmt::PdfError> {
    docfmt::pdf(&sheet(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{pg_store, sqlite_store};
    use crate::workdays::parse_date;
    use crate::{
        AgendaItem, AttendanceReport, AttendanceSummary, Blobs, DocumentAccess, FileType, Meeting,
        NewAgendaItem, NewDocument, NewMeeting, Upload,
    };

    const SECRETARY: &str = "user:secretary";

    /// 2026-01-09 (a Friday) 08:30 in Vietnam.
    const FRIDAY: i64 = 1_767_922_200;
    const DAY: i64 = 86_400;

    fn calendar() -> Calendar {
        // Thursday 15 January a holiday.
        Calendar::from_settings(
            &["saturday".into(), "sunday".into()],
            &["2026-01-15".into()],
            &[],
        )
        .expect("calendar")
    }

    async fn meeting(s: &Store, title: &str, kind: MeetingKind, at: Option<i64>) -> Meeting {
        s.add_meeting(
            SECRETARY,
            NewMeeting {
                title: title.into(),
                kind,
                starts_at: at,
                ends_at: None,
                location: "Hội trường".into(),
                join_muted: None,
            },
        )
        .await
        .expect("meeting")
    }

    async fn document(s: &Store, blobs: &Blobs, item: &str, title: &str) -> crate::Document {
        let mut w = blobs.stage().await.expect("stage");
        w.write(title.as_bytes()).await.expect("write");
        let staged = w.finish().await.expect("finish");
        s.add_document(
            SECRETARY,
            NewDocument {
                agenda_item_id: item.into(),
                title: title.into(),
                access: DocumentAccess::Everyone,
                participant_ids: vec![],
            },
            Upload {
                filename: "a.pdf".into(),
                file_type: FileType::Pdf,
                signature_report: json!({"status": "not_checked"}),
            },
            staged,
            blobs,
        )
        .await
        .expect("document")
    }

    async fn scenario(s: &Store, data: &std::path::Path) {
        let cal = calendar();
        let m = meeting(s, "Giao ban tháng 1", MeetingKind::Regular, Some(FRIDAY)).await;

        // Due 5 working days after Friday 9: Mon 12, Tue 13, Wed 14, (Thu
        // 15 a holiday), Fri 16, Mon 19.
        let st = s
            .notice_status(&m.id, &cal, 5, FRIDAY + DAY)
            .await
            .expect("status");
        assert_eq!(st.meeting_date.as_deref(), Some("2026-01-09"));
        assert_eq!(st.due_date.as_deref(), Some("2026-01-19"));
        assert_eq!(
            st.due_at,
            Some(vn_end_of_day(parse_date("2026-01-19").expect("date")))
        );
        // Seen on Saturday 10: 5 left.
        assert_eq!(st.working_days_left, Some(5));
        assert!(!st.overdue);
        assert!(st.issued.is_none());
        // On the due date: 0 left, not overdue; the day after: overdue.
        let on = s
            .notice_status(&m.id, &cal, 5, FRIDAY + 10 * DAY)
            .await
            .expect("status");
        assert_eq!(on.working_days_left, Some(0));
        assert!(!on.overdue);
        let late = s
            .notice_status(&m.id, &cal, 5, FRIDAY + 11 * DAY)
            .await
            .expect("status");
        assert_eq!(late.working_days_left, Some(-1));
        assert!(late.overdue);

        // Marking it issued: only once the meeting has ended.
        assert!(matches!(
            s.set_notice_issued(SECRETARY, &m.id, true, "").await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            s.set_notice_issued(SECRETARY, "nope", true, "").await,
            Err(Error::MeetingNotFound(_))
        ));
        assert!(matches!(
            s.notice_status("nope", &cal, 5, FRIDAY).await,
            Err(Error::MeetingNotFound(_))
        ));
        for st in [
            MeetingStatus::Scheduled,
            MeetingStatus::InProgress,
            MeetingStatus::Ended,
        ] {
            s.change_meeting_status(SECRETARY, &m.id, st)
                .await
                .expect("status");
        }
        assert!(matches!(
            s.set_notice_issued(SECRETARY, &m.id, true, &"9".repeat(MAX_NOTICE_NUMBER + 1))
                .await,
            Err(Error::InvalidInput(_))
        ));
        let issued = s
            .set_notice_issued(SECRETARY, &m.id, true, " 12 ")
            .await
            .expect("issue")
            .expect("issued");
        assert_eq!(issued.number, "12");
        assert_eq!(issued.issued_by, SECRETARY);
        let again = s
            .set_notice_issued("user:other", &m.id, true, "12")
            .await
            .expect("again")
            .expect("issued");
        assert_eq!(again, issued, "the same: unchanged");
        let renumbered = s
            .set_notice_issued("user:other", &m.id, true, "13")
            .await
            .expect("renumber")
            .expect("issued");
        assert_eq!(renumbered.number, "13");
        assert_eq!(renumbered.issued_by, SECRETARY, "the first who and when");
        let st = s
            .notice_status(&m.id, &cal, 5, FRIDAY + 30 * DAY)
            .await
            .expect("status");
        assert!(!st.overdue, "issued: never overdue");
        assert_eq!(st.issued.as_ref().map(|i| i.number.as_str()), Some("13"));
        assert_eq!(
            s.set_notice_issued(SECRETARY, &m.id, false, "")
                .await
                .expect("unissue"),
            None
        );
        assert!(s.notice_issue(&m.id).await.expect("read").is_none());
        assert_eq!(
            s.set_notice_issued(SECRETARY, &m.id, false, "")
                .await
                .expect("again"),
            None
        );
        s.set_notice_issued(SECRETARY, &m.id, true, "14")
            .await
            .expect("issue again");
        // Archived: still allowed (the notice often follows the filing).
        s.change_meeting_status(SECRETARY, &m.id, MeetingStatus::Archived)
            .await
            .expect("archive");
        let log: Vec<String> = s
            .audit_of("meeting", &m.id)
            .await
            .expect("audit")
            .into_iter()
            .filter(|e| e.action.starts_with("notice."))
            .map(|e| format!("{} {} {}", e.action, e.actor, e.detail["number"]))
            .collect();
        assert_eq!(
            log,
            [
                "notice.issued user:secretary \"12\"",
                "notice.issued user:other \"13\"",
                "notice.unissued user:secretary null",
                "notice.issued user:secretary \"14\"",
            ]
        );

        // A meeting without a date: no due date until someone joins.
        let undated = meeting(s, "Chưa có lịch", MeetingKind::Regular, None).await;
        let st = s
            .notice_status(&undated.id, &cal, 5, FRIDAY)
            .await
            .expect("status");
        assert_eq!(st.due_date, None);
        assert_eq!(st.working_days_left, None);
        assert!(!st.overdue);

        // The documents' deadline: 3 working days before a regular meeting
        // on Tuesday 20 January: Mon 19, Fri 16, (Thu 15 off) Wed 14.
        let rule = DocumentsDeadlineRule::default();
        let blobs = Blobs::new(data.join("documents"));
        let future = meeting(
            s,
            "Thường kỳ",
            MeetingKind::Regular,
            Some(FRIDAY + 11 * DAY),
        )
        .await;
        let dl = s
            .documents_deadline(&future.id, &cal, rule, FRIDAY)
            .await
            .expect("deadline");
        assert_eq!(dl.meeting_date.as_deref(), Some("2026-01-20"));
        assert_eq!(dl.working_days_before, 3);
        assert_eq!(dl.deadline.as_deref(), Some("2026-01-14"));
        assert_eq!(dl.working_days_left, Some(3));
        assert!(!dl.missed);
        // A thematic one on the same day: 1 working day before, Monday 19.
        let thematic = meeting(
            s,
            "Chuyên đề",
            MeetingKind::Thematic,
            Some(FRIDAY + 11 * DAY),
        )
        .await;
        let dl = s
            .documents_deadline(&thematic.id, &cal, rule, FRIDAY)
            .await
            .expect("deadline");
        assert_eq!(dl.deadline.as_deref(), Some("2026-01-19"));
        assert_eq!(dl.working_days_before, 1);

        // Documents sent now (after 2026) for a meeting in January 2026 are
        // late; for a meeting far ahead they are not; withdrawn ones do
        // not count.
        let item = s
            .add_agenda_item(
                SECRETARY,
                &future.id,
                NewAgendaItem {
                    title: "Kinh tế".into(),
                    presenter: String::new(),
                    duration_minutes: None,
                },
            )
            .await
            .expect("item");
        let d1 = document(s, &blobs, &item.id, "Tờ trình").await;
        let d2 = document(s, &blobs, &item.id, "Báo cáo").await;
        s.withdraw_document(SECRETARY, &d2.id, "nhầm")
            .await
            .expect("withdraw");
        let dl = s
            .documents_deadline(&future.id, &cal, rule, now_unix())
            .await
            .expect("deadline");
        assert!(dl.missed);
        assert_eq!(dl.late.len(), 1, "{:?}", dl.late);
        assert_eq!(dl.late[0].document_id, d1.id);
        assert_eq!(dl.late[0].version, 1);
        assert!(dl.working_days_left.is_some_and(|n| n < 0));
        let ahead = meeting(
            s,
            "Năm sau",
            MeetingKind::Regular,
            Some(now_unix() + 400 * DAY),
        )
        .await;
        let item = s
            .add_agenda_item(
                SECRETARY,
                &ahead.id,
                NewAgendaItem {
                    title: "Kinh tế".into(),
                    presenter: String::new(),
                    duration_minutes: None,
                },
            )
            .await
            .expect("item");
        document(s, &blobs, &item.id, "Tờ trình").await;
        let dl = s
            .documents_deadline(&ahead.id, &cal, rule, now_unix())
            .await
            .expect("deadline");
        assert!(!dl.missed);
        assert!(dl.working_days_left.is_some_and(|n| n > 200));
        assert!(s.verify_audit_chain().await.expect("verify").is_none());
    }

    #[tokio::test]
    async fn sqlite_notice() {
        let (s, dir) = sqlite_store().await;
        scenario(&s, dir.path()).await;
    }

    #[tokio::test]
    async fn pg_notice() {
        if let Some((s, schema)) = pg_store().await {
            let dir = tempfile::tempdir().expect("temp dir");
            scenario(&s, dir.path()).await;
            schema.drop_now(s).await;
        }
    }

    fn record() -> NoticeRecord {
        let meeting = Meeting {
            id: "m-1".into(),
            title: "Giao ban kinh tế - xã hội tháng 12".into(),
            kind: MeetingKind::Regular,
            status: MeetingStatus::Ended,
            starts_at: Some(FRIDAY),
            ends_at: None,
            location: "Hội trường UBND tỉnh".into(),
            chair_participant_id: None,
            created_at: FRIDAY - DAY,
            updated_at: FRIDAY,
            join_muted: None,
        };
        let item = |n: i64, title: &str, conclusion: Option<&str>| crate::minutes::MinutesItem {
            item: AgendaItem {
                id: format!("item-{n}"),
                meeting_id: "m-1".into(),
                position: n,
                title: title.into(),
                presenter: String::new(),
                duration_minutes: None,
                created_at: 0,
                updated_at: 0,
            },
            documents: Vec::new(),
            conclusion: conclusion.map(str::to_owned),
        };
        NoticeRecord {
            record: MinutesRecord {
                header: MinutesHeader {
                    parent: String::new(),
                    issuer: "Ủy ban nhân dân\ntỉnh Hưng Yên".into(),
                    place: "Hưng Yên".into(),
                    symbol: "BB-UBND".into(),
                },
                meeting,
                chair: Some(Person {
                    name: "Nguyễn Văn Định".into(),
                    position: "Chủ tịch UBND tỉnh".into(),
                }),
                secretary: None,
                attendance: AttendanceReport {
                    meeting_id: "m-1".into(),
                    rows: Vec::new(),
                    summary: AttendanceSummary {
                        expected: 3,
                        present: 3,
                        absent: 0,
                        excused: 0,
                        committee_members: 3,
                        members_present: 3,
                        quorum_needed: 2,
                        quorum_met: true,
                        attendees_declared: 0,
                    },
                },
                items: vec![
                    item(
                        1,
                        "Kinh tế - xã hội",
                        Some("Thống nhất báo cáo.\nGiao Sở Tài chính hoàn thiện."),
                    ),
                    item(2, "<script>alert(1)</script> & 'một'", None),
                ],
                polls: Vec::new(),
                floor: Vec::new(),
            },
            settings: NoticeSettings::default(),
            issued: None,
        }
    }

    #[test]
    fn notice_html_content_and_escaping() {
        let mut r = record();
        let h = html(&r);
        for want in [
            "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
            "ỦY BAN NHÂN DÂN<br>TỈNH HƯNG YÊN",
            "Số:       /TB-UBND",
            "Hưng Yên, ngày      tháng      năm 2026",
            "<h1>THÔNG BÁO</h1>",
            "Kết luận của Nguyễn Văn Định, Chủ tịch UBND tỉnh tại cuộc họp Giao ban kinh tế - xã hội tháng 12",
            "Vào lúc 08 giờ 30 phút ngày 09/01/2026, tại Hội trường UBND tỉnh",
            "Tham dự cuộc họp có 3/3 thành viên Ủy ban nhân dân.",
            "<h4>1. Kinh tế - xã hội</h4>",
            "<p>Giao Sở Tài chính hoàn thiện.</p>",
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#39;một&#39;",
            "(Chưa có kết luận.)",
            "Nơi nhận:",
            "- Thành viên UBND;",
            "- Lưu: VT.",
            "TL. CHỦ TỊCH",
            "CHÁNH VĂN PHÒNG",
        ] {
            assert!(h.contains(want), "missing {want:?} in\n{h}");
        }
        assert!(!h.contains("<script>"));
        // Issued: the number and the date of issue.
        r.issued = Some(NoticeIssue {
            meeting_id: "m-1".into(),
            issued_by: SECRETARY.into(),
            issued_at: FRIDAY + 3 * DAY,
            number: "12".into(),
        });
        let h = html(&r);
        assert!(h.contains("Số: 12/TB-UBND"), "{h}");
        assert!(h.contains("Hưng Yên, ngày 12 tháng 01 năm 2026"), "{h}");
    }

    #[test]
    fn notice_pdf_is_deterministic() {
        let r = record();
        let a = pdf(&r).expect("pdf");
        // To look at it: GIAOBAN_NOTICE_PDF=/tmp/n.pdf cargo test ... notice_pdf
        if let Ok(keep) = std::env::var("GIAOBAN_NOTICE_PDF") {
            std::fs::write(keep, &a).expect("write the sample");
        }
        assert!(a.starts_with(b"%PDF-"));
        assert!(String::from_utf8_lossy(&a).contains("/FontFile2"));
        assert_eq!(pdf(&r).expect("pdf"), a);
    }
}
