//! Sealed minutes: each sealing of a meeting's minutes keeps the exact bytes
//! of the sealed PDF as version 1, 2, ... (migration 0016). A version never
//! changes (nothing here updates or deletes one); sealing again after the
//! record changed makes the next version (a correction); sealing when the
//! minutes would come out the same returns the latest version.
//!
//! "The same" is decided on the unsealed PDF: the minutes PDF is a
//! deterministic function of the record and the `[minutes]` head
//! ([`crate::minutes::pdf`]), so equal SHA-256 of the draft means nothing
//! in the minutes changed.
//!
//! [`seal_pdf`] makes the draft and seals it (CPU work: run it off the async
//! workers); [`Store::add_minutes_version`] stores it in one transaction with
//! its audit entry (`minutes.sealed`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest as _;

use crate::minutes::{MinutesRecord, PdfError};
use crate::signature::seal::{Seal, SealError, SealInfo};
use crate::{Error, Pool, Result, Store};

/// One sealed version of a meeting's minutes (without its bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct MinutesVersion {
    pub meeting_id: String,
    /// 1, 2, ...
    pub version: i64,
    /// SHA-256 (hex) of the unsealed minutes PDF this version seals.
    pub draft_sha256: String,
    /// SHA-256 (hex) of the sealed PDF.
    pub sha256: String,
    /// Size of the sealed PDF, bytes.
    pub size: i64,
    /// The seal certificate's subject.
    pub seal_subject: String,
    /// SHA-256 (hex) of the seal certificate (DER).
    pub seal_cert_sha256: String,
    /// Who sealed it: an actor, as in the audit log.
    pub sealed_by: String,
    /// The signing time in the signature (Unix seconds).
    pub sealed_at: i64,
}

/// What sealing gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealOutcome {
    pub version: MinutesVersion,
    /// false: the minutes had not changed since `version` was sealed.
    pub created: bool,
}

/// A sealed minutes PDF, ready to store.
#[derive(Debug, Clone)]
pub struct SealedPdf {
    /// SHA-256 (hex) of the draft (unsealed) PDF.
    pub draft_sha256: String,
    /// The sealed bytes.
    pub bytes: Vec<u8>,
    pub seal_subject: String,
    pub seal_cert_sha256: String,
    /// Signing time, Unix seconds.
    pub sealed_at: i64,
}

/// Why the minutes could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealMinutesError {
    #[error(transparent)]
    Pdf(#[from] PdfError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::blobs::hex(&sha2::Sha256::digest(bytes))
}

/// The minutes of `r` as PDF (the draft: [`crate::minutes::pdf`]) and their
/// SHA-256.
pub fn draft_pdf(r: &MinutesRecord) -> std::result::Result<(Vec<u8>, String), PdfError> {
    let pdf = crate::minutes::pdf(r)?;
    let hash = sha256_hex(&pdf);
    Ok((pdf, hash))
}

/// The minutes of `r` sealed with `seal` at `at` (Unix seconds). The
/// signature's /Name is the seal's common name, its /Reason names the
/// meeting, its /Location is the `[minutes]` place.
pub fn seal_pdf(
    r: &MinutesRecord,
    seal: &Seal,
    at: i64,
) -> std::result::Result<SealedPdf, SealMinutesError> {
    let (draft, draft_sha256) = draft_pdf(r)?;
    let info = SealInfo {
        name: seal.common_name(),
        reason: format!("Đóng dấu biên bản cuộc họp: {}", one_line(&r.meeting.title)),
        location: one_line(&r.header.place),
        at,
    };
    let bytes = seal.seal_pdf(&draft, &info)?;
    Ok(SealedPdf {
        draft_sha256,
        bytes,
        seal_subject: seal.subject(),
        seal_cert_sha256: seal.certificate_sha256(),
        sealed_at: at,
    })
}

/// At most 200 characters on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect()
}

const COLUMNS: &str = "meeting_id, version, draft_sha256, sha256, size, seal_subject, \
                       seal_cert_sha256, sealed_by, sealed_at";

impl Store {
    /// The sealed versions of a meeting's minutes, oldest first (none for an
    /// unknown meeting).
    pub async fn list_minutes_versions(&self, meeting_id: &str) -> Result<Vec<MinutesVersion>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM minutes_versions WHERE meeting_id = $1 ORDER BY version"
        );
        let rows: Vec<MinutesVersion> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(meeting_id)
            .fetch_all(p)
            .await)?;
        Ok(rows)
    }

    /// The latest sealed version of a meeting's minutes, if any.
    pub async fn latest_minutes_version(&self, meeting_id: &str) -> Result<Option<MinutesVersion>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM minutes_versions WHERE meeting_id = $1 \
             ORDER BY version DESC LIMIT 1"
        );
        let row: Option<MinutesVersion> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(meeting_id)
            .fetch_optional(p)
            .await)?;
        Ok(row)
    }

    /// Version `version` of a meeting's minutes and its sealed bytes, exactly
    /// as stored.
    pub async fn minutes_version_pdf(
        &self,
        meeting_id: &str,
        version: i64,
    ) -> Result<Option<(MinutesVersion, Vec<u8>)>> {
        let sql = format!(
            "SELECT {COLUMNS}, pdf_base64 FROM minutes_versions \
             WHERE meeting_id = $1 AND version = $2"
        );
        let row: Option<VersionRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(meeting_id)
            .bind(version)
            .fetch_optional(p)
            .await)?;
        let Some(row) = row else { return Ok(None) };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(row.pdf_base64.as_bytes())
            .map_err(|e| Error::Corrupt(format!("sealed minutes {meeting_id} v{version}: {e}")))?;
        if sha256_hex(&bytes) != row.version.sha256 || bytes.len() as i64 != row.version.size {
            return Err(Error::Corrupt(format!(
                "sealed minutes {meeting_id} v{version}: the bytes do not match their SHA-256"
            )));
        }
        Ok(Some((row.version, bytes)))
    }

    /// Stores `sealed` as the next version of the minutes of `meeting_id`,
    /// audited as `minutes.sealed`; or, when the latest version seals the
    /// same draft, returns it (`created: false`) and stores nothing.
    pub async fn add_minutes_version(
        &self,
        actor: &str,
        meeting_id: &str,
        sealed: &SealedPdf,
    ) -> Result<SealOutcome> {
        // Two sealings at once on PostgreSQL may both pick the same number:
        // the loser retries and then sees the winner's version.
        let mut tries = 0;
        loop {
            tries += 1;
            match self
                .add_minutes_version_once(actor, meeting_id, sealed)
                .await
            {
                Err(e) if tries < 3 && e.is_unique_violation() => continue,
                other => return other,
            }
        }
    }

    async fn add_minutes_version_once(
        &self,
        actor: &str,
        meeting_id: &str,
        sealed: &SealedPdf,
    ) -> Result<SealOutcome> {
        let latest_sql = format!(
            "SELECT {COLUMNS} FROM minutes_versions WHERE meeting_id = $1 \
             ORDER BY version DESC LIMIT 1"
        );
        let sha256 = sha256_hex(&sealed.bytes);
        let size = i64::try_from(sealed.bytes.len())
            .map_err(|_| Error::InvalidInput("the sealed PDF is too large".into()))?;
        let out = in_tx!(self, tx => {
            let _status = meeting_status!(tx, meeting_id);
            let latest: Option<MinutesVersion> = sqlx::query_as(&latest_sql)
                .bind(meeting_id)
                .fetch_optional(&mut *tx)
                .await?;
            match latest {
                Some(v) if v.draft_sha256 == sealed.draft_sha256 => SealOutcome {
                    version: v,
                    created: false,
                },
                latest => {
                    let version = MinutesVersion {
                        meeting_id: meeting_id.to_owned(),
                        version: latest.map_or(1, |v| v.version + 1),
                        draft_sha256: sealed.draft_sha256.clone(),
                        sha256: sha256.clone(),
                        size,
                        seal_subject: sealed.seal_subject.clone(),
                        seal_cert_sha256: sealed.seal_cert_sha256.clone(),
                        sealed_by: actor.to_owned(),
                        sealed_at: sealed.sealed_at,
                    };
                    sqlx::query(
                        "INSERT INTO minutes_versions (meeting_id, version, draft_sha256, \
                         sha256, size, pdf_base64, seal_subject, seal_cert_sha256, sealed_by, \
                         sealed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(&version.meeting_id)
                    .bind(version.version)
                    .bind(&version.draft_sha256)
                    .bind(&version.sha256)
                    .bind(version.size)
                    .bind(base64::engine::general_purpose::STANDARD.encode(&sealed.bytes))
                    .bind(&version.seal_subject)
                    .bind(&version.seal_cert_sha256)
                    .bind(&version.sealed_by)
                    .bind(version.sealed_at)
                    .execute(&mut *tx)
                    .await?;
                    audit!(tx, actor, "minutes.sealed", "meeting", meeting_id, json!({
                        "version": version.version,
                        "sha256": version.sha256,
                        "draft_sha256": version.draft_sha256,
                        "seal_subject": version.seal_subject,
                        "seal_cert_sha256": version.seal_cert_sha256,
                    }));
                    SealOutcome {
                        version,
                        created: true,
                    }
                }
            }
        });
        Ok(out)
    }
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    #[sqlx(flatten)]
    version: MinutesVersion,
    pdf_base64: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minutes::MinutesHeader;
    use crate::signature::{verify_pdf, FileStatus, TrustStore, VerifyOptions};
    use crate::tests::{pg_store, sqlite_store};
    use crate::{NewAgendaItem, QuorumRule};

    async fn scenario(s: &Store) {
        let (seal, cert_pem, _) =
            Seal::generate("UBND (con dấu số giaoban)", "UBND", crate::now_unix(), 1)
                .expect("seal");
        let m = s
            .create_meeting("Giao ban tháng 1")
            .await
            .expect("meeting")
            .id;
        let record = || async {
            s.minutes_record(&m, MinutesHeader::default(), &QuorumRule::default())
                .await
                .expect("record")
        };
        assert!(s.list_minutes_versions(&m).await.expect("list").is_empty());

        let r = record().await;
        let sealed = seal_pdf(&r, &seal, crate::now_unix()).expect("seal");
        let first = s
            .add_minutes_version("user:thuky", &m, &sealed)
            .await
            .expect("add");
        assert!(first.created);
        assert_eq!(first.version.version, 1);

        // Nothing changed: the same version, nothing stored.
        let again = seal_pdf(&record().await, &seal, crate::now_unix() + 5).expect("seal");
        let same = s
            .add_minutes_version("user:thuky", &m, &again)
            .await
            .expect("add");
        assert!(!same.created);
        assert_eq!(same.version, first.version);

        // The record changes: version 2; version 1 keeps its bytes.
        s.add_agenda_item(
            "user:thuky",
            &m,
            NewAgendaItem {
                title: "Kinh tế".into(),
                presenter: String::new(),
                duration_minutes: None,
            },
        )
        .await
        .expect("item");
        let changed = seal_pdf(&record().await, &seal, crate::now_unix()).expect("seal");
        let second = s
            .add_minutes_version("user:thuky", &m, &changed)
            .await
            .expect("add");
        assert!(second.created);
        assert_eq!(second.version.version, 2);
        let (v1, bytes1) = s
            .minutes_version_pdf(&m, 1)
            .await
            .expect("read")
            .expect("v1");
        assert_eq!(bytes1, sealed.bytes);
        assert_eq!(v1, first.version);
        let list = s.list_minutes_versions(&m).await.expect("list");
        assert_eq!(list.len(), 2);
        assert_eq!(
            s.latest_minutes_version(&m).await.expect("latest"),
            Some(second.version.clone())
        );
        assert!(s.minutes_version_pdf(&m, 3).await.expect("read").is_none());

        let mut trust = TrustStore::empty();
        trust.add_pem_or_der(cert_pem.as_bytes()).expect("trust");
        let (_, bytes2) = s
            .minutes_version_pdf(&m, 2)
            .await
            .expect("read")
            .expect("v2");
        let report = verify_pdf(&bytes2, &trust, &VerifyOptions::default()).expect("verify");
        assert_eq!(report.status, FileStatus::Valid, "{report:#?}");

        // Audited, once per version.
        let audit = s
            .audit_page(
                &crate::AuditFilter {
                    action: Some("minutes.sealed".into()),
                    ..crate::AuditFilter::default()
                },
                10,
            )
            .await
            .expect("audit");
        assert_eq!(audit.len(), 2);

        // An unknown meeting.
        assert!(matches!(
            s.add_minutes_version("user:thuky", "no-such", &sealed)
                .await,
            Err(Error::MeetingNotFound(_))
        ));
    }

    #[tokio::test]
    async fn sealed_minutes_versions_sqlite() {
        let (s, _dir) = sqlite_store().await;
        scenario(&s).await;
    }

    #[tokio::test]
    async fn sealed_minutes_versions_postgres() {
        if let Some((s, schema)) = pg_store().await {
            scenario(&s).await;
            schema.drop_now(s).await;
        }
    }
}
