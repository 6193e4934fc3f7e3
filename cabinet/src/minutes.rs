//! The minutes ("biên bản") of a meeting, generated from its record: the
//! meeting's data, the chair, the attendance (roll call, bridge points with
//! their declared leader), the agenda with its documents and their
//! signature status, who had the floor when (the audit log), the votes with
//! their tally and the rule applied, and the conclusion of each item
//! (Decision 45/2018/QĐ-TTg, see `notes/meeting-rules.md`).
//!
//! [`Store::minutes_record`] gathers the record; [`html`] and [`pdf`] are
//! pure functions of it. Both follow the layout of administrative documents
//! of Decree 30/2020/NĐ-CP: national title and motto, issuing body, number
//! and symbol, place and date, title, body, signature block; a Times New
//! Roman-compatible font (Liberation Serif, SIL OFL 1.1, compiled into the
//! binary from `cabinet/fonts/`) at 13 pt.
//!
//! The PDF is deterministic: the same record gives the same bytes (no
//! creation date, identifiers derived from the content and the meeting id),
//! so that a later step can seal it with a PAdES signature (an incremental
//! update after these bytes) and a regenerated copy can be compared with a
//! sealed one.
//!
//! Why krilla (the PDF backend of Typst, pinned exactly in Cargo.toml): it
//! embeds a TrueType font as a CID font subset to the glyphs used (a few
//! tens of kilobytes instead of the whole font) with a ToUnicode map, so
//! the Vietnamese text stays extractable and searchable; it shapes text with
//! rustybuzz (HarfBuzz's rules), so decomposed input (a vowel followed by
//! combining marks) is drawn with the font's precomposed glyphs; it is
//! low-level enough that the page layout below is ours (no HTML engine, no
//! font lookup on the host). printpdf was the other candidate: its text
//! layout pulls in an HTML/CSS engine and host font discovery, which the
//! server does not need.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::docfmt::{self, bullet, clean, hm, moment, note, para, Block, Sheet, Signer};
pub use crate::docfmt::{escape, html_csp, PdfError, FONT_BOLD, FONT_REGULAR, HTML_STYLE};
use crate::{
    AgendaItem, AttendanceMark, AttendanceReport, AuditFilter, Document as CabinetDocument, Error,
    Meeting, MeetingKind, Poll, PollStatus, Pool, QuorumRule, Result, Role, Store, VoteRule,
};

/// Who issues the minutes, and where (the top of the page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinutesHeader {
    /// The body above the issuer ("UBND TỈNH ..." above a department); may
    /// be empty.
    pub parent: String,
    /// The issuing body, upper case by convention ("ỦY BAN NHÂN DÂN\nTỈNH
    /// ..."); a line break splits it.
    pub issuer: String,
    /// The place name of the date line ("Hà Nội"); empty: dots to fill in.
    pub place: String,
    /// The symbol after the number ("BB-UBND"); the number itself is left
    /// blank for the clerical office (văn thư) to fill in when issuing.
    pub symbol: String,
}

impl Default for MinutesHeader {
    fn default() -> MinutesHeader {
        MinutesHeader {
            parent: String::new(),
            issuer: "ỦY BAN NHÂN DÂN".into(),
            place: String::new(),
            symbol: "BB-UBND".into(),
        }
    }
}

/// A person named in the minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    /// May be empty.
    pub position: String,
}

/// An agenda item with what the minutes say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct MinutesItem {
    pub item: AgendaItem,
    /// Oldest first, withdrawn ones included (marked).
    pub documents: Vec<CabinetDocument>,
    /// The conclusion ([`Store::list_conclusions`]), if one was entered.
    pub conclusion: Option<String>,
}

/// A turn at the floor (`live.floor_given` .. `live.floor_taken` or the next
/// `live.floor_given`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorTurn {
    /// The invitation's name; "(không xác định)" when the live id is unknown.
    pub name: String,
    /// Its bridge point, if any.
    pub unit: Option<String>,
    /// Unix seconds.
    pub from: i64,
    /// `None`: the floor was not taken back in the record.
    pub to: Option<i64>,
}

/// Everything the minutes show ([`Store::minutes_record`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MinutesRecord {
    pub header: MinutesHeader,
    pub meeting: Meeting,
    pub chair: Option<Person>,
    pub secretary: Option<Person>,
    pub attendance: AttendanceReport,
    /// In agenda order.
    pub items: Vec<MinutesItem>,
    /// Oldest first.
    pub polls: Vec<Poll>,
    /// Oldest first.
    pub floor: Vec<FloorTurn>,
}

impl Store {
    /// The record of meeting `meeting_id` as the minutes show it, read now
    /// ([`Error::MeetingNotFound`] for an unknown meeting).
    pub async fn minutes_record(
        &self,
        meeting_id: &str,
        header: MinutesHeader,
        rules: &QuorumRule,
    ) -> Result<MinutesRecord> {
        let meeting = self
            .get_meeting(meeting_id)
            .await?
            .ok_or_else(|| Error::MeetingNotFound(meeting_id.to_owned()))?;
        let attendance = self
            .attendance(meeting_id, rules, crate::now_unix())
            .await?;
        let participants = self.list_participants(meeting_id).await?;
        let invitations = self.list_invitations(meeting_id).await?;

        let person = |p: &crate::Participant| Person {
            name: p.name.clone(),
            position: p.position.clone(),
        };
        let by_role = |role: Role| {
            invitations
                .iter()
                .find(|i| i.role == role && !i.is_revoked())
                .map(|i| {
                    i.participant_id
                        .as_ref()
                        .and_then(|pid| participants.iter().find(|p| &p.id == pid))
                        .map(person)
                        .unwrap_or_else(|| Person {
                            name: i.name.clone(),
                            position: String::new(),
                        })
                })
        };
        let chair = meeting
            .chair_participant_id
            .as_ref()
            .and_then(|id| participants.iter().find(|p| &p.id == id))
            .map(person)
            .or_else(|| by_role(Role::Chair));
        let secretary = participants
            .iter()
            .find(|p| p.role == crate::ParticipantRole::Secretary)
            .map(person)
            .or_else(|| by_role(Role::Secretary));

        let mut conclusions: HashMap<String, String> = self
            .list_conclusions(meeting_id)
            .await?
            .into_iter()
            .map(|c| (c.agenda_item_id, c.text))
            .collect();
        let mut items = Vec::new();
        for item in self.list_agenda(meeting_id).await? {
            let documents = self.list_documents(&item.id).await?;
            let conclusion = conclusions.remove(&item.id);
            items.push(MinutesItem {
                item,
                documents,
                conclusion,
            });
        }
        let polls = self.list_polls(meeting_id).await?;
        let floor = self.floor_turns(meeting_id, &attendance).await?;
        Ok(MinutesRecord {
            header,
            meeting,
            chair,
            secretary,
            attendance,
            items,
            polls,
            floor,
        })
    }

    /// The turns at the floor of a meeting, from its audit entries
    /// `live.floor_given` and `live.floor_taken` (their `participant_id` is
    /// a live id: the attendance intervals name its invitation).
    async fn floor_turns(
        &self,
        meeting_id: &str,
        attendance: &AttendanceReport,
    ) -> Result<Vec<FloorTurn>> {
        let mut filter = AuditFilter {
            action: Some("live.floor_*".into()),
            target_type: Some("meeting".into()),
            target_id: Some(meeting_id.to_owned()),
            ..AuditFilter::default()
        };
        let mut events = Vec::new();
        loop {
            let page = self.audit_page(&filter, 1000).await?;
            let Some(last) = page.last() else { break };
            filter.before_seq = Some(last.seq);
            events.extend(page);
        }
        events.sort_by_key(|e| e.seq);

        let live_ids: Vec<(String, String)> = with_pool!(self, p => sqlx::query_as(
            "SELECT DISTINCT participant_id, invitation_id FROM attendance_intervals \
             WHERE meeting_id = $1",
        )
        .bind(meeting_id)
        .fetch_all(p)
        .await)?;
        let invitation_of: HashMap<String, String> = live_ids.into_iter().collect();
        let who = |pid: &str| {
            let row = invitation_of
                .get(pid)
                .and_then(|inv| attendance.rows.iter().find(|r| &r.invitation_id == inv));
            match row {
                Some(r) => (r.name.clone(), r.unit.clone()),
                None => ("(không xác định)".to_owned(), None),
            }
        };

        let mut turns: Vec<FloorTurn> = Vec::new();
        let mut open: Option<usize> = None;
        for e in events {
            if let Some(i) = open.take() {
                turns[i].to = Some(e.at);
            }
            if e.action == "live.floor_given" {
                let pid = e.detail["participant_id"].as_str().unwrap_or_default();
                let (name, unit) = who(pid);
                turns.push(FloorTurn {
                    name,
                    unit,
                    from: e.at,
                    to: None,
                });
                open = Some(turns.len() - 1);
            }
        }
        Ok(turns)
    }
}

// ---------------------------------------------------------------------------
// The content, shared by the HTML and the PDF.

/// The date the minutes carry: the meeting's start, else its first
/// connection, else its creation.
fn minutes_date(r: &MinutesRecord) -> i64 {
    r.meeting
        .starts_at
        .or_else(|| {
            r.attendance
                .rows
                .iter()
                .filter_map(|row| row.first_joined_at)
                .min()
        })
        .unwrap_or(r.meeting.created_at)
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::Chair => "Chủ trì",
        Role::Member => "Thành viên UBND",
        Role::Secretary => "Thư ký",
        Role::Bridge => "Điểm cầu",
        Role::Delegate => "Đại biểu",
        Role::Observer => "Dự thính",
    }
}

fn kind_label(kind: MeetingKind) -> &'static str {
    match kind {
        MeetingKind::Regular => "Họp thường kỳ",
        MeetingKind::Thematic => "Họp chuyên đề",
        MeetingKind::Extraordinary => "Họp bất thường",
    }
}

fn rule_label(rule: VoteRule) -> &'static str {
    match rule {
        VoteRule::AllMembersMajority => {
            "quá nửa tổng số thành viên Ủy ban nhân dân tán thành (số phiếu ngang nhau: theo ý kiến của Chủ tọa)"
        }
        VoteRule::PresentMajority => {
            "quá nửa số thành viên có mặt tán thành (số phiếu ngang nhau: theo ý kiến của Chủ tọa)"
        }
        VoteRule::TwoThirdsAll => "ít nhất hai phần ba tổng số thành viên Ủy ban nhân dân tán thành",
    }
}

/// The signature status of a document's version, from its verification
/// report.
fn signature_label(report: &serde_json::Value) -> String {
    let status = report["status"].as_str().unwrap_or("not_checked");
    let signers: Vec<String> = report["signatures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["signer_name"].as_str())
                .map(clean)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let by = if signers.is_empty() {
        String::new()
    } else {
        format!(" ({})", signers.join(", "))
    };
    match status {
        "valid" => format!("có chữ ký số hợp lệ{by}"),
        "invalid" => format!("chữ ký số không hợp lệ{by}"),
        "untrusted" => format!("có chữ ký số, chứng thư chưa được tin cậy{by}"),
        "no_signature" => "không có chữ ký số".into(),
        _ => "chưa kiểm tra chữ ký số".into(),
    }
}

fn blocks(r: &MinutesRecord) -> Vec<Block> {
    let m = &r.meeting;
    let mut out = Vec::new();

    out.push(Block::Section("I. THÔNG TIN CUỘC HỌP".into()));
    let mut when = match m.starts_at {
        Some(s) => format!("bắt đầu lúc {}", moment(s)),
        None => "chưa xác định".into(),
    };
    if let Some(e) = m.ends_at {
        let _ = write!(when, "; kết thúc (dự kiến) lúc {}", moment(e));
    }
    out.push(para("Thời gian: ", when));
    let place = clean(&m.location);
    out.push(para(
        "Địa điểm: ",
        if place.is_empty() {
            "trực tuyến".to_owned()
        } else {
            place
        },
    ));
    out.push(para("Hình thức: ", kind_label(m.kind)));
    let named = |p: &Person| {
        let (n, pos) = (clean(&p.name), clean(&p.position));
        if pos.is_empty() {
            n
        } else {
            format!("{n}, {pos}")
        }
    };
    out.push(para(
        "Chủ trì: ",
        r.chair.as_ref().map(named).unwrap_or_else(|| "…".into()),
    ));
    out.push(para(
        "Thư ký: ",
        r.secretary
            .as_ref()
            .map(named)
            .unwrap_or_else(|| "…".into()),
    ));

    out.push(Block::Section("II. THÀNH PHẦN THAM DỰ".into()));
    let s = &r.attendance.summary;
    out.push(para(
        "",
        format!(
            "Số được mời: {}; có mặt: {}; vắng có lý do: {}; vắng: {}.",
            s.expected, s.present, s.excused, s.absent
        ),
    ));
    out.push(para(
        "",
        format!(
            "Thành viên Ủy ban nhân dân có mặt: {}/{} (cần tối thiểu {}: {}).",
            s.members_present,
            s.committee_members,
            s.quorum_needed,
            if s.quorum_met {
                "đủ số lượng"
            } else {
                "không đủ số lượng"
            }
        ),
    ));
    let rows: Vec<_> = r.attendance.rows.iter().filter(|x| !x.revoked).collect();
    let person_line = |row: &crate::AttendanceRow| {
        let mut t = format!("{} ({}", clean(&row.name), role_label(row.role));
        if let Some(u) = &row.unit {
            let _ = write!(t, ", {}", clean(u));
        }
        t.push(')');
        if row.mark == Some(AttendanceMark::PresentInHall) {
            t.push_str(": có mặt tại hội trường");
        }
        let n = clean(&row.note);
        if !n.is_empty() {
            let _ = write!(t, "; ghi chú: {n}");
        }
        t
    };
    let people = |pred: &dyn Fn(&crate::AttendanceRow) -> bool| -> Vec<Block> {
        let v: Vec<Block> = rows
            .iter()
            .filter(|x| x.role != Role::Bridge && pred(x))
            .map(|x| bullet(person_line(x)))
            .collect();
        if v.is_empty() {
            vec![bullet("Không có.")]
        } else {
            v
        }
    };
    out.push(Block::Sub("1. Có mặt".into()));
    out.extend(people(&|x| x.present));
    out.push(Block::Sub("2. Vắng có lý do".into()));
    out.extend(people(&|x| {
        !x.present && x.mark == Some(AttendanceMark::Excused)
    }));
    out.push(Block::Sub("3. Vắng".into()));
    out.extend(people(&|x| {
        !x.present && x.mark != Some(AttendanceMark::Excused)
    }));
    out.push(Block::Sub("4. Các điểm cầu".into()));
    let bridges: Vec<_> = rows.iter().filter(|x| x.role == Role::Bridge).collect();
    if bridges.is_empty() {
        out.push(bullet("Không có điểm cầu."));
    }
    for b in bridges {
        let name = clean(b.unit.as_deref().unwrap_or(&b.name));
        let mut t = name;
        match b.leader.as_deref().map(clean) {
            Some(l) if !l.is_empty() => {
                let _ = write!(t, ": chủ trì tại điểm cầu {l}");
            }
            _ => t.push_str(": chưa khai báo người chủ trì"),
        }
        if let Some(n) = b.attendees {
            let _ = write!(t, "; số người dự: {n}");
        }
        t.push_str(if b.present {
            "; có mặt"
        } else if b.mark == Some(AttendanceMark::Excused) {
            "; vắng có lý do"
        } else {
            "; vắng"
        });
        if let Some(at) = b.first_joined_at {
            let _ = write!(t, " (kết nối lúc {})", hm(at));
        }
        t.push('.');
        out.push(bullet(t));
    }
    out.push(para(
        "",
        format!(
            "Tổng số người dự tại các điểm cầu (theo khai báo): {}.",
            s.attendees_declared
        ),
    ));

    out.push(Block::Section("III. NỘI DUNG CUỘC HỌP".into()));
    if r.items.is_empty() {
        out.push(note("Cuộc họp không có chương trình."));
    }
    for it in &r.items {
        out.push(Block::Sub(format!(
            "{}. {}",
            it.item.position,
            clean(&it.item.title)
        )));
        let presenter = clean(&it.item.presenter);
        if !presenter.is_empty() {
            out.push(para("Trình bày: ", presenter));
        }
        if it.documents.is_empty() {
            out.push(para("Tài liệu: ", "không có."));
        } else {
            out.push(para("Tài liệu:", ""));
        }
        for d in &it.documents {
            let mut t = clean(&d.title);
            if let Some(v) = d.version(None) {
                let _ = write!(
                    t,
                    " ({}, bản {}): {}",
                    clean(&v.filename),
                    v.version,
                    signature_label(&v.signature_report)
                );
            }
            if d.is_withdrawn() {
                t.push_str("; đã thu hồi");
                if let Some(reason) = d.withdrawn_reason.as_deref().map(clean) {
                    if !reason.is_empty() {
                        let _ = write!(t, " ({reason})");
                    }
                }
            }
            t.push('.');
            out.push(bullet(t));
        }
    }

    out.push(Block::Section("IV. Ý KIẾN PHÁT BIỂU".into()));
    if r.floor.is_empty() {
        out.push(note(
            "Không có lượt phát biểu nào được ghi nhận trên hệ thống.",
        ));
    } else {
        out.push(para(
            "",
            "Các lượt phát biểu theo thứ tự được Chủ tọa cho phát biểu:",
        ));
    }
    for turn in &r.floor {
        let mut t = match turn.to {
            Some(to) => format!("{} - {}: ", hm(turn.from), hm(to)),
            None => format!("Từ {}: ", hm(turn.from)),
        };
        t.push_str(&clean(&turn.name));
        if let Some(u) = &turn.unit {
            let _ = write!(t, " ({})", clean(u));
        }
        t.push('.');
        out.push(bullet(t));
    }

    out.push(Block::Section("V. KẾT QUẢ BIỂU QUYẾT".into()));
    if r.polls.is_empty() {
        out.push(note("Không có nội dung nào được biểu quyết."));
    }
    for (n, p) in r.polls.iter().enumerate() {
        let item = p
            .agenda_item_id
            .as_ref()
            .and_then(|id| r.items.iter().find(|i| &i.item.id == id));
        let mut head = format!("{}. {}", n + 1, clean(&p.question));
        if let Some(i) = item {
            let _ = write!(head, " (nội dung {})", i.item.position);
        }
        out.push(Block::Sub(head));
        out.push(para(
            "Hình thức: ",
            format!(
                "{}, mở lúc {}.",
                if p.secret {
                    "bỏ phiếu kín"
                } else {
                    "biểu quyết công khai"
                },
                hm(p.opened_at)
            ),
        ));
        out.push(para(
            "Nguyên tắc: ",
            format!("thông qua khi {}.", rule_label(p.rule)),
        ));
        let Some(o) = p.outcome.filter(|_| p.status == PollStatus::Closed) else {
            out.push(note("Đang biểu quyết: chưa có kết quả."));
            continue;
        };
        out.push(para(
            "Kết quả kiểm phiếu: ",
            format!(
                "tán thành {}, không tán thành {}, không biểu quyết {}; {} phiếu trên {} người có quyền biểu quyết.",
                o.tally.for_, o.tally.against, o.tally.abstain, o.voted, o.eligible
            ),
        ));
        out.push(para(
            "Cơ sở tính: ",
            format!("{} thành viên; cần {} phiếu tán thành.", o.base, o.needed),
        ));
        out.push(para(
            "Số thành viên có mặt: ",
            format!(
                "{}/{} (cần tối thiểu {}: {}).",
                o.present_members,
                o.committee_members,
                o.quorum_needed,
                if o.quorum_met {
                    "đủ"
                } else {
                    "không đủ"
                }
            ),
        ));
        let mut result = if o.passed {
            "THÔNG QUA".to_owned()
        } else {
            "KHÔNG THÔNG QUA".to_owned()
        };
        if o.tie_broken_by_chair {
            result.push_str(" (số phiếu ngang nhau, theo ý kiến của Chủ tọa)");
        }
        if let Some(at) = p.closed_at {
            let _ = write!(result, "; kết thúc lúc {}", hm(at));
        }
        result.push('.');
        out.push(para("Kết quả: ", result));
    }

    out.push(Block::Section("VI. KẾT LUẬN CỦA CHỦ TỌA".into()));
    if r.items.is_empty() {
        out.push(note("Không có nội dung."));
    }
    for it in &r.items {
        out.push(Block::Sub(format!(
            "{}. {}",
            it.item.position,
            clean(&it.item.title)
        )));
        match it.conclusion.as_deref() {
            Some(text) => {
                // The conclusion keeps its paragraphs.
                for line in text.lines().map(clean).filter(|l| !l.is_empty()) {
                    out.push(para("", line));
                }
            }
            None => out.push(note("(Chưa có kết luận.)")),
        }
    }
    out.push(note(
        "Biên bản được lập từ dữ liệu ghi nhận trên hệ thống họp trực tuyến giaoban.",
    ));
    out
}

/// The minutes as an administrative document.
fn sheet(r: &MinutesRecord) -> Sheet {
    let title = clean(&r.meeting.title);
    let signer = |title: &str, p: &Option<Person>| Signer {
        titles: vec![title.to_owned()],
        hint: Some("(Ký, ghi rõ họ tên)".into()),
        name: p.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
    };
    Sheet {
        header: r.header.clone(),
        number: String::new(),
        date: Some(minutes_date(r)),
        date_year: docfmt::vn(minutes_date(r)).year(),
        kind: "BIÊN BẢN",
        subtitle: format!("Cuộc họp: {title}"),
        blocks: blocks(r),
        recipients: Vec::new(),
        signers: vec![signer("THƯ KÝ", &r.secretary), signer("CHỦ TỌA", &r.chair)],
        title: format!("Biên bản - {title}"),
        document_id: format!("giaoban-minutes-{}", r.meeting.id),
    }
}

/// The minutes as a standalone HTML page (UTF-8; every text from the record
/// escaped).
pub fn html(r: &MinutesRecord) -> String {
    docfmt::html(&sheet(r))
}

/// The minutes as PDF bytes (A4, the fonts embedded as subsets). The same
/// record gives the same bytes.
pub fn pdf(r: &MinutesRecord) -> std::result::Result<Vec<u8>, PdfError> {
    docfmt::pdf(&sheet(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docfmt::{MOTTO, NATIONAL_TITLE};
    use crate::tests::sqlite_store;
    use crate::{
        AttendanceReport, AttendanceRow, AttendanceSummary, Choice, NewAgendaItem, NewInvitation,
        NewParticipant, NewPoll, Outcome, ParticipantRole, Tally,
    };

    const HOSTILE: &str = "<script>alert(\"x\")</script> & 'một'";

    fn meeting(title: &str) -> Meeting {
        Meeting {
            id: "m-1".into(),
            title: title.into(),
            kind: MeetingKind::Regular,
            status: crate::MeetingStatus::Ended,
            // 2026-01-05 08:30 in Vietnam.
            starts_at: Some(1_767_576_600),
            ends_at: None,
            location: "Hội trường UBND tỉnh".into(),
            chair_participant_id: None,
            created_at: 1_767_500_000,
            updated_at: 1_767_500_000,
            join_muted: None,
        }
    }

    fn row(name: &str, role: Role, present: bool) -> AttendanceRow {
        AttendanceRow {
            invitation_id: format!("inv-{name}"),
            name: name.into(),
            role,
            unit: None,
            level: None,
            present,
            mark: None,
            note: String::new(),
            leader: None,
            attendees: None,
            answer: None,
            intervals: Vec::new(),
            first_joined_at: None,
            present_seconds: 0,
            revoked: false,
        }
    }

    fn item(n: i64, title: &str, conclusion: Option<&str>) -> MinutesItem {
        MinutesItem {
            item: AgendaItem {
                id: format!("item-{n}"),
                meeting_id: "m-1".into(),
                position: n,
                title: title.into(),
                presenter: "Sở Tài chính".into(),
                duration_minutes: None,
                created_at: 0,
                updated_at: 0,
            },
            documents: Vec::new(),
            conclusion: conclusion.map(str::to_owned),
        }
    }

    fn record(title: &str) -> MinutesRecord {
        let mut bridge = row("Điểm cầu xã Đông Hòa", Role::Bridge, true);
        bridge.unit = Some("UBND xã Đông Hòa".into());
        bridge.leader = Some("Trần Thị Ánh".into());
        bridge.attendees = Some(12);
        let mut excused = row("Lê Văn Bình", Role::Member, false);
        excused.mark = Some(AttendanceMark::Excused);
        excused.note = format!("Đi công tác {HOSTILE}");
        MinutesRecord {
            header: MinutesHeader {
                parent: String::new(),
                issuer: "Ủy ban nhân dân\ntỉnh Hưng Yên".into(),
                place: "Hưng Yên".into(),
                symbol: "BB-UBND".into(),
            },
            meeting: meeting(title),
            chair: Some(Person {
                name: "Nguyễn Văn Định".into(),
                position: "Chủ tịch UBND tỉnh".into(),
            }),
            secretary: Some(Person {
                name: "Phạm Thu Hường".into(),
                position: String::new(),
            }),
            attendance: AttendanceReport {
                meeting_id: "m-1".into(),
                rows: vec![
                    row("Nguyễn Văn Định", Role::Chair, true),
                    excused,
                    row("Phạm Thu Hường", Role::Secretary, true),
                    bridge,
                ],
                summary: AttendanceSummary {
                    expected: 4,
                    present: 3,
                    absent: 0,
                    excused: 1,
                    committee_members: 2,
                    members_present: 1,
                    quorum_needed: 2,
                    quorum_met: false,
                    attendees_declared: 12,
                },
            },
            items: vec![
                item(
                    1,
                    "Kinh tế - xã hội tháng 12",
                    Some("Thống nhất báo cáo.\nGiao Sở Tài chính hoàn thiện."),
                ),
                item(2, HOSTILE, None),
            ],
            polls: vec![Poll {
                id: "p-1".into(),
                meeting_id: "m-1".into(),
                agenda_item_id: Some("item-1".into()),
                question: "Thông qua dự toán ngân sách năm 2026?".into(),
                secret: false,
                rule: VoteRule::AllMembersMajority,
                voter_roles: vec![Role::Chair, Role::Member],
                status: PollStatus::Closed,
                opened_at: 1_767_577_000,
                closed_at: Some(1_767_577_300),
                eligible: 2,
                voted: 1,
                outcome: Some(Outcome {
                    rule: VoteRule::AllMembersMajority,
                    tally: Tally {
                        for_: 1,
                        against: 0,
                        abstain: 0,
                    },
                    voted: 1,
                    eligible: 2,
                    committee_members: 2,
                    present_members: 1,
                    base: 2,
                    needed: 1,
                    quorum_needed: 2,
                    quorum_met: false,
                    tie_broken_by_chair: true,
                    passed: true,
                }),
            }],
            floor: vec![FloorTurn {
                name: "Điểm cầu xã Đông Hòa".into(),
                unit: Some("UBND xã Đông Hòa".into()),
                from: 1_767_576_900,
                to: Some(1_767_577_020),
            }],
        }
    }

    #[test]
    fn minutes_html_escapes_user_text() {
        let h = html(&record(&format!("Giao ban {HOSTILE}")));
        assert!(!h.contains("<script>"), "{h}");
        assert!(!h.contains("\"x\""), "{h}");
        assert!(h.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;một&#39;"));
        // Only the page's own tags: no tag comes from the record.
        assert_eq!(h.matches("<style>").count(), 1);
        assert_eq!(h.matches("<p").count(), h.matches("</p>").count());
    }

    #[test]
    fn minutes_html_content() {
        let h = html(&record("Giao ban kinh tế - xã hội tháng 12"));
        for want in [
            NATIONAL_TITLE,
            MOTTO,
            "ỦY BAN NHÂN DÂN<br>TỈNH HƯNG YÊN",
            "Số:       /BB-UBND",
            "Hưng Yên, ngày 05 tháng 01 năm 2026",
            "BIÊN BẢN",
            "Cuộc họp: Giao ban kinh tế - xã hội tháng 12",
            "Nguyễn Văn Định, Chủ tịch UBND tỉnh",
            "UBND xã Đông Hòa: chủ trì tại điểm cầu Trần Thị Ánh; số người dự: 12; có mặt",
            "Lê Văn Bình (Thành viên UBND); ghi chú: Đi công tác",
            "Thông qua dự toán ngân sách năm 2026? (nội dung 1)",
            "tán thành 1, không tán thành 0, không biểu quyết 0",
            "2 thành viên; cần 1 phiếu tán thành",
            "THÔNG QUA (số phiếu ngang nhau, theo ý kiến của Chủ tọa)",
            "08:35 - 08:37: Điểm cầu xã Đông Hòa (UBND xã Đông Hòa)",
            "<p>Thống nhất báo cáo.</p>",
            "<p>Giao Sở Tài chính hoàn thiện.</p>",
            "(Chưa có kết luận.)",
            "CHỦ TỌA",
        ] {
            assert!(h.contains(want), "missing {want:?} in\n{h}");
        }
    }

    #[test]
    fn minutes_html_csp_allows_its_style_only() {
        let csp = html_csp();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(csp.ends_with("; sandbox"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
    }

    #[test]
    fn minutes_pdf_embeds_the_font_and_is_deterministic() {
        let r = record("Giao ban kinh tế - xã hội tháng 12");
        let started = std::time::Instant::now();
        let a = pdf(&r).expect("pdf");
        eprintln!("minutes PDF: {} bytes in {:?}", a.len(), started.elapsed());
        assert!(a.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&a);
        assert!(text.contains("/FontFile2"), "no embedded TrueType font");
        assert!(text.contains("/ToUnicode"), "no ToUnicode map");
        // Subsets: far smaller than the two fonts.
        assert!(a.len() < 150_000, "{} bytes", a.len());
        assert_eq!(
            pdf(&r).expect("pdf"),
            a,
            "the same record gives other bytes"
        );
        let mut other = r.clone();
        other.items[1].conclusion = Some("Đồng ý.".into());
        assert_ne!(pdf(&other).expect("pdf"), a);
    }

    /// The text survives extraction (when poppler's `pdftotext` is here:
    /// tests/tests/minutes.rs checks it on the real server always).
    #[test]
    fn minutes_pdf_text_extracts() {
        let Ok(out) = std::process::Command::new("pdftotext").arg("-v").output() else {
            eprintln!("no pdftotext: extraction not checked here");
            return;
        };
        assert!(out.status.success() || !out.stderr.is_empty());
        // The title decomposed (NFD): shaping composes it again.
        let decomposed = "Giao ban kinh te\u{302}\u{301} - xa\u{303} ho\u{302}\u{323}i";
        let mut r = record(decomposed);
        // Many items: several pages, numbered from the second.
        for n in 3..60 {
            r.items
                .push(item(n, "Báo cáo tiến độ giải ngân vốn đầu tư công", None));
        }
        let bytes = pdf(&r).expect("pdf");
        // To look at it: GIAOBAN_MINUTES_PDF=/tmp/m.pdf cargo test ... minutes
        if let Ok(keep) = std::env::var("GIAOBAN_MINUTES_PDF") {
            std::fs::write(keep, &bytes).expect("write the sample");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("m.pdf");
        std::fs::write(&path, &bytes).expect("write");
        let out = std::process::Command::new("pdftotext")
            .args(["-enc", "UTF-8"])
            .arg(&path)
            .arg("-")
            .output()
            .expect("pdftotext");
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).expect("utf-8");
        for want in [
            NATIONAL_TITLE,
            MOTTO,
            "ỦY BAN NHÂN DÂN",
            "Hưng Yên, ngày 05 tháng 01 năm 2026",
            "BIÊN BẢN",
            "Giao ban kinh tế - xã hội",
            "Thông qua dự toán ngân sách năm 2026?",
            "THÔNG QUA",
            "Trần Thị Ánh",
            "<script>alert(\"x\")</script>",
            "Nguyễn Văn Định",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(text.matches('\u{c}').count() >= 3, "expected several pages");
    }

    #[tokio::test]
    async fn minutes_record_from_the_store() {
        let (s, _dir) = sqlite_store().await;
        let m = s.create_meeting("Giao ban tháng 1").await.expect("meeting");
        let chair = s
            .add_participant(
                "cli",
                &m.id,
                NewParticipant {
                    name: "Nguyễn Văn Định".into(),
                    position: "Chủ tịch".into(),
                    role: ParticipantRole::Chair,
                    voting: None,
                    bridge_point_id: None,
                },
            )
            .await
            .expect("chair");
        let inv = s
            .create_invitation(NewInvitation {
                meeting_id: m.id.clone(),
                name: "Nguyễn Văn Định".into(),
                role: Role::Chair,
                ttl_seconds: 3600,
                participant_id: Some(chair.id.clone()),
                bridge_point_id: None,
                email: String::new(),
            })
            .await
            .expect("invitation");
        let item = s
            .add_agenda_item(
                "cli",
                &m.id,
                NewAgendaItem {
                    title: "Kinh tế".into(),
                    presenter: String::new(),
                    duration_minutes: None,
                },
            )
            .await
            .expect("item");
        s.set_conclusion("cli", &item.id, "Thống nhất.")
            .await
            .expect("conclusion");
        s.set_meeting_status(&m.id, crate::MeetingStatus::Scheduled)
            .await
            .expect("scheduled");
        s.set_meeting_status(&m.id, crate::MeetingStatus::InProgress)
            .await
            .expect("in progress");
        s.attendance_joined(&m.id, &inv.id, "live-1", "websocket", 100)
            .await
            .expect("joined");
        let actor = format!("invitation:{}", inv.id);
        s.record_audit(
            &actor,
            "live.floor_given",
            "meeting",
            &m.id,
            serde_json::json!({"participant_id": "live-1", "by": "live-1"}),
        )
        .await
        .expect("audit");
        s.record_audit(
            &actor,
            "live.floor_given",
            "meeting",
            &m.id,
            serde_json::json!({"participant_id": "nobody", "by": "live-1"}),
        )
        .await
        .expect("audit");
        s.record_audit(
            &actor,
            "live.floor_taken",
            "meeting",
            &m.id,
            serde_json::json!({"participant_id": "nobody", "by": "live-1"}),
        )
        .await
        .expect("audit");
        let poll = s
            .open_poll(
                &actor,
                &m.id,
                NewPoll {
                    agenda_item_id: Some(item.id.clone()),
                    question: "Thông qua?".into(),
                    secret: false,
                    rule: VoteRule::AllMembersMajority,
                    voter_roles: Vec::new(),
                },
                1,
            )
            .await
            .expect("poll");
        s.cast_ballot(&poll.id, &inv.id, Role::Chair, Choice::For)
            .await
            .expect("ballot");
        s.close_poll(&actor, &poll.id, 1, 1, (2, 3))
            .await
            .expect("close");

        let r = s
            .minutes_record(&m.id, MinutesHeader::default(), &QuorumRule::default())
            .await
            .expect("record");
        assert_eq!(
            r.chair.as_ref().map(|p| p.name.as_str()),
            Some("Nguyễn Văn Định")
        );
        assert_eq!(r.items.len(), 1);
        assert_eq!(r.items[0].conclusion.as_deref(), Some("Thống nhất."));
        assert_eq!(r.polls.len(), 1);
        assert!(r.polls[0].outcome.is_some_and(|o| o.passed));
        assert_eq!(r.floor.len(), 2, "{:?}", r.floor);
        assert_eq!(r.floor[0].name, "Nguyễn Văn Định");
        assert!(r.floor[0].to.is_some());
        assert_eq!(r.floor[1].name, "(không xác định)");
        assert!(r.floor[1].to.is_some());
        let h = html(&r);
        assert!(h.contains("Thống nhất."), "{h}");
        assert!(pdf(&r).expect("pdf").starts_with(b"%PDF-"));

        let missing = s
            .minutes_record("no-such", MinutesHeader::default(), &QuorumRule::default())
            .await;
        assert!(matches!(missing, Err(Error::MeetingNotFound(_))));
    }
}
