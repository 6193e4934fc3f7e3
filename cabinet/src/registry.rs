//! The bridge point registry and the participants of a meeting.

use serde_json::json;

use crate::meetings::MAX_TEXT;
use crate::{
    new_id, now_unix, optional_text, parse_stored, required_text, BridgePoint, BridgePointPatch,
    Error, NewBridgePoint, NewParticipant, Participant, ParticipantPatch, Pool, Result, Store,
};

const BRIDGE_COLUMNS: &str = "id, name, level, contact, active, created_at, updated_at";
const PARTICIPANT_COLUMNS: &str =
    "id, meeting_id, name, position, role, voting, bridge_point_id, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct BridgeRow {
    id: String,
    name: String,
    level: String,
    contact: String,
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

impl Store {
    /// Registers a bridge point (active).
    pub async fn add_bridge_point(&self, actor: &str, new: NewBridgePoint) -> Result<BridgePoint> {
        let now = now_unix();
        let bp = BridgePoint {
            id: new_id(),
            name: required_text(&new.name, "bridge point name", MAX_TEXT)?,
            level: new.level,
            contact: optional_text(&new.contact, "contact", MAX_TEXT)?,
            active: true,
            created_at: now,
            updated_at: now,
        };
        in_tx!(self, tx => {
            sqlx::query(
                "INSERT INTO bridge_points (id, name, level, contact, active, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(&bp.id)
            .bind(&bp.name)
            .bind(bp.level.as_str())
            .bind(&bp.contact)
            .bind(bp.active)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "bridge_point.create", "bridge_point", &bp.id,
                json!({"name": bp.name, "level": bp.level}));
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
                bp.level = l;
            }
            if let Some(c) = &patch.contact {
                bp.contact = optional_text(c, "contact", MAX_TEXT)?;
            }
            if let Some(a) = patch.active {
                bp.active = a;
            }
            bp.updated_at = now_unix();
            sqlx::query(
                "UPDATE bridge_points SET name = $1, level = $2, contact = $3, active = $4, \
                 updated_at = $5 WHERE id = $6",
            )
            .bind(&bp.name)
            .bind(bp.level.as_str())
            .bind(&bp.contact)
            .bind(bp.active)
            .bind(bp.updated_at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "bridge_point.update", "bridge_point", id, json!({
                "name": bp.name, "level": bp.level, "contact": bp.contact, "active": bp.active,
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
