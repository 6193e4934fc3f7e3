//! The bridge point registry and the participants of a meeting.

use serde_json::json;

use crate::meetings::MAX_TEXT;
use crate::{
    new_id, now_unix, optional_text, parse_stored, required_text, BridgeLevel, BridgePoint,
    BridgePointPatch, Error, NewBridgePoint, NewParticipant, Participant, ParticipantPatch,
    ParticipantRole, Pool, Result, Store,
};

const BRIDGE_COLUMNS: &str =
    "id, name, level, contact, code, operator_phone, email, active, created_at, updated_at";
const PARTICIPANT_COLUMNS: &str =
    "id, meeting_id, name, position, role, voting, bridge_point_id, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct BridgeRow {
    id: String,
    name: String,
    level: String,
    contact: String,
    code: String,
    operator_phone: String,
    email: String,
    active: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<BridgeRow> for BridgePoint {
    type Error = Error;
    fn try_from(r: BridgeRow) -> Result<BridgePoint> {
        Ok(BridgePoint {
            level: parse_stored(&r.level, "bridge point level")?,
            id: r.id,
            name: r.name,
            contact: r.contact,
            code: r.code,
            operator_phone: r.operator_phone,
            email: r.email,
            active: r.active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ParticipantRow {
    id: String,
    meeting_id: String,
    name: String,
    position: String,
    role: String,
    voting: bool,
    bridge_point_id: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ParticipantRow> for Participant {
    type Error = Error;
    fn try_from(r: ParticipantRow) -> Result<Participant> {
        Ok(Participant {
            role: parse_stored(&r.role, "participant role")?,
            id: r.id,
            meeting_id: r.meeting_id,
            name: r.name,
            position: r.position,
            voting: r.voting,
            bridge_point_id: r.bridge_point_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Refuses a bridge point that does not exist or is inactive (inside `$tx`).
macro_rules! require_active_bridge_point {
    ($tx:ident, $id:expr) => {{
        let active: Option<bool> =
            sqlx::query_scalar("SELECT active FROM bridge_points WHERE id = $1")
                .bind($id)
                .fetch_optional(&mut *$tx)
                .await?;
        match active {
            None => {
                return Err(Error::NotFound {
                    what: "bridge point",
                    id: String::from($id),
                })
            }
            Some(false) => {
                return Err(Error::InvalidInput(format!(
                    "bridge point {} is inactive",
                    $id
                )))
            }
            Some(true) => {}
        }
    }};
}

/// The longest code or phone number kept.
const MAX_CODE: usize = 64;

/// Refuses `district` for a new unit (or a unit changing level).
fn require_current_level(level: BridgeLevel) -> Result<()> {
    if level.is_current() {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "the level {:?} no longer exists for new units: districts were abolished on \
             1 July 2025 (use one of: {})",
            level.as_str(),
            BridgeLevel::CURRENT
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// A new, active bridge point from what the caller gave, checked.
fn new_bridge_point(new: &NewBridgePoint) -> Result<BridgePoint> {
    require_current_level(new.level)?;
    let now = now_unix();
    Ok(BridgePoint {
        id: new_id(),
        name: required_text(&new.name, "bridge point name", MAX_TEXT)?,
        level: new.level,
        contact: optional_text(&new.contact, "contact", MAX_TEXT)?,
        code: optional_text(&new.code, "code", MAX_CODE)?,
        operator_phone: optional_text(&new.operator_phone, "operator's phone", MAX_CODE)?,
        email: crate::mail::checked_email(&new.email)?,
        active: true,
        created_at: now,
        updated_at: now,
    })
}

/// Inserts `$bp` (inside `$tx`).
macro_rules! insert_bridge_point {
    ($tx:ident, $bp:expr) => {{
        let bp: &BridgePoint = $bp;
        sqlx::query(
            "INSERT INTO bridge_points (id, name, level, contact, code, operator_phone, active, \
             created_at, updated_at, email) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
        )
        .bind(&bp.id)
        .bind(&bp.name)
        .bind(bp.level.as_str())
        .bind(&bp.contact)
        .bind(&bp.code)
        .bind(&bp.operator_phone)
        .bind(bp.active)
        .bind(bp.created_at)
        .bind(&bp.email)
        .execute(&mut *$tx)
        .await?;
    }};
}

impl Store {
    /// Registers a bridge point (active). `district` is refused: districts
    /// were abolished on 1 July 2025.
    pub async fn add_bridge_point(&self, actor: &str, new: NewBridgePoint) -> Result<BridgePoint> {
        let bp = new_bridge_point(&new)?;
        in_tx!(self, tx => {
            insert_bridge_point!(tx, &bp);
            audit!(tx, actor, "bridge_point.create", "bridge_point", &bp.id,
                json!({"name": bp.name, "level": bp.level, "code": bp.code}));
        });
        Ok(bp)
    }

    /// The bridge point with this id, if any.
    pub async fn get_bridge_point(&self, id: &str) -> Result<Option<BridgePoint>> {
        let sql = format!("SELECT {BRIDGE_COLUMNS} FROM bridge_points WHERE id = $1");
        let row: Option<BridgeRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?;
        row.map(BridgePoint::try_from).transpose()
    }

    /// The registry, by name.
    pub async fn list_bridge_points(&self) -> Result<Vec<BridgePoint>> {
        let sql = format!("SELECT {BRIDGE_COLUMNS} FROM bridge_points ORDER BY name, id");
        let rows: Vec<BridgeRow> = with_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await)?;
        rows.into_iter().map(BridgePoint::try_from).collect()
    }

    /// Changes a bridge point (deactivating keeps it in past meetings).
    pub async fn update_bridge_point(
        &self,
        actor: &str,
        id: &str,
        patch: BridgePointPatch,
    ) -> Result<BridgePoint> {
        let sql = format!("SELECT {BRIDGE_COLUMNS} FROM bridge_points WHERE id = $1");
        let bp = in_tx!(self, tx => {
            let row: Option<BridgeRow> = sqlx::query_as(&sql)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let mut bp = BridgePoint::try_from(row.ok_or_else(|| Error::NotFound {
                what: "bridge point",
                id: id.to_owned(),
            })?)?;
            if let Some(n) = &patch.name {
                bp.name = required_text(n, "bridge point name", MAX_TEXT)?;
            }
            if let Some(l) = patch.level {
                // An old district may keep its level, not gain it.
                if l != bp.level {
                    require_current_level(l)?;
                }
                bp.level = l;
            }
            if let Some(c) = &patch.contact {
                bp.contact = optional_text(c, "contact", MAX_TEXT)?;
            }
            if let Some(c) = &patch.code {
                bp.code = optional_text(c, "code", MAX_CODE)?;
            }
            if let Some(c) = &patch.operator_phone {
                bp.operator_phone = optional_text(c, "operator's phone", MAX_CODE)?;
            }
            if let Some(e) = &patch.email {
                bp.email = crate::mail::checked_email(e)?;
            }
            if let Some(a) = patch.active {
                bp.active = a;
            }
            bp.updated_at = now_unix();
            sqlx::query(
                "UPDATE bridge_points SET name = $1, level = $2, contact = $3, active = $4, \
                 updated_at = $5, code = $7, operator_phone = $8, email = $9 WHERE id = $6",
            )
            .bind(&bp.name)
            .bind(bp.level.as_str())
            .bind(&bp.contact)
            .bind(bp.active)
            .bind(bp.updated_at)
            .bind(id)
            .bind(&bp.code)
            .bind(&bp.operator_phone)
            .bind(&bp.email)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "bridge_point.update", "bridge_point", id, json!({
                "name": bp.name, "level": bp.level, "contact": bp.contact, "active": bp.active,
                "code": bp.code, "operator_phone": bp.operator_phone, "email": bp.email,
            }));
            bp
        });
        Ok(bp)
    }

    /// Adds a participant to a meeting that is not frozen.
    pub async fn add_participant(
        &self,
        actor: &str,
        meeting_id: &str,
        new: NewParticipant,
    ) -> Result<Participant> {
        let now = now_unix();
        let p = Participant {
            id: new_id(),
            meeting_id: meeting_id.to_owned(),
            name: required_text(&new.name, "participant's name", MAX_TEXT)?,
            position: optional_text(&new.position, "position", MAX_TEXT)?,
            role: new.role,
            voting: new.voting.unwrap_or(new.role.votes_by_default()),
            bridge_point_id: new.bridge_point_id,
            created_at: now,
            updated_at: now,
        };
        in_tx!(self, tx => {
            require_open_meeting!(tx, meeting_id);
            if let Some(bid) = &p.bridge_point_id {
                require_active_bridge_point!(tx, bid.as_str());
            }
            sqlx::query(
                "INSERT INTO participants (id, meeting_id, name, position, role, voting, \
                 bridge_point_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(&p.id)
            .bind(&p.meeting_id)
            .bind(&p.name)
            .bind(&p.position)
            .bind(p.role.as_str())
            .bind(p.voting)
            .bind(&p.bridge_point_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "participant.create", "participant", &p.id, json!({
                "meeting_id": p.meeting_id, "name": p.name, "role": p.role,
                "voting": p.voting, "bridge_point_id": p.bridge_point_id,
            }));
            // The first participant added as chair chairs the meeting, unless
            // the secretariat already named one (it can change it later).
            if p.role == ParticipantRole::Chair {
                let named = sqlx::query(
                    "UPDATE meetings SET chair_participant_id = $1, updated_at = $2 \
                     WHERE id = $3 AND chair_participant_id IS NULL",
                )
                .bind(&p.id)
                .bind(now)
                .bind(meeting_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if named == 1 {
                    audit!(tx, actor, "meeting.update", "meeting", meeting_id, json!({
                        "chair_participant_id": p.id,
                    }));
                }
            }
        });
        Ok(p)
    }

    /// The participant with this id, if any.
    pub async fn get_participant(&self, id: &str) -> Result<Option<Participant>> {
        let sql = format!("SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE id = $1");
        let row: Option<ParticipantRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?;
        row.map(Participant::try_from).transpose()
    }

    /// The participants of a meeting, in the order they were added.
    pub async fn list_participants(&self, meeting_id: &str) -> Result<Vec<Participant>> {
        let sql = format!(
            "SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE meeting_id = $1 \
             ORDER BY created_at, id"
        );
        let rows: Vec<ParticipantRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(meeting_id)
            .fetch_all(p)
            .await)?;
        rows.into_iter().map(Participant::try_from).collect()
    }

    /// Changes a participant of a meeting that is not frozen.
    pub async fn update_participant(
        &self,
        actor: &str,
        id: &str,
        patch: ParticipantPatch,
    ) -> Result<Participant> {
        let sql = format!("SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE id = $1");
        let p = in_tx!(self, tx => {
            let row: Option<ParticipantRow> = sqlx::query_as(&sql)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let mut p = Participant::try_from(row.ok_or_else(|| Error::NotFound {
                what: "participant",
                id: id.to_owned(),
            })?)?;
            require_open_meeting!(tx, p.meeting_id.as_str());
            if let Some(n) = &patch.name {
                p.name = required_text(n, "participant's name", MAX_TEXT)?;
            }
            if let Some(pos) = &patch.position {
                p.position = optional_text(pos, "position", MAX_TEXT)?;
            }
            if let Some(r) = patch.role {
                p.role = r;
            }
            if let Some(v) = patch.voting {
                p.voting = v;
            }
            if let Some(b) = &patch.bridge_point_id {
                if let Some(bid) = b {
                    if p.bridge_point_id.as_deref() != Some(bid.as_str()) {
                        require_active_bridge_point!(tx, bid.as_str());
                    }
                }
                p.bridge_point_id = b.clone();
            }
            p.updated_at = now_unix();
            sqlx::query(
                "UPDATE participants SET name = $1, position = $2, role = $3, voting = $4, \
                 bridge_point_id = $5, updated_at = $6 WHERE id = $7",
            )
            .bind(&p.name)
            .bind(&p.position)
            .bind(p.role.as_str())
            .bind(p.voting)
            .bind(&p.bridge_point_id)
            .bind(p.updated_at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "participant.update", "participant", id, json!({
                "name": p.name, "position": p.position, "role": p.role, "voting": p.voting,
                "bridge_point_id": p.bridge_point_id,
            }));
            p
        });
        Ok(p)
    }

    /// Removes a participant of a meeting that is not frozen, with what
    /// points at them: invitations keep working but no longer name them,
    /// they leave named document lists, and stop being the chair.
    pub async fn delete_participant(&self, actor: &str, id: &str) -> Result<Participant> {
        let sql = format!("SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE id = $1");
        let p = in_tx!(self, tx => {
            let row: Option<ParticipantRow> = sqlx::query_as(&sql)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let p = Participant::try_from(row.ok_or_else(|| Error::NotFound {
                what: "participant",
                id: id.to_owned(),
            })?)?;
            require_open_meeting!(tx, p.meeting_id.as_str());
            sqlx::query("UPDATE invitations SET participant_id = NULL WHERE participant_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM document_access WHERE participant_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE meetings SET chair_participant_id = NULL WHERE chair_participant_id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM participants WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            audit!(tx, actor, "participant.delete", "participant", id,
                json!({"meeting_id": p.meeting_id, "name": p.name}));
            p
        });
        Ok(p)
    }
}

// ------------------------------------------------- importing a list of units ----

/// The most rows one import may hold.
pub const MAX_IMPORT_ROWS: usize = 5000;

/// A row of a province's list of units that could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportIssue {
    /// The line of the file (1 is the header).
    pub line: usize,
    /// The column (`name`, `level`...), if the problem is one cell's.
    pub field: Option<&'static str>,
    pub message: String,
}

/// A name (or code) that is already taken, in the file or in the registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportDuplicate {
    pub line: usize,
    /// `name` or `code`.
    pub field: &'static str,
    /// The value, whitespace-normalized.
    pub value: String,
    /// The earlier line of the file with the same value, if it is in the file.
    pub same_as_line: Option<usize>,
    /// The registered bridge point with the same value, if it is registered.
    pub same_as_bridge_point_id: Option<String>,
}

/// What importing a list of units found (and did, unless a preview).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    /// Data rows read (the header and empty lines not counted).
    pub rows: usize,
    /// Rows without errors.
    pub valid: usize,
    /// Columns of the header that are not used.
    pub ignored_columns: Vec<String>,
    /// Rows refused: nothing is imported while there is one.
    pub errors: Vec<ImportIssue>,
    /// Names and codes that are taken: imported only when the caller says so.
    pub duplicates: Vec<ImportDuplicate>,
    /// Whether the units were written (all of them, in one transaction).
    pub imported: bool,
    /// The bridge points created (empty unless imported).
    pub created: Vec<BridgePoint>,
}

/// A name or code compared for duplicates: case and diacritics count,
/// runs of whitespace do not.
fn dup_key(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits CSV text into records of fields (RFC 4180 quoting, `sep` between
/// fields, CRLF or LF), with the line each record starts on.
fn csv_records(text: &str, sep: char) -> Result<Vec<(usize, Vec<String>)>> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            c if c == sep => fields.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                fields.push(std::mem::take(&mut field));
                out.push((start, std::mem::take(&mut fields)));
                line += 1;
                start = line;
            }
            c => field.push(c),
        }
    }
    if quoted {
        return Err(Error::InvalidInput(format!(
            "line {start}: a quoted field is not closed"
        )));
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        out.push((start, fields));
    }
    Ok(out
        .into_iter()
        .filter(|(_, f)| f.iter().any(|v| !v.trim().is_empty()))
        .collect())
}

/// The separator of a list: `;` when the header has more of them than
/// commas, else `,`.
fn guess_separator(text: &str) -> char {
    let header = text.lines().next().unwrap_or_default();
    if header.matches(';').count() > header.matches(',').count() {
        ';'
    } else {
        ','
    }
}

/// The column a header cell names, in English or Vietnamese.
fn column_of(header: &str) -> Option<&'static str> {
    let h = dup_key(header).to_lowercase().replace(' ', "_");
    Some(match h.as_str() {
        "name" | "tên" | "tên_đơn_vị" | "đơn_vị" => "name",
        "level" | "cấp" | "loại" => "level",
        "code" | "mã" | "mã_đơn_vị" => "code",
        "contact" | "liên_hệ" => "contact",
        "operator_phone" | "phone" | "điện_thoại" | "sđt" | "số_điện_thoại" => {
            "operator_phone"
        }
        "email" | "e-mail" | "thư_điện_tử" | "thư" => "email",
        _ => return None,
    })
}

/// A data row, read and checked on its own.
struct ParsedUnit {
    line: usize,
    new: Option<NewBridgePoint>,
    name: String,
    code: String,
}

/// Reads a province's list of units: UTF-8 (with or without BOM), `,` or
/// `;` separated, a header row naming at least `name` and `level`.
/// File-level problems are errors; row-level ones go to `report.errors`.
fn parse_units(bytes: &[u8], report: &mut ImportReport) -> Result<Vec<ParsedUnit>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Error::InvalidInput(format!("the file is not UTF-8 text: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let sep = guess_separator(text);
    let mut records = csv_records(text, sep)?.into_iter();
    let Some((_, header)) = records.next() else {
        return Err(Error::InvalidInput("the file is empty".into()));
    };
    let mut cols: Vec<Option<&'static str>> = Vec::with_capacity(header.len());
    for h in &header {
        let c = column_of(h);
        if c.is_some() && cols.contains(&c) {
            return Err(Error::InvalidInput(format!(
                "the header names the column {:?} twice",
                h.trim()
            )));
        }
        if c.is_none() && !h.trim().is_empty() {
            report.ignored_columns.push(h.trim().to_owned());
        }
        cols.push(c);
    }
    for needed in ["name", "level"] {
        if !cols.contains(&Some(needed)) {
            return Err(Error::InvalidInput(format!(
                "the header row has no {needed:?} column (expected: name, level, code, \
                 contact, operator_phone, email)"
            )));
        }
    }
    let mut units = Vec::new();
    for (line, fields) in records {
        report.rows += 1;
        if report.rows > MAX_IMPORT_ROWS {
            return Err(Error::InvalidInput(format!(
                "the file has more than {MAX_IMPORT_ROWS} rows"
            )));
        }
        let cell = |name: &str| -> String {
            cols.iter()
                .position(|c| *c == Some(name))
                .and_then(|i| fields.get(i))
                .map(|v| dup_key(v))
                .unwrap_or_default()
        };
        let (name, level, code, contact, phone, email) = (
            cell("name"),
            cell("level"),
            cell("code"),
            cell("contact"),
            cell("operator_phone"),
            cell("email"),
        );
        let mut issue = |field: Option<&'static str>, message: String| {
            report.errors.push(ImportIssue {
                line,
                field,
                message,
            })
        };
        let mut ok = true;
        if fields.len() > header.len() {
            issue(
                None,
                format!(
                    "{} fields where the header has {}",
                    fields.len(),
                    header.len()
                ),
            );
            ok = false;
        }
        let level = match BridgeLevel::from_label(&level) {
            Some(l) if l.is_current() => Some(l),
            Some(_) => {
                issue(
                    Some("level"),
                    format!(
                        "{level:?}: districts were abolished on 1 July 2025; no new unit may \
                         have this level"
                    ),
                );
                None
            }
            None if level.is_empty() => {
                issue(Some("level"), "the level is empty".into());
                None
            }
            None => {
                issue(
                    Some("level"),
                    format!(
                        "unknown level {level:?} (expected one of: {}, or Tỉnh, Sở, Xã, \
                         Phường, Đặc khu, Khác)",
                        BridgeLevel::CURRENT
                            .iter()
                            .map(|l| l.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                None
            }
        };
        let new = level.map(|level| NewBridgePoint {
            name: name.clone(),
            level,
            contact,
            code: code.clone(),
            operator_phone: phone,
            email,
        });
        let new = match new.map(|n| new_bridge_point(&n).map(|_| n)) {
            Some(Ok(n)) if ok => Some(n),
            Some(Err(Error::InvalidInput(m))) => {
                issue(None, m);
                None
            }
            Some(Err(e)) => return Err(e),
            _ => None,
        };
        if new.is_some() {
            report.valid += 1;
        }
        units.push(ParsedUnit {
            line,
            new,
            name,
            code,
        });
    }
    Ok(units)
}

/// Adds to `report` the names and codes of `units` that repeat an earlier
/// row or a registered bridge point.
fn find_duplicates(
    units: &[ParsedUnit],
    registry: &[(String, String, String)],
    report: &mut ImportReport,
) {
    use std::collections::HashMap;
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut by_code: HashMap<String, usize> = HashMap::new();
    let reg_name: HashMap<String, &str> = registry
        .iter()
        .map(|(id, n, _)| (dup_key(n), id.as_str()))
        .collect();
    let reg_code: HashMap<String, &str> = registry
        .iter()
        .filter(|(_, _, c)| !c.trim().is_empty())
        .map(|(id, _, c)| (dup_key(c), id.as_str()))
        .collect();
    for u in units {
        for (field, value, seen, reg) in [
            ("name", &u.name, &mut by_name, &reg_name),
            ("code", &u.code, &mut by_code, &reg_code),
        ] {
            if value.is_empty() {
                continue;
            }
            let same_as_line = seen.get(value).copied();
            let same_as_bridge_point_id = reg.get(value).map(|id| (*id).to_owned());
            if same_as_line.is_some() || same_as_bridge_point_id.is_some() {
                report.duplicates.push(ImportDuplicate {
                    line: u.line,
                    field,
                    value: value.clone(),
                    same_as_line,
                    same_as_bridge_point_id,
                });
            }
            seen.entry(value.clone()).or_insert(u.line);
        }
    }
}

impl Store {
    /// Checks a province's list of units (CSV: name, level, code, contact,
    /// operator_phone, email) against itself and the registry, and imports it
    /// unless `preview`: all rows in one transaction with one audit row, or
    /// none. Nothing is written when a row has an error, nor when a name or
    /// code is taken and `allow_duplicates` is false; `report.imported` says
    /// whether it was. A file that cannot be read at all is an error.
    pub async fn import_bridge_points(
        &self,
        actor: &str,
        csv: &[u8],
        preview: bool,
        allow_duplicates: bool,
    ) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        let units = parse_units(csv, &mut report)?;
        if units.is_empty() {
            return Err(Error::InvalidInput("the file has no rows of units".into()));
        }
        let registry_sql = "SELECT id, name, code FROM bridge_points";
        if preview {
            let registry: Vec<(String, String, String)> =
                with_pool!(self, p => sqlx::query_as(registry_sql).fetch_all(p).await)?;
            find_duplicates(&units, &registry, &mut report);
            return Ok(report);
        }
        let report = in_tx!(self, tx => {
            // Read inside the transaction: what is checked is what is written to.
            let registry: Vec<(String, String, String)> =
                sqlx::query_as(registry_sql).fetch_all(&mut *tx).await?;
            find_duplicates(&units, &registry, &mut report);
            if report.errors.is_empty() && (allow_duplicates || report.duplicates.is_empty()) {
                for u in &units {
                    if let Some(new) = &u.new {
                        let bp = new_bridge_point(new)?;
                        insert_bridge_point!(tx, &bp);
                        report.created.push(bp);
                    }
                }
                report.imported = true;
                audit!(tx, actor, "bridge_point.import", "bridge_point", "", json!({
                    "rows": report.rows,
                    "duplicates_allowed": report.duplicates.len(),
                    "created": report.created.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
                }));
            }
            report
        });
        Ok(report)
    }

    /// Invites to `meeting_id`, in one transaction, every active bridge
    /// point whose level is one of `levels` and that has no active
    /// invitation (not revoked, not expired) to it yet: one bridge
    /// invitation each, named after the unit, living `ttl_seconds`. Returns
    /// the invitations created, by unit name.
    pub async fn invite_bridge_points(
        &self,
        actor: &str,
        meeting_id: &str,
        levels: &[BridgeLevel],
        ttl_seconds: i64,
    ) -> Result<Vec<crate::Invitation>> {
        if levels.is_empty() {
            return Err(Error::InvalidInput("no level chosen".into()));
        }
        let now = now_unix();
        let placeholders = (0..levels.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT id, name FROM bridge_points b WHERE active = TRUE AND level IN ({placeholders}) \
             AND NOT EXISTS (SELECT 1 FROM invitations i WHERE i.meeting_id = $1 \
             AND i.bridge_point_id = b.id AND i.revoked_at IS NULL AND i.expires_at > $2) \
             ORDER BY name, id"
        );
        let created = in_tx!(self, tx => {
            require_open_meeting!(tx, meeting_id);
            let mut q = sqlx::query_as::<_, (String, String)>(&sql).bind(meeting_id).bind(now);
            for l in levels {
                q = q.bind(l.as_str());
            }
            let units: Vec<(String, String)> = q.fetch_all(&mut *tx).await?;
            let mut created = Vec::with_capacity(units.len());
            for (bid, name) in units {
                let inv = crate::Invitation {
                    id: new_id(),
                    meeting_id: meeting_id.to_owned(),
                    name,
                    role: crate::Role::Bridge,
                    participant_id: None,
                    bridge_point_id: Some(bid),
                    created_at: now,
                    expires_at: now.saturating_add(ttl_seconds),
                    revoked_at: None,
                    answer: None,
                    email: String::new(),
                };
                sqlx::query(
                    "INSERT INTO invitations (id, meeting_id, name, role, participant_id, \
                     bridge_point_id, created_at, expires_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, NULL)",
                )
                .bind(&inv.id)
                .bind(&inv.meeting_id)
                .bind(&inv.name)
                .bind(inv.role.as_str())
                .bind(&inv.bridge_point_id)
                .bind(inv.created_at)
                .bind(inv.expires_at)
                .execute(&mut *tx)
                .await?;
                audit!(tx, actor, "invitation.create", "invitation", &inv.id, json!({
                    "meeting_id": inv.meeting_id, "name": inv.name, "role": inv.role,
                    "participant_id": null, "bridge_point_id": inv.bridge_point_id,
                    "expires_at": inv.expires_at, "group": levels,
                }));
                created.push(inv);
            }
            created
        });
        Ok(created)
    }
}
