//! The audit log through a real server: what is recorded (meeting changes,
//! invitation links shown, joins and leaves, document downloads), the admin
//! API (filtered pages with a cursor, CSV and JSON-lines export, verify) on
//! SQLite and PostgreSQL, and `giaoban audit verify` against a database
//! administrator who drops the triggers and edits, deletes or truncates.

use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use giaoban_tests::{toml_quote, webrtc_offer, TestServer, WsClient};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(server: &TestServer) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: server.base_url(),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<reqwest::Response> {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        Ok(r.send().await?)
    }

    async fn get_json(&self, path: &str, token: &str, status: u16) -> anyhow::Result<Value> {
        let r = self.get(path, Some(token)).await?;
        let got = r.status().as_u16();
        let body = r.text().await?;
        ensure!(
            got == status,
            "GET {path}: expected {status}, got {got} {body}"
        );
        Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        ensure!(status.is_success(), "POST {path}: {status} {v}");
        Ok(v)
    }
}

/// Every row of the log through the paged API (newest first), following
/// the cursor with `limit` rows a page.
async fn all_pages(api: &Api, token: &str, query: &str, limit: u32) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut before: Option<i64> = None;
    for _ in 0..1000 {
        let mut path = format!("/api/audit?limit={limit}{query}");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        let page = api.get_json(&path, token, 200).await?;
        let entries = page["entries"].as_array().context("entries")?;
        ensure!(
            entries.len() <= limit as usize,
            "page larger than the limit"
        );
        out.extend(entries.iter().cloned());
        match page["next_before"].as_i64() {
            Some(b) => {
                ensure!(
                    entries.len() == limit as usize,
                    "a short page with a next cursor"
                );
                before = Some(b);
            }
            None => return Ok(out),
        }
    }
    bail!("the cursor never ended")
}

fn actions(rows: &[Value]) -> Vec<&str> {
    rows.iter().filter_map(|r| r["action"].as_str()).collect()
}

async fn scenario(server: &TestServer) -> anyhow::Result<()> {
    let api = Api::new(server);
    let admin_id = server
        .add_user("quantri", "admin", "quản-trị-viên-1")
        .await?;
    let admin = server.login("quantri", "quản-trị-viên-1").await?;
    let sec = server.staff_token("thuky", "secretary").await?;

    // Only admins read the log.
    let r = api.get("/api/audit", None).await?;
    assert_eq!(r.status(), 401);
    let r = api.get("/api/audit", Some(&sec)).await?;
    assert_eq!(r.status(), 403);
    let r = api.get("/api/audit/export", Some(&sec)).await?;
    assert_eq!(r.status(), 403);
    let r = api.get("/api/audit/verify", Some(&sec)).await?;
    assert_eq!(r.status(), 403);

    // Things happen: meetings created by the admin, invitation links shown
    // to the secretary, a participant joins and leaves, a document is
    // downloaded.
    let mut meetings = Vec::new();
    for i in 0..3 {
        let m = api
            .post(
                "/api/meetings",
                &admin,
                json!({"title": format!("Giao ban {i}")}),
            )
            .await?;
        meetings.push(m["id"].as_str().context("meeting id")?.to_owned());
    }
    let mid = &meetings[0];
    let inv = api
        .post(
            &format!("/api/meetings/{mid}/invitations"),
            &sec,
            json!({"name": "UBND xã A", "role": "bridge"}),
        )
        .await?;
    let inv_id = inv["id"].as_str().context("invitation id")?.to_owned();
    let token = inv["token"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            inv["url"]
                .as_str()
                .and_then(|u| u.split_once('#'))
                .map(|(_, t)| t.to_owned())
        })
        .context("invitation token")?;
    api.get_json(&format!("/api/meetings/{mid}/invitations"), &sec, 200)
        .await?;
    // A meeting must be open for its invitees to join.
    for status in ["scheduled", "in_progress"] {
        let r = api
            .http
            .post(format!("{}/api/meetings/{mid}/status", api.base))
            .bearer_auth(&sec)
            .json(&json!({"status": status}))
            .send()
            .await?;
        let _ = r.status();
    }
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    let joined = ws.hello_and_join(&token).await?;
    let pid = joined["participant"]["id"]
        .as_str()
        .context("participant id")?
        .to_owned();
    ws.close().await;

    let item = api
        .post(
            &format!("/api/meetings/{mid}/agenda"),
            &sec,
            json!({"title": "Báo cáo"}),
        )
        .await?;
    let item_id = item["id"].as_str().context("item id")?;
    let pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
        2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
        .to_vec();
    let part = Part::bytes(pdf)
        .file_name("to-trinh.pdf")
        .mime_str("application/pdf")?;
    let form = Form::new()
        .part("file", part)
        .text("title", "Tờ trình")
        .text("access", "everyone");
    let r = api
        .http
        .post(format!("{}/api/agenda/{item_id}/documents", api.base))
        .bearer_auth(&sec)
        .multipart(form)
        .send()
        .await?;
    ensure!(r.status() == 201, "upload: {}", r.status());
    let doc: Value = r.json().await?;
    let doc_id = doc["id"].as_str().context("doc id")?.to_owned();
    let r = api
        .get(&format!("/api/documents/{doc_id}/content"), Some(&sec))
        .await?;
    ensure!(r.status() == 200, "download: {}", r.status());
    let _ = r.bytes().await?;

    // The spawned writes (join, leave, download, links) land shortly.
    let want = [
        "session.join",
        "session.leave",
        "document.download",
        "invitation.links_shown",
    ];
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = all_pages(&api, &admin, "", 1000).await?;
        if want.iter().all(|w| actions(&rows).contains(w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in want {
        assert!(
            actions(&rows).contains(&w),
            "{w} recorded: {:?}",
            actions(&rows)
        );
    }
    let find = |a: &str| {
        rows.iter()
            .find(|r| r["action"] == a)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let join = find("session.join");
    assert_eq!(join["actor"], format!("invitation:{inv_id}"));
    assert_eq!(join["target_id"], mid.as_str());
    assert_eq!(join["detail"]["participant_id"], pid.as_str());
    assert_eq!(
        find("session.leave")["detail"]["participant_id"],
        pid.as_str()
    );
    let dl = find("document.download");
    assert_eq!(dl["target_id"], doc_id.as_str());
    assert!(dl["actor"].as_str().is_some_and(|a| a.starts_with("user:")));
    let shown = find("invitation.links_shown");
    assert_eq!(shown["target_id"], mid.as_str());
    assert!(shown["detail"]["invitations"].to_string().contains(&inv_id));

    // Pages: newest first, contiguous, the same rows whatever the page size.
    let seqs: Vec<i64> = rows.iter().filter_map(|r| r["seq"].as_i64()).collect();
    let n = seqs.len() as i64;
    assert_eq!(
        seqs,
        (1..=n).rev().collect::<Vec<_>>(),
        "every row, newest first"
    );
    let small = all_pages(&api, &admin, "", 3).await?;
    assert_eq!(
        small
            .iter()
            .filter_map(|r| r["seq"].as_i64())
            .collect::<Vec<_>>(),
        seqs
    );
    let first = api.get_json("/api/audit?limit=3", &admin, 200).await?;
    assert_eq!(first["entries"].as_array().map(Vec::len), Some(3));
    assert_eq!(first["next_before"].as_i64(), Some(n - 2));

    // Filters.
    let mine = all_pages(
        &api,
        &admin,
        &format!("&actor=user:{admin_id}&action=meeting.create"),
        2,
    )
    .await?;
    assert_eq!(mine.len(), 3, "{mine:?}");
    assert!(mine.iter().all(|r| r["action"] == "meeting.create"));
    let sessions = all_pages(&api, &admin, "&action=session.*", 50).await?;
    assert_eq!(actions(&sessions), vec!["session.leave", "session.join"]);
    let target = all_pages(
        &api,
        &admin,
        &format!("&target_type=document&target_id={doc_id}"),
        50,
    )
    .await?;
    assert!(actions(&target).contains(&"document.download"));
    assert!(target.iter().all(|r| r["target_id"] == doc_id.as_str()));
    let at = join["at"].as_i64().context("at")?;
    let window = all_pages(
        &api,
        &admin,
        &format!("&from={}&to={}", at + 3600, at + 7200),
        50,
    )
    .await?;
    assert!(window.is_empty(), "nothing in the future");
    let past = all_pages(&api, &admin, &format!("&from=0&to={}", at + 3600), 1000).await?;
    assert_eq!(past.len() as i64, n);
    for bad in [
        "limit=0",
        "limit=1001",
        "before=x",
        "colour=red",
        "format=csv",
    ] {
        let v = api
            .get_json(&format!("/api/audit?{bad}"), &admin, 400)
            .await?;
        assert_eq!(v["code"], "bad_query", "{bad}: {v}");
    }

    // Export: CSV and JSON lines, oldest first, as downloads.
    let r = api
        .get("/api/audit/export?action=meeting.*", Some(&admin))
        .await?;
    assert_eq!(r.status(), 200);
    let ctype = r.headers()["content-type"].to_str()?.to_owned();
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let disp = r.headers()["content-disposition"].to_str()?.to_owned();
    assert!(
        disp.starts_with("attachment;") && disp.contains(".csv"),
        "{disp}"
    );
    let csv = r.text().await?;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("seq,id,at,at_utc,actor,action,target_type,target_id,detail,hash")
    );
    let meeting_rows = all_pages(&api, &admin, "&action=meeting.*", 1000).await?;
    assert_eq!(lines.len() - 1, meeting_rows.len(), "{csv}");
    let first_seq = meeting_rows
        .last()
        .and_then(|r| r["seq"].as_i64())
        .context("seq")?;
    assert!(
        lines[1].starts_with(&format!("{first_seq},")),
        "oldest first: {}",
        lines[1]
    );

    let r = api
        .get("/api/audit/export?format=jsonl", Some(&admin))
        .await?;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()?
        .starts_with("application/x-ndjson"));
    let text = r.text().await?;
    let parsed: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("every line is JSON")?;
    assert!(parsed.len() as i64 >= n);
    assert_eq!(parsed[0]["seq"], 1);
    let v = api
        .get_json("/api/audit/export?format=xml", &admin, 400)
        .await?;
    assert_eq!(v["code"], "bad_query");

    // The exports are themselves recorded; the chain is intact.
    let exports = all_pages(&api, &admin, "&action=audit.export", 50).await?;
    assert_eq!(exports.len(), 2, "{exports:?}");
    assert_eq!(exports[0]["detail"]["format"], "jsonl");
    let v = api.get_json("/api/audit/verify", &admin, 200).await?;
    assert_eq!(v, json!({"ok": true}));
    assert_eq!(server.cli(&["audit", "verify"]).await?, "ok");
    Ok(())
}

#[tokio::test]
async fn audit_api_on_sqlite() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    scenario(&server).await
}

#[tokio::test]
async fn audit_api_on_postgres() -> anyhow::Result<()> {
    let url = match std::env::var("GIAOBAN_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var("GIAOBAN_SKIP_PG").as_deref() == Ok("1") {
                eprintln!("GIAOBAN_SKIP_PG=1: skipping a PostgreSQL test");
                return Ok(());
            }
            bail!("GIAOBAN_TEST_PG_URL is not set; set GIAOBAN_SKIP_PG=1 to skip PostgreSQL tests");
        }
    };
    let schema = format!("audit_{}", rand::random::<u64>());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await?;
    let sep = if url.contains('?') { '&' } else { '?' };
    let db = format!("{url}{sep}options[search_path]={schema}");
    let server =
        TestServer::start_with_config(&format!("[database]\nurl = {}\n", toml_quote(&db))).await?;
    let r = scenario(&server).await;
    // The triggers refuse changes on PostgreSQL too, through the server's
    // own database.
    let db_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db)
        .await?;
    let e = sqlx::query("DELETE FROM audit_log")
        .execute(&db_pool)
        .await
        .expect_err("the trigger refuses DELETE");
    assert!(e.to_string().contains("append-only"), "{e}");
    db_pool.close().await;
    drop(server);
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await?;
    r
}

/// Runs `giaoban audit verify --json`: (exit code, its JSON).
async fn verify(server: &TestServer) -> anyhow::Result<(i32, Value)> {
    let out = server.cli_output(&["audit", "verify", "--json"]).await?;
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("verify printed {:?}", String::from_utf8_lossy(&out.stdout)))?;
    Ok((out.status.code().unwrap_or(-1), v))
}

async fn exec(pool: &sqlx::SqlitePool, sql: &str) -> anyhow::Result<()> {
    sqlx::query(sql).execute(pool).await?;
    Ok(())
}

/// What a hostile administrator does first. (Every `giaoban` command that
/// opens the database, `audit verify` included, puts them back.)
async fn drop_triggers(pool: &sqlx::SqlitePool) -> anyhow::Result<()> {
    exec(pool, "DROP TRIGGER IF EXISTS audit_log_no_update").await?;
    exec(pool, "DROP TRIGGER IF EXISTS audit_log_no_delete").await
}

#[tokio::test]
async fn audit_verify_catches_a_hostile_dba() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    for i in 0..5 {
        // One audit row each (a started meeting would add its status moves).
        server.create_draft_meeting(&format!("Họp {i}")).await?;
    }
    let checkpoint = server.data_dir.join("audit.checkpoint");
    let c: Value = serde_json::from_str(&std::fs::read_to_string(&checkpoint)?)?;
    assert_eq!(c["seq"], 5, "the checkpoint follows every write: {c}");
    assert_eq!(verify(&server).await?, (0, json!({"ok": true})));

    let url = format!("sqlite://{}", server.data_dir.join("giaoban.db").display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    // The triggers refuse.
    for q in [
        "UPDATE audit_log SET actor = 'x' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 5",
    ] {
        let e = exec(&pool, q).await.expect_err("refused");
        assert!(e.to_string().contains("append-only"), "{q}: {e}");
    }
    // A hostile administrator drops them.
    drop_triggers(&pool).await?;
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM audit_log ORDER BY seq")
        .fetch_all(&pool)
        .await?;

    // Edited.
    exec(&pool, "UPDATE audit_log SET actor = 'user:x' WHERE seq = 2").await?;
    let (code, v) = verify(&server).await?;
    assert_eq!(code, 2, "{v}");
    assert_eq!(
        (v["problem"].as_str(), v["seq"].as_i64()),
        (Some("edited"), Some(2))
    );
    assert_eq!(v["id"], ids[1].as_str());
    drop_triggers(&pool).await?;
    exec(&pool, "UPDATE audit_log SET actor = 'cli' WHERE seq = 2").await?;
    assert_eq!(verify(&server).await?.0, 0);
    let text = server.cli_output(&["audit", "verify"]).await?;
    assert_eq!(String::from_utf8_lossy(&text.stdout).trim(), "ok");

    // A middle row deleted (kept aside to put back).
    drop_triggers(&pool).await?;
    exec(&pool, "CREATE TABLE aside AS SELECT * FROM audit_log").await?;
    exec(&pool, "DELETE FROM audit_log WHERE seq = 3").await?;
    let (code, v) = verify(&server).await?;
    assert_eq!(code, 3, "{v}");
    assert_eq!(
        (v["problem"].as_str(), v["seq"].as_i64()),
        (Some("missing"), Some(3))
    );
    let out = server.cli_output(&["audit", "verify"]).await?;
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(line.starts_with("missing at seq 3"), "{line}");

    // The tail cut off and the head row moved back to match: the signed
    // checkpoint outside the database still counts 5.
    drop_triggers(&pool).await?;
    exec(&pool, "DELETE FROM audit_log").await?;
    exec(
        &pool,
        "INSERT INTO audit_log SELECT * FROM aside WHERE seq <= 3",
    )
    .await?;
    exec(
        &pool,
        "UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_log WHERE seq = 3)",
    )
    .await?;
    let (code, v) = verify(&server).await?;
    assert_eq!(code, 4, "{v}");
    assert_eq!(
        (v["problem"].as_str(), v["seq"].as_i64()),
        (Some("truncated"), Some(4))
    );

    // Everything put back: intact again.
    drop_triggers(&pool).await?;
    exec(
        &pool,
        "INSERT INTO audit_log SELECT * FROM aside WHERE seq > 3",
    )
    .await?;
    exec(
        &pool,
        "UPDATE audit_head SET seq = 5, hash = (SELECT hash FROM audit_log WHERE seq = 5)",
    )
    .await?;
    assert_eq!(verify(&server).await?.0, 0);

    // The key file replaced: the checkpoint does not verify with it.
    let key_path = server.data_dir.join("audit.key");
    let key = std::fs::read_to_string(&key_path)?;
    std::fs::write(&key_path, format!("{}\n", "ab".repeat(32)))?;
    let (code, v) = verify(&server).await?;
    assert_eq!(code, 6, "{v}");
    assert_eq!(v["problem"], "key_mismatch");
    std::fs::write(&key_path, key)?;

    // The checkpoint removed: said plainly; the server anchors a new one
    // when it starts, and puts the dropped triggers back.
    let saved = std::fs::read(&checkpoint)?;
    std::fs::remove_file(&checkpoint)?;
    let (code, v) = verify(&server).await?;
    assert_eq!(code, 8, "{v}");
    assert_eq!(v["problem"], "checkpoint_missing");
    std::fs::write(&checkpoint, saved)?;
    server.terminate(Duration::from_secs(10)).await?;
    server.restart().await?;
    assert_eq!(verify(&server).await?.0, 0);
    let e = exec(&pool, "DELETE FROM audit_log WHERE seq = 5")
        .await
        .expect_err("the triggers are back");
    assert!(e.to_string().contains("append-only"), "{e}");
    pool.close().await;
    Ok(())
}

/// The admin page's audit log in real Chromium (`tests/e2e/audit_page.mjs`):
/// the menu entry, pages with "more", an action filter, the integrity
/// check and a CSV export, under the server's CSP.
#[tokio::test]
async fn audit_page_in_chromium() -> anyhow::Result<()> {
    use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let server = TestServer::start().await?;
    let api = Api::new(&server);
    let password = "Quản-trị e2e 2026!";
    server.add_user("quantri.e2e", "admin", password).await?;
    let admin = server.login("quantri.e2e", password).await?;
    for i in 0..60 {
        api.post(
            "/api/meetings",
            &admin,
            json!({"title": format!("Họp {i}")}),
        )
        .await?;
    }
    let run = run_script(
        "audit_page.mjs",
        &[server.base_url().as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", "20000".to_owned()),
            ("E2E_USERNAME", "quantri.e2e".to_owned()),
            ("E2E_PASSWORD", password.to_owned()),
        ],
        Duration::from_secs(240),
    )
    .await?;
    ensure!(
        run.status.success(),
        "audit_page.mjs failed: {:?}\n{}",
        run.summary,
        tail(&run.stderr, 40)
    );
    let summary = run.summary.context("no summary")?;
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(
        summary["steps"].as_array().map(Vec::len),
        Some(6),
        "{summary}"
    );
    // The export was recorded by the server.
    let v = api
        .get_json("/api/audit?action=audit.export", &admin, 200)
        .await?;
    assert_eq!(v["entries"][0]["detail"]["format"], "csv", "{v}");
    Ok(())
}

/// A participant still connected when the server stops gets its
/// `session.leave` row (the server waits for the spawned writes before it
/// closes the database), and the chain still verifies after the restart.
#[tokio::test]
async fn leave_recorded_at_shutdown() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let (mid, token) = server.meeting_with_token("Điểm cầu B", "bridge").await?;
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    ws.hello_and_join(&token).await?;
    server.terminate(Duration::from_secs(15)).await?;
    drop(ws);
    assert_eq!(verify(&server).await?, (0, json!({"ok": true})));
    server.restart().await?;
    let api = Api::new(&server);
    let admin = server.staff_token("quantri", "admin").await?;
    let v = api
        .get_json(
            &format!("/api/audit?action=session.*&target_id={mid}"),
            &admin,
            200,
        )
        .await?;
    let got: Vec<&str> = v["entries"]
        .as_array()
        .context("entries")?
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(got, vec!["session.leave", "session.join"], "{v}");
    Ok(())
}

/// WHIP and WHEP sessions are recorded when they start and end.
#[tokio::test]
async fn whip_whep_sessions_recorded() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (mid, enc) = server.meeting_with_token("Bộ mã hóa", "bridge").await?;
    let player_url = server.invite(&mid, "Trình phát", "observer").await?;
    let player = giaoban_tests::token_of(&player_url)?.to_owned();
    let http = reqwest::Client::new();
    let mut locations = Vec::new();
    for (kind, token, dir) in [("whip", &enc, "sendonly"), ("whep", &player, "recvonly")] {
        let r = http
            .post(format!("{}/{kind}/{mid}", server.base_url()))
            .bearer_auth(token)
            .header("content-type", "application/sdp")
            .body(webrtc_offer(dir))
            .send()
            .await?;
        ensure!(r.status() == 201, "{kind}: {}", r.status());
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("Location")?
            .to_owned();
        locations.push((kind, token.clone(), loc));
    }
    for (kind, token, loc) in &locations {
        let r = http
            .delete(format!("{}{loc}", server.base_url()))
            .bearer_auth(token)
            .send()
            .await?;
        ensure!(r.status().is_success(), "DELETE {kind}: {}", r.status());
    }
    let api = Api::new(&server);
    let admin = server.staff_token("quantri", "admin").await?;
    let want = ["whip.start", "whip.end", "whep.start", "whep.end"];
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = all_pages(&api, &admin, &format!("&target_id={mid}"), 100).await?;
        if want.iter().all(|w| actions(&rows).contains(w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in want {
        assert!(actions(&rows).contains(&w), "{w}: {:?}", actions(&rows));
    }
    let start = rows
        .iter()
        .find(|r| r["action"] == "whip.start")
        .context("whip.start")?;
    assert!(start["actor"]
        .as_str()
        .is_some_and(|a| a.starts_with("invitation:")));
    let end = rows
        .iter()
        .find(|r| r["action"] == "whip.end")
        .context("whip.end")?;
    assert_eq!(
        end["detail"]["participant_id"],
        start["detail"]["participant_id"]
    );
    assert_eq!(server.cli(&["audit", "verify"]).await?, "ok");
    Ok(())
}
