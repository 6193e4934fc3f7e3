//! End to end in real Chromium: the secretariat pages (`/admin`) and the
//! participants' agenda on the meeting page, against the real server.
//!
//! The secretary (an account made with `giaoban user add`) signs in, creates
//! a meeting with an agenda item, uploads a PDF signed by an independent tool
//! (pyHanko, under a test CA the server trusts) and sees it marked "Hợp lệ";
//! schedules the meeting and creates an invitation; the participant opens the
//! link, sees the item and the valid document, downloads exactly the uploaded
//! bytes, joins, and sees later changes pushed live (a new item, then a
//! tampered new version marked "Không hợp lệ"). The browsers are driven by
//! `tests/e2e/secretariat.mjs`; the server's own view is checked over the
//! REST API afterwards.
//!
//! Needs what `browser.rs` needs (node, npm, Chromium) plus `python3` with
//! `pip install pyhanko==0.38.0 cryptography==48.0.0` for the signed PDFs
//! (made at test time by `cabinet/tests/fixtures/make_signed_pdfs.py`).
//!
//! `E2E_SCREENSHOT_DIR=/some/dir` keeps screenshots of the pages.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
use serde_json::{json, Value};
use tokio::process::Command;

/// Each wait of the script (a page load, an upload, a pushed change).
const STEP_TIMEOUT_MS: u64 = 20_000;
/// A hard limit for the whole script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

const USERNAME: &str = "thuky.e2e";
const PASSWORD: &str = "Mật-khẩu thử nghiệm 2026!";
/// The signer of `valid_rsa.pdf` (its certificate's common name).
const SIGNER: &str = "Nguyễn Văn An";

/// Signed PDFs and their trust anchor, made by pyHanko into `dir`.
async fn make_signed_pdfs(dir: &Path) -> Result<()> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../cabinet/tests/fixtures/make_signed_pdfs.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .output()
        .await
        .context("running python3 (the signed PDFs need python3 with pyHanko)")?;
    ensure!(
        out.status.success(),
        "{} failed ({}): install `pip install pyhanko==0.38.0 cryptography==48.0.0`\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `giaoban user add` for the secretary, the password through the environment.
async fn add_secretary(server: &giaoban_tests::TestServer) -> Result<()> {
    let mut cmd = Command::new(giaoban_tests::giaoban_bin());
    cmd.arg("--config")
        .arg(&server.config_path)
        .args([
            "user",
            "add",
            "--username",
            USERNAME,
            "--display-name",
            "Lê Thị Thư Ký",
            "--role",
            "secretary",
        ])
        // Only the test's config counts: no GIAOBAN_* of the caller.
        .env_clear()
        .env("GIAOBAN_NEW_PASSWORD", PASSWORD)
        .stdin(Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .context("`giaoban user add` took over 30 s")?
        .context("running `giaoban user add`")?;
    ensure!(
        out.status.success(),
        "`giaoban user add` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        !String::from_utf8_lossy(&out.stdout).contains(PASSWORD)
            && !String::from_utf8_lossy(&out.stderr).contains(PASSWORD),
        "`giaoban user add` printed the password"
    );
    Ok(())
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Signs in over the REST API; returns the staff token.
async fn api_login(http: &reqwest::Client, base: &str) -> Result<String> {
    let r = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": USERNAME, "password": PASSWORD}))
        .send()
        .await?;
    ensure!(r.status().is_success(), "login: {}", r.status());
    let body: Value = r.json().await?;
    Ok(body["token"]
        .as_str()
        .context("no token in the login answer")?
        .to_owned())
}

async fn api_get(http: &reqwest::Client, url: String, token: &str) -> Result<Value> {
    let r = http.get(&url).bearer_auth(token).send().await?;
    ensure!(r.status().is_success(), "GET {url}: {}", r.status());
    Ok(r.json().await?)
}

/// A list answer: the array itself or the array under `key`.
fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.as_array()
        .or_else(|| v[key].as_array())
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secretary_uploads_a_signed_pdf_and_participants_see_it_valid() -> Result<()> {
    let chromium = chromium()?;
    let dir = e2e_dir();
    ensure_node_modules(&dir).await?;

    let pdfs = tempfile::Builder::new()
        .prefix("giaoban-e2e-pdfs-")
        .tempdir()
        .context("temp dir")?;
    make_signed_pdfs(pdfs.path()).await?;
    let signed = pdfs.path().join("valid_rsa.pdf");
    let tampered = pdfs.path().join("tampered.pdf");
    let trust = pdfs.path().join("trust");

    let server = giaoban_tests::TestServer::start_with_config(&format!(
        "[documents]\ntrust_dir = {}\n",
        giaoban_tests::toml_quote(&trust.to_string_lossy())
    ))
    .await?;
    add_secretary(&server).await?;
    let base = server.base_url();

    let run = run_script(
        "secretariat.mjs",
        &[base.as_ref(), signed.as_os_str(), tampered.as_os_str()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", STEP_TIMEOUT_MS.to_string()),
            ("E2E_USERNAME", USERNAME.to_owned()),
            ("E2E_PASSWORD", PASSWORD.to_owned()),
        ],
        SCRIPT_TIMEOUT,
    )
    .await?;
    let (stdout, stderr, summary) = (run.stdout, run.stderr, run.summary);
    if !run.status.success() {
        let reason = summary
            .as_ref()
            .map(|s| text(s, "/reason").to_string())
            .unwrap_or_default();
        bail!(
            "the browser test failed ({}): {reason}\n--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}\n\
             --- server log (tail) ---\n{}",
            run.status,
            tail(&server.log(), 60)
        );
    }
    let s = summary.with_context(|| format!("no JSON summary on stdout:\n{stdout}\n{stderr}"))?;
    ensure!(s["ok"] == Value::Bool(true), "summary not ok: {s}");
    ensure!(
        s.get("page_errors").is_none(),
        "uncaught exceptions in the pages: {stderr}"
    );

    // The pages speak Vietnamese, and say why a wrong password failed.
    ensure!(text(&s, "/lang") == "vi", "page language: {}", s["lang"]);
    ensure!(
        text(&s, "/wrong_password/code") == "bad_credentials"
            && text(&s, "/wrong_password/text").contains("không đúng"),
        "wrong password shown as {}",
        s["wrong_password"]
    );
    ensure!(
        text(&s, "/user/role") == "secretary",
        "signed in as {}",
        s["user"]
    );
    ensure!(
        text(&s, "/agenda_total").contains("30 phút"),
        "planned duration shown as {}",
        s["agenda_total"]
    );

    // The secretary sees the signature as valid, with its signer.
    ensure!(
        text(&s, "/admin_badge/badge") == "Hợp lệ" && text(&s, "/admin_badge/status") == "valid",
        "badge after upload: {}",
        s["admin_badge"]
    );
    ensure!(
        text(&s, "/admin_badge/signer").contains(SIGNER),
        "signer shown as {}",
        s["admin_badge"]
    );
    let sha = text(&s, "/expected/pdf_sha256");
    ensure!(
        sha.len() == 64 && text(&s, "/admin_badge/sha256").contains(sha),
        "the page's SHA-256 {} is not the file's {sha}",
        s["admin_badge"]
    );
    ensure!(
        s["invitation_listed"] == Value::Bool(true),
        "invitation not listed"
    );

    // The participant sees the item and the valid document, and downloads it.
    let item = text(&s, "/expected/item");
    let doc_title = text(&s, "/expected/document");
    let seen = s["participant_agenda"]
        .as_array()
        .context("no participant agenda")?;
    let seen_item = seen
        .iter()
        .find(|i| i["title"] == item)
        .with_context(|| format!("the participant does not see {item:?}: {seen:?}"))?;
    let seen_doc = &seen_item["documents"][0];
    ensure!(
        seen_doc["title"] == doc_title
            && seen_doc["signature"] == "Hợp lệ"
            && seen_doc["status"] == "valid",
        "the participant sees {seen_doc}"
    );
    ensure!(
        s["download"]["sha256_matches"] == Value::Bool(true),
        "downloaded bytes differ: {}",
        s["download"]
    );

    // Uploaded files never open as pages of the app's origin (issue 19):
    // HTML named bao-cao.pdf is refused with the Vietnamese message, there
    // is no "Open", a download opens no page, and the icon is the verified
    // type.
    ensure!(
        text(&s, "/refused_upload/code") == "unsupported_document_type"
            && text(&s, "/refused_upload/text").contains("không được nhận"),
        "HTML named bao-cao.pdf: {}",
        s["refused_upload"]
    );
    ensure!(
        s["opened"]["open_buttons"] == json!(0)
            && s["opened"]["new_pages"] == json!(0)
            && s["opened"]["same_url"] == Value::Bool(true)
            && s["opened"]["icon_type"] == "pdf"
            && s["opened"]["icon_text"] == "PDF",
        "the document opened: {}",
        s["opened"]
    );

    // Changes reach the joined participant without a reload.
    let item2 = text(&s, "/expected/item2");
    ensure!(
        s["live_update"]["titles"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == item2)),
        "live update: {}",
        s["live_update"]
    );
    ensure!(
        text(&s, "/admin_new_version/badge") == "Không hợp lệ"
            && s["admin_new_version"]["versions"] == json!(2),
        "new version: {}",
        s["admin_new_version"]
    );
    ensure!(
        text(&s, "/participant_new_version/signature") == "Không hợp lệ",
        "the participant sees the new version as {}",
        s["participant_new_version"]
    );

    // The operator's Live tab listed the joined participant; a copied link
    // then replaced its session, and the tab showed that by itself,
    // highlighted, with the old and the new session (issue 19).
    let guest_id = text(&s, "/guest_id");
    ensure!(
        !guest_id.is_empty()
            && text(&s, "/live_tab/id") == guest_id
            && text(&s, "/live_tab/kind") == "participant"
            && text(&s, "/live_tab/tab") == "Trực tiếp"
            && text(&s, "/live_tab/updated").starts_with("Cập nhật lúc")
            && s["live_tab"]["replacements"] == json!(0),
        "the Live tab: {}",
        s["live_tab"]
    );
    let cells: Vec<&str> = s["live_replacement"]["cells"]
        .as_array()
        .context("no replacement row")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        cells.len() == 4
            && cells[0].len() == "dd/mm/yyyy hh:mm:ss".len()
            && cells[2] == guest_id
            && cells[3] == text(&s, "/copied_id"),
        "the replacement row: {cells:?} (participant {guest_id}, copied link {})",
        s["copied_id"]
    );
    ensure!(
        text(&s, "/live_replacement/alert").contains("bị thay thế")
            && text(&s, "/live_replacement/background") != "rgba(0, 0, 0, 0)",
        "the replacement is not highlighted: {}",
        s["live_replacement"]
    );
    ensure!(
        s["live_tablet_overflow"] == json!(0),
        "the Live tab is wider than a tablet: {}",
        s["live_tablet_overflow"]
    );

    // The server's own record agrees with what the pages showed.
    let http = reqwest::Client::new();
    let token = api_login(&http, &base).await?;
    let meeting_id = text(&s, "/meeting_id");
    let meeting = api_get(&http, format!("{base}/api/meetings/{meeting_id}"), &token).await?;
    ensure!(
        meeting["status"] == "in_progress",
        "meeting on the server: {meeting}"
    );
    let agenda = api_get(
        &http,
        format!("{base}/api/meetings/{meeting_id}/agenda"),
        &token,
    )
    .await?;
    let items = list(&agenda, "items");
    let titles: Vec<&str> = items.iter().filter_map(|i| i["title"].as_str()).collect();
    ensure!(titles == [item, item2], "agenda on the server: {titles:?}");
    let item_id = items[0]["id"].as_str().context("item without id")?;
    let docs = api_get(
        &http,
        format!("{base}/api/agenda/{item_id}/documents"),
        &token,
    )
    .await?;
    let doc = list(&docs, "documents")
        .first()
        .with_context(|| format!("no document on the server: {docs}"))?;
    let versions = doc["versions"].as_array().context("no versions")?;
    ensure!(versions.len() == 2, "versions on the server: {doc}");
    let report = |v: &Value| {
        if v["signature"].is_object() {
            v["signature"].clone()
        } else {
            v["signature_report"].clone()
        }
    };
    let v1 = versions
        .iter()
        .find(|v| v["version"] == 1)
        .context("no version 1")?;
    ensure!(
        report(v1)["status"] == "valid" && v1["sha256"] == sha,
        "version 1 on the server: {v1}"
    );
    let v2 = versions
        .iter()
        .find(|v| v["version"] == 2)
        .context("no version 2")?;
    ensure!(
        report(v2)["status"] == "invalid",
        "version 2 on the server: {v2}"
    );

    // Withdrawn: marked on both pages (no download for the participant) and
    // on the server with the reason.
    let reason = text(&s, "/expected/reason");
    ensure!(
        text(&s, "/admin_withdrawn/note").contains(reason)
            && s["admin_withdrawn"]["withdraw_buttons"] == json!(0),
        "the admin page after the withdrawal: {}",
        s["admin_withdrawn"]
    );
    ensure!(
        text(&s, "/participant_withdrawn/note").contains("Đã rút")
            && s["participant_withdrawn"]["download_buttons"] == json!(0),
        "the participant's panel after the withdrawal: {}",
        s["participant_withdrawn"]
    );
    ensure!(
        doc["withdrawn_reason"] == reason && doc["withdrawn_at"].is_i64(),
        "the withdrawal on the server: {doc}"
    );
    Ok(())
}
