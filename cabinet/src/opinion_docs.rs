//! Documents attached to a written opinion request (issue 21: "the
//! secretariat sends a question with documents"): the content lives in the
//! content store by SHA-256, as a meeting document's does, and its format
//! was read from its bytes by the caller (only the accepted formats).
//! Attached while the request is open; kept with it afterwards.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::blobs::{Blobs, StagedBlob};
use crate::{new_id, now_unix, optional_text, Error, FileType, PollStatus, Pool, Result, Store};

/// Most documents on one request.
pub const MAX_OPINION_DOCUMENTS: usize = 50;

/// A document of a written opinion request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpinionDocument {
    pub id: String,
    pub request_id: String,
    pub title: String,
    pub filename: String,
    /// The format read from its bytes.
    pub file_type: FileType,
    /// Its media type (from `file_type`).
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    request_id: String,
    title: String,
    filename: String,
    file_type: String,
    size: i64,
    sha256: String,
    created_by: String,
    created_at: i64,
}

impl TryFrom<Row> for OpinionDocument {
    type Error = Error;
    fn try_from(r: Row) -> Result<OpinionDocument> {
        let file_type: FileType = crate::parse_stored(&r.file_type, "document type")?;
        Ok(OpinionDocument {
            content_type: file_type.mime().to_owned(),
            file_type,
            id: r.id,
            request_id: r.request_id,
            title: r.title,
            filename: r.filename,
            size: r.size,
            sha256: r.sha256,
            created_by: r.created_by,
            created_at: r.created_at,
        })
    }
}

const COLUMNS: &str =
    "id, request_id, title, filename, file_type, size, sha256, created_by, created_at";

impl Store {
    /// Attaches a document to request `request_id`: `content` is moved into
    /// `blobs`, then the row is written. Refused: an unknown request
    /// ([`Error::NotFound`]), a closed one or one past its deadline
    /// ([`Error::PollClosed`]), more than [`MAX_OPINION_DOCUMENTS`], a title
    /// over 500 characters. The title defaults to the file name. Audited
    /// `opinion.document`.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_opinion_document(
        &self,
        actor: &str,
        request_id: &str,
        title: &str,
        filename: &str,
        file_type: FileType,
        content: StagedBlob,
        blobs: &Blobs,
    ) -> Result<OpinionDocument> {
        let title = optional_text(title, "document title", 500)?;
        if title.contains('\0') {
            return Err(Error::InvalidInput(
                "the document title contains a NUL character".into(),
            ));
        }
        let filename = file_type.fix_extension(&crate::agenda::clean_filename(filename));
        let title = if title.is_empty() {
            filename.clone()
        } else {
            title
        };
        let size = i64::try_from(content.size)
            .map_err(|_| Error::InvalidInput("the file is too large".into()))?;
        let check = |req: Option<crate::OpinionRequest>, n: i64| -> Result<()> {
            let Some(req) = req else {
                return Err(Error::NotFound {
                    what: "opinion request",
                    id: request_id.to_owned(),
                });
            };
            if req.status != PollStatus::Open || now_unix() >= req.deadline {
                return Err(Error::PollClosed(request_id.to_owned()));
            }
            if usize::try_from(n).unwrap_or(usize::MAX) >= MAX_OPINION_DOCUMENTS {
                return Err(Error::InvalidInput(format!(
                    "a request has at most {MAX_OPINION_DOCUMENTS} documents"
                )));
            }
            Ok(())
        };
        // Checked before the content is kept, and again in the transaction.
        let n: i64 = with_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM opinion_documents WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_one(p)
        .await)?;
        check(self.get_opinion_request(request_id).await?, n)?;
        let sha256 = content.sha256.clone();
        blobs.commit(content).await?;
        let doc = OpinionDocument {
            id: new_id(),
            request_id: request_id.to_owned(),
            title,
            filename,
            file_type,
            content_type: file_type.mime().to_owned(),
            size,
            sha256,
            created_by: actor.to_owned(),
            created_at: now_unix(),
        };
        in_tx!(self, tx => {
            // Locks the request's row against a concurrent close (PostgreSQL).
            let open = sqlx::query(
                "UPDATE opinion_requests SET status = 'open' WHERE id = $1 AND status = 'open'",
            )
            .bind(request_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if open == 0 {
                return Err(Error::PollClosed(request_id.to_owned()));
            }
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM opinion_documents WHERE request_id = $1",
            )
            .bind(request_id)
            .fetch_one(&mut *tx)
            .await?;
            if usize::try_from(n).unwrap_or(usize::MAX) >= MAX_OPINION_DOCUMENTS {
                return Err(Error::InvalidInput(format!(
                    "a request has at most {MAX_OPINION_DOCUMENTS} documents"
                )));
            }
            sqlx::query(
                "INSERT INTO opinion_documents (id, request_id, title, filename, file_type, size, \
                 sha256, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&doc.id)
            .bind(&doc.request_id)
            .bind(&doc.title)
            .bind(&doc.filename)
            .bind(doc.file_type.as_str())
            .bind(doc.size)
            .bind(&doc.sha256)
            .bind(&doc.created_by)
            .bind(doc.created_at)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "opinion.document", "opinion_request", request_id, json!({
                "document_id": doc.id, "title": doc.title, "filename": doc.filename,
                "file_type": doc.file_type, "size": doc.size, "sha256": doc.sha256,
            }));
        });
        Ok(doc)
    }

    /// The documents of request `request_id`, oldest first.
    pub async fn opinion_documents(&self, request_id: &str) -> Result<Vec<OpinionDocument>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM opinion_documents WHERE request_id = $1 \
             ORDER BY created_at, id"
        );
        let rows: Vec<Row> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(request_id).fetch_all(p).await)?;
        rows.into_iter().map(OpinionDocument::try_from).collect()
    }

    /// The opinion document `id`, if any.
    pub async fn opinion_document(&self, id: &str) -> Result<Option<OpinionDocument>> {
        let sql = format!("SELECT {COLUMNS} FROM opinion_documents WHERE id = $1");
        let row: Option<Row> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?;
        row.map(OpinionDocument::try_from).transpose()
    }
}
