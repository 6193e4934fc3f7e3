//! The audit log: append-only, hash-chained with a key kept outside the
//! database, and checkpointed outside it.
//!
//! # What protects it
//! - **The chain.** Row `n`'s `hash` is HMAC-SHA256, under the audit key,
//!   of the JSON array `[prev_hash, seq, at, actor, action, target_type,
//!   target_id, detail]` ([`audit_hash_keyed`]); `prev_hash` is row `n-1`'s
//!   hash (64 zeros for row 1). Without the key nobody can write a row that
//!   verifies, so an edited, inserted or recomputed row shows.
//! - **The key** ([`AuditSeal`]) is a file in the data folder
//!   (`audit.key`, 32 random bytes as hex, created on first start, owner
//!   only), never in the database.
//! - **Checkpoints.** After every committed transaction that appended audit
//!   rows, the seal replaces `audit.checkpoint` in the data folder (written
//!   to a temporary file, synced, renamed): the count (`seq`) and hash of the
//!   newest row, the switch point `keyed_from`, the time, and an HMAC over
//!   them (not if the chain no longer holds the row the previous
//!   checkpoint names: that one is kept as evidence). Cutting rows off the
//!   end, or rewriting the chain (even with the
//!   plain algorithm and a consistent head row), disagrees with it. The
//!   server also writes one at start (an anchor, when the file is missing)
//!   and at shutdown.
//! - **Triggers** refuse `UPDATE` and `DELETE` (and on PostgreSQL
//!   `TRUNCATE`) on `audit_log` ([`Store::connect`] creates them on every
//!   start, so a dropped trigger comes back).
//!
//! # The older, plain chain
//! Before migration 0007, row hashes were plain SHA-256 of the same array
//! ([`audit_hash`]). The migration records the switch point in
//! `audit_head.keyed_from` (the first keyed `seq`); rows before it keep and
//! are checked with the plain algorithm, rows from it on use the key. The
//! first keyed row's `prev_hash` is the last plain row's hash, so the old
//! rows are covered by the keyed chain after them; the first checkpoint (the
//! anchor) records `keyed_from` outside the database, so moving the switch
//! point in the database shows as a checkpoint mismatch.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{AuditEntry, Error, Pool, Result, Store};

/// File name of the audit key in the data folder.
pub const AUDIT_KEY_FILE: &str = "audit.key";
/// File name of the newest signed checkpoint in the data folder.
pub const AUDIT_CHECKPOINT_FILE: &str = "audit.checkpoint";

/// The `prev_hash` of the first audit row.
pub(crate) const GENESIS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// The hashed fields of an audit row.
#[doc(hidden)]
pub struct AuditFields {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// JSON text, as stored.
    pub detail: String,
}

impl AuditFields {
    /// The canonical bytes that are hashed: a JSON array (unambiguous).
    fn canonical(&self, prev_hash: &str) -> String {
        serde_json::json!([
            prev_hash,
            self.seq,
            self.at,
            self.actor,
            self.action,
            self.target_type,
            self.target_id,
            self.detail,
        ])
        .to_string()
    }
}

/// The plain (pre-0007) hash of an audit row: lowercase hex SHA-256 over the
/// previous row's hash and the row's fields, encoded as a JSON array. It
/// is public knowledge: anyone can recompute it, which is why rows from
/// `keyed_from` on use [`audit_hash_keyed`].
#[doc(hidden)]
pub fn audit_hash(prev_hash: &str, row: &AuditFields) -> String {
    crate::blobs::hex(&Sha256::digest(row.canonical(prev_hash).as_bytes()))
}

/// The keyed hash of an audit row: lowercase hex HMAC-SHA256 under `key`
/// of the same JSON array as [`audit_hash`].
#[doc(hidden)]
pub fn audit_hash_keyed(key: &[u8], prev_hash: &str, row: &AuditFields) -> String {
    crate::blobs::hex(&hmac_sha256(key, row.canonical(prev_hash).as_bytes()))
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// A signed checkpoint: the chain's length and head at a moment, kept
/// outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheckpoint {
    /// The number of rows (the newest row's `seq`).
    pub seq: i64,
    /// The newest row's hash (64 zeros when there is none).
    pub hash: String,
    /// The first `seq` hashed with the key.
    pub keyed_from: i64,
    /// Unix seconds when it was written.
    pub at: i64,
    /// HMAC-SHA256 (hex) under the audit key of the fields above.
    pub mac: String,
}

impl AuditCheckpoint {
    fn message(seq: i64, hash: &str, keyed_from: i64, at: i64) -> String {
        serde_json::json!(["giaoban-audit-checkpoint-1", seq, hash, keyed_from, at]).to_string()
    }
}

/// The audit key and where checkpoints go. A server loads it from the data
/// folder ([`AuditSeal::load_or_create`]); [`Store::connect`] alone gets an
/// ephemeral one (a random key for this process, no checkpoint file), which
/// suits tests and nothing else.
pub struct AuditSeal {
    key: Vec<u8>,
    checkpoint: Option<PathBuf>,
    /// The `seq` and hash of the newest checkpoint written (serializes
    /// writers).
    written: tokio::sync::Mutex<(i64, String)>,
    /// The newest committed head handed in, so one checkpoint write covers
    /// every commit that queued behind the one being written.
    pending: std::sync::Mutex<Option<Head>>,
}

impl fmt::Debug for AuditSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSeal")
            .field("checkpoint", &self.checkpoint)
            .finish_non_exhaustive()
    }
}

impl AuditSeal {
    /// A random key for this process only and no checkpoint file.
    pub fn ephemeral() -> AuditSeal {
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        AuditSeal::new(key, None)
    }

    /// A seal with this key, checkpointing to `checkpoint` if given.
    pub fn new(key: Vec<u8>, checkpoint: Option<PathBuf>) -> AuditSeal {
        let written = checkpoint
            .as_deref()
            .and_then(|p| read_checkpoint(p).ok().flatten())
            .map_or((0, GENESIS_HASH.to_owned()), |c| (c.seq, c.hash));
        AuditSeal {
            key,
            checkpoint,
            written: tokio::sync::Mutex::new(written),
            pending: std::sync::Mutex::new(None),
        }
    }

    /// Loads `data_dir/audit.key`, creating it (owner only) with a fresh
    /// random key if it does not exist; checkpoints go to
    /// `data_dir/audit.checkpoint`.
    pub fn load_or_create(data_dir: &Path) -> Result<AuditSeal> {
        let path = data_dir.join(AUDIT_KEY_FILE);
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(&path) {
            Ok(mut f) => {
                use std::io::Write;
                let mut secret = [0u8; 32];
                rand::rng().fill_bytes(&mut secret);
                let text = crate::blobs::hex(&secret);
                f.write_all(text.as_bytes()).map_err(io)?;
                f.write_all(b"\n").map_err(io)?;
                f.sync_all().map_err(io)?;
                tracing::info!(path = %path.display(), "created a new audit key");
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Another process may be writing it right now.
                for _ in 0..50 {
                    match std::fs::metadata(&path) {
                        Ok(m) if m.len() > 0 => break,
                        _ => std::thread::sleep(std::time::Duration::from_millis(20)),
                    }
                }
            }
            Err(e) => return Err(io(e)),
        }
        let text = std::fs::read_to_string(&path).map_err(io)?;
        let key = unhex(text.trim())
            .filter(|k| k.len() >= 32)
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "audit key file {} must hold at least 32 bytes as hex",
                    path.display()
                ))
            })?;
        Ok(AuditSeal::new(
            key,
            Some(data_dir.join(AUDIT_CHECKPOINT_FILE)),
        ))
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    fn sign(&self, seq: i64, hash: &str, keyed_from: i64, at: i64) -> AuditCheckpoint {
        let msg = AuditCheckpoint::message(seq, hash, keyed_from, at);
        AuditCheckpoint {
            seq,
            hash: hash.to_owned(),
            keyed_from,
            at,
            mac: crate::blobs::hex(&hmac_sha256(&self.key, msg.as_bytes())),
        }
    }

    fn check(&self, c: &AuditCheckpoint) -> bool {
        let msg = AuditCheckpoint::message(c.seq, &c.hash, c.keyed_from, c.at);
        crate::blobs::hex(&hmac_sha256(&self.key, msg.as_bytes())) == c.mac
    }

    /// Writes a checkpoint of `head` unless a newer one was written (by
    /// this process; `force` writes it anyway when the file is missing).
    /// Before replacing a checkpoint, checks that the chain still holds the
    /// row it names (through `store`): if the log was cut and grown again
    /// past it, the old checkpoint is kept as evidence and this fails.
    async fn write_checkpoint(&self, store: &Store, head: &Head, force: bool) -> Result<()> {
        let Some(path) = &self.checkpoint else {
            return Ok(());
        };
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.as_ref().is_none_or(|n| n.seq < head.seq) {
                *p = Some(head.clone());
            }
        }
        let mut written = self.written.lock().await;
        let missing = !tokio::fs::try_exists(path).await.unwrap_or(false);
        if head.seq <= written.0 && !(force && missing) {
            return Ok(());
        }
        if !missing && written.0 > 0 {
            let sql = "SELECT hash FROM audit_log WHERE seq = $1";
            let hash: Option<String> = with_pool!(store, p => sqlx::query_scalar(sql)
                .bind(written.0)
                .fetch_optional(p)
                .await)?;
            if hash.as_deref() != Some(written.1.as_str()) {
                return Err(Error::Corrupt(format!(
                    "the audit log no longer holds row {} of the last checkpoint: it was \
                     rewritten below it; the checkpoint is kept (giaoban audit verify)",
                    written.0
                )));
            }
        }
        // Every head handed in was committed: write the newest.
        let head = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|n| n.seq >= head.seq)
            .unwrap_or_else(|| head.clone());
        let c = self.sign(head.seq, &head.hash, head.keyed_from, crate::now_unix());
        let text = serde_json::to_string(&c)
            .map_err(|e| Error::Corrupt(format!("audit checkpoint: {e}")))?;
        let tmp = path.with_extension("checkpoint.tmp");
        let io = |source| Error::Io {
            path: tmp.display().to_string(),
            source,
        };
        {
            use tokio::io::AsyncWriteExt;
            let mut f = tokio::fs::File::create(&tmp).await.map_err(io)?;
            f.write_all(text.as_bytes()).await.map_err(io)?;
            f.write_all(b"\n").await.map_err(io)?;
            f.sync_all().await.map_err(io)?;
        }
        tokio::fs::rename(&tmp, path).await.map_err(io)?;
        if head.seq > written.0 {
            *written = (head.seq, head.hash.clone());
        }
        Ok(())
    }
}

/// Reads a checkpoint file: `Ok(None)` when it does not exist.
fn read_checkpoint(path: &Path) -> std::result::Result<Option<AuditCheckpoint>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(text.trim())
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// The head of the chain as the database has it.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
    pub keyed_from: i64,
}

/// A transaction that knows the audit seal (what [`in_tx!`] binds), so
/// [`audit!`] can key its rows and the commit can checkpoint them.
#[doc(hidden)]
pub struct SealedTx<T> {
    pub inner: T,
    pub seal: Arc<AuditSeal>,
    /// The newest row this transaction appended, checkpointed after commit.
    pub head: Option<Head>,
}

impl<T: std::ops::Deref> std::ops::Deref for SealedTx<T> {
    type Target = T::Target;
    fn deref(&self) -> &T::Target {
        &self.inner
    }
}

impl<T: std::ops::DerefMut> std::ops::DerefMut for SealedTx<T> {
    fn deref_mut(&mut self) -> &mut T::Target {
        &mut self.inner
    }
}

/// What is wrong with the audit log, from [`Store::verify_audit_chain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditProblem {
    /// A row's fields or hash changed after it was written.
    Edited,
    /// Rows are missing from the middle of the chain.
    Missing,
    /// Rows are missing from the end (fewer than the head or the checkpoint say).
    Truncated,
    /// A keyed row's hash was recomputed with the public plain SHA-256.
    Recomputed,
    /// The chain (or the checkpoint) was sealed with another key than the
    /// one in the data folder.
    KeyMismatch,
    /// The chain disagrees with the signed checkpoint outside the database.
    CheckpointMismatch,
    /// The checkpoint file is missing or unreadable.
    CheckpointMissing,
}

impl AuditProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditProblem::Edited => "edited",
            AuditProblem::Missing => "missing",
            AuditProblem::Truncated => "truncated",
            AuditProblem::Recomputed => "recomputed",
            AuditProblem::KeyMismatch => "key_mismatch",
            AuditProblem::CheckpointMismatch => "checkpoint_mismatch",
            AuditProblem::CheckpointMissing => "checkpoint_missing",
        }
    }
}

impl fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first bad entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditBreak {
    /// The `seq` of the first bad (or first missing) row.
    pub seq: i64,
    /// Its id, when the row exists.
    pub id: Option<String>,
    pub problem: AuditProblem,
    /// A sentence for a person.
    pub detail: String,
}

impl fmt::Display for AuditBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at seq {}", self.problem, self.seq)?;
        if let Some(id) = &self.id {
            write!(f, " (id {id})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Which audit rows to list ([`Store::audit_page`]); every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Exactly this actor (`user:<id>`, `invitation:<id>`, `cli`...).
    pub actor: Option<String>,
    /// This action, or every action starting with it when it ends in `*`
    /// (`auth.*`).
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// At or after (Unix seconds).
    pub from: Option<i64>,
    /// Before (Unix seconds).
    pub to: Option<i64>,
    /// Only rows older than this `seq` (the cursor of the previous page).
    pub before_seq: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct LogRow {
    id: String,
    seq: i64,
    at: i64,
    actor: String,
    action: String,
    target_type: String,
    target_id: String,
    detail: String,
    prev_hash: String,
    hash: String,
}

const LOG_COLUMNS: &str =
    "id, seq, at, actor, action, target_type, target_id, detail, prev_hash, hash";

impl LogRow {
    fn fields(&self) -> AuditFields {
        AuditFields {
            seq: self.seq,
            at: self.at,
            actor: self.actor.clone(),
            action: self.action.clone(),
            target_type: self.target_type.clone(),
            target_id: self.target_id.clone(),
            detail: self.detail.clone(),
        }
    }
}

impl From<LogRow> for AuditEntry {
    fn from(r: LogRow) -> AuditEntry {
        AuditEntry {
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
            id: r.id,
            seq: r.seq,
            at: r.at,
            actor: r.actor,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            hash: r.hash,
        }
    }
}

/// Trigger statements that make `audit_log` append-only, per database.
const SQLITE_GUARDS: &[&str] = &[
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log \
     BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log \
     BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
];
const PG_GUARDS: &[&str] = &[
    "CREATE OR REPLACE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS \
     $$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
    "CREATE OR REPLACE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log \
     FOR EACH ROW EXECUTE FUNCTION audit_log_refuse()",
    "CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log \
     FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse()",
];

impl Store {
    /// This store with `seal` as its audit key and checkpoint file. Call it
    /// right after [`Store::connect`], before cloning the store or writing.
    pub fn with_audit_seal(mut self, seal: AuditSeal) -> Store {
        self.audit = Arc::new(seal);
        self
    }

    /// Creates the triggers that refuse UPDATE and DELETE (and TRUNCATE on
    /// PostgreSQL) on `audit_log`, if they are missing. Run at every connect.
    pub(crate) async fn install_audit_guards(&self) -> Result<()> {
        match &self.pool {
            Pool::Sqlite(p) => {
                for q in SQLITE_GUARDS {
                    sqlx::query(q).execute(p).await?;
                }
            }
            Pool::Postgres(p) => {
                // One starter at a time (several nodes, or a CLI command
                // beside the server); the lock ends with the transaction.
                let mut tx = p.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(7007)")
                    .execute(&mut *tx)
                    .await?;
                for q in PG_GUARDS {
                    sqlx::query(q).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Called by [`in_tx!`] after a commit that appended audit rows:
    /// checkpoints the newest one. A failure is logged, not returned (the
    /// write itself is committed; the next checkpoint covers it).
    #[doc(hidden)]
    pub async fn audit_committed(&self, head: Option<Head>) {
        if let Some(head) = head {
            if let Err(e) = self.audit.write_checkpoint(self, &head, false).await {
                tracing::error!(error = %e, "cannot write the audit checkpoint");
            }
        }
    }

    async fn audit_head(&self) -> Result<Head> {
        let (seq, hash, keyed_from): (i64, String, i64) = with_pool!(self, p => sqlx::query_as(
            "SELECT seq, hash, keyed_from FROM audit_head WHERE id = 1")
            .fetch_one(p)
            .await)?;
        Ok(Head {
            seq,
            hash,
            keyed_from,
        })
    }

    /// Writes a checkpoint of the chain's head as the database has it now,
    /// if it is newer than the last one or the file is missing (the server
    /// does this at start, anchoring a chain that has none, and at
    /// shutdown).
    pub async fn audit_checkpoint(&self) -> Result<()> {
        let head = self.audit_head().await?;
        self.audit.write_checkpoint(self, &head, true).await
    }

    /// Appends one audit event in its own transaction (for facts that are
    /// not part of another write: a login, a download, a join). `detail` is
    /// any JSON; never put secrets (passwords, tokens) in it.
    pub async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        target_type: &str,
        target_id: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        in_tx!(self, tx => {
            audit!(tx, actor, action, target_type, target_id, detail);
        });
        Ok(())
    }

    /// Every audit row about one target, oldest first.
    pub async fn audit_of(&self, target_type: &str, target_id: &str) -> Result<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {LOG_COLUMNS} FROM audit_log WHERE target_type = $1 AND target_id = $2 \
             ORDER BY seq"
        );
        let rows: Vec<LogRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(target_type)
            .bind(target_id)
            .fetch_all(p)
            .await)?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// The newest `limit` rows of the audit log, oldest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let sql = format!("SELECT {LOG_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT $1");
        let rows: Vec<LogRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(limit)
            .fetch_all(p)
            .await)?;
        let mut out: Vec<AuditEntry> = rows.into_iter().map(AuditEntry::from).collect();
        out.reverse();
        Ok(out)
    }

    /// Up to `limit` rows matching `filter`, newest first. The next page is
    /// the same filter with `before_seq` set to the last row's `seq`.
    pub async fn audit_page(&self, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditEntry>> {
        enum Arg<'a> {
            Text(&'a str),
            Int(i64),
        }
        let mut conds: Vec<(&str, Arg)> = Vec::new();
        let like;
        if let Some(a) = &filter.actor {
            conds.push(("actor = ", Arg::Text(a)));
        }
        if let Some(action) = &filter.action {
            match action.strip_suffix('*') {
                Some(prefix) => {
                    // LIKE with the prefix's own wildcards escaped.
                    like = format!(
                        "{}%",
                        prefix
                            .replace('\\', "\\\\")
                            .replace('%', "\\%")
                            .replace('_', "\\_")
                    );
                    conds.push(("action LIKE ", Arg::Text(&like)));
                }
                None => conds.push(("action = ", Arg::Text(action))),
            }
        }
        if let Some(t) = &filter.target_type {
            conds.push(("target_type = ", Arg::Text(t)));
        }
        if let Some(t) = &filter.target_id {
            conds.push(("target_id = ", Arg::Text(t)));
        }
        if let Some(t) = filter.from {
            conds.push(("at >= ", Arg::Int(t)));
        }
        if let Some(t) = filter.to {
            conds.push(("at < ", Arg::Int(t)));
        }
        if let Some(s) = filter.before_seq {
            conds.push(("seq < ", Arg::Int(s)));
        }
        let clauses: Vec<String> = conds
            .iter()
            .enumerate()
            .map(|(i, (c, _))| {
                let escape = if c.contains("LIKE") {
                    " ESCAPE '\\'"
                } else {
                    ""
                };
                format!("{c}${}{escape}", i + 1)
            })
            .collect();
        let args: Vec<Arg> = conds.into_iter().map(|(_, a)| a).collect();
        let limit_arg = args.len() + 1;
        let sql = format!(
            "SELECT {LOG_COLUMNS} FROM audit_log{}{} ORDER BY seq DESC LIMIT ${limit_arg}",
            if clauses.is_empty() { "" } else { " WHERE " },
            clauses.join(" AND ")
        );
        let rows: Vec<LogRow> = with_pool!(self, p => {
            let mut q = sqlx::query_as(&sql);
            for a in &args {
                q = match a {
                    Arg::Text(t) => q.bind(*t),
                    Arg::Int(i) => q.bind(*i),
                };
            }
            q.bind(limit.clamp(1, 10_000)).fetch_all(p).await
        })?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// Checks the whole audit log against the key and the checkpoint: every
    /// row's hash (plain before `keyed_from`, keyed from it on), each row
    /// pointing at its predecessor, no gap in the sequence, the head row,
    /// and the signed checkpoint outside the database. `Ok(None)`: intact;
    /// `Ok(Some(b))`: the first bad entry and what is wrong with it.
    pub async fn verify_audit_chain(&self) -> Result<Option<AuditBreak>> {
        let seal = self.audit.clone();
        let checkpoint = match &seal.checkpoint {
            None => None,
            Some(path) => match read_checkpoint(path) {
                Ok(c) => Some(c),
                Err(e) => {
                    return Ok(Some(AuditBreak {
                        seq: 0,
                        id: None,
                        problem: AuditProblem::CheckpointMissing,
                        detail: format!("the checkpoint cannot be read: {e}"),
                    }))
                }
            },
        };
        // Some(None): a checkpoint file is expected but does not exist.
        let checkpoint: Option<Option<AuditCheckpoint>> = checkpoint;
        if let Some(Some(c)) = &checkpoint {
            if !seal.check(c) {
                return Ok(Some(AuditBreak {
                    seq: c.seq,
                    id: None,
                    problem: AuditProblem::KeyMismatch,
                    detail: "the checkpoint's signature does not verify with this audit key \
                             (another key, or a forged checkpoint)"
                        .into(),
                }));
            }
        }
        let head = self.audit_head().await?;
        // The switch point outside the database wins over the one inside.
        let keyed_from = match &checkpoint {
            Some(Some(c)) => c.keyed_from,
            _ => head.keyed_from,
        };
        let sql = format!("SELECT {LOG_COLUMNS} FROM audit_log ORDER BY seq");
        let rows: Vec<LogRow> = with_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await)?;
        let keyed_ok = |prev: &str, r: &LogRow| {
            if r.seq >= keyed_from {
                audit_hash_keyed(seal.key(), prev, &r.fields()) == r.hash
            } else {
                audit_hash(prev, &r.fields()) == r.hash
            }
        };
        let mut prev = GENESIS_HASH.to_owned();
        let mut expected = 1;
        for (i, r) in rows.iter().enumerate() {
            let at = |problem, detail: String| {
                Ok(Some(AuditBreak {
                    seq: r.seq,
                    id: Some(r.id.clone()),
                    problem,
                    detail,
                }))
            };
            if r.seq != expected {
                return Ok(Some(AuditBreak {
                    seq: expected,
                    id: None,
                    problem: AuditProblem::Missing,
                    detail: format!(
                        "rows {expected} to {} are missing (the next row is seq {}, id {})",
                        r.seq - 1,
                        r.seq,
                        r.id
                    ),
                }));
            }
            if r.prev_hash == prev && keyed_ok(&prev, r) {
                prev = r.hash.clone();
                expected += 1;
                continue;
            }
            let keyed = r.seq >= keyed_from;
            if keyed && audit_hash(&r.prev_hash, &r.fields()) == r.hash {
                return at(
                    AuditProblem::Recomputed,
                    "its hash is the public plain SHA-256, not the keyed hash: the chain \
                     was recomputed from here"
                        .into(),
                );
            }
            if r.prev_hash != prev {
                return at(
                    AuditProblem::Edited,
                    "it does not point at the previous row's hash".into(),
                );
            }
            // The row links but its hash is wrong: edited, unless the next
            // row links to it and fails too (a chain sealed with another key).
            let next = rows.get(i + 1);
            if keyed && next.is_some_and(|n| n.prev_hash == r.hash && !keyed_ok(&n.prev_hash, n)) {
                return at(
                    AuditProblem::KeyMismatch,
                    "the chain links but its hashes do not verify with this audit key: \
                     it was recomputed with another key (or the key file was replaced)"
                        .into(),
                );
            }
            return at(
                AuditProblem::Edited,
                "its fields do not match its hash: the row was changed".into(),
            );
        }
        let last = expected - 1;
        let row_id = |seq: i64| {
            usize::try_from(seq - 1)
                .ok()
                .and_then(|i| rows.get(i))
                .map(|r| r.id.clone())
        };
        if head.seq > last {
            return Ok(Some(AuditBreak {
                seq: last + 1,
                id: None,
                problem: AuditProblem::Truncated,
                detail: format!(
                    "the chain ends at seq {last} but its head row counts {} rows",
                    head.seq
                ),
            }));
        }
        match &checkpoint {
            Some(Some(c)) => {
                if c.seq > last {
                    return Ok(Some(AuditBreak {
                        seq: last + 1,
                        id: None,
                        problem: AuditProblem::Truncated,
                        detail: format!(
                            "the chain ends at seq {last} but the signed checkpoint of {} \
                             counts {} rows",
                            format_time(c.at),
                            c.seq
                        ),
                    }));
                }
                let hash_at = if c.seq == 0 {
                    Some(GENESIS_HASH.to_owned())
                } else {
                    usize::try_from(c.seq - 1)
                        .ok()
                        .and_then(|i| rows.get(i))
                        .map(|r| r.hash.clone())
                };
                if hash_at.as_deref() != Some(c.hash.as_str()) {
                    return Ok(Some(AuditBreak {
                        seq: c.seq,
                        id: row_id(c.seq),
                        problem: AuditProblem::CheckpointMismatch,
                        detail: format!(
                            "row {} differs from the signed checkpoint of {}: the chain up \
                             to it was rewritten",
                            c.seq,
                            format_time(c.at)
                        ),
                    }));
                }
                if c.keyed_from != head.keyed_from {
                    let seq = c.keyed_from.min(head.keyed_from);
                    return Ok(Some(AuditBreak {
                        seq,
                        id: row_id(seq),
                        problem: AuditProblem::CheckpointMismatch,
                        detail: format!(
                            "the database says keyed hashes start at seq {}, the signed \
                             checkpoint says {}",
                            head.keyed_from, c.keyed_from
                        ),
                    }));
                }
            }
            Some(None) if last > 0 => {
                return Ok(Some(AuditBreak {
                    seq: last,
                    id: row_id(last),
                    problem: AuditProblem::CheckpointMissing,
                    detail: "the signed checkpoint file is missing from the data folder: \
                             truncation cannot be ruled out"
                        .into(),
                }));
            }
            _ => {}
        }
        if head.seq != last || head.hash != prev {
            return Ok(Some(AuditBreak {
                seq: head.seq,
                id: row_id(head.seq),
                problem: AuditProblem::Edited,
                detail: "the chain's head row does not match the last row".into(),
            }));
        }
        Ok(None)
    }
}

/// Unix seconds as RFC 3339 (UTC), for messages.
fn format_time(t: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        Err(_) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            crate::blobs::hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Case 6: a key longer than the block.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            crate::blobs::hex(&mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn key_file_created_once_and_reloaded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = AuditSeal::load_or_create(dir.path()).expect("create");
        let b = AuditSeal::load_or_create(dir.path()).expect("load");
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key().len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(AUDIT_KEY_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(AUDIT_KEY_FILE), "abcd\n").expect("write");
        assert!(
            AuditSeal::load_or_create(dir.path()).is_err(),
            "a short key is refused"
        );
    }

    #[test]
    fn checkpoints_are_signed() {
        let seal = AuditSeal::new(vec![7; 32], None);
        let c = seal.sign(3, "ab", 1, 100);
        assert!(seal.check(&c));
        let mut forged = c.clone();
        forged.seq = 2;
        assert!(!seal.check(&forged));
        assert!(!AuditSeal::new(vec![8; 32], None).check(&c));
    }

    /// The API asks one row more than a full page (1000) to know whether
    /// another page follows: the store must not cap it at 1000.
    #[tokio::test]
    async fn a_page_may_hold_more_than_1000_rows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let store = Store::connect(&url).await.expect("open");
        for i in 0..1002 {
            store
                .record_audit(
                    "cli",
                    "test.event",
                    "thing",
                    &i.to_string(),
                    serde_json::json!({}),
                )
                .await
                .expect("record");
        }
        let page = store
            .audit_page(&AuditFilter::default(), 1001)
            .await
            .expect("page");
        assert_eq!(page.len(), 1001);
    }

    #[tokio::test]
    async fn record_audit_appends_to_the_chain() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let store = Store::connect(&url).await.expect("open");
        store
            .record_audit(
                "user:u1",
                "auth.login",
                "user",
                "u1",
                serde_json::json!({"ip": "10.0.0.1"}),
            )
            .await
            .expect("record");
        let log = store.audit_log(10).await.expect("log");
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].action, "auth.login");
        assert_eq!(log[0].detail["ip"], "10.0.0.1");
        assert_eq!(store.verify_audit_chain().await.expect("verify"), None);
    }
}
