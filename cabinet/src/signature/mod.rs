//! Verification of digitally signed PDFs (PAdES / CMS).
//!
//! # Layout
//! - [`verify_pdf`]: finds every signature dictionary of a PDF and checks
//!   each one; returns a [`Report`] (serde, stored as JSON).
//! - [`TrustStore`]: the trust anchors (a folder of CA certificates or a PEM
//!   bundle).
//! - [`format_report`], [`exit_code`], [`verify_file_cli`]: the offline
//!   command (`giaoban verify FILE.pdf [--trust DIR_OR_PEM]`).
//! - `pdf`: finding and reading signature dictionaries in the raw bytes.
//! - `cms`: CMS SignedData parsing and the signer's signature.
//! - `chain`: trust store, certificate paths and their checks.
//! - `crl`: certificate revocation lists of the trust folder and the
//!   revocation check of a chain.
//! - `crypto`: digests, RSA (PKCS#1 v1.5, PSS) and ECDSA (P-256, P-384).
//! - `asn1`: a strict DER walker that bounds the work before decoding.
//! - [`seal`]: the other direction: sealing a PDF with a PAdES signature
//!   (the minutes), appended as an incremental update.
//!
//! Per signature we check: the /ByteRange (starts at 0, ranges in the file,
//! no overlap, the gap is exactly the /Contents hex string), the digest of
//! the signed bytes against the messageDigest signed attribute, the
//! signature over the signed attributes, the certificate path to an anchor
//! (each certificate's signature, CA basic constraints and key usage, path
//! length), the validity of every certificate at signing time, the signer's
//! key usage, whether bytes follow the signed ranges, and revocation of
//! every certificate below the anchor against the CRLs of the trust folder
//! (see `crl` for the rules; OCSP is not used: the deployments are closed
//! networks). Without a current CRL the report says plainly that
//! revocation was not checked.
//!
//! Hostile input never panics: sizes, counts and nesting are bounded, and
//! DER is walked with limits before it is decoded.

mod asn1;
mod chain;
mod cms;
mod crl;
mod crypto;
mod pdf;
mod report;
pub mod seal;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use chain::TrustStore;
pub use report::{
    CertRevocation, CertSummary, CrlSummary, FileStatus, Reason, ReasonCode, Report,
    RevocationReport, RevocationStatus, Severity, SignatureKind, SignatureReport, SignatureStatus,
    TimeSource,
};
pub use seal::{Seal, SealError, SealInfo};

use pdf::{Found, SigDict, Value};
use report::{rfc3339, status_of};

/// Exit code: at least one signature, and all are valid and trusted.
pub const EXIT_VALID: i32 = 0;
/// Exit code: at least one signature is invalid.
pub const EXIT_INVALID: i32 = 1;
/// Exit code: the file has no signature.
pub const EXIT_NO_SIGNATURE: i32 = 2;
/// Exit code: no signature is invalid, but one is not chained to an anchor.
pub const EXIT_UNTRUSTED: i32 = 3;
/// Exit code: the file cannot be read, is not a PDF, or is past the limits.
pub const EXIT_UNREADABLE: i32 = 4;
/// Exit code: the trust store cannot be loaded.
pub const EXIT_TRUST_STORE: i32 = 5;
/// Exit code: every signature is valid and trusted, but content was appended
/// after the last one and no signature covers it: what a reader sees may not
/// be what was signed.
pub const EXIT_UNSIGNED_APPENDIX: i32 = 6;
/// Exit code: every signature is valid and trusted, but for at least one
/// certificate of a chain it is not known whether it was revoked (no
/// current CRL of its issuer in the trust folder).
pub const EXIT_REVOCATION_NOT_CHECKED: i32 = 7;

/// Errors that prevent verifying a file at all.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed: not a PDF file (no %PDF- header)")]
    NotPdf,
    #[error("malformed: the file is {size} bytes, more than the limit of {max}")]
    TooLarge { size: u64, max: u64 },
    #[error("malformed: more than {max} signature dictionaries")]
    TooManySignatures { max: usize },
    #[error("trust store: {0}")]
    Trust(String),
}

impl SignatureError {
    /// A stable machine code: `malformed`, `io` or `trust_store`.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Io { .. } => "io",
            SignatureError::NotPdf
            | SignatureError::TooLarge { .. }
            | SignatureError::TooManySignatures { .. } => "malformed",
            SignatureError::Trust(_) => "trust_store",
        }
    }
}

/// Limits and the clock of a verification.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Largest file verified.
    pub max_file_size: u64,
    /// Most signature dictionaries in one file.
    pub max_signatures: usize,
    /// Longest /Contents hex string, in bytes of the file.
    pub max_contents_len: usize,
    /// The time of verification (Unix seconds), used when a signature has
    /// no signing time; `None` means now.
    pub verification_time: Option<i64>,
    /// Work budget for one file, in bytes: the bytes scanned to find the
    /// signature dictionaries, and (separately) the bytes hashed to check
    /// them, may each not exceed it.
    pub max_work_bytes: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            max_file_size: 512 << 20,
            max_signatures: 32,
            max_contents_len: 4 << 20,
            verification_time: None,
            max_work_bytes: 2 << 30,
        }
    }
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Verifies every signature of a PDF.
///
/// Errors only when the file as a whole cannot be verified (not a PDF, past
/// the limits); a malformed signature is reported in the [`Report`], as an
/// invalid signature with the reason `malformed`.
pub fn verify_pdf(
    pdf: &[u8],
    trust: &TrustStore,
    opts: &VerifyOptions,
) -> Result<Report, SignatureError> {
    let size = pdf.len() as u64;
    if size > opts.max_file_size {
        return Err(SignatureError::TooLarge {
            size,
            max: opts.max_file_size,
        });
    }
    let head = &pdf[..pdf.len().min(1024)];
    if !head.windows(5).any(|w| w == b"%PDF-") {
        return Err(SignatureError::NotPdf);
    }
    let offsets = pdf::byte_range_offsets(pdf);
    if offsets.len() > opts.max_signatures {
        return Err(SignatureError::TooManySignatures {
            max: opts.max_signatures,
        });
    }
    let now = opts.verification_time.unwrap_or_else(now_unix);
    let window = opts.max_contents_len.saturating_add(64 << 10);
    // Work budgets for the whole file: bytes scanned while finding the
    // dictionaries, bytes hashed while checking them.
    let mut scan_budget = opts.max_work_bytes;
    let mut hash_budget = opts.max_work_bytes as u64;
    let mut sigs = Vec::new();
    for (i, off) in offsets.into_iter().enumerate() {
        let found = pdf::dict_around(pdf, off, window, &mut scan_budget);
        let mut r = empty_report(i + 1, off);
        match found {
            Found::Malformed { message, .. } => {
                r.reasons.push(Reason::new(ReasonCode::Malformed, message));
            }
            Found::Dict(d) => {
                r.offset = d.start as u64;
                verify_one(pdf, &d, trust, opts, now, &mut hash_budget, &mut r);
            }
        }
        r.status = status_of(&r.reasons);
        sigs.push(r);
    }
    annotate_appended(&mut sigs);
    Ok(Report::finish(size, sigs))
}

fn empty_report(index: usize, offset: usize) -> SignatureReport {
    SignatureReport {
        index,
        kind: SignatureKind::Signature,
        offset: offset as u64,
        sub_filter: None,
        signer_name: None,
        organization: None,
        signer_subject: None,
        signing_time: None,
        signing_time_unix: None,
        signing_time_source: TimeSource::VerificationTime,
        algorithm: None,
        byte_range: Vec::new(),
        covers_whole_file: false,
        bytes_after: 0,
        status: SignatureStatus::Invalid,
        reasons: Vec::new(),
        chain: Vec::new(),
        pdf_reason: None,
        pdf_location: None,
        pdf_name: None,
        revocation: None,
    }
}

/// Says, for each signature followed by more bytes, whether a later
/// signature covers them.
fn annotate_appended(sigs: &mut [SignatureReport]) {
    let whole: Vec<usize> = sigs
        .iter()
        .filter(|s| s.covers_whole_file && s.status != SignatureStatus::Invalid)
        .map(|s| s.index)
        .collect();
    for s in sigs.iter_mut() {
        if s.byte_range.len() != 4 || s.covers_whole_file {
            continue;
        }
        let tail = match whole.first() {
            Some(k) => format!("; they are covered by signature #{k}"),
            None => "; no signature covers them".to_owned(),
        };
        s.reasons.push(Reason::new(
            ReasonCode::AppendedContent,
            format!(
                "{} bytes were appended after this signature (an incremental update){tail}",
                s.bytes_after
            ),
        ));
    }
}

/// Reads the four integers of a /ByteRange.
fn byte_range(d: &SigDict) -> Result<[u64; 4], String> {
    let Some(Value::Array(items)) = d.get("ByteRange") else {
        return Err("/ByteRange is not an array".into());
    };
    if items.len() != 4 {
        return Err(format!("/ByteRange has {} numbers, not 4", items.len()));
    }
    let mut out = [0u64; 4];
    for (o, v) in out.iter_mut().zip(items) {
        *o = match v {
            Value::Int(n) => {
                u64::try_from(*n).map_err(|_| "/ByteRange has a negative or huge number")?
            }
            _ => return Err("/ByteRange holds something other than integers".into()),
        };
    }
    Ok(out)
}

fn verify_one(
    pdf: &[u8],
    d: &SigDict,
    trust: &TrustStore,
    opts: &VerifyOptions,
    now: i64,
    hash_budget: &mut u64,
    r: &mut SignatureReport,
) {
    let malformed = |r: &mut SignatureReport, m: String| {
        r.reasons.push(Reason::new(ReasonCode::Malformed, m));
    };
    r.sub_filter = d.name("SubFilter");
    r.pdf_reason = d.text("Reason");
    r.pdf_location = d.text("Location");
    r.pdf_name = d.text("Name");
    match r.sub_filter.as_deref() {
        Some("ETSI.RFC3161") => r.kind = SignatureKind::DocumentTimestamp,
        Some("adbe.pkcs7.detached") | Some("ETSI.CAdES.detached") => {}
        Some(other) => {
            r.reasons.push(Reason::new(
                ReasonCode::Unsupported,
                format!("signature format /SubFilter /{other} is not supported"),
            ));
            return;
        }
        None => {
            malformed(r, "the signature dictionary has no /SubFilter".into());
            return;
        }
    }

    // The byte range and the /Contents gap.
    let br = match byte_range(d) {
        Ok(br) => br,
        Err(m) => return malformed(r, m),
    };
    let [a, b, c, len2] = br;
    let size = pdf.len() as u64;
    let (Some(gap_start), Some(end)) = (a.checked_add(b), c.checked_add(len2)) else {
        return malformed(r, "/ByteRange numbers overflow".into());
    };
    if a != 0 {
        return malformed(
            r,
            format!("/ByteRange starts at {a}, not at the start of the file"),
        );
    }
    if gap_start > c {
        return malformed(r, "/ByteRange ranges overlap".into());
    }
    if end > size {
        return malformed(
            r,
            format!("/ByteRange reaches byte {end}, past the end of the file ({size} bytes)"),
        );
    }
    for key in ["ByteRange", "Contents", "SubFilter", "M"] {
        if d.entries.iter().filter(|(k, _)| k == key).count() > 1 {
            return malformed(r, format!("the signature dictionary has /{key} twice"));
        }
    }
    let signed_len = end - c + gap_start;
    if signed_len > *hash_budget {
        return malformed(
            r,
            "the signatures of this file need more hashing than the limit".into(),
        );
    }
    *hash_budget -= signed_len;
    let Some(Value::Hex {
        start,
        end: hex_end,
    }) = d.get("Contents").cloned()
    else {
        return malformed(r, "/Contents is not a hex string".into());
    };
    if start as u64 != gap_start || hex_end as u64 != c {
        return malformed(
            r,
            format!(
                "the /ByteRange gap ({gap_start}..{c}) is not exactly the /Contents string ({start}..{hex_end})"
            ),
        );
    }
    if (d.byte_range_at as u64) >= end || (d.end as u64) > end {
        return malformed(
            r,
            "the signature dictionary is outside the signed bytes".into(),
        );
    }
    r.byte_range = br.to_vec();
    r.bytes_after = size - end;
    r.covers_whole_file = end == size;
    if hex_end - start > opts.max_contents_len {
        return malformed(
            r,
            format!("/Contents is larger than {} bytes", opts.max_contents_len),
        );
    }
    let cms_bytes = match pdf::decode_hex(&pdf[start + 1..hex_end - 1]) {
        Ok(v) => v,
        Err(m) => return malformed(r, format!("/Contents: {m}")),
    };
    // Both conversions are in range: checked against the file size above.
    let ranges: [&[u8]; 2] = [
        &pdf[a as usize..gap_start as usize],
        &pdf[c as usize..end as usize],
    ];

    let parsed = match cms::parse(&cms_bytes) {
        Ok(p) => p,
        Err(m) => return malformed(r, m),
    };

    let claimed_time;
    let outcome;
    if r.kind == SignatureKind::DocumentTimestamp {
        let Some(econtent) = parsed
            .econtent
            .as_deref()
            .filter(|_| parsed.econtent_type == cms::OID_TST_INFO)
        else {
            return malformed(r, "a document timestamp without a TSTInfo".into());
        };
        outcome = cms::check_signer(&parsed, &[econtent]);
        let tst = match cms::parse_tst_info(econtent) {
            Ok(t) => t,
            Err(m) => return malformed(r, m),
        };
        match tst.hash {
            Some(h) if h.digest(&ranges) == tst.hashed_message => {}
            Some(_) => r.reasons.push(Reason::new(
                ReasonCode::DigestMismatch,
                "the timestamped content was changed after timestamping (digest mismatch)",
            )),
            None => r.reasons.push(Reason::new(
                ReasonCode::Unsupported,
                format!(
                    "timestamp digest algorithm {} is not supported",
                    tst.hash_oid
                ),
            )),
        }
        claimed_time = Some((tst.gen_time, TimeSource::SignatureTimestamp));
    } else {
        if parsed.econtent_type != cms::OID_DATA || parsed.econtent.is_some() {
            r.reasons.push(Reason::new(
                ReasonCode::Unsupported,
                "only detached CMS signatures (id-data, no encapsulated content) are supported",
            ));
            return;
        }
        outcome = cms::check_signer(&parsed, &ranges);
        let mut t = None;
        if let Some(token) = &outcome.timestamp_token {
            match check_timestamp(token, parsed.signer.signature.as_bytes(), trust) {
                Ok(gen) => t = Some((gen, TimeSource::SignatureTimestamp)),
                Err(m) => r.reasons.push(Reason::new(
                    ReasonCode::TimestampNotUsed,
                    format!("the signature timestamp was not used: {m}"),
                )),
            }
        }
        if t.is_none() {
            t = outcome
                .signing_time_attr
                .map(|s| (s, TimeSource::SigningTimeAttribute));
        }
        if t.is_none() {
            t = d
                .text("M")
                .and_then(|m| pdf::parse_pdf_date(&m))
                .map(|s| (s, TimeSource::PdfM));
        }
        claimed_time = t;
    }
    r.algorithm = outcome.algorithm.clone();
    r.reasons.extend(outcome.reasons.iter().cloned());
    let (at, source) = match claimed_time {
        Some(t) => t,
        None => {
            r.reasons.push(Reason::new(
                ReasonCode::NoSigningTime,
                "no signing time in the signature: certificates were checked at verification time",
            ));
            (now, TimeSource::VerificationTime)
        }
    };
    r.signing_time_unix = Some(at);
    r.signing_time = Some(rfc3339(at));
    r.signing_time_source = source;

    let Some(cert) = outcome.signer_cert.and_then(|i| parsed.certs.get(i)) else {
        return;
    };
    let subject = &cert.tbs_certificate.subject;
    r.signer_name = chain::name_attr(subject, "2.5.4.3");
    r.organization = chain::name_attr(subject, "2.5.4.10");
    r.signer_subject = Some(chain::name_to_string(subject));
    let ch = chain::check_chain(cert, &parsed.certs, &parsed.certs_tbs, trust, at);
    // Only a timestamp by a third party proves when the key signed; a
    // document timestamp's time is the TSA's own claim about its own key.
    let signing = crl::SigningTime {
        at,
        proven: source == TimeSource::SignatureTimestamp && r.kind == SignatureKind::Signature,
    };
    let (revocation, rev_reasons) =
        crl::check_path(&ch.path, ch.anchored, &trust.crls, signing, now);
    r.chain = ch.chain;
    r.reasons.extend(ch.reasons);
    r.reasons.extend(rev_reasons);
    r.revocation = Some(revocation);
}

/// Checks a signature timestamp token over `signature_value`; returns its
/// time when it is intact and its TSA chains to an anchor.
fn check_timestamp(
    token: &[u8],
    signature_value: &[u8],
    trust: &TrustStore,
) -> Result<i64, String> {
    let p = cms::parse(token)?;
    if p.econtent_type != cms::OID_TST_INFO {
        return Err("the token does not hold a TSTInfo".into());
    }
    let econtent = p.econtent.as_deref().ok_or("the token has no content")?;
    let out = cms::check_signer(&p, &[econtent]);
    if let Some(bad) = out.reasons.iter().find(|r| r.severity == Severity::Invalid) {
        return Err(bad.message.clone());
    }
    let tst = cms::parse_tst_info(econtent)?;
    let hash = tst
        .hash
        .ok_or_else(|| format!("digest algorithm {} is not supported", tst.hash_oid))?;
    if hash.digest(&[signature_value]) != tst.hashed_message {
        return Err("it does not match the signature (message imprint)".into());
    }
    let cert = out
        .signer_cert
        .and_then(|i| p.certs.get(i))
        .ok_or("the TSA certificate is missing")?;
    let ch = chain::check_chain(cert, &p.certs, &p.certs_tbs, trust, tst.gen_time);
    if !ch.anchored {
        return Err("the TSA does not chain to a trust anchor".into());
    }
    if let Some(bad) = ch.reasons.iter().find(|r| r.severity != Severity::Warning) {
        return Err(format!("TSA certificate: {}", bad.message));
    }
    Ok(tst.gen_time)
}

/// The exit code of `giaoban verify` for a report:
///
/// | code | meaning |
/// |---|---|
/// | 0 | at least one signature, every one valid and trusted |
/// | 1 | at least one signature is invalid (changed, bad signature, expired, malformed...) |
/// | 2 | the file has no signature |
/// | 3 | no signature is invalid, but at least one does not chain to a trust anchor |
/// | 4 | the file cannot be read, is not a PDF, or is past the limits ([`EXIT_UNREADABLE`]) |
/// | 5 | the trust store cannot be loaded ([`EXIT_TRUST_STORE`]) |
/// | 6 | every signature is valid and trusted, but bytes after the last one are covered by none ([`EXIT_UNSIGNED_APPENDIX`]) |
/// | 7 | every signature is valid and trusted, but revocation was not checked for a certificate (no current CRL) ([`EXIT_REVOCATION_NOT_CHECKED`]) |
///
/// A revoked certificate makes its signature invalid (1). When both 6 and
/// 7 apply, 6 is returned.
pub fn exit_code(report: &Report) -> i32 {
    match report.status {
        FileStatus::Valid if report.unsigned_trailing_bytes > 0 => EXIT_UNSIGNED_APPENDIX,
        FileStatus::Valid if report.revocation != Some(RevocationStatus::CheckedGood) => {
            EXIT_REVOCATION_NOT_CHECKED
        }
        FileStatus::Valid => EXIT_VALID,
        FileStatus::Invalid => EXIT_INVALID,
        FileStatus::NoSignature => EXIT_NO_SIGNATURE,
        FileStatus::Untrusted => EXIT_UNTRUSTED,
    }
}

fn status_word(s: SignatureStatus) -> &'static str {
    match s {
        SignatureStatus::Valid => "VALID",
        SignatureStatus::Invalid => "INVALID",
        SignatureStatus::Untrusted => "UNTRUSTED",
    }
}

/// The report as plain text (English), for the CLI.
pub fn format_report(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let verdict = match report.status {
        FileStatus::Valid if report.revocation != Some(RevocationStatus::CheckedGood) => {
            "VALID, REVOCATION NOT CHECKED: every signature is valid and trusted, but whether a certificate was revoked is not known (no current CRL in the trust folder)"
        }
        FileStatus::Valid => "VALID: every signature is valid and trusted",
        FileStatus::Invalid => "INVALID: at least one signature is invalid",
        FileStatus::Untrusted => {
            "UNTRUSTED: signatures are intact but not all chain to a trust anchor"
        }
        FileStatus::NoSignature => "NO SIGNATURE: the file is not signed",
    };
    let _ = writeln!(s, "{verdict}");
    if report.unsigned_trailing_bytes > 0 {
        let _ = writeln!(
            s,
            "WARNING: the last {} bytes of the file were added after the last signature and are not signed",
            report.unsigned_trailing_bytes
        );
    }
    let _ = writeln!(
        s,
        "File size: {} bytes, {} signature(s)",
        report.file_size,
        report.signatures.len()
    );
    for sig in &report.signatures {
        let kind = match sig.kind {
            SignatureKind::Signature => "Signature",
            SignatureKind::DocumentTimestamp => "Document timestamp",
        };
        let _ = writeln!(
            s,
            "\n{kind} #{} at offset {}: {}",
            sig.index,
            sig.offset,
            status_word(sig.status)
        );
        if let Some(sf) = &sig.sub_filter {
            let _ = writeln!(s, "  Format:       {sf}");
        }
        if let Some(n) = &sig.signer_name {
            let _ = writeln!(s, "  Signer:       {n}");
        }
        if let Some(o) = &sig.organization {
            let _ = writeln!(s, "  Organisation: {o}");
        }
        if let Some(sub) = &sig.signer_subject {
            let _ = writeln!(s, "  Subject:      {sub}");
        }
        if let Some(t) = &sig.signing_time {
            let src = match sig.signing_time_source {
                TimeSource::SignatureTimestamp => "from a verified timestamp",
                TimeSource::SigningTimeAttribute => "claimed by the signer: signingTime attribute",
                TimeSource::PdfM => "claimed by the signer: /M of the signature dictionary",
                TimeSource::VerificationTime => "none in the file: time of verification",
            };
            let _ = writeln!(s, "  Signing time: {t} ({src})");
        }
        if let Some(a) = &sig.algorithm {
            let _ = writeln!(s, "  Algorithm:    {a}");
        }
        if sig.byte_range.len() == 4 {
            let cover = if sig.covers_whole_file {
                "the whole file".to_owned()
            } else {
                format!("all but {} bytes appended after it", sig.bytes_after)
            };
            let _ = writeln!(s, "  Covers:       {cover}");
        }
        for (i, c) in sig.chain.iter().enumerate() {
            let label = if i == 0 {
                "  Chain:        "
            } else {
                "                "
            };
            let anchor = if c.trust_anchor {
                " [trust anchor]"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "{label}{}{anchor} (valid {} to {})",
                c.subject, c.not_before, c.not_after
            );
        }
        if let Some(rev) = &sig.revocation {
            let word = match rev.status {
                RevocationStatus::CheckedGood => "checked, not revoked",
                RevocationStatus::NotChecked => "NOT CHECKED",
                RevocationStatus::Revoked => "REVOKED",
            };
            let _ = writeln!(s, "  Revocation:   {word}");
            for c in &rev.certificates {
                let _ = writeln!(s, "                - {}", c.message);
            }
            if rev.certificates.is_empty() {
                let _ = writeln!(s, "                - {}", rev.message);
            }
        }
        for r in &sig.reasons {
            let sev = match r.severity {
                Severity::Warning => "warning",
                Severity::Untrusted => "untrusted",
                Severity::Invalid => "error",
            };
            let _ = writeln!(s, "  - {sev} [{}]: {}", r.code.as_str(), r.message);
        }
    }
    s
}

/// `giaoban verify FILE.pdf [--trust DIR_OR_PEM]` in one call: the text to
/// print and the exit code (see [`exit_code`]; 4 when the file cannot be
/// read or is not a PDF, 5 when the trust store or one of its CRLs cannot
/// be loaded). Without a trust store, good signatures are reported
/// untrusted.
pub fn verify_file_cli(path: &Path, trust_path: Option<&Path>) -> (String, i32) {
    let opts = VerifyOptions::default();
    let trust = match trust_path {
        Some(p) => match TrustStore::from_path(p) {
            Ok(t) => t,
            Err(e) => return (format!("error: {e}\n"), EXIT_TRUST_STORE),
        },
        None => TrustStore::empty(),
    };
    let bytes = match std::fs::metadata(path) {
        Ok(m) if m.len() > opts.max_file_size => {
            let e = SignatureError::TooLarge {
                size: m.len(),
                max: opts.max_file_size,
            };
            return (format!("error: {e}\n"), EXIT_UNREADABLE);
        }
        Ok(_) => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                return (
                    format!("error: cannot read {}: {e}\n", path.display()),
                    EXIT_UNREADABLE,
                )
            }
        },
        Err(e) => {
            return (
                format!("error: cannot read {}: {e}\n", path.display()),
                EXIT_UNREADABLE,
            )
        }
    };
    match verify_pdf(&bytes, &trust, &opts) {
        Ok(report) => {
            let mut text = format_report(&report);
            if trust_path.is_none() {
                text.push_str("\n(no trust store given: use --trust DIR_OR_PEM)\n");
            }
            (text, exit_code(&report))
        }
        Err(e) => (format!("error: {e}\n"), EXIT_UNREADABLE),
    }
}
