//! Idempotency keys (the `Idempotency-Key` request header of the API's
//! creating endpoints). The answer to a request is stored with its key in
//! the same transaction as what the request created (the `remember!` macro),
//! so either both are there or neither is, crash or not; a retry with the
//! same key gets the stored answer again ([`Store::idempotent_response`]).

use sha2::{Digest, Sha256};

use crate::{Error, Pool, Result, Store};

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 200;

/// How long a stored answer is kept (seconds).
pub const KEEP_SECONDS: i64 = 24 * 3600;

/// A request's idempotency key and the fingerprint of what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The client's key (1 to [`MAX_KEY_LEN`] visible ASCII characters).
    pub key: String,
    /// [`fingerprint`] of the request; a retry must match it.
    pub fingerprint: String,
}

impl IdempotencyKey {
    /// A checked key: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
    pub fn new(key: &str, fingerprint: String) -> Result<IdempotencyKey> {
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidInput(format!(
                "the idempotency key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            )));
        }
        Ok(IdempotencyKey {
            key: key.to_owned(),
            fingerprint,
        })
    }
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// The fingerprint of the request that got it.
    pub fingerprint: String,
    /// HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: serde_json::Value,
    /// Unix seconds.
    pub created_at: i64,
}

/// Lowercase hex SHA-256 over the parts, each length-prefixed (so two
/// different lists never collide by concatenation).
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    crate::blobs::hex(&h.finalize())
}

#[derive(sqlx::FromRow)]
struct Row {
    fingerprint: String,
    status: i64,
    body: String,
    created_at: i64,
}

impl Store {
    /// The answer stored for `actor`'s `key`, if one is (and not expired).
    pub async fn idempotent_response(
        &self,
        actor: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>> {
        // status is INTEGER: 64-bit in SQLite, 32-bit in PostgreSQL.
        let sql = "SELECT fingerprint, CAST(status AS BIGINT) AS status, body, created_at \
                   FROM idempotency_keys WHERE actor = $1 AND idem_key = $2 AND created_at >= $3";
        let cutoff = crate::now_unix() - KEEP_SECONDS;
        let row: Option<Row> = with_pool!(self, p => sqlx::query_as(sql)
            .bind(actor)
            .bind(key)
            .bind(cutoff)
            .fetch_optional(p)
            .await)?;
        row.map(|r| {
            Ok(StoredResponse {
                body: serde_json::from_str(&r.body)
                    .map_err(|_| Error::Corrupt(format!("stored answer for key {key:?}")))?,
                status: u16::try_from(r.status)
                    .map_err(|_| Error::Corrupt(format!("stored status {}", r.status)))?,
                fingerprint: r.fingerprint,
                created_at: r.created_at,
            })
        })
        .transpose()
    }
}

impl Error {
    /// Whether the database refused a write because it would duplicate a
    /// unique key (for idempotency keys: a concurrent request with the same
    /// key committed first).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Error::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}
