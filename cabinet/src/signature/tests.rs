//! Hostile-input tests: garbage, truncation, lying byte ranges.

use super::*;

fn opts() -> VerifyOptions {
    VerifyOptions {
        verification_time: Some(1_700_000_000),
        ..VerifyOptions::default()
    }
}

#[test]
fn garbage_is_not_a_pdf() {
    let trust = TrustStore::empty();
    let mut x: u32 = 12345;
    let garbage: Vec<u8> = (0..100_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    assert!(matches!(
        verify_pdf(&garbage, &trust, &opts()),
        Err(SignatureError::NotPdf)
    ));
    assert!(matches!(
        verify_pdf(b"", &trust, &opts()),
        Err(SignatureError::NotPdf)
    ));
}

#[test]
fn unsigned_pdf_has_no_signature() {
    let r = verify_pdf(
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
        &TrustStore::empty(),
        &opts(),
    )
    .expect("a PDF");
    assert_eq!(r.status, FileStatus::NoSignature);
    assert_eq!(r.reasons[0].code, ReasonCode::NoSignature);
    assert_eq!(exit_code(&r), EXIT_NO_SIGNATURE);
}

fn sig_pdf(byte_range: &str, contents: &str) -> Vec<u8> {
    format!(
        "%PDF-1.7\n1 0 obj\n<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached /ByteRange {byte_range} /Contents {contents} >>\nendobj\n%%EOF\n"
    )
    .into_bytes()
}

fn only_reasons(pdf: &[u8]) -> Vec<ReasonCode> {
    let r = verify_pdf(pdf, &TrustStore::empty(), &opts()).expect("a PDF");
    assert_eq!(r.signatures.len(), 1, "{r:?}");
    assert_eq!(r.signatures[0].status, SignatureStatus::Invalid);
    r.signatures[0].reasons.iter().map(|r| r.code).collect()
}

#[test]
fn huge_fake_byte_range_is_malformed() {
    let pdf = sig_pdf(
        "[0 99999999999999999 99999999999999999999 99999999999999999]",
        "<00>",
    );
    assert_eq!(only_reasons(&pdf), vec![ReasonCode::Malformed]);
    let pdf = sig_pdf("[0 10 4000000000 4000000000]", "<00>");
    assert_eq!(only_reasons(&pdf), vec![ReasonCode::Malformed]);
    let pdf = sig_pdf(
        "[0 999999999999999999999999999999999999999999999 0 0]",
        "<00>",
    );
    assert_eq!(only_reasons(&pdf), vec![ReasonCode::Malformed]);
    let pdf = sig_pdf("[-5 10 20 5]", "<00>");
    assert_eq!(only_reasons(&pdf), vec![ReasonCode::Malformed]);
    let pdf = sig_pdf("[0 10 5 5]", "<00>");
    assert_eq!(only_reasons(&pdf), vec![ReasonCode::Malformed]);
    let pdf = sig_pdf("5 0 R", "<00>");
    assert_eq!(only_reasons(&pdf), vec![ReasonCode::Malformed]);
}

#[test]
fn gap_must_be_the_contents_string() {
    let mut pdf = sig_pdf("[0 0000000000 0000000000 0000000000]", "<3003020100>");
    let text = String::from_utf8_lossy(&pdf).into_owned();
    let start = text.find("<3003").expect("contents");
    let end = start + "<3003020100>".len();
    let br = format!("[0 {:010} {:010} {:010}]", start, end, pdf.len() - end);
    let fixed = text.replace("[0 0000000000 0000000000 0000000000]", &br);
    pdf = fixed.into_bytes();
    // The gap is right, the CMS is not a SignedData: malformed.
    assert_eq!(only_reasons(&pdf), vec![ReasonCode::Malformed]);
    // A gap one byte off.
    let br_off = format!("[0 {:010} {:010} {:010}]", start + 1, end, pdf.len() - end);
    let off = String::from_utf8_lossy(&pdf)
        .replace(&br, &br_off)
        .into_bytes();
    assert_eq!(only_reasons(&off), vec![ReasonCode::Malformed]);
}

#[test]
fn truncated_and_mangled_files_never_panic() {
    let base = sig_pdf("[0 10 20 5]", "<3082FFFF0000>");
    for cut in 0..base.len() {
        let _ = verify_pdf(&base[..cut], &TrustStore::empty(), &opts());
    }
    // Deep nesting and unterminated things around a /ByteRange.
    let mut deep = b"%PDF-1.7\n".to_vec();
    deep.extend(std::iter::repeat_n(b"<< /A [".as_slice(), 5000).flatten());
    deep.extend_from_slice(b"/ByteRange [0 1 2 3] /Contents <00");
    let r = verify_pdf(&deep, &TrustStore::empty(), &opts()).expect("a PDF");
    assert!(r
        .signatures
        .iter()
        .all(|s| s.status == SignatureStatus::Invalid));
    let mut many = b"%PDF-1.7\n".to_vec();
    for _ in 0..1000 {
        many.extend_from_slice(b"/ByteRange ");
    }
    assert!(matches!(
        verify_pdf(&many, &TrustStore::empty(), &opts()),
        Err(SignatureError::TooManySignatures { .. })
    ));
}

#[test]
fn malformed_cms_is_reported() {
    // A well-placed /Contents holding DER garbage: indefinite length,
    // truncated, wrong type, nested too deep.
    for hex in [
        "3080020100",
        "30820500",
        "0500",
        &"30".repeat(200),
        "06092A864886F70D010702",
    ] {
        let contents = format!("<{hex}>");
        let text =
            String::from_utf8_lossy(&sig_pdf("[0 0000000000 0000000000 0000000000]", &contents))
                .into_owned();
        let start = text.find(&contents).expect("contents");
        let end = start + contents.len();
        let br = format!("[0 {:010} {:010} {:010}]", start, end, text.len() - end);
        let pdf = text
            .replace("[0 0000000000 0000000000 0000000000]", &br)
            .into_bytes();
        assert_eq!(only_reasons(&pdf), vec![ReasonCode::Malformed], "{hex}");
    }
}

#[test]
fn report_serializes() {
    let r = verify_pdf(b"%PDF-1.4\n%%EOF", &TrustStore::empty(), &opts()).expect("a PDF");
    let json = serde_json::to_string(&r).expect("json");
    assert!(json.contains("\"no_signature\""), "{json}");
    let back: Report = serde_json::from_str(&json).expect("back");
    assert_eq!(back, r);
    assert!(format_report(&r).starts_with("NO SIGNATURE"));
}

#[test]
fn hostile_structure_costs_bounded_work() {
    // 8 MiB of "<<" and 30 /ByteRange keys at the end, then an open-ended
    // dictionary: every lookup walks back and parses, within the budgets.
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend(std::iter::repeat_n(b"<< /A 1 >> ".as_slice(), 800_000).flatten());
    for _ in 0..30 {
        pdf.extend_from_slice(b"<< /ByteRange [0 1 2 3] /Contents <00> /A [");
    }
    let started = std::time::Instant::now();
    let r = verify_pdf(&pdf, &TrustStore::empty(), &opts()).expect("a PDF");
    assert_eq!(r.signatures.len(), 30);
    assert_eq!(r.status, FileStatus::Invalid);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // A small budget: a clear malformed verdict, not a hang.
    let small = VerifyOptions {
        max_work_bytes: 1 << 20,
        ..opts()
    };
    let r = verify_pdf(&pdf, &TrustStore::empty(), &small).expect("a PDF");
    assert!(r
        .signatures
        .iter()
        .all(|s| s.reasons.iter().any(|r| r.code == ReasonCode::Malformed)));
}

#[test]
fn duplicate_keys_are_malformed() {
    let pdf = b"%PDF-1.7\n<< /SubFilter /ETSI.CAdES.detached /Contents <00> /ByteRange [0 1 2 3] /Contents <00> >>\n";
    let r = verify_pdf(pdf, &TrustStore::empty(), &opts()).expect("a PDF");
    assert_eq!(r.signatures.len(), 1);
    assert_eq!(r.signatures[0].reasons[0].code, ReasonCode::Malformed);
    assert!(r.signatures[0].reasons[0].message.contains("twice"));
}
