//! The verification report: what is stored in the database as JSON, shown
//! next to a document, and printed by the CLI.

use serde::{Deserialize, Serialize};

/// The verdict on one signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureStatus {
    /// Intact, the signature is good, and the signer's certificate chains
    /// to a trust anchor and was usable at signing time.
    Valid,
    /// Something is wrong: the document changed, the signature does not
    /// match, a certificate was expired at signing, the data is malformed...
    Invalid,
    /// The signature is good but the certificate does not chain to a trust
    /// anchor of the configured store.
    Untrusted,
}

/// The verdict on a whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// At least one signature, and every signature is valid.
    Valid,
    /// At least one signature is invalid.
    Invalid,
    /// No signature is invalid, but at least one is untrusted.
    Untrusted,
    /// The file has no signature.
    NoSignature,
}

/// Stable machine codes of the reasons (snake_case in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The file has no signature (file level).
    NoSignature,
    /// The signature data or its dictionary cannot be read, or the byte
    /// range is inconsistent.
    Malformed,
    /// An algorithm, key type or format we do not implement.
    Unsupported,
    /// The digest of the signed bytes differs from the signed one: the
    /// document was changed after signing.
    DigestMismatch,
    /// The signer's signature does not verify.
    BadSignature,
    /// A certificate of the chain is not correctly signed by its issuer.
    BadCertificateSignature,
    /// The signer's certificate does not chain to a trust anchor.
    UntrustedChain,
    /// An issuer in the chain is not a CA (basic constraints, key usage,
    /// path length).
    NotCa,
    /// A certificate of the chain had expired at signing time.
    ExpiredAtSigning,
    /// A certificate of the chain was not yet valid at signing time.
    NotYetValidAtSigning,
    /// The signer's key usage allows neither digitalSignature nor
    /// nonRepudiation.
    BadKeyUsage,
    /// A certificate has a critical extension we do not understand.
    UnsupportedCriticalExtension,
    /// Bytes were appended after the signed range (warning).
    AppendedContent,
    /// SHA-1 was used (warning).
    WeakAlgorithm,
    /// A signature timestamp is present but could not be used (warning).
    TimestampNotUsed,
    /// No signing time anywhere: the verification time was used (warning).
    NoSigningTime,
    /// A certificate of the signer's chain is on its issuer's CRL.
    Revoked,
    /// Whether a certificate of the chain was revoked is not known: no CRL
    /// of its issuer in the trust folder, or only an expired or unusable one
    /// (warning: the signature may still be valid, but nobody checked).
    RevocationNotChecked,
}

impl ReasonCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::NoSignature => "no_signature",
            ReasonCode::Malformed => "malformed",
            ReasonCode::Unsupported => "unsupported",
            ReasonCode::DigestMismatch => "digest_mismatch",
            ReasonCode::BadSignature => "bad_signature",
            ReasonCode::BadCertificateSignature => "bad_certificate_signature",
            ReasonCode::UntrustedChain => "untrusted_chain",
            ReasonCode::NotCa => "not_ca",
            ReasonCode::ExpiredAtSigning => "expired_at_signing",
            ReasonCode::NotYetValidAtSigning => "not_yet_valid_at_signing",
            ReasonCode::BadKeyUsage => "bad_key_usage",
            ReasonCode::UnsupportedCriticalExtension => "unsupported_critical_extension",
            ReasonCode::AppendedContent => "appended_content",
            ReasonCode::WeakAlgorithm => "weak_algorithm",
            ReasonCode::TimestampNotUsed => "timestamp_not_used",
            ReasonCode::NoSigningTime => "no_signing_time",
            ReasonCode::Revoked => "revoked",
            ReasonCode::RevocationNotChecked => "revocation_not_checked",
        }
    }

    /// What the reason does to a signature's status.
    pub fn severity(self) -> Severity {
        match self {
            ReasonCode::UntrustedChain => Severity::Untrusted,
            ReasonCode::AppendedContent
            | ReasonCode::WeakAlgorithm
            | ReasonCode::TimestampNotUsed
            | ReasonCode::NoSigningTime
            | ReasonCode::RevocationNotChecked => Severity::Warning,
            _ => Severity::Invalid,
        }
    }
}

/// What a reason does to a signature's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational: the status stays as it is.
    Warning,
    /// Makes the signature untrusted (unless something makes it invalid).
    Untrusted,
    /// Makes the signature invalid.
    Invalid,
}

/// Why a signature (or the file) got its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub severity: Severity,
    /// Human-readable, English.
    pub message: String,
}

impl Reason {
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Reason {
        Reason {
            code,
            severity: code.severity(),
            message: message.into(),
        }
    }
}

/// Where the signing time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// A signature timestamp token (RFC 3161) from a trusted TSA, verified.
    SignatureTimestamp,
    /// The CMS signed attribute signingTime (claimed by the signer).
    SigningTimeAttribute,
    /// The signature dictionary's /M entry (claimed by the signer).
    PdfM,
    /// None of the above: the time of verification.
    VerificationTime,
}

/// What kind of signature dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureKind {
    /// A signature by a person or organisation (CMS SignedData).
    Signature,
    /// A document timestamp (/SubFilter /ETSI.RFC3161).
    DocumentTimestamp,
}

/// One certificate of a chain, for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    /// Hexadecimal.
    pub serial: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    /// True for the trust anchor that ends a chain.
    pub trust_anchor: bool,
}

/// The verdict on one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureReport {
    /// 1-based, in file order.
    pub index: usize,
    pub kind: SignatureKind,
    /// Offset of the signature dictionary in the file.
    pub offset: u64,
    /// /SubFilter, e.g. ETSI.CAdES.detached.
    pub sub_filter: Option<String>,
    /// Common name (CN) of the signer's certificate.
    pub signer_name: Option<String>,
    /// Organisation (O) of the signer's certificate.
    pub organization: Option<String>,
    /// The signer certificate's whole subject.
    pub signer_subject: Option<String>,
    /// RFC 3339, UTC.
    pub signing_time: Option<String>,
    /// Unix seconds.
    pub signing_time_unix: Option<i64>,
    pub signing_time_source: TimeSource,
    /// e.g. "RSA PKCS#1 v1.5 / SHA-256".
    pub algorithm: Option<String>,
    /// The /ByteRange (empty when unreadable or inconsistent).
    pub byte_range: Vec<u64>,
    /// True when the signed ranges reach the end of the file.
    pub covers_whole_file: bool,
    /// Bytes after the end of the signed ranges.
    pub bytes_after: u64,
    pub status: SignatureStatus,
    pub reasons: Vec<Reason>,
    /// Leaf first; ends with the trust anchor when one was reached.
    pub chain: Vec<CertSummary>,
    /// The signer's /Reason, /Location and /Name entries, when present.
    pub pdf_reason: Option<String>,
    pub pdf_location: Option<String>,
    pub pdf_name: Option<String>,
    /// The revocation check of the chain (CRLs of the trust folder); `None`
    /// when there is no signer certificate to check (and in reports stored
    /// before revocation was checked: read it as "not checked").
    #[serde(default)]
    pub revocation: Option<RevocationReport>,
}

/// The outcome of a revocation check, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationStatus {
    /// Every certificate of the chain below the trust anchor was checked
    /// against a current CRL of its issuer, and none is revoked.
    CheckedGood,
    /// For at least one certificate there is no usable current CRL (none
    /// in the trust folder, expired, not yet valid, a bad CRL signature, an
    /// unsupported kind of CRL), or the chain does not reach an anchor: it
    /// is not known whether it was revoked.
    NotChecked,
    /// A certificate of the chain is on its issuer's CRL.
    Revoked,
}

/// The CRL a certificate was checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlSummary {
    /// The CRL issuer's name.
    pub issuer: String,
    /// RFC 3339, UTC.
    pub this_update: String,
    /// RFC 3339, UTC; `None` when the CRL has none.
    pub next_update: Option<String>,
    /// The file of the trust folder it came from (its name only).
    pub file: String,
}

/// The revocation check of one certificate of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRevocation {
    pub subject: String,
    /// Hexadecimal.
    pub serial: String,
    pub status: RevocationStatus,
    /// Human-readable, English: what was found, and any CRL that was ignored.
    pub message: String,
    /// The CRL used (for `checked_good` and `revoked`, and for an expired
    /// CRL under `not_checked`).
    pub crl: Option<CrlSummary>,
    /// RFC 3339, UTC: when the certificate was revoked (`revoked`, or
    /// `checked_good` when it was revoked after a timestamped signing time).
    pub revoked_at: Option<String>,
}

/// The revocation check of a signature's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationReport {
    /// The worst of the certificates' statuses.
    pub status: RevocationStatus,
    /// Human-readable, English.
    pub message: String,
    /// RFC 3339, UTC: the time against which CRL freshness was judged.
    pub checked_at: String,
    /// Signer first, then each intermediate CA (the anchor is not checked).
    pub certificates: Vec<CertRevocation>,
}

/// The verdict on a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub status: FileStatus,
    pub file_size: u64,
    pub signatures: Vec<SignatureReport>,
    /// Bytes at the end of the file that no intact signature covers (an
    /// incremental update made after the last signature); 0 when the last
    /// signature covers the whole file or there is no signature.
    #[serde(default)]
    pub unsigned_trailing_bytes: u64,
    /// File-level reasons: `no_signature`, or `appended_content` (warning)
    /// when `unsigned_trailing_bytes` is not 0.
    pub reasons: Vec<Reason>,
    /// The worst revocation status of the signatures (one without a
    /// revocation check counts as `not_checked`); `None` without signatures.
    #[serde(default)]
    pub revocation: Option<RevocationStatus>,
}

impl Report {
    /// Computes the file status from the signatures.
    pub(crate) fn finish(file_size: u64, signatures: Vec<SignatureReport>) -> Report {
        let mut reasons = Vec::new();
        let status = if signatures.is_empty() {
            reasons.push(Reason::new(
                ReasonCode::NoSignature,
                "the file has no signature",
            ));
            FileStatus::NoSignature
        } else if signatures
            .iter()
            .any(|s| s.status == SignatureStatus::Invalid)
        {
            FileStatus::Invalid
        } else if signatures
            .iter()
            .any(|s| s.status == SignatureStatus::Untrusted)
        {
            FileStatus::Untrusted
        } else {
            FileStatus::Valid
        };
        let unsigned_trailing_bytes = signatures
            .iter()
            .filter(|s| s.byte_range.len() == 4 && s.status != SignatureStatus::Invalid)
            .map(|s| s.bytes_after)
            .min()
            .unwrap_or(0);
        if unsigned_trailing_bytes > 0 {
            reasons.push(Reason::new(
                ReasonCode::AppendedContent,
                format!(
                    "the last {unsigned_trailing_bytes} bytes of the file were added after the last signature and are not signed"
                ),
            ));
        }
        let revocation = signatures
            .iter()
            .map(|s| {
                s.revocation
                    .as_ref()
                    .map_or(RevocationStatus::NotChecked, |r| r.status)
            })
            .max();
        Report {
            status,
            file_size,
            signatures,
            unsigned_trailing_bytes,
            reasons,
            revocation,
        }
    }
}

/// The status that a list of reasons gives.
pub(crate) fn status_of(reasons: &[Reason]) -> SignatureStatus {
    match reasons.iter().map(|r| r.severity).max() {
        Some(Severity::Invalid) => SignatureStatus::Invalid,
        Some(Severity::Untrusted) => SignatureStatus::Untrusted,
        _ => SignatureStatus::Valid,
    }
}

/// Unix seconds as RFC 3339 UTC.
pub(crate) fn rfc3339(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("@{unix}"),
    }
}
