//! Saved groups of units ("khối kinh tế", "khối văn hoá – xã hội"), invited
//! to a meeting in one step, and the short codes of invitations ("mã tham
//! dự") that a bridge point types on the join page instead of a link.
//!
//! A short code is computed outside the store (the signaling crate keys it
//! with the server's secret); the store keeps only a keyed hash of it to
//! look it up ([`Store::ensure_short_codes`], [`Store::invitation_by_short_code`]).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::meetings::MAX_TEXT;
use crate::{new_id, now_unix, optional_text, Error, Invitation, Pool, Result, Store};

/// The most units one saved group may hold.
pub const MAX_GROUP_UNITS: usize = 5000;

/// A saved group of units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitGroup {
    pub id: String,
    /// Unique, runs of spaces collapsed.
    pub name: String,
    /// Its units, by name.
    pub bridge_point_ids: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A saved group named where a meeting refers to it (a copy of a meeting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitGroupRef {
    pub id: String,
    pub name: String,
}

/// What creating a saved group needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUnitGroup {
    pub name: String,
    #[serde(default)]
    pub bridge_point_ids: Vec<String>,
}

/// A change of a saved group: absent fields stay; `bridge_point_ids`
/// replaces the whole list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitGroupPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub bridge_point_ids: Option<Vec<String>>,
}

/// A group's name: trimmed, runs of whitespace collapsed, not empty, at
/// most [`MAX_TEXT`] characters as sent.
fn group_name(name: &str) -> Result<String> {
    let v = optional_text(name, "group name", MAX_TEXT)?;
    let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
    if v.is_empty() {
        return Err(Error::InvalidInput("the group name is empty".into()));
    }
    Ok(v)
}

/// The list of units, checked: at most [`MAX_GROUP_UNITS`], each once.
fn unit_list(ids: &[String]) -> Result<Vec<String>> {
    if ids.len() > MAX_GROUP_UNITS {
        return Err(Error::InvalidInput(format!(
            "a group holds at most {MAX_GROUP_UNITS} units"
        )));
    }
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id.as_str()) {
            return Err(Error::InvalidInput(format!(
                "the unit {id} is listed twice"
            )));
        }
    }
    Ok(ids.to_vec())
}

/// Refuses a name another group has (inside `$tx`).
macro_rules! require_free_name {
    ($tx:ident, $name:expr, $except:expr) => {{
        let taken: Option<String> =
            sqlx::query_scalar("SELECT id FROM unit_groups WHERE name = $1 AND id <> $2")
                .bind($name)
                .bind($except)
                .fetch_optional(&mut *$tx)
                .await?;
        if taken.is_some() {
            return Err(Error::Conflict(format!(
                "a group named {:?} already exists",
                $name
            )));
        }
    }};
}

/// Writes the members of group `$id` (inside `$tx`): every id must be a
/// registered bridge point.
macro_rules! write_members {
    ($tx:ident, $id:expr, $units:expr) => {{
        sqlx::query("DELETE FROM unit_group_members WHERE group_id = $1")
            .bind($id)
            .execute(&mut *$tx)
            .await?;
        for bid in $units {
            let known: Option<String> =
                sqlx::query_scalar("SELECT id FROM bridge_points WHERE id = $1")
                    .bind(bid)
                    .fetch_optional(&mut *$tx)
                    .await?;
            if known.is_none() {
                return Err(Error::NotFound {
                    what: "bridge point",
                    id: bid.clone(),
                });
            }
            sqlx::query(
                "INSERT INTO unit_group_members (group_id, bridge_point_id) VALUES ($1, $2)",
            )
            .bind($id)
            .bind(bid)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

impl Store {
    /// Every saved group, by name, with its units (by name).
    pub async fn list_unit_groups(&self) -> Result<Vec<UnitGroup>> {
        let groups: Vec<(String, String, i64, i64)> = with_pool!(self, p => sqlx::query_as(
            "SELECT id, name, created_at, updated_at FROM unit_groups ORDER BY name, id"
        )
        .fetch_all(p)
        .await)?;
        let members: Vec<(String, String)> = with_pool!(self, p => sqlx::query_as(
            "SELECT m.group_id, m.bridge_point_id FROM unit_group_members m \
             JOIN bridge_points b ON b.id = m.bridge_point_id ORDER BY b.name, b.id"
        )
        .fetch_all(p)
        .await)?;
        let mut by_group: HashMap<String, Vec<String>> = HashMap::new();
        for (g, b) in members {
            by_group.entry(g).or_default().push(b);
        }
        Ok(groups
            .into_iter()
            .map(|(id, name, created_at, updated_at)| UnitGroup {
                bridge_point_ids: by_group.remove(&id).unwrap_or_default(),
                id,
                name,
                created_at,
                updated_at,
            })
            .collect())
    }

    /// The saved group with this id, if any.
    pub async fn get_unit_group(&self, id: &str) -> Result<Option<UnitGroup>> {
        Ok(self
            .list_unit_groups()
            .await?
            .into_iter()
            .find(|g| g.id == id))
    }

    /// Saves a new group of units (its name not taken by another group).
    pub async fn add_unit_group(&self, actor: &str, new: NewUnitGroup) -> Result<UnitGroup> {
        let name = group_name(&new.name)?;
        let units = unit_list(&new.bridge_point_ids)?;
        let now = now_unix();
        let id = new_id();
        in_tx!(self, tx => {
            require_free_name!(tx, &name, "");
            sqlx::query(
                "INSERT INTO unit_groups (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)",
            )
            .bind(&id)
            .bind(&name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            write_members!(tx, &id, &units);
            audit!(tx, actor, "unit_group.create", "unit_group", &id,
                json!({"name": name, "bridge_point_ids": units}));
        });
        self.get_unit_group(&id).await?.ok_or(Error::NotFound {
            what: "unit group",
            id,
        })
    }

    /// Renames a saved group and/or replaces its units.
    pub async fn update_unit_group(
        &self,
        actor: &str,
        id: &str,
        patch: UnitGroupPatch,
    ) -> Result<UnitGroup> {
        let name = patch.name.as_deref().map(group_name).transpose()?;
        let units = patch
            .bridge_point_ids
            .as_deref()
            .map(unit_list)
            .transpose()?;
        let now = now_unix();
        in_tx!(self, tx => {
            let old: Option<String> = sqlx::query_scalar("SELECT name FROM unit_groups WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if old.is_none() {
                return Err(Error::NotFound { what: "unit group", id: id.to_owned() });
            }
            if let Some(n) = &name {
                require_free_name!(tx, n, id);
                sqlx::query("UPDATE unit_groups SET name = $1 WHERE id = $2")
                    .bind(n)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(u) = &units {
                write_members!(tx, id, u);
            }
            sqlx::query("UPDATE unit_groups SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            audit!(tx, actor, "unit_group.update", "unit_group", id,
                json!({"name": name, "bridge_point_ids": units}));
        });
        self.get_unit_group(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "unit group",
                id: id.to_owned(),
            })
    }

    /// Deletes a saved group (the units and the invitations made through it
    /// stay; meetings forget that they invited it).
    pub async fn delete_unit_group(&self, actor: &str, id: &str) -> Result<()> {
        in_tx!(self, tx => {
            let name: Option<String> = sqlx::query_scalar("SELECT name FROM unit_groups WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(name) = name else {
                return Err(Error::NotFound { what: "unit group", id: id.to_owned() });
            };
            for sql in [
                "DELETE FROM meeting_unit_groups WHERE group_id = $1",
                "DELETE FROM unit_group_members WHERE group_id = $1",
                "DELETE FROM unit_groups WHERE id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            audit!(tx, actor, "unit_group.delete", "unit_group", id, json!({"name": name}));
        });
        Ok(())
    }

    /// Invites to `meeting_id`, in one transaction, every active unit of the
    /// saved group `group_id` that has no active invitation (not revoked,
    /// not expired) to it yet: one bridge invitation each, named after the
    /// unit, living `ttl_seconds`; the meeting remembers the group (for a
    /// copy). Returns the invitations created, by unit name.
    pub async fn invite_unit_group(
        &self,
        actor: &str,
        meeting_id: &str,
        group_id: &str,
        ttl_seconds: i64,
    ) -> Result<Vec<Invitation>> {
        let now = now_unix();
        let created = in_tx!(self, tx => {
            require_open_meeting!(tx, meeting_id);
            let name: Option<String> = sqlx::query_scalar("SELECT name FROM unit_groups WHERE id = $1")
                .bind(group_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(group_name) = name else {
                return Err(Error::NotFound { what: "unit group", id: group_id.to_owned() });
            };
            let units: Vec<(String, String)> = sqlx::query_as(
                "SELECT b.id, b.name FROM unit_group_members m \
                 JOIN bridge_points b ON b.id = m.bridge_point_id \
                 WHERE m.group_id = $1 AND b.active = TRUE \
                 AND NOT EXISTS (SELECT 1 FROM invitations i WHERE i.meeting_id = $2 \
                 AND i.bridge_point_id = b.id AND i.revoked_at IS NULL AND i.expires_at > $3) \
                 ORDER BY b.name, b.id",
            )
            .bind(group_id)
            .bind(meeting_id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let mut created = Vec::with_capacity(units.len());
            for (bid, name) in units {
                let inv = Invitation {
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
                    "expires_at": inv.expires_at, "unit_group": {"id": group_id, "name": group_name},
                }));
                created.push(inv);
            }
            let known: Option<i64> = sqlx::query_scalar(
                "SELECT invited_at FROM meeting_unit_groups WHERE meeting_id = $1 AND group_id = $2",
            )
            .bind(meeting_id)
            .bind(group_id)
            .fetch_optional(&mut *tx)
            .await?;
            if known.is_none() {
                sqlx::query(
                    "INSERT INTO meeting_unit_groups (meeting_id, group_id, invited_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(meeting_id)
                .bind(group_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            created
        });
        Ok(created)
    }

    /// The saved groups invited to a meeting, by name.
    pub async fn meeting_unit_groups(&self, meeting_id: &str) -> Result<Vec<UnitGroupRef>> {
        let rows: Vec<(String, String)> = with_pool!(self, p => sqlx::query_as(
            "SELECT g.id, g.name FROM meeting_unit_groups m JOIN unit_groups g ON g.id = m.group_id \
             WHERE m.meeting_id = $1 ORDER BY g.name, g.id"
        )
        .bind(meeting_id)
        .fetch_all(p)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| UnitGroupRef { id, name })
            .collect())
    }

    /// Gives every active invitation (not revoked, not expired at `now`) of
    /// `meeting_id` that has none a short code, in one transaction:
    /// `key_of(invitation id, n)` is the lookup key of its code number `n`
    /// (0, 1, …: the next one when a key is taken). Returns, for every
    /// active invitation of the meeting, the `n` of its code.
    pub async fn ensure_short_codes(
        &self,
        meeting_id: &str,
        now: i64,
        key_of: &(dyn Fn(&str, i64) -> String + Sync),
    ) -> Result<HashMap<String, i64>> {
        let active_sql = "SELECT id, short_code_key, short_code_n FROM invitations \
                          WHERE meeting_id = $1 AND revoked_at IS NULL AND expires_at > $2";
        let rows: Vec<(String, Option<String>, i64)> = with_pool!(self, p => sqlx::query_as(active_sql)
            .bind(meeting_id)
            .bind(now)
            .fetch_all(p)
            .await)?;
        if rows.iter().all(|(_, k, _)| k.is_some()) {
            return Ok(rows.into_iter().map(|(id, _, n)| (id, n)).collect());
        }
        let out = in_tx!(self, tx => {
            let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(active_sql)
                .bind(meeting_id)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
            let mut out = HashMap::with_capacity(rows.len());
            for (id, key, n) in rows {
                if key.is_some() {
                    out.insert(id, n);
                    continue;
                }
                let mut chosen = None;
                for n in 0..16 {
                    let k = key_of(&id, n);
                    let taken: Option<String> =
                        sqlx::query_scalar("SELECT id FROM invitations WHERE short_code_key = $1")
                            .bind(&k)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if taken.is_none() {
                        chosen = Some((k, n));
                        break;
                    }
                }
                let Some((k, n)) = chosen else {
                    return Err(Error::Conflict("no free short code for an invitation".into()));
                };
                sqlx::query(
                    "UPDATE invitations SET short_code_key = $1, short_code_n = $2 WHERE id = $3",
                )
                .bind(&k)
                .bind(n)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                out.insert(id, n);
            }
            out
        });
        Ok(out)
    }

    /// The invitation whose short code has the lookup key `key`, if any
    /// (revoked and expired ones too: the caller says why they do not work).
    pub async fn invitation_by_short_code(&self, key: &str) -> Result<Option<Invitation>> {
        let id: Option<String> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT id FROM invitations WHERE short_code_key = $1"
        )
        .bind(key)
        .fetch_optional(p)
        .await)?;
        match id {
            Some(id) => self.get_invitation(&id).await,
            None => Ok(None),
        }
    }
}
