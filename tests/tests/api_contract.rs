//! The REST API keeps the contract it publishes (`signaling/openapi.json`,
//! served at `/api/openapi.json`): schemathesis (PyPI, pinned in
//! scripts/test) runs against the real server with every check and an admin
//! token, time-boxed, and any failure it reports fails the test with its
//! output. Its settings are in `tests/schemathesis.toml`:
//! - left out: WHIP/WHEP (SDP bodies and invitation tokens;
//!   tests/tests/whip_whep.rs), and `POST /api/auth/logout`,
//!   `/api/auth/password`, `/api/users/{id}/disable`, `.../password` and
//!   `.../revoke-sessions`, which would end the admin's token mid-run
//!   (tests/tests/accounts.rs covers them);
//! - answers allowed to schema-valid requests on a few operations, for the
//!   rules a JSON Schema cannot state (two fields compared, the clock, what
//!   is stored, a file's bytes), each named there;
//! - the `/api/documents/{id}` operations work on a PDF uploaded here.
//!
//! Besides, the answers that axum would give in plain text (a JSON body that
//! is an array, a body that is not multipart, a malformed query) are JSON
//! errors with a stable code, as the contract says.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use giaoban_tests::TestServer;
use serde_json::{json, Value};

/// How long schemathesis generates requests, in seconds
/// (`GIAOBAN_CONTRACT_SECONDS` overrides it).
const DEFAULT_SECONDS: u64 = 150;

/// schemathesis' seed unless `GIAOBAN_CONTRACT_SEED` says otherwise.
const DEFAULT_SEED: &str = "20261207";

/// The Python that runs schemathesis (`GIAOBAN_PYTHON` overrides it).
fn python() -> String {
    std::env::var("GIAOBAN_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

async fn post_json(url: &str, token: &str, body: Value) -> anyhow::Result<Value> {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!("POST {url} answered {status}: {v}");
    }
    Ok(v)
}

/// A server with an admin, a meeting with an agenda item, a bridge point
/// and a participant; returns the server, the admin's token, the meeting
/// and the agenda item.
async fn server_with_data() -> anyhow::Result<(TestServer, String, String, String)> {
    let server = TestServer::start().await?;
    let token = server.staff_token("admin", "admin").await?;
    let api = format!("{}/api", server.base_url());
    let meeting = post_json(
        &format!("{api}/meetings"),
        &token,
        json!({"title": "Giao ban tháng 12", "location": "Hội trường A"}),
    )
    .await?;
    let meeting_id = meeting["id"].as_str().context("meeting id")?.to_owned();
    let item = post_json(
        &format!("{api}/meetings/{meeting_id}/agenda"),
        &token,
        json!({"title": "Báo cáo kinh tế - xã hội", "presenter": "Sở KH-ĐT", "duration_minutes": 20}),
    )
    .await?;
    let item_id = item["id"].as_str().context("agenda item id")?.to_owned();
    let bp = post_json(
        &format!("{api}/bridge-points"),
        &token,
        json!({"name": "UBND xã An Bình", "level": "commune"}),
    )
    .await?;
    post_json(
        &format!("{api}/meetings/{meeting_id}/participants"),
        &token,
        json!({"name": "Nguyễn Văn A", "role": "delegate", "bridge_point_id": bp["id"]}),
    )
    .await?;
    Ok((server, token, meeting_id, item_id))
}

/// Uploads a small unsigned PDF to the agenda item; returns its id.
async fn upload_pdf(server: &TestServer, token: &str, item_id: &str) -> anyhow::Result<String> {
    let pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
        2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n\
        trailer\n<< /Root 1 0 R >>\n%%EOF\n";
    let part = reqwest::multipart::Part::bytes(pdf.to_vec())
        .file_name("bao-cao.pdf")
        .mime_str("application/pdf")?;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/api/agenda/{item_id}/documents",
            server.base_url()
        ))
        .bearer_auth(token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    anyhow::ensure!(status == 201, "upload answered {status}: {v}");
    Ok(v["id"].as_str().context("document id")?.to_owned())
}

/// What a request answered: status, Content-Type, body as JSON (or Null).
async fn answer(req: reqwest::RequestBuilder) -> anyhow::Result<(u16, String, Value)> {
    let r = req.send().await?;
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = r.bytes().await?;
    Ok((
        status,
        ctype,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    ))
}

/// Asserts a JSON error answer with this status and code.
fn is_error(got: &(u16, String, Value), status: u16, code: &str, what: &str) {
    let (s, ctype, v) = got;
    assert_eq!(*s, status, "{what}: {got:?}");
    assert!(ctype.starts_with("application/json"), "{what}: {got:?}");
    assert_eq!(v["code"], code, "{what}: {got:?}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {got:?}"
    );
}

#[tokio::test]
async fn rejections_are_json_errors_with_a_code() -> anyhow::Result<()> {
    let (server, token, meeting_id, item_id) = server_with_data().await?;
    let api = format!("{}/api", server.base_url());
    let http = reqwest::Client::new();

    // serde takes an array for a struct (its fields in order); the API
    // takes only an object.
    let got = answer(
        http.post(format!("{api}/meetings/{meeting_id}/agenda"))
            .bearer_auth(&token)
            .json(&json!(["Một mục", "", 10])),
    )
    .await?;
    is_error(&got, 400, "invalid_json", "an array for an object");
    let agenda: Value = http
        .get(format!("{api}/meetings/{meeting_id}/agenda"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        agenda.as_array().map(Vec::len),
        Some(1),
        "nothing added: {agenda}"
    );

    // A JSON body without its Content-Type.
    let got = answer(
        http.post(format!("{api}/meetings"))
            .bearer_auth(&token)
            .body(r#"{"title":"x"}"#),
    )
    .await?;
    is_error(&got, 415, "invalid_json", "JSON without Content-Type");

    // Uploads: no body at all, a body that is not multipart, and multipart
    // without a boundary.
    let upload = format!("{api}/agenda/{item_id}/documents");
    let got = answer(http.post(&upload).bearer_auth(&token)).await?;
    is_error(&got, 415, "unsupported_media_type", "upload without a body");
    let got = answer(
        http.post(&upload)
            .bearer_auth(&token)
            .header("content-type", "application/pdf")
            .body("%PDF-1.4\n"),
    )
    .await?;
    is_error(
        &got,
        415,
        "unsupported_media_type",
        "upload as application/pdf",
    );
    let got = answer(
        http.post(&upload)
            .bearer_auth(&token)
            .header("content-type", "multipart/form-data"),
    )
    .await?;
    is_error(&got, 400, "bad_multipart", "multipart without a boundary");
    for path in ["versions", "replace"] {
        let got = answer(
            http.post(format!(
                "{api}/documents/00000000-0000-0000-0000-000000000000/{path}"
            ))
            .bearer_auth(&token),
        )
        .await?;
        is_error(&got, 415, "unsupported_media_type", path);
    }

    // A malformed query.
    let got = answer(
        http.get(format!(
            "{api}/documents/00000000-0000-0000-0000-000000000000/content?version=null"
        ))
        .bearer_auth(&token),
    )
    .await?;
    is_error(&got, 400, "bad_query", "version=null");
    Ok(())
}

/// Runs `cmd`, killed after `limit`; returns (success, stdout + stderr).
async fn run_limited(
    mut cmd: tokio::process::Command,
    limit: Duration,
) -> anyhow::Result<(bool, String)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().context(
        "run schemathesis: is it installed? (scripts/test installs schemathesis==4.32.5)",
    )?;
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .with_context(|| format!("schemathesis ran longer than {limit:?}"))??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

#[tokio::test]
async fn schemathesis_finds_no_contract_failure() -> anyhow::Result<()> {
    let (server, token, _meeting_id, item_id) = server_with_data().await?;
    let document_id = upload_pdf(&server, &token, &item_id).await?;
    let seconds: u64 = std::env::var("GIAOBAN_CONTRACT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml");
    // schemathesis and hypothesis keep their databases in the working
    // folder: a temp one, not the checkout.
    let work = tempfile::tempdir()?;
    let mut cmd = tokio::process::Command::new(python());
    cmd.current_dir(work.path())
        .env("NO_COLOR", "1")
        // The document operations use it (tests/schemathesis.toml).
        .env("GIAOBAN_CONTRACT_DOCUMENT", &document_id)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(&config)
        .arg("run")
        .arg(format!("{}/api/openapi.json", server.base_url()))
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .args(["--checks", "all", "--max-time", &seconds.to_string()])
        // Not this one: its stateful form takes a 404 for an unknown id in a
        // body (a unit group, a bridge point: documented per operation) for
        // the path's just-created meeting being missing, and schemathesis
        // 4.32.5 applies tests/schemathesis.toml's per-operation switch for
        // it only outside the stateful phase; it failed runs at random.
        .args(["--exclude-checks", "ensure_resource_availability"]);
    // A fixed seed by default (runs still differ: schemathesis stops after
    // a time, not a count); `GIAOBAN_CONTRACT_SEED=random` explores, any
    // number picks another sequence.
    match std::env::var("GIAOBAN_CONTRACT_SEED").as_deref() {
        Ok("random") => {}
        Ok(n) => {
            cmd.args(["--seed", n]);
        }
        Err(_) => {
            cmd.args(["--seed", DEFAULT_SEED]);
        }
    }
    cmd
        // One worker: with two, their threads race in CPython 3.11's AST
        // constructor (python/cpython#106905) when hypothesis describes a
        // filter lambda of the query generator, which schemathesis reports
        // as a runtime error on GET /api/audit ("AST constructor recursion
        // depth mismatch", after a KeyError of hypothesis' lambda cache).
        // Nothing in the schema causes it.
        .args(["--workers", "1"]);
    let (ok, output) = run_limited(cmd, Duration::from_secs(seconds + 180)).await?;
    println!("{output}");
    assert!(ok, "schemathesis reported failures (output above)");
    // It ran for real: operations were tested and requests generated.
    let tested = output
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Tested: ")?
                .trim()
                .parse::<u32>()
                .ok()
        })
        .context("no `Tested:` line in the schemathesis output")?;
    assert!(tested >= 30, "only {tested} operations tested");
    let generated = output
        .lines()
        .find_map(|l| {
            let (n, _) = l.trim().split_once(" generated,")?;
            n.trim().parse::<u64>().ok()
        })
        .context("no `N generated` line in the schemathesis output")?;
    assert!(generated >= 100, "only {generated} test cases generated");
    // The admin token stayed valid all along (nothing in the run ended it),
    // so the run was authorized throughout.
    let r = reqwest::Client::new()
        .get(format!("{}/api/auth/me", server.base_url()))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(r.status(), 200, "the admin token no longer works");
    Ok(())
}
