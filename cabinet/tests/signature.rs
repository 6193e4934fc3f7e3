//! PDF signature verification against PDFs signed by an independent tool
//! (pyHanko), made at test time by `tests/fixtures/make_signed_pdfs.py`.
//!
//! Needs `python3` on PATH with pyHanko and cryptography:
//! `pip install pyhanko==0.38.0 cryptography==48.0.0`. Without them these
//! tests fail (they do not skip).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cabinet::signature::{
    exit_code, format_report, verify_file_cli, verify_pdf, FileStatus, ReasonCode, Report,
    RevocationStatus, SignatureKind, SignatureStatus, TimeSource, TrustStore, VerifyOptions,
};

/// The fixtures, made once per test binary run.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Under target/tmp (not /tmp): kept after the run, for a look at the
        // PDFs when a test fails; those of runs older than an hour go.
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600);
            if old
                && entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("signed-pdfs-")
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("signed-pdfs-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temp dir")
            .keep();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make_signed_pdfs.py");
        let out = Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run python3 ({e}): the signature tests need python3 with \
                     `pip install pyhanko==0.38.0 cryptography==48.0.0`"
                )
            });
        assert!(
            out.status.success(),
            "{} failed ({}): the signature tests need \
             `pip install pyhanko==0.38.0 cryptography==48.0.0`\nstdout: {}\nstderr: {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn trust() -> TrustStore {
    TrustStore::from_path(fixtures().join("trust")).expect("trust store")
}

fn verify(name: &str) -> Report {
    verify_with(name, "trust")
}

/// Verifies a fixture against one of the fixture trust folders.
fn verify_with(name: &str, trust_dir: &str) -> Report {
    let trust = TrustStore::from_path(fixtures().join(trust_dir)).expect("trust store");
    let bytes = std::fs::read(fixtures().join(name)).expect("fixture");
    let report = verify_pdf(&bytes, &trust, &VerifyOptions::default()).expect("verifiable");
    println!("== {name} under {trust_dir}\n{}", format_report(&report));
    report
}

fn codes(report: &Report, i: usize) -> Vec<ReasonCode> {
    report.signatures[i]
        .reasons
        .iter()
        .map(|r| r.code)
        .collect()
}

fn assert_single_valid(report: &Report, name: &str, algorithm: &str) {
    assert_eq!(report.status, FileStatus::Valid, "{report:#?}");
    assert_eq!(report.signatures.len(), 1);
    let s = &report.signatures[0];
    assert_eq!(s.status, SignatureStatus::Valid);
    assert!(s.reasons.is_empty(), "{:?}", s.reasons);
    assert_eq!(s.signer_name.as_deref(), Some(name));
    assert_eq!(s.organization.as_deref(), Some("UBND tinh Thu Nghiem"));
    assert!(s.covers_whole_file);
    assert_eq!(s.bytes_after, 0);
    assert!(
        s.algorithm
            .as_deref()
            .is_some_and(|a| a.contains(algorithm)),
        "{:?}",
        s.algorithm
    );
    assert_eq!(s.chain.len(), 3, "leaf, intermediate, root");
    assert!(s.chain[2].trust_anchor);
    assert!(s.signing_time_unix.is_some());
    // The fixture trust folder has current CRLs of both CAs.
    let rev = s.revocation.as_ref().expect("revocation checked");
    assert_eq!(rev.status, RevocationStatus::CheckedGood, "{rev:#?}");
    assert_eq!(report.revocation, Some(RevocationStatus::CheckedGood));
    assert_eq!(exit_code(report), 0);
}

#[test]
fn valid_rsa() {
    let r = verify("valid_rsa.pdf");
    assert_single_valid(&r, "Nguyễn Văn An", "RSA PKCS#1 v1.5 / SHA-256");
    let s = &r.signatures[0];
    assert_eq!(s.sub_filter.as_deref(), Some("ETSI.CAdES.detached"));
    // PAdES has no signingTime attribute: the time is the dictionary's /M.
    assert_eq!(s.signing_time_source, TimeSource::PdfM);
    assert_eq!(s.pdf_location.as_deref(), Some("Ha Noi"));
}

#[test]
fn valid_ecdsa() {
    let r = verify("valid_ecdsa.pdf");
    assert_single_valid(&r, "Trần Thị Bình", "ECDSA P-256");
    let s = &r.signatures[0];
    assert_eq!(s.sub_filter.as_deref(), Some("adbe.pkcs7.detached"));
    assert_eq!(s.signing_time_source, TimeSource::SigningTimeAttribute);
}

#[test]
fn valid_p384_and_pss() {
    assert_single_valid(&verify("valid_p384.pdf"), "Lê Văn Cường", "ECDSA P-384");
    assert_single_valid(&verify("valid_pss.pdf"), "Nguyễn Văn An", "RSA-PSS");
}

#[test]
fn ber_encoded_cms() {
    assert_single_valid(&verify("ber_cms.pdf"), "Nguyễn Văn An", "RSA PKCS#1 v1.5");
}

#[test]
fn signature_timestamp_gives_the_time() {
    let r = verify("timestamped.pdf");
    assert_single_valid(&r, "Nguyễn Văn An", "RSA");
    assert_eq!(
        r.signatures[0].signing_time_source,
        TimeSource::SignatureTimestamp
    );
}

#[test]
fn document_timestamp() {
    let r = verify("doc_timestamp.pdf");
    assert_eq!(r.status, FileStatus::Valid, "{r:#?}");
    assert_eq!(r.signatures.len(), 2);
    assert_eq!(codes(&r, 0), vec![ReasonCode::AppendedContent]);
    let ts = &r.signatures[1];
    assert_eq!(ts.kind, SignatureKind::DocumentTimestamp);
    assert_eq!(ts.status, SignatureStatus::Valid, "{:?}", ts.reasons);
    assert!(ts.covers_whole_file);
    assert_eq!(ts.signer_name.as_deref(), Some("Giaoban Test TSA"));
}

#[test]
fn tampered_after_signing() {
    let r = verify("tampered.pdf");
    assert_eq!(r.status, FileStatus::Invalid);
    assert_eq!(r.signatures[0].status, SignatureStatus::Invalid);
    assert_eq!(codes(&r, 0), vec![ReasonCode::DigestMismatch]);
    assert_eq!(exit_code(&r), 1);
}

#[test]
fn untrusted_ca() {
    let r = verify("untrusted.pdf");
    assert_eq!(r.status, FileStatus::Untrusted);
    let s = &r.signatures[0];
    assert_eq!(s.status, SignatureStatus::Untrusted);
    assert_eq!(codes(&r, 0), vec![ReasonCode::UntrustedChain]);
    assert_eq!(s.signer_name.as_deref(), Some("Kẻ Lạ Mặt"));
    assert_eq!(exit_code(&r), 3);
    // Trusting the other root makes it valid.
    let mut t = trust();
    let pem = std::fs::read(fixtures().join("other_root.pem")).expect("pem");
    assert_eq!(t.add_pem_or_der(&pem), Ok(1));
    let bytes = std::fs::read(fixtures().join("untrusted.pdf")).expect("fixture");
    let r = verify_pdf(&bytes, &t, &VerifyOptions::default()).expect("verifiable");
    assert_eq!(r.status, FileStatus::Valid, "{r:#?}");
}

#[test]
fn expired_certificate() {
    let r = verify("expired.pdf");
    assert_eq!(r.status, FileStatus::Invalid);
    assert_eq!(codes(&r, 0), vec![ReasonCode::ExpiredAtSigning]);
    assert_eq!(exit_code(&r), 1);
}

#[test]
fn bad_key_usage() {
    let r = verify("bad_key_usage.pdf");
    assert_eq!(r.status, FileStatus::Invalid);
    assert_eq!(codes(&r, 0), vec![ReasonCode::BadKeyUsage]);
}

#[test]
fn appended_content() {
    let r = verify("appended.pdf");
    let s = &r.signatures[0];
    // The signature itself is intact; what follows it is reported.
    assert_eq!(s.status, SignatureStatus::Valid);
    assert!(!s.covers_whole_file);
    let valid_len = std::fs::metadata(fixtures().join("valid_rsa.pdf"))
        .expect("meta")
        .len();
    assert_eq!(s.bytes_after, r.file_size - valid_len);
    assert!(s.bytes_after > 0);
    assert_eq!(codes(&r, 0), vec![ReasonCode::AppendedContent]);
    assert!(s.reasons[0].message.contains("no signature covers them"));
    // File level: still valid, with the unsigned tail reported.
    assert_eq!(r.status, FileStatus::Valid);
    assert_eq!(r.unsigned_trailing_bytes, s.bytes_after);
    assert_eq!(r.reasons[0].code, ReasonCode::AppendedContent);
    assert!(format_report(&r).contains(&format!("WARNING: the last {} bytes", s.bytes_after)));
    // `giaoban verify` does not call such a file good.
    assert_eq!(exit_code(&r), 6);
}

#[test]
fn two_signatures() {
    let r = verify("two_signatures.pdf");
    assert_eq!(r.status, FileStatus::Valid, "{r:#?}");
    assert_eq!(r.signatures.len(), 2);
    assert_eq!(
        r.signatures[0].signer_name.as_deref(),
        Some("Nguyễn Văn An")
    );
    assert_eq!(
        r.signatures[1].signer_name.as_deref(),
        Some("Trần Thị Bình")
    );
    assert!(r
        .signatures
        .iter()
        .all(|s| s.status == SignatureStatus::Valid));
    // The first is followed by the second, which covers everything.
    assert_eq!(codes(&r, 0), vec![ReasonCode::AppendedContent]);
    assert!(r.signatures[0].reasons[0]
        .message
        .contains("covered by signature #2"));
    assert!(codes(&r, 1).is_empty());
    assert!(r.signatures[1].covers_whole_file);
    assert_eq!(r.unsigned_trailing_bytes, 0);
    assert!(r.reasons.is_empty());
    assert_eq!(exit_code(&r), 0);
}

#[test]
fn unsigned() {
    let r = verify("unsigned.pdf");
    assert_eq!(r.status, FileStatus::NoSignature);
    assert_eq!(r.reasons[0].code, ReasonCode::NoSignature);
    assert_eq!(exit_code(&r), 2);
}

#[test]
fn garbage_and_truncated() {
    let garbage = std::fs::read(fixtures().join("garbage.pdf")).expect("fixture");
    assert!(verify_pdf(&garbage, &trust(), &VerifyOptions::default()).is_err());
    // Every truncation of a signed file: an error or a report, never a panic,
    // and never a valid verdict once signed bytes are missing.
    let valid = std::fs::read(fixtures().join("valid_rsa.pdf")).expect("fixture");
    let t = trust();
    for cut in (0..valid.len()).step_by(97) {
        if let Ok(r) = verify_pdf(&valid[..cut], &t, &VerifyOptions::default()) {
            assert_ne!(r.status, FileStatus::Valid, "cut at {cut}");
        }
    }
    // Every byte of the signature's /Contents flipped in turn, a sample.
    let at = valid
        .windows(11)
        .position(|w| w == b"/Contents <")
        .expect("contents")
        + 11;
    // The DER is `30 82 LL LL ...`: 4 header bytes, then the zero padding.
    let len_hex = std::str::from_utf8(&valid[at + 4..at + 8]).expect("hex");
    let der_len = 4 + usize::from_str_radix(len_hex, 16).expect("length");
    let padding_at = at + 2 * der_len;
    for i in (at..padding_at).step_by(5) {
        let mut m = valid.clone();
        m[i] = if m[i] == b'0' { b'1' } else { b'0' };
        let r = verify_pdf(&m, &t, &VerifyOptions::default()).expect("still a PDF");
        assert_ne!(
            r.status,
            FileStatus::Valid,
            "a change at {i} kept the signature valid"
        );
    }
}

#[test]
fn cli_text_and_exit_codes() {
    let dir = fixtures();
    let trust_dir = dir.join("trust");
    let cases = [
        ("valid_rsa.pdf", 0),
        ("tampered.pdf", 1),
        ("unsigned.pdf", 2),
        ("untrusted.pdf", 3),
        ("garbage.pdf", 4),
    ];
    for (name, code) in cases {
        let (text, got) = verify_file_cli(&dir.join(name), Some(&trust_dir));
        assert_eq!(got, code, "{name}: {text}");
    }
    let (text, code) = verify_file_cli(&dir.join("valid_rsa.pdf"), Some(&trust_dir));
    assert!(text.starts_with("VALID"), "{text}");
    assert!(text.contains("Nguyễn Văn An"), "{text}");
    // No trust store: intact but untrusted.
    assert_eq!(code, 0);
    assert_eq!(verify_file_cli(&dir.join("valid_rsa.pdf"), None).1, 3);
    assert_eq!(
        verify_file_cli(&dir.join("missing.pdf"), Some(&trust_dir)).1,
        4
    );
    assert_eq!(
        verify_file_cli(&dir.join("valid_rsa.pdf"), Some(&dir.join("nope"))).1,
        5
    );
    // A PEM bundle file works as a trust store too (without CRLs: valid,
    // revocation not checked).
    assert_eq!(
        verify_file_cli(&dir.join("valid_rsa.pdf"), Some(&dir.join("root.pem"))).1,
        7
    );
}

#[test]
fn report_is_json() {
    let r = verify("two_signatures.pdf");
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["status"], "valid");
    assert_eq!(
        json["signatures"][0]["reasons"][0]["code"],
        "appended_content"
    );
    assert_eq!(json["signatures"][1]["signing_time_source"], "pdf_m");
}

#[test]
fn bad_signature_value() {
    // The signature value is the last field of the only SignerInfo, so the
    // last bytes of the DER (before the zero padding) are its bytes.
    let valid = std::fs::read(fixtures().join("valid_rsa.pdf")).expect("fixture");
    let at = valid
        .windows(11)
        .position(|w| w == b"/Contents <")
        .expect("contents")
        + 11;
    let len_hex = std::str::from_utf8(&valid[at + 4..at + 8]).expect("hex");
    let der_len = 4 + usize::from_str_radix(len_hex, 16).expect("length");
    let mut m = valid.clone();
    let i = at + 2 * der_len - 10;
    m[i] = if m[i] == b'0' { b'1' } else { b'0' };
    let r = verify_pdf(&m, &trust(), &VerifyOptions::default()).expect("a PDF");
    assert_eq!(r.status, FileStatus::Invalid);
    assert_eq!(codes(&r, 0), vec![ReasonCode::BadSignature]);
    assert_eq!(exit_code(&r), 1);
}

// ------------------------------------------------------------- revocation ----

/// The serial of the RSA signer ("Nguyễn Văn An"), as the report writes it.
fn rsa_signer_serial() -> String {
    let s = std::fs::read_to_string(fixtures().join("signer_rsa.serial")).expect("serial");
    // The report writes the DER INTEGER octets: a leading 00 when the high
    // bit is set, an even number of digits.
    let mut s = s.trim().to_owned();
    if s.len() % 2 == 1 {
        s.insert(0, '0');
    }
    if s.as_bytes().first().is_some_and(|c| *c >= b'8') {
        s.insert_str(0, "00");
    }
    s
}

#[test]
fn revocation_checked_good() {
    let r = verify("valid_rsa.pdf");
    let rev = r.signatures[0].revocation.as_ref().expect("revocation");
    assert_eq!(rev.status, RevocationStatus::CheckedGood);
    // Signer, then the intermediate CA; the anchor is not checked.
    assert_eq!(rev.certificates.len(), 2, "{rev:#?}");
    let leaf = &rev.certificates[0];
    assert!(leaf.subject.contains("Nguyễn Văn An"));
    assert_eq!(leaf.serial, rsa_signer_serial());
    assert_eq!(leaf.status, RevocationStatus::CheckedGood);
    let crl = leaf.crl.as_ref().expect("the CRL used");
    assert_eq!(crl.file, "intermediate.crl");
    assert!(crl.issuer.contains("Giaoban Test Sub CA"));
    assert!(crl.next_update.is_some());
    assert_eq!(leaf.revoked_at, None);
    let inter = &rev.certificates[1];
    assert!(inter.subject.contains("Giaoban Test Sub CA"));
    assert_eq!(
        inter.crl.as_ref().map(|c| c.file.as_str()),
        Some("root.crl")
    );
    assert!(format_report(&r).contains("Revocation:   checked, not revoked"));
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["revocation"], "checked_good");
    assert_eq!(
        json["signatures"][0]["revocation"]["status"],
        "checked_good"
    );
    assert!(
        json["signatures"][0]["revocation"]["certificates"][0]["crl"]["this_update"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

#[test]
fn revoked_signer_is_invalid() {
    let r = verify_with("valid_rsa.pdf", "trust_revoked");
    assert_eq!(r.status, FileStatus::Invalid, "{r:#?}");
    let s = &r.signatures[0];
    assert_eq!(s.status, SignatureStatus::Invalid);
    assert_eq!(codes(&r, 0), vec![ReasonCode::Revoked]);
    let rev = s.revocation.as_ref().expect("revocation");
    assert_eq!(rev.status, RevocationStatus::Revoked);
    assert_eq!(r.revocation, Some(RevocationStatus::Revoked));
    let leaf = &rev.certificates[0];
    assert_eq!(leaf.status, RevocationStatus::Revoked);
    assert!(leaf.revoked_at.is_some());
    assert!(leaf.message.contains("was revoked on"), "{}", leaf.message);
    assert!(
        leaf.message.contains(&rsa_signer_serial()),
        "{}",
        leaf.message
    );
    // The intermediate is not revoked.
    assert_eq!(rev.certificates[1].status, RevocationStatus::CheckedGood);
    assert!(format_report(&r).contains("Revocation:   REVOKED"));
    assert_eq!(exit_code(&r), 1);
    // Another signer under the same CA stays valid, and checked.
    let other = verify_with("valid_ecdsa.pdf", "trust_revoked");
    assert_eq!(other.status, FileStatus::Valid, "{other:#?}");
    assert_eq!(other.revocation, Some(RevocationStatus::CheckedGood));
    assert_eq!(exit_code(&other), 0);
    // A revocation before the timestamped signing time counts as well.
    let ts = verify_with("timestamped.pdf", "trust_revoked");
    assert_eq!(ts.status, FileStatus::Invalid);
    assert_eq!(codes(&ts, 0), vec![ReasonCode::Revoked]);
}

#[test]
fn revoked_after_a_timestamped_signing() {
    // Revoked just after every fixture was signed: only a signing time
    // proven by a timestamp is believed to be before it.
    let ts = verify_with("timestamped.pdf", "trust_revoked_later");
    assert_eq!(ts.status, FileStatus::Valid, "{ts:#?}");
    let rev = ts.signatures[0].revocation.as_ref().expect("revocation");
    assert_eq!(rev.status, RevocationStatus::CheckedGood);
    assert!(rev.certificates[0].revoked_at.is_some());
    assert!(
        rev.certificates[0]
            .message
            .contains("after the signing time"),
        "{}",
        rev.certificates[0].message
    );
    assert_eq!(exit_code(&ts), 0);
    // The same revocation with a time only claimed by the signer (/M).
    let claimed = verify_with("valid_rsa.pdf", "trust_revoked_later");
    assert_eq!(claimed.status, FileStatus::Invalid);
    assert_eq!(codes(&claimed, 0), vec![ReasonCode::Revoked]);
    assert!(claimed.signatures[0].reasons[0]
        .message
        .contains("only claimed by the signer"));
}

fn assert_not_checked(r: &Report, needle: &str) {
    assert_eq!(r.status, FileStatus::Valid, "{r:#?}");
    let s = &r.signatures[0];
    assert_eq!(s.status, SignatureStatus::Valid);
    assert_eq!(codes(r, 0), vec![ReasonCode::RevocationNotChecked]);
    let rev = s.revocation.as_ref().expect("revocation");
    assert_eq!(rev.status, RevocationStatus::NotChecked);
    assert_eq!(r.revocation, Some(RevocationStatus::NotChecked));
    assert_eq!(rev.certificates[0].status, RevocationStatus::NotChecked);
    assert!(rev.message.contains(needle), "{}", rev.message);
    assert!(s.reasons[0].message.contains(needle));
    let text = format_report(r);
    assert!(text.starts_with("VALID, REVOCATION NOT CHECKED"), "{text}");
    assert!(text.contains("Revocation:   NOT CHECKED"), "{text}");
    assert_eq!(exit_code(r), 7);
}

#[test]
fn no_crl_means_not_checked() {
    let r = verify_with("valid_rsa.pdf", "trust_nocrl");
    assert_not_checked(
        &r,
        "no usable CRL of C=VN, O=Giaoban Test PKI, CN=Giaoban Test Sub CA",
    );
    let rev = r.signatures[0].revocation.as_ref().expect("revocation");
    // Neither CA has a CRL.
    assert!(rev
        .certificates
        .iter()
        .all(|c| c.status == RevocationStatus::NotChecked && c.crl.is_none()));
}

#[test]
fn expired_crl_means_not_checked() {
    let r = verify_with("valid_rsa.pdf", "trust_expired");
    assert_not_checked(&r, "expired on");
    let rev = r.signatures[0].revocation.as_ref().expect("revocation");
    // The expired CRL is named, with its dates.
    let crl = rev.certificates[0].crl.as_ref().expect("the expired CRL");
    assert_eq!(crl.file, "intermediate.crl");
    // The intermediate CA is checked by the current root CRL.
    assert_eq!(rev.certificates[1].status, RevocationStatus::CheckedGood);
    // The store says so when it is loaded.
    let t = TrustStore::from_path(fixtures().join("trust_expired")).expect("trust");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let warnings = t.crl_warnings(now);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("intermediate.crl") && w.contains("expired")),
        "{warnings:?}"
    );
    // Verified back when the CRL was current, the same file is checked.
    let bytes = std::fs::read(fixtures().join("valid_rsa.pdf")).expect("fixture");
    let opts = VerifyOptions {
        verification_time: Some(now - 2 * 86_400),
        ..VerifyOptions::default()
    };
    let then = verify_pdf(&bytes, &t, &opts).expect("verifiable");
    assert_eq!(
        then.revocation,
        Some(RevocationStatus::CheckedGood),
        "{then:#?}"
    );
}

#[test]
fn tampered_crl_is_ignored() {
    // The CRL revoking the signer, with one byte of its signature changed:
    // it is not believed (neither its revocations nor its silence).
    let r = verify_with("valid_rsa.pdf", "trust_tampered");
    assert_not_checked(&r, "intermediate.crl ignored");
    assert!(r.signatures[0].reasons[0]
        .message
        .contains("does not verify"));
    // A CRL under the sub CA's name signed by another key: the same.
    let r = verify_with("valid_rsa.pdf", "trust_forged");
    assert_not_checked(&r, "intermediate.crl ignored: it is for another key");
}

#[test]
fn tampered_root_crl_is_reported_at_load() {
    let pem = std::fs::read_to_string(fixtures().join("trust/root.crl")).expect("crl");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    let n = der.len();
    der[n - 3] ^= 0x40;
    let mut t = TrustStore::from_path(fixtures().join("trust_nocrl")).expect("trust");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(t.crl_warnings(now).is_empty());
    assert_eq!(t.add_crl_pem_or_der(&der, "bad-root.crl"), Ok(1));
    assert_eq!(t.crl_count(), 1);
    let warnings = t.crl_warnings(now);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("bad-root.crl") && w.contains("does not verify")),
        "{warnings:?}"
    );
    // A verification ignores it and says so.
    let bytes = std::fs::read(fixtures().join("valid_rsa.pdf")).expect("fixture");
    let r = verify_pdf(&bytes, &t, &VerifyOptions::default()).expect("verifiable");
    let rev = r.signatures[0].revocation.as_ref().expect("revocation");
    assert_eq!(rev.certificates[1].status, RevocationStatus::NotChecked);
    assert!(
        rev.certificates[1].message.contains("bad-root.crl ignored"),
        "{}",
        rev.certificates[1].message
    );
}

#[test]
fn bad_crl_files_are_refused() {
    let mut t = TrustStore::empty();
    assert!(t.add_crl_pem_or_der(b"not a crl", "x.crl").is_err());
    assert!(t
        .add_crl_pem_or_der(
            b"-----BEGIN X509 CRL-----\n!!\n-----END X509 CRL-----\n",
            "x.crl"
        )
        .is_err());
    // A certificate is not a CRL.
    let cert = std::fs::read(fixtures().join("root.pem")).expect("pem");
    assert!(t.add_crl_pem_or_der(&cert, "root.crl").is_err());
    // Every truncation of a DER CRL is an error, never a panic.
    let der = std::fs::read(fixtures().join("trust_revoked/intermediate.crl")).expect("crl");
    for cut in 0..der.len() {
        assert!(
            t.add_crl_pem_or_der(&der[..cut], "cut.crl").is_err(),
            "cut at {cut}"
        );
    }
    assert_eq!(t.crl_count(), 0);
    assert_eq!(t.add_crl_pem_or_der(&der, "whole.crl"), Ok(1));
    // A trust folder with a broken CRL does not load (exit code 5).
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(fixtures().join("root.pem"), dir.path().join("root.pem")).expect("copy");
    std::fs::write(dir.path().join("broken.crl"), &der[..der.len() / 2]).expect("write");
    let e = TrustStore::from_path(dir.path()).expect_err("refused");
    assert!(e.to_string().contains("broken.crl"), "{e}");
    let (text, code) = verify_file_cli(&fixtures().join("valid_rsa.pdf"), Some(dir.path()));
    assert_eq!(code, 5, "{text}");
}

#[test]
fn cli_exit_codes_for_revocation() {
    let dir = fixtures();
    let cases = [
        ("trust", 0),
        ("trust_nocrl", 7),
        ("trust_expired", 7),
        ("trust_tampered", 7),
        ("trust_revoked", 1),
    ];
    for (trust_dir, code) in cases {
        let (text, got) = verify_file_cli(&dir.join("valid_rsa.pdf"), Some(&dir.join(trust_dir)));
        assert_eq!(got, code, "{trust_dir}: {text}");
    }
    let (text, _) = verify_file_cli(&dir.join("valid_rsa.pdf"), Some(&dir.join("trust_nocrl")));
    assert!(text.contains("REVOCATION NOT CHECKED"), "{text}");
    // Appended content outranks an unchecked revocation (6 before 7).
    let (_, got) = verify_file_cli(&dir.join("appended.pdf"), Some(&dir.join("trust_nocrl")));
    assert_eq!(got, 6);
}

#[test]
fn version_1_crl() {
    // No version field and no extensions (RFC 5280 allows v1 CRLs): read,
    // its signature checked, its entries used.
    let r = verify_with("valid_rsa.pdf", "trust_v1");
    assert_eq!(r.status, FileStatus::Invalid, "{r:#?}");
    assert_eq!(codes(&r, 0), vec![ReasonCode::Revoked]);
    let other = verify_with("valid_ecdsa.pdf", "trust_v1");
    assert_eq!(other.revocation, Some(RevocationStatus::CheckedGood));
}

#[test]
fn crls_that_do_not_cover_the_signer_are_not_used() {
    // Three CRLs of the sub CA, none a complete list for the signer: one for
    // CA certificates only, one for another distribution point, one delta.
    let r = verify_with("valid_rsa.pdf", "trust_scoped");
    assert_not_checked(&r, "no usable CRL of");
    let msg = &r.signatures[0].reasons[0].message;
    for needle in [
        "sub_ca_only.crl ignored: it covers CA certificates only",
        "sub_elsewhere.crl ignored: it is for another distribution point",
        "sub_delta.crl ignored: it is a delta CRL",
    ] {
        assert!(msg.contains(needle), "{needle} in {msg}");
    }
    // The intermediate CA is a CA certificate: the root's CRL checks it.
    let rev = r.signatures[0].revocation.as_ref().expect("revocation");
    assert_eq!(rev.certificates[1].status, RevocationStatus::CheckedGood);
}
