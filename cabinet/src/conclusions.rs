//! The conclusion ("kết luận") of each agenda item: entered by the chair or
//! the secretariat during or after the meeting, at most one per item.
//!
//! A conclusion may change while the meeting is being prepared, runs or has
//! ended (the secretariat often writes it up afterwards); once the meeting
//! is archived its conclusions are a record ([`Error::Frozen`]). Every
//! change is audited (`conclusion.set`, with the text; `null` when
//! cleared) in the transaction that makes it.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{now_unix, optional_text, parse_stored, Error, MeetingStatus, Pool, Result, Store};

/// Longest conclusion, in characters.
pub const MAX_CONCLUSION: usize = 20_000;

/// The conclusion of an agenda item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Conclusion {
    pub agenda_item_id: String,
    pub meeting_id: String,
    /// Trimmed, never empty.
    pub text: String,
    /// Who set it last: an actor, as in the audit log.
    pub updated_by: String,
    /// Unix seconds.
    pub updated_at: i64,
}

const COLUMNS: &str = "c.agenda_item_id, c.meeting_id, c.text, c.updated_by, c.updated_at";

impl Store {
    /// Sets the conclusion of agenda item `item_id` to `text` (trimmed, at
    /// most [`MAX_CONCLUSION`] characters, no NUL); an empty text clears it and
    /// returns `None`. Allowed until the meeting is archived
    /// ([`Error::Frozen`] then). Setting the same text again, or clearing
    /// a missing conclusion, changes nothing and writes no audit entry.
    pub async fn set_conclusion(
        &self,
        actor: &str,
        item_id: &str,
        text: &str,
    ) -> Result<Option<Conclusion>> {
        let text = optional_text(text, "conclusion", MAX_CONCLUSION)?;
        if text.contains('\0') {
            // PostgreSQL's text cannot hold it; refused on both databases.
            return Err(Error::InvalidInput(
                "the conclusion contains a NUL character".into(),
            ));
        }
        let now = now_unix();
        let sql = format!("SELECT {COLUMNS} FROM conclusions c WHERE c.agenda_item_id = $1");
        let out = in_tx!(self, tx => {
            let meeting_id: Option<String> =
                sqlx::query_scalar("SELECT meeting_id FROM agenda_items WHERE id = $1")
                    .bind(item_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let meeting_id = meeting_id.ok_or_else(|| Error::NotFound {
                what: "agenda item",
                id: item_id.to_owned(),
            })?;
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM meetings WHERE id = $1")
                    .bind(&meeting_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let status: MeetingStatus = match status {
                Some(s) => parse_stored(&s, "meeting status")?,
                None => return Err(Error::MeetingNotFound(meeting_id)),
            };
            if status == MeetingStatus::Archived {
                return Err(Error::Frozen { status });
            }
            let current: Option<Conclusion> = sqlx::query_as(&sql)
                .bind(item_id)
                .fetch_optional(&mut *tx)
                .await?;
            if text.is_empty() {
                if current.is_some() {
                    sqlx::query("DELETE FROM conclusions WHERE agenda_item_id = $1")
                        .bind(item_id)
                        .execute(&mut *tx)
                        .await?;
                    audit!(tx, actor, "conclusion.set", "agenda_item", item_id, json!({
                        "meeting_id": meeting_id, "text": serde_json::Value::Null,
                    }));
                }
                None
            } else if current.as_ref().is_some_and(|c| c.text == text) {
                current
            } else {
                sqlx::query(
                    "INSERT INTO conclusions (agenda_item_id, meeting_id, text, updated_by, \
                     updated_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (agenda_item_id) DO UPDATE SET text = excluded.text, \
                     updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                )
                .bind(item_id)
                .bind(&meeting_id)
                .bind(&text)
                .bind(actor)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                audit!(tx, actor, "conclusion.set", "agenda_item", item_id, json!({
                    "meeting_id": meeting_id, "text": text,
                }));
                Some(Conclusion {
                    agenda_item_id: item_id.to_owned(),
                    meeting_id,
                    text,
                    updated_by: actor.to_owned(),
                    updated_at: now,
                })
            }
        });
        Ok(out)
    }

    /// The conclusions of a meeting's agenda items, in agenda order (items
    /// without one are left out; an unknown meeting has none).
    pub async fn list_conclusions(&self, meeting_id: &str) -> Result<Vec<Conclusion>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM conclusions c JOIN agenda_items a ON a.id = c.agenda_item_id \
             WHERE c.meeting_id = $1 ORDER BY a.position, a.id"
        );
        let rows: Vec<Conclusion> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(meeting_id)
            .fetch_all(p)
            .await)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{pg_store, sqlite_store};
    use crate::NewAgendaItem;

    const SECRETARY: &str = "user:secretary";
    const CHAIR: &str = "invitation:chair";

    fn item(title: &str) -> NewAgendaItem {
        NewAgendaItem {
            title: title.into(),
            presenter: String::new(),
            duration_minutes: None,
        }
    }

    async fn scenario(s: &Store) {
        let m = s.create_meeting("Giao ban").await.expect("meeting").id;
        let other = s.create_meeting("Another").await.expect("meeting").id;
        let first = s
            .add_agenda_item(SECRETARY, &m, item("Kinh tế"))
            .await
            .expect("item")
            .id;
        let second = s
            .add_agenda_item(SECRETARY, &m, item("Xã hội"))
            .await
            .expect("item")
            .id;
        let elsewhere = s
            .add_agenda_item(SECRETARY, &other, item("Other"))
            .await
            .expect("item")
            .id;
        assert!(s.list_conclusions(&m).await.expect("list").is_empty());

        // Refusals: unknown item, too long (counted in characters).
        assert!(matches!(
            s.set_conclusion(SECRETARY, "missing", "x").await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            s.set_conclusion(SECRETARY, &first, &"ế".repeat(MAX_CONCLUSION + 1))
                .await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            s.set_conclusion(SECRETARY, &first, "a\0b").await,
            Err(Error::InvalidInput(_))
        ));
        // The limit counts the text as sent (the API's maxLength), the
        // spaces around it included; what is stored is trimmed.
        let long = "ế".repeat(MAX_CONCLUSION - 3);
        let c = s
            .set_conclusion(SECRETARY, &first, &format!("  {long}\n"))
            .await
            .expect("the longest")
            .expect("set");
        assert_eq!(c.text, long, "trimmed");
        assert!(matches!(
            s.set_conclusion(
                SECRETARY,
                &first,
                &format!(" {}", "ế".repeat(MAX_CONCLUSION))
            )
            .await,
            Err(Error::InvalidInput(_))
        ));

        // Set on both items, the second one first: agenda order in the list.
        let c2 = s
            .set_conclusion(CHAIR, &second, "Giao Sở Y tế chủ trì.")
            .await
            .expect("set")
            .expect("a conclusion");
        assert_eq!(c2.meeting_id, m);
        assert_eq!(c2.updated_by, CHAIR);
        let c1 = s
            .set_conclusion(SECRETARY, &first, " Thống nhất thông qua. ")
            .await
            .expect("update")
            .expect("a conclusion");
        assert_eq!(c1.text, "Thống nhất thông qua.");
        s.set_conclusion(SECRETARY, &elsewhere, "Elsewhere")
            .await
            .expect("other meeting");
        let list = s.list_conclusions(&m).await.expect("list");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], c1);
        assert_eq!(list[1], c2);
        s.reorder_agenda(SECRETARY, &m, &[second.clone(), first.clone()])
            .await
            .expect("reorder");
        let list = s.list_conclusions(&m).await.expect("list");
        assert_eq!(list[0].agenda_item_id, second, "follows the new order");

        // The same text again: nothing changes, nothing audited.
        let before = s
            .audit_of("agenda_item", &first)
            .await
            .expect("audit")
            .len();
        let same = s
            .set_conclusion(CHAIR, &first, "Thống nhất thông qua.")
            .await
            .expect("same")
            .expect("kept");
        assert_eq!(same, c1, "unchanged, still by the secretary");
        assert_eq!(
            s.audit_of("agenda_item", &first)
                .await
                .expect("audit")
                .len(),
            before
        );

        // Cleared by an empty (blank) text; clearing again is a no-op.
        assert_eq!(
            s.set_conclusion(CHAIR, &second, "  \n ")
                .await
                .expect("clear"),
            None
        );
        assert_eq!(
            s.set_conclusion(CHAIR, &second, "").await.expect("again"),
            None
        );
        let list = s.list_conclusions(&m).await.expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].agenda_item_id, first);

        // The audit entries: each change with its text, the clear with null.
        let log: Vec<_> = s
            .audit_of("agenda_item", &second)
            .await
            .expect("audit")
            .into_iter()
            .filter(|e| e.action == "conclusion.set")
            .collect();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].actor, CHAIR);
        assert_eq!(log[0].detail["text"], "Giao Sở Y tế chủ trì.");
        assert_eq!(log[0].detail["meeting_id"], m.as_str());
        assert!(log[1].detail["text"].is_null());

        // Running, then ended: still allowed. Archived: frozen.
        for status in [
            MeetingStatus::Scheduled,
            MeetingStatus::InProgress,
            MeetingStatus::Ended,
        ] {
            s.change_meeting_status(SECRETARY, &m, status)
                .await
                .expect("status");
            let text = format!("Kết luận khi {status}");
            let c = s
                .set_conclusion(SECRETARY, &second, &text)
                .await
                .expect("allowed")
                .expect("set");
            assert_eq!(c.text, text);
        }
        s.change_meeting_status(SECRETARY, &m, MeetingStatus::Archived)
            .await
            .expect("archive");
        assert!(matches!(
            s.set_conclusion(SECRETARY, &second, "late").await,
            Err(Error::Frozen {
                status: MeetingStatus::Archived
            })
        ));
        assert!(matches!(
            s.set_conclusion(SECRETARY, &second, "").await,
            Err(Error::Frozen { .. })
        ));
        assert_eq!(s.list_conclusions(&m).await.expect("list").len(), 2);

        // Removing an item (before the meeting ends) removes its conclusion.
        s.delete_agenda_item(SECRETARY, &elsewhere)
            .await
            .expect("delete an item with a conclusion");
        assert!(s.list_conclusions(&other).await.expect("list").is_empty());
        assert!(s.verify_audit_chain().await.expect("verify").is_none());
    }

    #[tokio::test]
    async fn sqlite_conclusions() {
        let (s, _db) = sqlite_store().await;
        scenario(&s).await;
    }

    #[tokio::test]
    async fn pg_conclusions() {
        if let Some((s, schema)) = pg_store().await {
            scenario(&s).await;
            schema.drop_now(s).await;
        }
    }
}
