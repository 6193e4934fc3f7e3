//! Documents on the participants' meeting page never open as pages of the
//! app's origin, in real Chromium and Firefox ESR (issue 19): the icon is
//! the verified type (a PDF named `.docx` shows PDF, a Word file named
//! `.pdf` shows DOCX), there is no "Open", downloading calls no
//! `window.open`, opens no other page of the app's origin and no `blob:`
//! page (Firefox shows a saved PDF in its own viewer from its `file:` URL:
//! another origin), leaves the page where it was and saves a blob typed
//! `application/octet-stream`; a withdrawn document is listed
//! without a download button; the CSP blocks nothing. Driven by
//! `tests/e2e/documents.mjs`.
//!
//! Needs what `browser.rs` needs (node, npm, Chromium, Firefox ESR).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, firefox, run_script, tail};
use giaoban_tests::TestServer;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

mod doc_fixtures;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

const USERNAME: &str = "thuky";
const PASSWORD: &str = "Mật khẩu thư ký 2026!";

/// What the script works on.
struct Prepared {
    server: TestServer,
    /// A bridge point's invitation link.
    url: String,
    meeting: String,
    /// The Word document the secretary replaces in /admin.
    word: String,
}

/// A meeting with one item and three documents (the last withdrawn).
async fn prepared() -> Result<Prepared> {
    let server = TestServer::start().await?;
    let base = server.base_url();
    server.add_user(USERNAME, "secretary", PASSWORD).await?;
    let sec = server.login(USERNAME, PASSWORD).await?;
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&sec)
            .json(&body)
            .send()
    };
    let m: Value = post("/api/meetings".into(), json!({"title": "Giao ban"}))
        .await?
        .json()
        .await?;
    let mid = m["id"].as_str().context("meeting id")?.to_owned();
    let it: Value = post(
        format!("/api/meetings/{mid}/agenda"),
        json!({"title": "Báo cáo"}),
    )
    .await?
    .json()
    .await?;
    let item = it["id"].as_str().context("item id")?.to_owned();
    let mut ids = Vec::new();
    for (bytes, name, title) in [
        (doc_fixtures::pdf("a"), "bao-cao.docx", "Báo cáo (PDF)"),
        (
            doc_fixtures::docx("Kế hoạch"),
            "ke-hoach.pdf",
            "Kế hoạch (Word)",
        ),
        (doc_fixtures::pdf("c"), "nham.pdf", "Tải nhầm"),
    ] {
        let part = Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str("application/pdf")?;
        let r = http
            .post(format!("{base}/api/agenda/{item}/documents"))
            .bearer_auth(&sec)
            .multipart(Form::new().part("file", part).text("title", title))
            .send()
            .await?;
        ensure!(r.status() == 201, "upload {name}: {}", r.text().await?);
        let d: Value = r.json().await?;
        ids.push(d["id"].as_str().context("doc id")?.to_owned());
    }
    let r = post(
        format!("/api/documents/{}/withdraw", ids[2]),
        json!({"reason": "Tải nhầm tệp"}),
    )
    .await?;
    ensure!(r.status() == 200, "withdraw: {}", r.text().await?);
    let inv: Value = post(
        format!("/api/meetings/{mid}/invitations"),
        json!({"name": "UBND xã Tân Lập", "role": "bridge"}),
    )
    .await?
    .json()
    .await?;
    let url = inv["url"].as_str().context("invitation url")?.to_owned();
    Ok(Prepared {
        server,
        url,
        meeting: mid,
        word: ids[1].clone(),
    })
}

async fn check(browser: &str) -> Result<()> {
    let chromium = chromium()?;
    let firefox = if browser == "firefox" {
        firefox()?
    } else {
        String::new()
    };
    ensure_node_modules(&e2e_dir()).await?;
    let p = prepared().await?;
    let server = &p.server;
    let dir = tempfile::tempdir()?;
    let replacement = dir.path().join("ke-hoach-sua.pdf");
    std::fs::write(&replacement, doc_fixtures::pdf("replacement"))?;
    let run = run_script(
        "documents.mjs",
        &[
            p.url.as_ref(),
            p.meeting.as_ref(),
            p.word.as_ref(),
            replacement.as_os_str(),
        ],
        &[
            ("CHROMIUM_PATH", chromium),
            ("FIREFOX_PATH", firefox),
            ("E2E_BROWSER", browser.to_owned()),
            ("E2E_USERNAME", USERNAME.to_owned()),
            ("E2E_PASSWORD", PASSWORD.to_owned()),
        ],
        SCRIPT_TIMEOUT,
    )
    .await?;
    let s = match (run.status.success(), run.summary) {
        (true, Some(s)) => s,
        (_, s) => bail!(
            "documents.mjs in {browser} failed ({}): {s:?}\n--- stderr ---\n{}\n--- server log ---\n{}",
            run.status,
            tail(&run.stderr, 40),
            tail(&server.log(), 40)
        ),
    };
    let docs = s["documents"].as_array().context("documents")?;
    // (title, icon, type, withdrawn, download buttons), in any order.
    let mut got: Vec<(&str, &str, &str, bool, i64)> = docs
        .iter()
        .map(|d| {
            (
                d["title"].as_str().unwrap_or_default(),
                d["icon"].as_str().unwrap_or_default(),
                d["type"].as_str().unwrap_or_default(),
                d["withdrawn"] == Value::Bool(true),
                d["download_buttons"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    got.sort();
    ensure!(
        got == [
            ("Báo cáo (PDF)", "PDF", "pdf", false, 1),
            ("Kế hoạch (Word)", "DOCX", "docx", false, 1),
            ("Tải nhầm", "PDF", "pdf", true, 0),
        ],
        "{browser}: the panel shows {docs:?}"
    );
    ensure!(
        docs.iter().all(|d| d["open_buttons"] == json!(0)),
        "{browser}: an Open button: {docs:?}"
    );
    let a = &s["after_download"];
    ensure!(
        a["opened"] == json!([])
            && a["blob_types"] == json!(["application/octet-stream", "application/octet-stream"])
            && a["same_url"] == Value::Bool(true)
            && a["same_origin_pages"] == json!(1)
            && a["blob_pages"] == json!(0)
            && a["alerts"] == json!([]),
        "{browser}: after downloading: {a}"
    );
    // Replaced in /admin: the old one marked replaced (no more forms), the
    // new one in force with the same title and its verified type.
    let r = &s["replaced"];
    ensure!(
        r["note"]
            .as_str()
            .is_some_and(|n| n.contains("Đã thay thế") && n.contains("Sửa số liệu"))
            && r["old_manage_forms"] == json!(0)
            && r["in_force"]
                .as_array()
                .is_some_and(|d| d.contains(&json!({"title": "Kế hoạch (Word)", "type": "pdf"}))),
        "{browser}: after the replacement: {r}"
    );
    Ok(())
}

#[tokio::test]
async fn chromium_downloads_documents_without_opening_them() -> Result<()> {
    check("chromium").await
}

#[tokio::test]
async fn firefox_downloads_documents_without_opening_them() -> Result<()> {
    check("firefox").await
}
