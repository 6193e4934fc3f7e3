//! The chair's decisions in a live meeting that outlive the server's
//! process: removals of participants, the lock and the current agenda
//! item. Each is a fact of the meeting, written once to the audit log
//! (actions `live.participant_removed`, `live.locked`, `live.unlocked`,
//! `live.current_item`, target the meeting); [`Store::live_control`] reads
//! them back, so a live meeting opened after a restart starts from them.
//! The audit log is the only record (append-only, hash-chained): nothing
//! else to keep in step, and nothing to migrate.

use serde_json::{json, Value};

use crate::{Pool, Result, Store};

/// The audit actions this module writes and reads.
const REMOVED: &str = "live.participant_removed";
const LOCKED: &str = "live.locked";
const UNLOCKED: &str = "live.unlocked";
const CURRENT_ITEM: &str = "live.current_item";

/// What the chair decided so far in a meeting, as the audit log tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveControl {
    /// Locked by the chair's latest `lock_meeting`.
    pub locked: bool,
    /// The current agenda item (the latest `set_current_item`).
    pub current_item_id: Option<String>,
    /// Invitations whose participant the chair removed: they do not enter
    /// again.
    pub removed: Vec<String>,
}

/// Who removed whom, and why (the audit row's detail).
#[derive(Debug, Clone)]
pub struct LiveRemoval<'a> {
    pub meeting_id: &'a str,
    pub invitation_id: &'a str,
    /// The live session that was removed.
    pub participant_id: &'a str,
    /// The invitation's name, as the roster showed it.
    pub name: &'a str,
    pub reason: &'a str,
    /// The chair's live session.
    pub by: &'a str,
}

impl Store {
    /// Records that the chair (`actor`, its invitation as `invitation:<id>`)
    /// removed a participant of a live meeting: its invitation does not
    /// enter again, after a restart too.
    pub async fn record_live_removal(&self, actor: &str, r: LiveRemoval<'_>) -> Result<()> {
        self.record_audit(
            actor,
            REMOVED,
            "meeting",
            r.meeting_id,
            json!({"participant_id": r.participant_id, "invitation_id": r.invitation_id,
                "name": r.name, "reason": r.reason, "by": r.by}),
        )
        .await
    }

    /// Records the chair's lock (or unlock) of a live meeting; `by` is the
    /// chair's live session.
    pub async fn record_live_lock(
        &self,
        actor: &str,
        meeting_id: &str,
        locked: bool,
        by: &str,
    ) -> Result<()> {
        let action = if locked { LOCKED } else { UNLOCKED };
        self.record_audit(actor, action, "meeting", meeting_id, json!({"by": by}))
            .await
    }

    /// Records the current agenda item of a live meeting (`None`: none);
    /// the caller checked that the item is the meeting's.
    pub async fn record_live_current_item(
        &self,
        actor: &str,
        meeting_id: &str,
        item_id: Option<&str>,
        by: &str,
    ) -> Result<()> {
        self.record_audit(
            actor,
            CURRENT_ITEM,
            "meeting",
            meeting_id,
            json!({"item_id": item_id, "by": by}),
        )
        .await
    }

    /// The chair's decisions so far in `meeting_id` (nothing recorded: not
    /// locked, no current item, nobody removed).
    pub async fn live_control(&self, meeting_id: &str) -> Result<LiveControl> {
        let sql = "SELECT action, detail FROM audit_log \
                   WHERE target_type = 'meeting' AND target_id = $1 \
                   AND action IN ($2, $3, $4, $5) ORDER BY seq";
        let rows: Vec<(String, String)> = match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query_as(sql)
                    .bind(meeting_id)
                    .bind(REMOVED)
                    .bind(LOCKED)
                    .bind(UNLOCKED)
                    .bind(CURRENT_ITEM)
                    .fetch_all(p)
                    .await?
            }
            Pool::Postgres(p) => {
                sqlx::query_as(sql)
                    .bind(meeting_id)
                    .bind(REMOVED)
                    .bind(LOCKED)
                    .bind(UNLOCKED)
                    .bind(CURRENT_ITEM)
                    .fetch_all(p)
                    .await?
            }
        };
        let mut out = LiveControl::default();
        for (action, detail) in rows {
            // A detail that does not parse is skipped, not fatal: the row
            // is still in the (verified) chain.
            let detail: Value = serde_json::from_str(&detail).unwrap_or(Value::Null);
            match action.as_str() {
                LOCKED => out.locked = true,
                UNLOCKED => out.locked = false,
                CURRENT_ITEM => {
                    out.current_item_id = detail["item_id"].as_str().map(str::to_owned);
                }
                REMOVED => {
                    if let Some(inv) = detail["invitation_id"].as_str() {
                        if !out.removed.iter().any(|r| r == inv) {
                            out.removed.push(inv.to_owned());
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{invite, pg_store, sqlite_store};
    use crate::Role;

    async fn scenario(s: &Store) {
        let m = s.create_meeting("Giao ban").await.expect("meeting");
        let other = s.create_meeting("Khác").await.expect("meeting");
        let a = invite(s, &m.id, "Xã A", Role::Bridge).await;
        let b = invite(s, &m.id, "Xã B", Role::Bridge).await;
        assert_eq!(
            s.live_control(&m.id).await.expect("empty"),
            LiveControl::default()
        );
        let actor = "invitation:chair";
        let removal = |inv: &'static str| LiveRemoval {
            meeting_id: "",
            invitation_id: inv,
            participant_id: "p-1",
            name: "Xã A",
            reason: "Không phải thành phần",
            by: "p-chair",
        };
        for inv in [&a, &a, &b] {
            s.record_live_removal(
                actor,
                LiveRemoval {
                    meeting_id: &m.id,
                    invitation_id: inv,
                    ..removal("")
                },
            )
            .await
            .expect("removal");
        }
        s.record_live_lock(actor, &m.id, true, "p-chair")
            .await
            .expect("lock");
        s.record_live_lock(actor, &m.id, false, "p-chair")
            .await
            .expect("unlock");
        s.record_live_lock(actor, &m.id, true, "p-chair")
            .await
            .expect("lock again");
        s.record_live_current_item(actor, &m.id, Some("i-1"), "p-chair")
            .await
            .expect("item");
        s.record_live_current_item(actor, &m.id, Some("i-2"), "p-chair")
            .await
            .expect("item");
        // Another meeting's decisions stay its own.
        s.record_live_lock(actor, &other.id, false, "p-x")
            .await
            .expect("other");
        s.record_live_current_item(actor, &other.id, None, "p-x")
            .await
            .expect("other");
        let c = s.live_control(&m.id).await.expect("read");
        assert_eq!(
            c,
            LiveControl {
                locked: true,
                current_item_id: Some("i-2".into()),
                removed: vec![a.clone(), b.clone()],
            }
        );
        s.record_live_current_item(actor, &m.id, None, "p-chair")
            .await
            .expect("none");
        assert_eq!(
            s.live_control(&m.id).await.expect("read").current_item_id,
            None
        );
        assert_eq!(
            s.live_control(&other.id).await.expect("other"),
            LiveControl::default()
        );
        // The rows are ordinary audit rows: the chain still verifies.
        let entries = s.audit_of("meeting", &m.id).await.expect("audit");
        let r = entries
            .iter()
            .find(|e| e.action == REMOVED)
            .expect("removal row");
        assert_eq!(r.detail["reason"], "Không phải thành phần");
        assert_eq!(r.actor, actor);
    }

    #[tokio::test]
    async fn live_control_sqlite() {
        let (s, _dir) = sqlite_store().await;
        scenario(&s).await;
    }

    #[tokio::test]
    async fn live_control_postgres() {
        let Some((s, schema)) = pg_store().await else {
            return;
        };
        scenario(&s).await;
        schema.drop_now(s).await;
    }
}
