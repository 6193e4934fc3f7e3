//! Sealed minutes (issue 21) through a real server process: the secretariat
//! seals a meeting's minutes (`POST /api/meetings/{id}/minutes/seal`), gets
//! version 1 back, again the same version while nothing changes, version 2
//! after a conclusion is entered, and version 1 keeps its bytes. Each sealed
//! PDF is checked by two independent verifiers with the seal's certificate
//! (`GET /api/minutes/seal-certificate`, the same as `giaoban seal-cert`) as
//! the trust root: `giaoban verify` (ours) and pyHanko's validation; one
//! byte changed inside the signed range is caught by both; pdftotext still
//! reads the Vietnamese. The self-signed seal survives a restart. A
//! province's seal (a CA and a seal certificate made here with rcgen) given
//! by `[minutes] seal_cert` / `seal_key` verifies up to the CA. Who may seal
//! and read.
//!
//! Needs `pdftotext` (poppler-utils) and `python3` with
//! `pip install pyhanko==0.38.0 cryptography==48.0.0` (scripts/test installs
//! both).

use std::path::Path;

use anyhow::{ensure, Context, Result};
use giaoban_tests::{token_of, TestServer, WsClient};
use reqwest::StatusCode;
use serde_json::{json, Value};

const TITLE: &str = "Giao ban kinh tế - xã hội tháng 12";
const CONCLUSION: &str = "Thống nhất thông qua báo cáo; giao Sở Tài chính hoàn thiện hồ sơ.";

/// Text of a PDF by `pdftotext` (UTF-8).
fn pdf_text(path: &Path) -> Result<String> {
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(path)
        .arg("-")
        .output()
        .context("pdftotext (poppler-utils; scripts/test installs it)")?;
    ensure!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// pyHanko's verdict on `pdf` with `trust` as the trust root: (exit code,
/// its JSON line).
fn pyhanko(pdf: &Path, trust: &Path) -> Result<(i32, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("pdf/validate_seal.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(pdf)
        .arg(trust)
        .output()
        .context("python3 (pyHanko)")?;
    let code = out.status.code().unwrap_or(-1);
    ensure!(
        code != 3,
        "pyHanko is missing: pip install pyhanko==0.38.0 cryptography==48.0.0\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((
        code,
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// `giaoban verify FILE --trust PEM`: (exit code, report).
async fn giaoban_verify(server: &TestServer, pdf: &Path, trust: &Path) -> Result<(i32, String)> {
    let out = server
        .cli_output(&[
            "verify",
            pdf.to_str().context("path")?,
            "--trust",
            trust.to_str().context("path")?,
        ])
        .await?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// Both verifiers accept `pdf` under `trust`. `giaoban verify` exits 0, or
/// 7 when `chain` (the seal is below the anchor: with no CRL in the trust
/// file, its revocation is not checked).
async fn both_accept(server: &TestServer, pdf: &Path, trust: &Path, chain: bool) -> Result<String> {
    let (code, report) = giaoban_verify(server, pdf, trust).await?;
    ensure!(
        code == 0 || (chain && code == 7),
        "giaoban verify: exit {code}\n{report}"
    );
    ensure!(report.starts_with("VALID"), "{report}");
    ensure!(report.contains("ETSI.CAdES.detached"), "{report}");
    ensure!(report.contains("the whole file"), "{report}");
    let (code, out) = pyhanko(pdf, trust)?;
    ensure!(code == 0, "pyHanko: exit {code}\n{out}");
    ensure!(out.contains("\"trusted\": true"), "{out}");
    Ok(report)
}

/// One byte inside the signed range changed: both verifiers refuse.
async fn both_refuse_tampered(
    server: &TestServer,
    bytes: &[u8],
    dir: &Path,
    trust: &Path,
) -> Result<()> {
    // A byte of the original minutes (well before the signature).
    let mut bad = bytes.to_vec();
    let at = bad.len() / 3;
    bad[at] = if bad[at] == b'7' { b'8' } else { b'7' };
    let path = dir.join("tampered.pdf");
    std::fs::write(&path, &bad)?;
    let (code, report) = giaoban_verify(server, &path, trust).await?;
    ensure!(
        code == 1,
        "giaoban verify accepted a changed file: exit {code}\n{report}"
    );
    ensure!(report.contains("digest mismatch"), "{report}");
    let (code, out) = pyhanko(&path, trust)?;
    ensure!(
        code == 1,
        "pyHanko accepted a changed file: exit {code}\n{out}"
    );
    Ok(())
}

async fn seal(
    http: &reqwest::Client,
    base: &str,
    meeting: &str,
    token: &str,
) -> Result<(StatusCode, Value)> {
    let r = http
        .post(format!("{base}/api/meetings/{meeting}/minutes/seal"))
        .bearer_auth(token)
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

async fn version_bytes(
    http: &reqwest::Client,
    base: &str,
    meeting: &str,
    n: i64,
    token: &str,
) -> Result<Vec<u8>> {
    let r = http
        .get(format!(
            "{base}/api/meetings/{meeting}/minutes/versions/{n}"
        ))
        .bearer_auth(token)
        .send()
        .await?;
    ensure!(r.status() == StatusCode::OK, "version {n}: {}", r.status());
    ensure!(r.headers()["content-type"] == "application/pdf");
    let disposition = r.headers()["content-disposition"].to_str()?.to_owned();
    ensure!(
        disposition.contains(&format!("-ban-{n}.pdf")),
        "{disposition}"
    );
    Ok(r.bytes().await?.to_vec())
}

/// A client that opens a connection per request: the verifiers take
/// seconds, long enough for the server to close an idle kept-alive
/// connection just as the next request goes out on it.
fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?)
}

fn sha256_hex(bytes: &[u8]) -> Result<String> {
    // sha256sum is in coreutils: an implementation other than the server's.
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("f");
    std::fs::write(&p, bytes)?;
    let out = std::process::Command::new("sha256sum").arg(&p).output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test]
async fn sealed_minutes_are_versioned_and_verify_everywhere() -> Result<()> {
    let mut server = TestServer::start_with_config(
        "[minutes]\nissuer = \"ỦY BAN NHÂN DÂN\\nTỈNH HƯNG YÊN\"\nplace = \"Hưng Yên\"\n",
    )
    .await?;
    let http = client()?;
    let base = server.base_url();
    let admin = server.staff_token("quantri", "admin").await?;
    let operator = server.staff_token("vanhanh", "operator").await?;
    let meeting = server.create_meeting(TITLE).await?;
    let item: Value = http
        .post(format!("{base}/api/meetings/{meeting}/agenda"))
        .bearer_auth(&admin)
        .json(&json!({"title": "Báo cáo tình hình kinh tế - xã hội", "presenter": "Sở Tài chính"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let item_id = item["id"].as_str().context("item id")?.to_owned();
    let dir = tempfile::tempdir()?;

    // The seal's certificate: public, and the same as `giaoban seal-cert`.
    let r = http
        .get(format!("{base}/api/minutes/seal-certificate"))
        .send()
        .await?;
    ensure!(
        r.status() == StatusCode::OK,
        "seal-certificate: {}",
        r.status()
    );
    let cert_pem = r.text().await?;
    ensure!(
        cert_pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{cert_pem}"
    );
    let cli_pem = server.cli(&["seal-cert"]).await?;
    ensure!(
        cli_pem.trim() == cert_pem.trim(),
        "CLI and API certificates differ"
    );
    let trust = dir.path().join("seal.pem");
    std::fs::write(&trust, &cert_pem)?;

    // Version 1.
    let (status, v1) = seal(&http, &base, &meeting, &admin).await?;
    ensure!(status == StatusCode::CREATED, "seal: {status} {v1}");
    ensure!(v1["version"] == 1 && v1["created"] == true, "{v1}");
    let bytes1 = version_bytes(&http, &base, &meeting, 1, &admin).await?;
    ensure!(v1["sha256"] == sha256_hex(&bytes1)?, "{v1}");
    ensure!(v1["size"] == bytes1.len(), "{v1}");
    // The sealed file begins with the draft: the seal is an update after it.
    let draft = http
        .get(format!("{base}/api/meetings/{meeting}/minutes.pdf"))
        .bearer_auth(&admin)
        .send()
        .await?
        .bytes()
        .await?;
    ensure!(
        bytes1.starts_with(&draft),
        "the sealed PDF does not extend the draft"
    );
    let p1 = dir.path().join("v1.pdf");
    std::fs::write(&p1, &bytes1)?;
    let report = both_accept(&server, &p1, &trust, false).await?;
    ensure!(
        report.contains("ỦY BAN NHÂN DÂN TỈNH HƯNG YÊN (con dấu số giaoban)"),
        "{report}"
    );
    let text = pdf_text(&p1)?;
    for want in [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "BIÊN BẢN",
        TITLE,
        "TỈNH HƯNG YÊN",
    ] {
        ensure!(
            text.contains(want),
            "missing {want:?} in the sealed PDF's text\n{text}"
        );
    }
    both_refuse_tampered(&server, &bytes1, dir.path(), &trust).await?;

    // Nothing changed: the same version, not a new one.
    let (status, again) = seal(&http, &base, &meeting, &admin).await?;
    ensure!(status == StatusCode::OK, "seal again: {status} {again}");
    ensure!(
        again["version"] == 1 && again["created"] == false,
        "{again}"
    );
    ensure!(again["sha256"] == v1["sha256"], "{again}");

    // A conclusion: the correction is version 2, version 1 unchanged.
    http.put(format!("{base}/api/agenda/{item_id}/conclusion"))
        .bearer_auth(&admin)
        .json(&json!({"text": CONCLUSION}))
        .send()
        .await?
        .error_for_status()?;
    let (status, v2) = seal(&http, &base, &meeting, &admin).await?;
    ensure!(status == StatusCode::CREATED, "seal v2: {status} {v2}");
    ensure!(v2["version"] == 2 && v2["created"] == true, "{v2}");
    ensure!(version_bytes(&http, &base, &meeting, 1, &admin).await? == bytes1);
    let bytes2 = version_bytes(&http, &base, &meeting, 2, &operator).await?;
    let p2 = dir.path().join("v2.pdf");
    std::fs::write(&p2, &bytes2)?;
    both_accept(&server, &p2, &trust, false).await?;
    ensure!(
        pdf_text(&p2)?.contains("Thống nhất thông qua báo cáo"),
        "v2 lacks the conclusion"
    );
    ensure!(
        !pdf_text(&p1)?.contains("Thống nhất thông qua báo cáo"),
        "v1 changed"
    );

    // The list, oldest first.
    let list: Value = http
        .get(format!("{base}/api/meetings/{meeting}/minutes/versions"))
        .bearer_auth(&operator)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let versions: Vec<i64> = list
        .as_array()
        .context("array")?
        .iter()
        .filter_map(|v| v["version"].as_i64())
        .collect();
    ensure!(versions == [1, 2], "{list}");
    ensure!(
        list[0]["url"] == format!("/api/meetings/{meeting}/minutes/versions/1"),
        "{list}"
    );

    // Audited: one `minutes.sealed` per version.
    let audit: Value = http
        .get(format!("{base}/api/audit?action=minutes.sealed"))
        .bearer_auth(&admin)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let entries = audit["entries"]
        .as_array()
        .or_else(|| audit.as_array())
        .context("audit entries")?;
    ensure!(entries.len() == 2, "{audit}");

    // Who: the chair's invitation seals (nothing changed: 200), a member's
    // and an operator may not, nobody without a token.
    let chair_url = server
        .invite(&meeting, "Chủ tịch Nguyễn Văn A", "chair")
        .await?;
    let chair = token_of(&chair_url)?.to_owned();
    let member_url = server.invite(&meeting, "Bà Lê Thị B", "member").await?;
    let member = token_of(&member_url)?.to_owned();
    let (status, by_chair) = seal(&http, &base, &meeting, &chair).await?;
    ensure!(
        status == StatusCode::OK || status == StatusCode::CREATED,
        "chair: {status} {by_chair}"
    );
    for (token, want) in [
        (&member, StatusCode::FORBIDDEN),
        (&operator, StatusCode::FORBIDDEN),
    ] {
        let (status, _) = seal(&http, &base, &meeting, token).await?;
        ensure!(status == want, "seal: {status}, expected {want}");
    }
    let r = http
        .post(format!("{base}/api/meetings/{meeting}/minutes/seal"))
        .send()
        .await?;
    ensure!(r.status() == StatusCode::UNAUTHORIZED, "{}", r.status());
    for path in ["minutes/versions", "minutes/versions/1"] {
        let r = http
            .get(format!("{base}/api/meetings/{meeting}/{path}"))
            .bearer_auth(&member)
            .send()
            .await?;
        ensure!(
            r.status() == StatusCode::FORBIDDEN,
            "{path}: {}",
            r.status()
        );
    }
    for path in [
        "minutes/versions/9",
        "minutes/versions/0",
        "minutes/versions/x",
    ] {
        let r = http
            .get(format!("{base}/api/meetings/{meeting}/{path}"))
            .bearer_auth(&admin)
            .send()
            .await?;
        ensure!(
            r.status() == StatusCode::NOT_FOUND,
            "{path}: {}",
            r.status()
        );
    }
    let (status, _) = seal(&http, &base, "no-such-meeting", &admin).await?;
    ensure!(status == StatusCode::NOT_FOUND, "{status}");

    // A live session changes nothing in the stored versions; the seal
    // survives a restart (same certificate, same stored bytes).
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    ws.hello_and_join(&chair).await?;
    ws.close().await;
    server.terminate(std::time::Duration::from_secs(10)).await?;
    server.restart().await?;
    let base = server.base_url();
    let after = http
        .get(format!("{base}/api/minutes/seal-certificate"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(after == cert_pem, "the seal changed across a restart");
    ensure!(version_bytes(&http, &base, &meeting, 1, &admin).await? == bytes1);
    Ok(())
}

/// A province's seal: a CA and a seal certificate it issued (ECDSA P-256,
/// made with rcgen), given to the server by `[minutes] seal_cert` (the seal
/// certificate, then the CA) and `seal_key`. The sealed minutes verify with
/// only the CA as trust root, in both verifiers.
#[tokio::test]
async fn province_seal_chain_verifies_to_its_ca() -> Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let dir = tempfile::tempdir()?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "CA Tỉnh Hưng Yên (thử nghiệm)");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let seal_key = KeyPair::generate()?;
    let mut seal_params = CertificateParams::new(Vec::<String>::new())?;
    seal_params
        .distinguished_name
        .push(DnType::CommonName, "Văn phòng UBND tỉnh Hưng Yên");
    seal_params
        .distinguished_name
        .push(DnType::OrganizationName, "UBND tỉnh Hưng Yên");
    seal_params.is_ca = IsCa::ExplicitNoCa;
    seal_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    let seal_cert = seal_params.signed_by(&seal_key, &issuer)?;

    let cert_path = dir.path().join("seal-chain.pem");
    let key_path = dir.path().join("seal-key.pem");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&cert_path, format!("{}{}", seal_cert.pem(), ca_cert.pem()))?;
    std::fs::write(&key_path, seal_key.serialize_pem())?;
    std::fs::write(&ca_path, ca_cert.pem())?;

    let server = TestServer::start_with_config(&format!(
        "[minutes]\nseal_cert = {}\nseal_key = {}\n",
        giaoban_tests::toml_quote(cert_path.to_str().context("path")?),
        giaoban_tests::toml_quote(key_path.to_str().context("path")?),
    ))
    .await?;
    let http = client()?;
    let base = server.base_url();
    let admin = server.staff_token("quantri", "admin").await?;
    let meeting = server.create_meeting(TITLE).await?;
    let (status, v) = seal(&http, &base, &meeting, &admin).await?;
    ensure!(status == StatusCode::CREATED, "seal: {status} {v}");
    ensure!(
        v["seal_subject"]
            .as_str()
            .is_some_and(|s| s.contains("Văn phòng UBND tỉnh Hưng Yên")),
        "{v}"
    );
    let bytes = version_bytes(&http, &base, &meeting, 1, &admin).await?;
    let path = dir.path().join("sealed.pdf");
    std::fs::write(&path, &bytes)?;
    let report = both_accept(&server, &path, &ca_path, true).await?;
    ensure!(report.contains("CA Tỉnh Hưng Yên"), "{report}");
    both_refuse_tampered(&server, &bytes, dir.path(), &ca_path).await?;
    // The certificate handed to readers is the chain as configured.
    let pem = http
        .get(format!("{base}/api/minutes/seal-certificate"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(pem.matches("BEGIN CERTIFICATE").count() == 2, "{pem}");
    // No self-signed seal was made.
    ensure!(!server.data_dir.join("minutes-seal").exists());
    Ok(())
}

/// A seal key that is not the certificate's stops the server at start.
#[tokio::test]
async fn a_wrong_seal_key_stops_the_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let a = rcgen::generate_simple_self_signed(vec!["a".to_owned()])?;
    let b = rcgen::KeyPair::generate()?;
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, a.cert.pem())?;
    std::fs::write(&key_path, b.serialize_pem())?;
    let started = TestServer::start_with_config(&format!(
        "[minutes]\nseal_cert = {}\nseal_key = {}\n",
        giaoban_tests::toml_quote(cert_path.to_str().context("path")?),
        giaoban_tests::toml_quote(key_path.to_str().context("path")?),
    ))
    .await;
    let Err(e) = started else {
        anyhow::bail!("the server started with a key that is not the certificate's");
    };
    let msg = format!("{e:#}");
    ensure!(msg.contains("seal"), "{msg}");
    Ok(())
}
