//! A meeting's agenda items and their documents (with versions).

use serde_json::json;

use crate::blobs::{Blobs, StagedBlob};
use crate::meetings::MAX_TEXT;
use crate::{
    new_id, now_unix, optional_text, parse_stored, required_text, AgendaItem, AgendaItemPatch,
    Document, DocumentAccess, DocumentVersion, Error, IdempotencyKey, NewAgendaItem, NewDocument,
    Pool, Replacement, Result, Store, Upload,
};

const ITEM_COLUMNS: &str =
    "id, meeting_id, position, title, presenter, duration_minutes, created_at, updated_at";
const DOC_COLUMNS: &str = "id, meeting_id, agenda_item_id, title, access, current_version, \
                           created_at, updated_at, withdrawn_at, withdrawn_by, withdrawn_reason, \
                           replaced_by, replaces";
const VERSION_COLUMNS: &str = "document_id, version, sha256, size, filename, content_type, \
                               uploaded_by, uploaded_at, signature_report, file_type";

/// Inserts version `$version` of document `$doc` inside `$tx`; the same
/// row for a new document, a new version and a replacement.
macro_rules! insert_version {
    ($tx:ident, $doc:expr, $version:expr, $sha256:expr, $size:expr, $filename:expr,
     $content_type:expr, $actor:expr, $now:expr, $report:expr, $file_type:expr) => {
        sqlx::query(
            "INSERT INTO document_versions (document_id, version, sha256, size, filename, \
             content_type, uploaded_by, uploaded_at, signature_report, file_type) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind($doc)
        .bind(i64::from($version))
        .bind($sha256)
        .bind($size)
        .bind($filename)
        .bind($content_type)
        .bind($actor)
        .bind($now)
        .bind($report)
        .bind($file_type.as_str())
        .execute(&mut *$tx)
        .await?
    };
}

/// Gives the participants `$pids` access to document `$doc` inside `$tx`
/// (documents with access `named`).
macro_rules! grant_access {
    ($tx:ident, $doc:expr, $pids:expr) => {
        for pid in $pids {
            sqlx::query(
                "INSERT INTO document_access (document_id, participant_id) VALUES ($1, $2)",
            )
            .bind($doc)
            .bind(pid)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

/// Refuses (inside `$tx`) when the document `$id` does not exist or has
/// been withdrawn.
macro_rules! require_in_force {
    ($tx:ident, $id:expr) => {{
        let w: Option<Option<i64>> =
            sqlx::query_scalar("SELECT withdrawn_at FROM documents WHERE id = $1")
                .bind($id)
                .fetch_optional(&mut *$tx)
                .await?;
        match w {
            None => {
                return Err(Error::NotFound {
                    what: "document",
                    id: String::from($id),
                })
            }
            Some(Some(_)) => return Err(withdrawn($id)),
            Some(None) => {}
        }
    }};
}

/// The error for a change to a withdrawn document.
fn withdrawn(id: &str) -> Error {
    Error::Conflict(format!("document {id} has been withdrawn"))
}

/// Longest planned duration of one item (a day).
const MAX_DURATION_MINUTES: i64 = 24 * 60;

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: String,
    meeting_id: String,
    position: i64,
    title: String,
    presenter: String,
    duration_minutes: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl From<ItemRow> for AgendaItem {
    fn from(r: ItemRow) -> AgendaItem {
        AgendaItem {
            id: r.id,
            meeting_id: r.meeting_id,
            position: r.position,
            title: r.title,
            presenter: r.presenter,
            duration_minutes: r.duration_minutes,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct DocRow {
    id: String,
    meeting_id: String,
    agenda_item_id: String,
    title: String,
    access: String,
    current_version: i64,
    created_at: i64,
    updated_at: i64,
    withdrawn_at: Option<i64>,
    withdrawn_by: Option<String>,
    withdrawn_reason: Option<String>,
    replaced_by: Option<String>,
    replaces: Option<String>,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    document_id: String,
    version: i64,
    sha256: String,
    size: i64,
    filename: String,
    content_type: String,
    uploaded_by: String,
    uploaded_at: i64,
    signature_report: String,
    file_type: Option<String>,
}

impl TryFrom<VersionRow> for DocumentVersion {
    type Error = Error;
    fn try_from(r: VersionRow) -> Result<DocumentVersion> {
        Ok(DocumentVersion {
            signature_report: serde_json::from_str(&r.signature_report)
                .map_err(|_| Error::Corrupt(format!("signature report of {}", r.document_id)))?,
            version: r.version,
            sha256: r.sha256,
            size: r.size,
            filename: r.filename,
            content_type: r.content_type,
            file_type: r
                .file_type
                .as_deref()
                .map(|t| parse_stored(t, "file type"))
                .transpose()?,
            uploaded_by: r.uploaded_by,
            uploaded_at: r.uploaded_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AccessRow {
    document_id: String,
    participant_id: String,
}

fn check_duration(d: Option<i64>) -> Result<()> {
    match d {
        Some(m) if !(0..=MAX_DURATION_MINUTES).contains(&m) => Err(Error::InvalidInput(format!(
            "the planned duration must be between 0 and {MAX_DURATION_MINUTES} minutes"
        ))),
        _ => Ok(()),
    }
}

/// A file name safe to keep: no folders, no control characters, not empty.
pub(crate) fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let cleaned = cleaned.trim().to_owned();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "document".to_owned()
    } else {
        cleaned
    }
}

/// Longest reason of a withdrawal.
const MAX_REASON: usize = 1000;

impl Store {
    /// Adds an item at the end of a meeting's agenda (meeting not frozen).
    pub async fn add_agenda_item(
        &self,
        actor: &str,
        meeting_id: &str,
        new: NewAgendaItem,
    ) -> Result<AgendaItem> {
        self.add_agenda_item_idempotent(actor, meeting_id, new, None)
            .await
    }

    /// [`Store::add_agenda_item`], storing the answer (201 and the item)
    /// under `idem` in the same transaction. A concurrent request with the
    /// same key that committed first makes this one fail with a unique
    /// violation ([`Error::is_unique_violation`]) and create nothing.
    pub async fn add_agenda_item_idempotent(
        &self,
        actor: &str,
        meeting_id: &str,
        new: NewAgendaItem,
        idem: Option<&IdempotencyKey>,
    ) -> Result<AgendaItem> {
        let title = required_text(&new.title, "agenda item title", MAX_TEXT)?;
        let presenter = optional_text(&new.presenter, "presenter", MAX_TEXT)?;
        check_duration(new.duration_minutes)?;
        let now = now_unix();
        let item = in_tx!(self, tx => {
            require_open_meeting!(tx, meeting_id);
            let last: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(position), 0) FROM agenda_items WHERE meeting_id = $1",
            )
            .bind(meeting_id)
            .fetch_one(&mut *tx)
            .await?;
            let item = AgendaItem {
                id: new_id(),
                meeting_id: meeting_id.to_owned(),
                position: last + 1,
                title: title.clone(),
                presenter: presenter.clone(),
                duration_minutes: new.duration_minutes,
                created_at: now,
                updated_at: now,
            };
            sqlx::query(
                "INSERT INTO agenda_items (id, meeting_id, position, title, presenter, \
                 duration_minutes, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&item.id)
            .bind(&item.meeting_id)
            .bind(item.position)
            .bind(&item.title)
            .bind(&item.presenter)
            .bind(item.duration_minutes)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "agenda.create", "agenda_item", &item.id, json!({
                "meeting_id": meeting_id, "position": item.position, "title": item.title,
            }));
            remember!(tx, actor, idem, 201u16, &item);
            item
        });
        Ok(item)
    }

    /// The agenda item with this id, if any.
    pub async fn get_agenda_item(&self, id: &str) -> Result<Option<AgendaItem>> {
        let sql = format!("SELECT {ITEM_COLUMNS} FROM agenda_items WHERE id = $1");
        let row: Option<ItemRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?;
        Ok(row.map(AgendaItem::from))
    }

    /// A meeting's agenda, in order.
    pub async fn list_agenda(&self, meeting_id: &str) -> Result<Vec<AgendaItem>> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM agenda_items WHERE meeting_id = $1 ORDER BY position, id"
        );
        let rows: Vec<ItemRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(meeting_id)
            .fetch_all(p)
            .await)?;
        Ok(rows.into_iter().map(AgendaItem::from).collect())
    }

    /// Changes an agenda item (meeting not frozen).
    pub async fn update_agenda_item(
        &self,
        actor: &str,
        id: &str,
        patch: AgendaItemPatch,
    ) -> Result<AgendaItem> {
        let sql = format!("SELECT {ITEM_COLUMNS} FROM agenda_items WHERE id = $1");
        let item = in_tx!(self, tx => {
            let row: Option<ItemRow> = sqlx::query_as(&sql)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let mut item = AgendaItem::from(row.ok_or_else(|| Error::NotFound {
                what: "agenda item",
                id: id.to_owned(),
            })?);
            require_open_meeting!(tx, item.meeting_id.as_str());
            if let Some(t) = &patch.title {
                item.title = required_text(t, "agenda item title", MAX_TEXT)?;
            }
            if let Some(p) = &patch.presenter {
                item.presenter = optional_text(p, "presenter", MAX_TEXT)?;
            }
            if let Some(d) = patch.duration_minutes {
                check_duration(d)?;
                item.duration_minutes = d;
            }
            item.updated_at = now_unix();
            sqlx::query(
                "UPDATE agenda_items SET title = $1, presenter = $2, duration_minutes = $3, \
                 updated_at = $4 WHERE id = $5",
            )
            .bind(&item.title)
            .bind(&item.presenter)
            .bind(item.duration_minutes)
            .bind(item.updated_at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "agenda.update", "agenda_item", id, json!({
                "title": item.title, "presenter": item.presenter,
                "duration_minutes": item.duration_minutes,
            }));
            item
        });
        Ok(item)
    }

    /// Removes an agenda item with its documents (their rows; contents stay
    /// on disk, they may be shared), and closes the gap in the order.
    pub async fn delete_agenda_item(&self, actor: &str, id: &str) -> Result<AgendaItem> {
        let sql = format!("SELECT {ITEM_COLUMNS} FROM agenda_items WHERE id = $1");
        let item = in_tx!(self, tx => {
            let row: Option<ItemRow> = sqlx::query_as(&sql)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let item = AgendaItem::from(row.ok_or_else(|| Error::NotFound {
                what: "agenda item",
                id: id.to_owned(),
            })?);
            require_open_meeting!(tx, item.meeting_id.as_str());
            let docs: Vec<String> =
                sqlx::query_scalar("SELECT id FROM documents WHERE agenda_item_id = $1")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            for d in &docs {
                sqlx::query("DELETE FROM document_access WHERE document_id = $1")
                    .bind(d)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM document_versions WHERE document_id = $1")
                    .bind(d)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM documents WHERE id = $1")
                    .bind(d)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM agenda_items WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let rest: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM agenda_items WHERE meeting_id = $1 ORDER BY position, id",
            )
            .bind(&item.meeting_id)
            .fetch_all(&mut *tx)
            .await?;
            for (i, rid) in rest.iter().enumerate() {
                sqlx::query("UPDATE agenda_items SET position = $1 WHERE id = $2")
                    .bind(i as i64 + 1)
                    .bind(rid)
                    .execute(&mut *tx)
                    .await?;
            }
            audit!(tx, actor, "agenda.delete", "agenda_item", id, json!({
                "meeting_id": item.meeting_id, "title": item.title, "documents": docs,
            }));
            item
        });
        Ok(item)
    }

    /// Puts a meeting's agenda in the order of `item_ids`, which must name
    /// every item of the meeting exactly once. One transaction.
    pub async fn reorder_agenda(
        &self,
        actor: &str,
        meeting_id: &str,
        item_ids: &[String],
    ) -> Result<Vec<AgendaItem>> {
        in_tx!(self, tx => {
            require_open_meeting!(tx, meeting_id);
            let mut current: Vec<String> =
                sqlx::query_scalar("SELECT id FROM agenda_items WHERE meeting_id = $1")
                    .bind(meeting_id)
                    .fetch_all(&mut *tx)
                    .await?;
            let mut wanted: Vec<String> = item_ids.to_vec();
            current.sort();
            wanted.sort();
            if current != wanted {
                return Err(Error::InvalidInput(
                    "item_ids must list every agenda item of the meeting exactly once".into(),
                ));
            }
            let now = now_unix();
            for (i, id) in item_ids.iter().enumerate() {
                sqlx::query("UPDATE agenda_items SET position = $1, updated_at = $2 WHERE id = $3")
                    .bind(i as i64 + 1)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            audit!(tx, actor, "agenda.reorder", "meeting", meeting_id,
                json!({"item_ids": item_ids}));
        });
        self.list_agenda(meeting_id).await
    }

    /// Creates a document of an agenda item with its first version. The
    /// content is moved into `blobs` first (content-addressed, so a failed
    /// database write leaves at most an unreferenced file), then the rows are
    /// written in one transaction.
    pub async fn add_document(
        &self,
        actor: &str,
        new: NewDocument,
        upload: Upload,
        content: StagedBlob,
        blobs: &Blobs,
    ) -> Result<Document> {
        self.add_document_idempotent(actor, new, upload, content, blobs, None)
            .await
    }

    /// [`Store::add_document`], storing the answer (201 and the document)
    /// under `idem` in the transaction that writes the rows (see
    /// [`Store::add_agenda_item_idempotent`]).
    pub async fn add_document_idempotent(
        &self,
        actor: &str,
        new: NewDocument,
        upload: Upload,
        content: StagedBlob,
        blobs: &Blobs,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Document> {
        let title = required_text(&new.title, "document title", MAX_TEXT)?;
        let item = self
            .get_agenda_item(&new.agenda_item_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "agenda item",
                id: new.agenda_item_id.clone(),
            })?;
        let mut named = new.participant_ids.clone();
        named.sort();
        named.dedup();
        if new.access != DocumentAccess::Named {
            named.clear();
        }
        let sha256 = content.sha256.clone();
        let size = i64::try_from(content.size)
            .map_err(|_| Error::InvalidInput("the file is too large".into()))?;
        let id = new_id();
        let now = now_unix();
        let filename = upload
            .file_type
            .fix_extension(&clean_filename(&upload.filename));
        let file_type = upload.file_type;
        let content_type = file_type.mime().to_owned();
        let report_value = upload.signature_report;
        let report = report_value.to_string();
        // Checks that do not need the content come first, so a refused
        // upload stores nothing.
        in_tx!(self, tx => {
            require_open_meeting!(tx, item.meeting_id.as_str());
            for pid in &named {
                let of: Option<String> =
                    sqlx::query_scalar("SELECT meeting_id FROM participants WHERE id = $1")
                        .bind(pid)
                        .fetch_optional(&mut *tx)
                        .await?;
                if of.as_deref() != Some(item.meeting_id.as_str()) {
                    return Err(Error::InvalidInput(format!(
                        "participant {pid} is not a participant of this meeting"
                    )));
                }
            }
        });
        blobs.commit(content).await?;
        in_tx!(self, tx => {
            require_open_meeting!(tx, item.meeting_id.as_str());
            sqlx::query(
                "INSERT INTO documents (id, meeting_id, agenda_item_id, title, access, \
                 current_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
            )
            .bind(&id)
            .bind(&item.meeting_id)
            .bind(&item.id)
            .bind(&title)
            .bind(new.access.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            grant_access!(tx, &id, &named);
            insert_version!(tx, &id, 1, &sha256, size, &filename, &content_type,
                actor, now, &report, file_type);
            audit!(tx, actor, "document.create", "document", &id, json!({
                "meeting_id": item.meeting_id, "agenda_item_id": item.id, "title": title,
                "access": new.access, "participant_ids": named, "version": 1,
                "sha256": sha256, "size": size, "filename": filename, "file_type": file_type,
            }));
            if idem.is_some() {
                // The answer as get_document will read it back.
                let doc = Document {
                    id: id.clone(),
                    meeting_id: item.meeting_id.clone(),
                    agenda_item_id: item.id.clone(),
                    title: title.clone(),
                    access: new.access,
                    participant_ids: named.clone(),
                    current_version: 1,
                    versions: vec![DocumentVersion {
                        version: 1,
                        sha256: sha256.clone(),
                        size,
                        filename: filename.clone(),
                        content_type: content_type.clone(),
                        file_type: Some(file_type),
                        uploaded_by: actor.to_owned(),
                        uploaded_at: now,
                        signature_report: report_value.clone(),
                    }],
                    created_at: now,
                    updated_at: now,
                    withdrawn_at: None,
                    withdrawn_by: None,
                    withdrawn_reason: None,
                    replaced_by: None,
                    replaces: None,
                };
                remember!(tx, actor, idem, 201u16, &doc);
            }
        });
        self.get_document(&id).await?.ok_or(Error::NotFound {
            what: "document",
            id,
        })
    }

    /// Adds a new version to a document (meeting not frozen).
    pub async fn add_document_version(
        &self,
        actor: &str,
        document_id: &str,
        upload: Upload,
        content: StagedBlob,
        blobs: &Blobs,
    ) -> Result<Document> {
        let doc = self
            .get_document(document_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "document",
                id: document_id.to_owned(),
            })?;
        let sha256 = content.sha256.clone();
        let size = i64::try_from(content.size)
            .map_err(|_| Error::InvalidInput("the file is too large".into()))?;
        let now = now_unix();
        let filename = upload
            .file_type
            .fix_extension(&clean_filename(&upload.filename));
        let file_type = upload.file_type;
        let content_type = file_type.mime().to_owned();
        let report = upload.signature_report.to_string();
        if doc.is_withdrawn() {
            return Err(withdrawn(document_id));
        }
        in_tx!(self, tx => {
            require_open_meeting!(tx, doc.meeting_id.as_str());
        });
        blobs.commit(content).await?;
        in_tx!(self, tx => {
            require_open_meeting!(tx, doc.meeting_id.as_str());
            let last: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(version), 0) FROM document_versions WHERE document_id = $1",
            )
            .bind(document_id)
            .fetch_one(&mut *tx)
            .await?;
            require_in_force!(tx, document_id);
            let version = last + 1;
            insert_version!(tx, document_id, version, &sha256, size, &filename, &content_type,
                actor, now, &report, file_type);
            sqlx::query("UPDATE documents SET current_version = $1, updated_at = $2 WHERE id = $3")
                .bind(version)
                .bind(now)
                .bind(document_id)
                .execute(&mut *tx)
                .await?;
            audit!(tx, actor, "document.version", "document", document_id, json!({
                "version": version, "sha256": sha256, "size": size, "filename": filename,
                "file_type": file_type,
            }));
        });
        self.get_document(document_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "document",
                id: document_id.to_owned(),
            })
    }

    /// Withdraws a document (meeting not frozen): it stays in the record,
    /// marked with who, when and why. `reason` is required.
    pub async fn withdraw_document(
        &self,
        actor: &str,
        document_id: &str,
        reason: &str,
    ) -> Result<Document> {
        let reason = required_text(reason, "reason", MAX_REASON)?;
        let doc = self
            .get_document(document_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "document",
                id: document_id.to_owned(),
            })?;
        let now = now_unix();
        in_tx!(self, tx => {
            require_open_meeting!(tx, doc.meeting_id.as_str());
            require_in_force!(tx, document_id);
            sqlx::query(
                "UPDATE documents SET withdrawn_at = $1, withdrawn_by = $2, withdrawn_reason = $3, \
                 updated_at = $1 WHERE id = $4",
            )
            .bind(now)
            .bind(actor)
            .bind(&reason)
            .bind(document_id)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "document.withdraw", "document", document_id, json!({
                "meeting_id": doc.meeting_id, "agenda_item_id": doc.agenda_item_id,
                "title": doc.title, "reason": reason,
            }));
        });
        self.get_document(document_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "document",
                id: document_id.to_owned(),
            })
    }

    /// Replaces a document by a new one (same agenda item, same access,
    /// the replacement's title or the old title, this file as its first
    /// version) and withdraws the old one, marked `replaced_by` the new
    /// one, in one transaction. The reason may be empty. Returns the new
    /// document.
    pub async fn replace_document(
        &self,
        actor: &str,
        document_id: &str,
        replacement: Replacement,
        upload: Upload,
        content: StagedBlob,
        blobs: &Blobs,
    ) -> Result<Document> {
        let reason = optional_text(&replacement.reason, "reason", MAX_REASON)?;
        let old = self
            .get_document(document_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "document",
                id: document_id.to_owned(),
            })?;
        if old.is_withdrawn() {
            return Err(withdrawn(document_id));
        }
        let title = match replacement.title.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => required_text(t, "document title", MAX_TEXT)?,
            _ => old.title.clone(),
        };
        let sha256 = content.sha256.clone();
        let size = i64::try_from(content.size)
            .map_err(|_| Error::InvalidInput("the file is too large".into()))?;
        let id = new_id();
        let now = now_unix();
        let filename = upload
            .file_type
            .fix_extension(&clean_filename(&upload.filename));
        let file_type = upload.file_type;
        let content_type = file_type.mime().to_owned();
        let report = upload.signature_report.to_string();
        in_tx!(self, tx => {
            require_open_meeting!(tx, old.meeting_id.as_str());
        });
        blobs.commit(content).await?;
        in_tx!(self, tx => {
            require_open_meeting!(tx, old.meeting_id.as_str());
            require_in_force!(tx, document_id);
            sqlx::query(
                "INSERT INTO documents (id, meeting_id, agenda_item_id, title, access, \
                 current_version, created_at, updated_at, replaces) \
                 VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7)",
            )
            .bind(&id)
            .bind(&old.meeting_id)
            .bind(&old.agenda_item_id)
            .bind(&title)
            .bind(old.access.as_str())
            .bind(now)
            .bind(document_id)
            .execute(&mut *tx)
            .await?;
            grant_access!(tx, &id, &old.participant_ids);
            insert_version!(tx, &id, 1, &sha256, size, &filename, &content_type,
                actor, now, &report, file_type);
            sqlx::query(
                "UPDATE documents SET withdrawn_at = $1, withdrawn_by = $2, withdrawn_reason = $3, \
                 replaced_by = $4, updated_at = $1 WHERE id = $5",
            )
            .bind(now)
            .bind(actor)
            .bind(&reason)
            .bind(&id)
            .bind(document_id)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "document.create", "document", &id, json!({
                "meeting_id": old.meeting_id, "agenda_item_id": old.agenda_item_id,
                "title": title, "access": old.access, "participant_ids": old.participant_ids,
                "version": 1, "sha256": sha256, "size": size, "filename": filename,
                "file_type": file_type, "replaces": document_id,
            }));
            audit!(tx, actor, "document.replace", "document", document_id, json!({
                "meeting_id": old.meeting_id, "agenda_item_id": old.agenda_item_id,
                "title": old.title, "replaced_by": id, "reason": reason,
            }));
        });
        self.get_document(&id).await?.ok_or(Error::NotFound {
            what: "document",
            id,
        })
    }

    /// Every content hash a document version references (to clean the
    /// content store of unreferenced files, see
    /// [`Blobs::clean_leftovers`]).
    pub async fn referenced_contents(&self) -> Result<std::collections::HashSet<String>> {
        let rows: Vec<String> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT sha256 FROM document_versions UNION SELECT sha256 FROM opinion_documents",
        )
        .fetch_all(p)
        .await)?;
        Ok(rows.into_iter().collect())
    }

    /// The document with this id, with its versions and named readers.
    pub async fn get_document(&self, id: &str) -> Result<Option<Document>> {
        let sql = format!("SELECT {DOC_COLUMNS} FROM documents WHERE id = $1");
        let row: Option<DocRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?;
        match row {
            None => Ok(None),
            Some(r) => Ok(self.assemble(vec![r]).await?.pop()),
        }
    }

    /// The documents of an agenda item, oldest first.
    pub async fn list_documents(&self, agenda_item_id: &str) -> Result<Vec<Document>> {
        let sql = format!(
            "SELECT {DOC_COLUMNS} FROM documents WHERE agenda_item_id = $1 ORDER BY created_at, id"
        );
        let rows: Vec<DocRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(agenda_item_id)
            .fetch_all(p)
            .await)?;
        self.assemble(rows).await
    }

    /// Documents with their versions and access lists.
    async fn assemble(&self, rows: Vec<DocRow>) -> Result<Vec<Document>> {
        let mut out = Vec::with_capacity(rows.len());
        let vsql = format!(
            "SELECT {VERSION_COLUMNS} FROM document_versions WHERE document_id = $1 ORDER BY version"
        );
        for r in rows {
            let versions: Vec<VersionRow> = with_pool!(self, p => sqlx::query_as(&vsql)
                .bind(&r.id)
                .fetch_all(p)
                .await)?;
            let access: Vec<AccessRow> = with_pool!(self, p => sqlx::query_as(
                "SELECT document_id, participant_id FROM document_access WHERE document_id = $1 \
                 ORDER BY participant_id",
            )
            .bind(&r.id)
            .fetch_all(p)
            .await)?;
            out.push(Document {
                access: parse_stored(&r.access, "document access")?,
                participant_ids: access
                    .into_iter()
                    .filter(|a| a.document_id == r.id)
                    .map(|a| a.participant_id)
                    .collect(),
                versions: versions
                    .into_iter()
                    .map(DocumentVersion::try_from)
                    .collect::<Result<_>>()?,
                id: r.id,
                meeting_id: r.meeting_id,
                agenda_item_id: r.agenda_item_id,
                title: r.title,
                current_version: r.current_version,
                created_at: r.created_at,
                updated_at: r.updated_at,
                withdrawn_at: r.withdrawn_at,
                withdrawn_by: r.withdrawn_by,
                withdrawn_reason: r.withdrawn_reason,
                replaced_by: r.replaced_by,
                replaces: r.replaces,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_and_types_are_cleaned() {
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\x\\Tờ trình.pdf"), "Tờ trình.pdf");
        assert_eq!(clean_filename("a\r\nb.pdf"), "ab.pdf");
        assert_eq!(clean_filename(""), "document");
        assert_eq!(clean_filename(".."), "document");
    }
}
