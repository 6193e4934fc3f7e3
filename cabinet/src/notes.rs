//! Notes and comments on a page of a document (migration 0020).
//!
//! A [`NoteKind::Note`] is private to its author (an invitation) and kept
//! after the meeting; a [`NoteKind::Comment`] is seen by the committee and
//! the secretariat. Both are anchored by the page of the version the author
//! saw; [`Note::stale`] says the document has a newer version since (the
//! page may have changed). Who may write and read what is decided by the
//! caller (signaling's REST API); this module stores, reads only what the
//! given reader may see, and changes only its author's own.

use serde::{Deserialize, Serialize};

use crate::{new_id, now_unix, required_text, Error, Pool, Result, Store};

/// Longest note or comment, in characters.
pub const MAX_NOTE_TEXT: usize = 4_000;
/// Highest page a note may name.
pub const MAX_NOTE_PAGE: i64 = 100_000;

/// What a note is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// Private to its author.
    Note,
    /// Seen by the committee and the secretariat.
    Comment,
}

impl NoteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Note => "note",
            NoteKind::Comment => "comment",
        }
    }
}

impl std::str::FromStr for NoteKind {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<NoteKind, ()> {
        match s {
            "note" => Ok(NoteKind::Note),
            "comment" => Ok(NoteKind::Comment),
            _ => Err(()),
        }
    }
}

/// A note or comment as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub id: String,
    pub document_id: String,
    pub meeting_id: String,
    pub page: i64,
    /// The document's version the page belongs to.
    pub version: i64,
    pub kind: NoteKind,
    /// An actor, as in the audit log.
    #[serde(skip)]
    pub author: String,
    pub author_name: String,
    pub text: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The document has a newer version than `version`: the page may have
    /// changed.
    pub stale: bool,
    /// The reader wrote it.
    pub mine: bool,
}

/// What [`Store::add_note`] needs.
#[derive(Debug, Clone)]
pub struct NewNote {
    pub document_id: String,
    pub page: i64,
    /// The version the author saw; the current one when `None`.
    pub version: Option<i64>,
    pub kind: NoteKind,
    pub text: String,
}

/// Who reads: the actor (its own notes) and whether it sees comments.
#[derive(Debug, Clone)]
pub struct NoteReader<'a> {
    pub actor: &'a str,
    pub sees_comments: bool,
}

type Row = (
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
);

const COLUMNS: &str = "n.id, n.document_id, n.meeting_id, n.page, n.version, n.kind, n.author, \
     n.author_name, n.text, n.created_at, n.updated_at, d.current_version";

fn from_row(r: Row, reader: &str) -> Result<Note> {
    let kind =
        r.5.parse()
            .map_err(|()| Error::Corrupt(format!("note kind {:?}", r.5)))?;
    Ok(Note {
        mine: r.6 == reader,
        stale: r.4 < r.11,
        id: r.0,
        document_id: r.1,
        meeting_id: r.2,
        page: r.3,
        version: r.4,
        kind,
        author: r.6,
        author_name: r.7,
        text: r.8,
        created_at: r.9,
        updated_at: r.10,
    })
}

fn checked_text(text: &str) -> Result<String> {
    if text.chars().count() > MAX_NOTE_TEXT {
        return Err(Error::InvalidInput(format!(
            "the note is longer than {MAX_NOTE_TEXT} characters"
        )));
    }
    let t = required_text(text, "note", MAX_NOTE_TEXT)?;
    if t.contains('\0') {
        return Err(Error::InvalidInput(
            "the note contains a NUL character".into(),
        ));
    }
    Ok(t)
}

impl Store {
    /// Adds a note of `author` (named `author_name`) on a page of a
    /// document: the page 1 to [`MAX_NOTE_PAGE`], the version one of the
    /// document's, the text 1 to [`MAX_NOTE_TEXT`] characters.
    pub async fn add_note(&self, author: &str, author_name: &str, new: &NewNote) -> Result<Note> {
        let text = checked_text(&new.text)?;
        if !(1..=MAX_NOTE_PAGE).contains(&new.page) {
            return Err(Error::InvalidInput(format!(
                "page must be 1 to {MAX_NOTE_PAGE}"
            )));
        }
        let doc: Option<(String, i64)> = with_pool!(self, p => sqlx::query_as(
            "SELECT meeting_id, current_version FROM documents WHERE id = $1",
        )
        .bind(&new.document_id)
        .fetch_optional(p)
        .await)?;
        let Some((meeting_id, current)) = doc else {
            return Err(Error::NotFound {
                what: "document",
                id: new.document_id.clone(),
            });
        };
        let version = new.version.unwrap_or(current);
        if version < 1 || version > current {
            return Err(Error::InvalidInput(format!(
                "the document has no version {version}"
            )));
        }
        let id = new_id();
        let now = now_unix();
        with_pool!(self, p => sqlx::query(
            "INSERT INTO document_notes (id, document_id, meeting_id, page, version, kind, author, \
             author_name, text, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&id)
        .bind(&new.document_id)
        .bind(&meeting_id)
        .bind(new.page)
        .bind(version)
        .bind(new.kind.as_str())
        .bind(author)
        .bind(author_name)
        .bind(&text)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(Note {
            id,
            document_id: new.document_id.clone(),
            meeting_id,
            page: new.page,
            version,
            kind: new.kind,
            author: author.to_owned(),
            author_name: author_name.to_owned(),
            text,
            created_at: now,
            updated_at: now,
            stale: version < current,
            mine: true,
        })
    }

    /// The notes of a document that `reader` may see: its own, and the
    /// comments when it sees comments; by page, then time.
    pub async fn list_notes(
        &self,
        document_id: &str,
        reader: &NoteReader<'_>,
    ) -> Result<Vec<Note>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM document_notes n JOIN documents d ON d.id = n.document_id \
             WHERE n.document_id = $1 AND (n.author = $2 OR (n.kind = 'comment' AND $3)) \
             ORDER BY n.page, n.created_at, n.id"
        );
        let rows: Vec<Row> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(document_id)
            .bind(reader.actor)
            .bind(reader.sees_comments)
            .fetch_all(p)
            .await)?;
        rows.into_iter()
            .map(|r| from_row(r, reader.actor))
            .collect()
    }

    /// Every note and comment `author` wrote in a meeting (for its export),
    /// by document, page and time.
    pub async fn notes_of_author(
        &self,
        meeting_id: &str,
        author: &str,
    ) -> Result<Vec<(Note, String)>> {
        let sql = format!(
            "SELECT {COLUMNS}, d.title FROM document_notes n JOIN documents d ON d.id = n.document_id \
             WHERE n.meeting_id = $1 AND n.author = $2 \
             ORDER BY d.title, n.document_id, n.page, n.created_at, n.id"
        );
        type TitledRow = (
            String,
            String,
            String,
            i64,
            i64,
            String,
            String,
            String,
            String,
            i64,
            i64,
            i64,
            String,
        );
        let rows: Vec<TitledRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(meeting_id)
            .bind(author)
            .fetch_all(p)
            .await)?;
        rows.into_iter()
            .map(|r| {
                let title = r.12.clone();
                let row: Row = (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11);
                Ok((from_row(row, author)?, title))
            })
            .collect()
    }

    /// One note, if `reader` may see it.
    pub async fn get_note(&self, id: &str, reader: &NoteReader<'_>) -> Result<Option<Note>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM document_notes n JOIN documents d ON d.id = n.document_id \
             WHERE n.id = $1 AND (n.author = $2 OR (n.kind = 'comment' AND $3))"
        );
        let row: Option<Row> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(id)
            .bind(reader.actor)
            .bind(reader.sees_comments)
            .fetch_optional(p)
            .await)?;
        row.map(|r| from_row(r, reader.actor)).transpose()
    }

    /// Changes the text of `author`'s own note; `None` if it has none so
    /// named (another's note is not found either).
    pub async fn update_note(&self, id: &str, author: &str, text: &str) -> Result<Option<Note>> {
        let text = checked_text(text)?;
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE document_notes SET text = $1, updated_at = $2 WHERE id = $3 AND author = $4",
        )
        .bind(&text)
        .bind(now_unix())
        .bind(id)
        .bind(author)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        if done == 0 {
            return Ok(None);
        }
        self.get_note(
            id,
            &NoteReader {
                actor: author,
                sees_comments: false,
            },
        )
        .await
    }

    /// Deletes `author`'s own note. Returns whether there was one.
    pub async fn delete_note(&self, id: &str, author: &str) -> Result<bool> {
        let done = with_pool!(self, p => sqlx::query(
            "DELETE FROM document_notes WHERE id = $1 AND author = $2",
        )
        .bind(id)
        .bind(author)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{pg_store, sqlite_store};

    /// A meeting with one item and one PDF document: its id.
    async fn a_document(store: &Store, dir: &std::path::Path) -> String {
        let m = store.create_meeting("Giao ban").await.expect("meeting").id;
        let item = store
            .add_agenda_item(
                "user:secretary",
                &m,
                crate::NewAgendaItem {
                    title: "Báo cáo".into(),
                    presenter: String::new(),
                    duration_minutes: None,
                },
            )
            .await
            .expect("item")
            .id;
        let blobs = crate::Blobs::new(dir.join("documents"));
        let mut w = blobs.stage().await.expect("stage");
        w.write(b"%PDF-1.7 a").await.expect("write");
        let staged = w.finish().await.expect("finish");
        store
            .add_document(
                "user:secretary",
                crate::NewDocument {
                    agenda_item_id: item,
                    title: "Báo cáo".into(),
                    access: crate::DocumentAccess::Everyone,
                    participant_ids: vec![],
                },
                crate::Upload {
                    filename: "a.pdf".into(),
                    file_type: crate::FileType::Pdf,
                    signature_report: serde_json::json!({"status": "not_checked"}),
                },
                staged,
                &blobs,
            )
            .await
            .expect("document")
            .id
    }

    async fn notes_are_private_and_comments_shared(store: Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let doc = a_document(&store, dir.path()).await;
        let a = "invitation:a";
        let b = "invitation:b";
        let note = store
            .add_note(
                a,
                "Ông A",
                &NewNote {
                    document_id: doc.clone(),
                    page: 3,
                    version: None,
                    kind: NoteKind::Note,
                    text: "  Số liệu trang 3 cần kiểm tra ".into(),
                },
            )
            .await
            .expect("note");
        assert_eq!(note.text, "Số liệu trang 3 cần kiểm tra");
        assert_eq!(note.version, 1);
        store
            .add_note(
                a,
                "Ông A",
                &NewNote {
                    document_id: doc.clone(),
                    page: 1,
                    version: Some(1),
                    kind: NoteKind::Comment,
                    text: "Đề nghị bổ sung".into(),
                },
            )
            .await
            .expect("comment");
        let reader = |actor, sees_comments| NoteReader {
            actor,
            sees_comments,
        };
        let mine = store
            .list_notes(&doc, &reader(a, false))
            .await
            .expect("list");
        assert_eq!(mine.len(), 2);
        assert!(mine.iter().all(|n| n.mine && !n.stale));
        // Another reader: never the private note; the comment only when it
        // sees comments.
        assert!(store
            .list_notes(&doc, &reader(b, false))
            .await
            .expect("b")
            .is_empty());
        let seen = store.list_notes(&doc, &reader(b, true)).await.expect("b");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].kind, NoteKind::Comment);
        assert!(!seen[0].mine);
        assert!(store
            .get_note(&note.id, &reader(b, true))
            .await
            .expect("get")
            .is_none());
        // Only the author changes or deletes it.
        assert!(store
            .update_note(&note.id, b, "x")
            .await
            .expect("upd")
            .is_none());
        assert!(!store.delete_note(&note.id, b).await.expect("del"));
        let u = store.update_note(&note.id, a, "Đã sửa").await.expect("upd");
        assert_eq!(u.map(|n| n.text), Some("Đã sửa".into()));
        // Bad input.
        for (page, version, text) in [(0, None, "x"), (1, Some(2), "x"), (1, None, "  ")] {
            let r = store
                .add_note(
                    a,
                    "Ông A",
                    &NewNote {
                        document_id: doc.clone(),
                        page,
                        version,
                        kind: NoteKind::Note,
                        text: text.into(),
                    },
                )
                .await;
            assert!(
                matches!(r, Err(Error::InvalidInput(_))),
                "{page} {version:?} {text:?}: {r:?}"
            );
        }
        let long = "ă".repeat(MAX_NOTE_TEXT + 1);
        assert!(matches!(
            store.update_note(&note.id, a, &long).await,
            Err(Error::InvalidInput(_))
        ));
        let export = store
            .notes_of_author(&note.meeting_id, a)
            .await
            .expect("export");
        assert_eq!(export.len(), 2);
        assert!(store
            .notes_of_author(&note.meeting_id, b)
            .await
            .expect("b")
            .is_empty());
        assert!(store.delete_note(&note.id, a).await.expect("del"));
    }

    #[tokio::test]
    async fn sqlite_notes() {
        let (store, _dir) = sqlite_store().await;
        notes_are_private_and_comments_shared(store).await;
    }

    #[tokio::test]
    async fn pg_notes() {
        let Some((store, _schema)) = pg_store().await else {
            return;
        };
        notes_are_private_and_comments_shared(store).await;
    }
}
