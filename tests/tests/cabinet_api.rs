//! The eCabinet REST API (`/api`, docs/api.md, signaling/openapi.json)
//! through a real server: the secretariat's flow on SQLite and on
//! PostgreSQL, the authorization matrix (every endpoint × every kind of
//! caller), uploads (limit, refusals, deduplication), downloads per access
//! level, login throttling and the live `agenda_changed` event.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Context as _};
use giaoban_tests::{token_of, toml_quote, TestServer, WsClient};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

mod doc_fixtures;

/// A small HTTP client for the API.
struct Api {
    http: reqwest::Client,
    base: String,
}

/// What a call answered.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn expect(self, status: u16, what: &str) -> anyhow::Result<Value> {
        if self.status.as_u16() != status {
            bail!(
                "{what}: expected {status}, got {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        Ok(self.json())
    }

    /// An error answer with this status and code.
    fn expect_error(self, status: u16, code: &str, what: &str) -> anyhow::Result<Value> {
        let v = self.expect(status, what)?;
        anyhow::ensure!(v["code"] == code, "{what}: expected code {code}, got {v}");
        anyhow::ensure!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: no message in {v}"
        );
        Ok(v)
    }
}

impl Api {
    fn new(server: &TestServer) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: server.base_url(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.with_context(|| format!("send {path}"))?;
        Ok(Answer {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.bytes().await?.to_vec(),
        })
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<Answer> {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> anyhow::Result<Answer> {
        self.call(Method::POST, path, Some(token), Some(&body))
            .await
    }

    async fn patch(&self, path: &str, token: &str, body: Value) -> anyhow::Result<Answer> {
        self.call(Method::PATCH, path, Some(token), Some(&body))
            .await
    }

    async fn upload(&self, path: &str, token: Option<&str>, form: Form) -> anyhow::Result<Answer> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .multipart(form);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.with_context(|| format!("upload {path}"))?;
        Ok(Answer {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.bytes().await?.to_vec(),
        })
    }
}

/// A multipart form with a file and optional fields.
fn form(bytes: Vec<u8>, filename: &str, ctype: &str, fields: &[(&str, &str)]) -> Form {
    let part = Part::bytes(bytes)
        .file_name(filename.to_owned())
        .mime_str(ctype)
        .unwrap_or_else(|_| Part::bytes(Vec::new()));
    let mut f = Form::new().part("file", part);
    for (k, v) in fields {
        f = f.text(k.to_string(), v.to_string());
    }
    f
}

/// A minimal PDF without a signature.
fn unsigned_pdf(tag: &str) -> Vec<u8> {
    format!(
        "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
         2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n% {tag}\n\
         trailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )
    .into_bytes()
}

/// The server's own signing secret, read from its data folder.
fn server_secret(server: &TestServer) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(server.data_dir.join("signing.key"))?;
    Ok(text.trim().as_bytes().to_vec())
}

fn sign(claims: &Value, secret: &[u8]) -> anyhow::Result<String> {
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )?)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Files in the server's content store (not counting temp files).
fn stored_files(server: &TestServer) -> Vec<std::path::PathBuf> {
    let root = server.data_dir.join("documents");
    let mut out = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(&root) {
        for d in dirs.flatten() {
            if d.file_name() == "tmp" {
                continue;
            }
            if let Ok(files) = std::fs::read_dir(d.path()) {
                out.extend(files.flatten().map(|f| f.path()));
            }
        }
    }
    out
}

/// Temp files left in the content store.
fn temp_files(server: &TestServer) -> usize {
    std::fs::read_dir(server.data_dir.join("documents").join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0)
}

// ------------------------------------------------------------ core flow ----

/// The secretariat prepares, runs and closes a meeting.
async fn core_flow(server: &TestServer) -> anyhow::Result<()> {
    let api = Api::new(server);
    server.add_user("admin", "admin", "quản-trị-viên-1").await?;
    let admin = server.login("admin", "quản-trị-viên-1").await?;
    let me = api.get("/api/auth/me", &admin).await?.expect(200, "me")?;
    assert_eq!(me["username"], "admin");
    assert_eq!(me["role"], "admin");

    // The admin creates a secretary account over the API.
    let u = api
        .post(
            "/api/users",
            &admin,
            json!({"username": "ThuKy", "display_name": "Thư ký", "role": "secretary", "password": "thư-ký-mật-khẩu"}),
        )
        .await?
        .expect(201, "create user")?;
    assert_eq!(u["username"], "thuky");
    assert!(u.get("password_hash").is_none() && u.get("password").is_none());
    api.post(
        "/api/users",
        &admin,
        json!({"username": "thuky", "display_name": "x", "role": "operator", "password": "another-password"}),
    )
    .await?
    .expect_error(409, "conflict", "duplicate username")?;
    let sec = server.login("thuky", "thư-ký-mật-khẩu").await?;

    // Meeting.
    let m = api
        .post(
            "/api/meetings",
            &sec,
            json!({"title": "Giao ban tháng 11", "kind": "regular", "starts_at": 1_900_000_000i64,
                   "ends_at": 1_900_007_200i64, "location": "Hội trường UBND tỉnh"}),
        )
        .await?
        .expect(201, "create meeting")?;
    let mid = m["id"].as_str().context("meeting id")?.to_owned();
    assert_eq!(m["status"], "draft");
    api.post("/api/meetings", &sec, json!({"title": "  "}))
        .await?
        .expect_error(400, "invalid_input", "empty title")?;
    api.post(
        "/api/meetings",
        &sec,
        json!({"title": "x", "kind": "party"}),
    )
    .await?
    .expect_error(400, "invalid_json", "unknown kind")?;
    let m = api
        .patch(
            &format!("/api/meetings/{mid}"),
            &sec,
            json!({"kind": "thematic", "starts_at": null}),
        )
        .await?
        .expect(200, "patch meeting")?;
    assert_eq!(m["kind"], "thematic");
    assert_eq!(m["starts_at"], Value::Null);
    assert_eq!(m["location"], "Hội trường UBND tỉnh");
    let list = api.get("/api/meetings", &sec).await?.expect(200, "list")?;
    assert!(list
        .as_array()
        .is_some_and(|l| l.iter().any(|x| x["id"] == mid.as_str())));

    // Bridge points and participants.
    let bp = api
        .post(
            "/api/bridge-points",
            &sec,
            json!({"name": "UBND xã Cư Jút", "level": "commune", "contact": "0262 3880 123"}),
        )
        .await?
        .expect(201, "bridge point")?;
    let bpid = bp["id"].as_str().context("bp id")?.to_owned();
    let bp = api
        .patch(
            &format!("/api/bridge-points/{bpid}"),
            &sec,
            json!({"contact": "Văn phòng huyện"}),
        )
        .await?
        .expect(200, "patch bridge point")?;
    assert_eq!(bp["contact"], "Văn phòng huyện");
    let chair = api
        .post(
            &format!("/api/meetings/{mid}/participants"),
            &sec,
            json!({"name": "Nguyễn Văn Chủ", "position": "Chủ tịch UBND tỉnh", "role": "chair"}),
        )
        .await?
        .expect(201, "chair")?;
    assert_eq!(chair["voting"], true);
    let chair_id = chair["id"].as_str().context("id")?.to_owned();
    let op = api
        .post(
            &format!("/api/meetings/{mid}/participants"),
            &sec,
            json!({"name": "Kỹ thuật viên", "role": "bridge_operator", "bridge_point_id": bpid}),
        )
        .await?
        .expect(201, "operator")?;
    assert_eq!(op["voting"], false);
    let op_id = op["id"].as_str().context("id")?.to_owned();
    api.patch(
        &format!("/api/meetings/{mid}"),
        &sec,
        json!({"chair_participant_id": chair_id}),
    )
    .await?
    .expect(200, "set chair")?;
    let p = api
        .patch(
            &format!("/api/participants/{op_id}"),
            &sec,
            json!({"position": "Chuyên viên"}),
        )
        .await?
        .expect(200, "patch participant")?;
    assert_eq!(p["position"], "Chuyên viên");
    let parts = api
        .get(&format!("/api/meetings/{mid}/participants"), &sec)
        .await?
        .expect(200, "participants")?;
    assert_eq!(parts.as_array().map(Vec::len), Some(2));

    // Invitations: one per bridge point, one for the chair.
    let inv = api
        .post(
            &format!("/api/meetings/{mid}/invitations"),
            &sec,
            json!({"name": "UBND huyện Cư Jút", "role": "bridge", "bridge_point_id": bpid, "ttl_hours": 24}),
        )
        .await?
        .expect(201, "invitation")?;
    let bridge_token = inv["token"].as_str().context("token")?.to_owned();
    let url = inv["url"].as_str().context("url")?;
    assert!(
        url.starts_with(&format!("{}/join#", server.base_url())),
        "{url}"
    );
    assert_eq!(token_of(url)?, bridge_token);
    assert!(inv["expires_at"].as_i64().is_some());
    let chair_inv = api
        .post(
            &format!("/api/meetings/{mid}/invitations"),
            &sec,
            json!({"name": "Chủ tịch", "role": "chair", "participant_id": chair_id}),
        )
        .await?
        .expect(201, "chair invitation")?;
    let invs = api
        .get(&format!("/api/meetings/{mid}/invitations"), &sec)
        .await?
        .expect(200, "invitations")?;
    let first = invs
        .as_array()
        .and_then(|l| l.iter().find(|i| i["id"] == inv["id"]))
        .context("listed")?;
    assert_eq!(first["state"], "active");
    assert_eq!(first["url"], inv["url"], "the link can be copied again");
    assert!(first.get("token").is_none());

    // Before the start (a draft) the bridge point waits; the chair enters
    // to prepare the room and hears about agenda changes.
    let mut waiting = WsClient::connect(&server.ws_url()).await?;
    waiting
        .send(json!({"type": "hello", "id": "h", "version": 1}))
        .await?;
    waiting.recv_reply(&json!("h")).await?;
    let w = waiting
        .request(json!({"type": "join", "token": bridge_token}))
        .await?;
    assert_eq!(w["type"], "waiting", "{w}");
    assert_eq!(w["meeting"]["status"], "draft", "{w}");
    waiting.close().await;
    let chair_token = chair_inv["token"].as_str().context("token")?.to_owned();
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    ws.hello_and_join(&chair_token).await?;

    // Agenda.
    let mut items = Vec::new();
    for (t, d) in [("Khai mạc", 5), ("Báo cáo KT-XH", 30), ("Kết luận", 10)] {
        let it = api
            .post(
                &format!("/api/meetings/{mid}/agenda"),
                &sec,
                json!({"title": t, "presenter": "Văn phòng", "duration_minutes": d}),
            )
            .await?
            .expect(201, "agenda item")?;
        items.push(it["id"].as_str().context("id")?.to_owned());
    }
    let ev = ws.recv_type("agenda_changed").await?;
    assert_eq!(ev["meeting_id"], mid.as_str());
    let order = vec![items[1].clone(), items[0].clone(), items[2].clone()];
    let agenda = api
        .call(
            Method::PUT,
            &format!("/api/meetings/{mid}/agenda/order"),
            Some(&sec),
            Some(&json!({"item_ids": order})),
        )
        .await?
        .expect(200, "reorder")?;
    let got: Vec<&str> = agenda
        .as_array()
        .context("array")?
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(got, order.iter().map(String::as_str).collect::<Vec<_>>());
    api.call(
        Method::PUT,
        &format!("/api/meetings/{mid}/agenda/order"),
        Some(&sec),
        Some(&json!({"item_ids": [items[0]]})),
    )
    .await?
    .expect_error(400, "invalid_input", "partial order")?;
    let it = api
        .patch(
            &format!("/api/agenda/{}", items[2]),
            &sec,
            json!({"duration_minutes": null, "title": "Kết luận của Chủ tịch"}),
        )
        .await?
        .expect(200, "patch item")?;
    assert_eq!(it["duration_minutes"], Value::Null);

    // Documents: a PDF (verified), a Word file (not checked), a new version.
    let before = stored_files(server).len();
    let pdf = unsigned_pdf("to-trinh");
    let doc = api
        .upload(
            &format!("/api/agenda/{}/documents", items[1]),
            Some(&sec),
            form(
                pdf.clone(),
                "Tờ trình số 12.pdf",
                "application/pdf",
                &[("title", "Tờ trình số 12"), ("access", "everyone")],
            ),
        )
        .await?
        .expect(201, "upload pdf")?;
    let doc_id = doc["id"].as_str().context("doc id")?.to_owned();
    assert_eq!(doc["current_version"], 1);
    assert_eq!(doc["access"], "everyone");
    let v1 = &doc["versions"][0];
    assert_eq!(v1["filename"], "Tờ trình số 12.pdf");
    assert_eq!(v1["size"], pdf.len());
    assert_eq!(v1["sha256"].as_str().map(str::len), Some(64));
    let status = v1["signature_report"]["status"]
        .as_str()
        .unwrap_or_default();
    assert!(
        ["no_signature", "unreadable"].contains(&status),
        "an unsigned PDF is checked: {}",
        v1["signature_report"]
    );
    let txt = api
        .upload(
            &format!("/api/agenda/{}/documents", items[1]),
            Some(&sec),
            form(
                doc_fixtures::docx("biên bản"),
                "notes.docx",
                "application/octet-stream",
                &[],
            ),
        )
        .await?
        .expect(201, "upload docx")?;
    assert_eq!(
        txt["title"], "notes.docx",
        "the title defaults to the file name"
    );
    assert_eq!(
        txt["versions"][0]["signature_report"],
        json!({"status": "not_checked", "reason": "not_pdf"})
    );
    let v2 = api
        .upload(
            &format!("/api/documents/{doc_id}/versions"),
            Some(&sec),
            form(
                unsigned_pdf("v2"),
                "to-trinh-v2.pdf",
                "application/pdf",
                &[],
            ),
        )
        .await?
        .expect(201, "version 2")?;
    assert_eq!(v2["current_version"], 2);
    assert_eq!(v2["versions"].as_array().map(Vec::len), Some(2));
    assert_eq!(stored_files(server).len(), before + 3);

    // Downloads: current and version 1, with the file name.
    let r = api
        .get(&format!("/api/documents/{doc_id}/content?version=1"), &sec)
        .await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, pdf);
    let cd = r
        .headers
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(cd.starts_with("attachment;"), "{cd}");
    assert!(
        cd.contains("filename*=UTF-8''T%E1%BB%9D%20tr%C3%ACnh%20s%E1%BB%91%2012.pdf"),
        "{cd}"
    );
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/pdf")
    );
    let r = api
        .get(&format!("/api/documents/{doc_id}/content"), &sec)
        .await?;
    assert_eq!(r.body, unsigned_pdf("v2"));
    api.get(&format!("/api/documents/{doc_id}/content?version=9"), &sec)
        .await?
        .expect_error(404, "version_not_found", "no version 9")?;

    // Dedup: the same bytes in another document are stored once.
    let n = stored_files(server).len();
    let copy = api
        .upload(
            &format!("/api/agenda/{}/documents", items[0]),
            Some(&sec),
            form(pdf.clone(), "copy.pdf", "application/pdf", &[]),
        )
        .await?
        .expect(201, "same content again")?;
    assert_eq!(copy["versions"][0]["sha256"], v1["sha256"]);
    assert_eq!(stored_files(server).len(), n, "deduplicated");
    assert_eq!(temp_files(server), 0);
    ws.recv_type("agenda_changed").await?;

    // The bridge point reads the agenda and the everyone-document.
    let a = api
        .get(&format!("/api/meetings/{mid}/agenda"), &bridge_token)
        .await?
        .expect(200, "invitee agenda")?;
    assert_eq!(a.as_array().map(Vec::len), Some(3));
    let r = api
        .get(&format!("/api/documents/{doc_id}/content"), &bridge_token)
        .await?;
    assert_eq!(r.status, 200);

    // Lifecycle.
    for st in ["scheduled", "draft", "scheduled", "in_progress"] {
        let m = api
            .post(
                &format!("/api/meetings/{mid}/status"),
                &sec,
                json!({"status": st}),
            )
            .await?
            .expect(200, st)?;
        assert_eq!(m["status"], st);
    }
    api.post(
        &format!("/api/meetings/{mid}/status"),
        &sec,
        json!({"status": "draft"}),
    )
    .await?
    .expect_error(409, "invalid_transition", "in_progress -> draft")?;
    api.post(
        &format!("/api/meetings/{mid}/status"),
        &sec,
        json!({"status": "ended"}),
    )
    .await?
    .expect(200, "end")?;
    // Frozen now.
    api.post(
        &format!("/api/meetings/{mid}/agenda"),
        &sec,
        json!({"title": "Muộn"}),
    )
    .await?
    .expect_error(409, "meeting_frozen", "agenda after end")?;
    api.patch(&format!("/api/meetings/{mid}"), &sec, json!({"title": "x"}))
        .await?
        .expect_error(409, "meeting_frozen", "patch after end")?;
    api.call(
        Method::DELETE,
        &format!("/api/participants/{op_id}"),
        Some(&sec),
        None,
    )
    .await?
    .expect_error(409, "meeting_frozen", "participant after end")?;
    let n = stored_files(server).len();
    api.upload(
        &format!("/api/documents/{doc_id}/versions"),
        Some(&sec),
        form(unsigned_pdf("late"), "late.pdf", "application/pdf", &[]),
    )
    .await?
    .expect_error(409, "meeting_frozen", "version after end")?;
    assert_eq!(
        stored_files(server).len(),
        n,
        "a refused upload stores nothing"
    );
    assert_eq!(temp_files(server), 0);
    api.post(
        &format!("/api/meetings/{mid}/invitations"),
        &sec,
        json!({"name": "x", "role": "observer"}),
    )
    .await?
    .expect_error(409, "meeting_frozen", "invitation after end")?;
    // Revoking still works; invitees of an ended meeting are shut out.
    let rv = api
        .post(
            &format!(
                "/api/invitations/{}/revoke",
                chair_inv["id"].as_str().unwrap_or("")
            ),
            &sec,
            json!({}),
        )
        .await?
        .expect(200, "revoke")?;
    assert_eq!(rv["state"], "revoked");
    api.get(&format!("/api/meetings/{mid}"), &bridge_token)
        .await?
        .expect_error(403, "meeting_closed", "invitee after end")?;
    let m = api
        .post(
            &format!("/api/meetings/{mid}/status"),
            &sec,
            json!({"status": "archived"}),
        )
        .await?
        .expect(200, "archive")?;
    assert_eq!(m["status"], "archived");
    ws.close().await;
    // Every write above is in the audit log, and its hash chain holds.
    assert_eq!(server.cli(&["audit", "verify"]).await?, "ok");
    Ok(())
}

#[tokio::test]
async fn core_flow_sqlite() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let r = core_flow(&server).await;
    if r.is_err() {
        eprintln!("server log:\n{}", server.log());
    }
    r
}

/// A fresh schema in the PostgreSQL of `GIAOBAN_TEST_PG_URL`; returns the
/// server's database URL (None: PostgreSQL tests skipped with
/// `GIAOBAN_SKIP_PG=1`).
async fn pg_database_url() -> anyhow::Result<Option<String>> {
    let url = match std::env::var("GIAOBAN_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var("GIAOBAN_SKIP_PG").as_deref() == Ok("1") {
                eprintln!("GIAOBAN_SKIP_PG=1: skipping a PostgreSQL test");
                return Ok(None);
            }
            bail!(
                "GIAOBAN_TEST_PG_URL is not set (e.g. postgres:///test?host=/var/run/postgresql&user=postgres); \
                 set GIAOBAN_SKIP_PG=1 to skip PostgreSQL tests explicitly"
            );
        }
    };
    let schema = format!("api_{}", uuid_like());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .context("connect to GIAOBAN_TEST_PG_URL")?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await?;
    pool.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(Some(format!("{url}{sep}options[search_path]={schema}")))
}

fn uuid_like() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..16)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

#[tokio::test]
async fn core_flow_postgres() -> anyhow::Result<()> {
    let Some(db) = pg_database_url().await? else {
        return Ok(());
    };
    let server =
        TestServer::start_with_config(&format!("[database]\nurl = {}\n", toml_quote(&db))).await?;
    let r = core_flow(&server).await;
    if r.is_err() {
        eprintln!("server log:\n{}", server.log());
    }
    assert!(
        server.log().contains("db=\"postgres\"") || server.log().contains("postgres"),
        "the server runs on PostgreSQL"
    );
    r
}

// ------------------------------------------------- authorization matrix ----

/// The kinds of caller, in the order of the expectation columns.
const CALLERS: [&str; 8] = [
    "admin",
    "secretary",
    "operator",
    "invitee",
    "other_invitee",
    "anonymous",
    "forged",
    "expired",
];

/// What each caller's fresh resources are, created by the admin before the
/// caller runs every endpoint (so a DELETE by one caller does not change
/// what the next one sees).
struct Fixture {
    participant: String,
    item: String,
    item_to_delete: String,
    document: String,
    document_to_withdraw: String,
    invitation: String,
    bridge_point: String,
    draft_meeting: String,
}

async fn fixture(api: &Api, admin: &str, mid: &str) -> anyhow::Result<Fixture> {
    let id =
        |v: Value| -> anyhow::Result<String> { Ok(v["id"].as_str().context("id")?.to_owned()) };
    let participant = id(api
        .post(
            &format!("/api/meetings/{mid}/participants"),
            admin,
            json!({"name": "P", "role": "delegate"}),
        )
        .await?
        .expect(201, "fixture participant")?)?;
    let item = id(api
        .post(
            &format!("/api/meetings/{mid}/agenda"),
            admin,
            json!({"title": "Mục"}),
        )
        .await?
        .expect(201, "fixture item")?)?;
    let item_to_delete = id(api
        .post(
            &format!("/api/meetings/{mid}/agenda"),
            admin,
            json!({"title": "Xóa"}),
        )
        .await?
        .expect(201, "fixture item")?)?;
    let document = id(api
        .upload(
            &format!("/api/agenda/{item}/documents"),
            Some(admin),
            form(unsigned_pdf(&item), "a.pdf", "application/pdf", &[]),
        )
        .await?
        .expect(201, "fixture document")?)?;
    let document_to_withdraw = id(api
        .upload(
            &format!("/api/agenda/{item}/documents"),
            Some(admin),
            form(unsigned_pdf("withdraw"), "w.pdf", "application/pdf", &[]),
        )
        .await?
        .expect(201, "fixture document")?)?;
    let invitation = id(api
        .post(
            &format!("/api/meetings/{mid}/invitations"),
            admin,
            json!({"name": "V", "role": "observer"}),
        )
        .await?
        .expect(201, "fixture invitation")?)?;
    let bridge_point = id(api
        .post(
            "/api/bridge-points",
            admin,
            json!({"name": "B", "level": "commune"}),
        )
        .await?
        .expect(201, "fixture bridge point")?)?;
    let draft_meeting = id(api
        .post("/api/meetings", admin, json!({"title": "Nháp"}))
        .await?
        .expect(201, "fixture meeting")?)?;
    Ok(Fixture {
        participant,
        item,
        item_to_delete,
        document,
        document_to_withdraw,
        invitation,
        bridge_point,
        draft_meeting,
    })
}

/// One request of the matrix.
enum Body {
    None,
    Json(Value),
    Upload,
}

#[tokio::test]
async fn authorization_matrix() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let api = Api::new(&server);
    let admin = server.staff_token("admin", "admin").await?;
    let secretary = server.staff_token("thuky", "secretary").await?;
    let operator = server.staff_token("vanhanh", "operator").await?;
    let mid = api
        .post("/api/meetings", &admin, json!({"title": "Họp A"}))
        .await?
        .expect(201, "meeting A")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let other = api
        .post("/api/meetings", &admin, json!({"title": "Họp B"}))
        .await?
        .expect(201, "meeting B")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let invite = |m: String| {
        let api = &api;
        let admin = &admin;
        async move {
            let v = api
                .post(
                    &format!("/api/meetings/{m}/invitations"),
                    admin,
                    json!({"name": "Điểm cầu", "role": "bridge"}),
                )
                .await?
                .expect(201, "invitation")?;
            anyhow::Ok(v["token"].as_str().context("token")?.to_owned())
        }
    };
    let invitee = invite(mid.clone()).await?;
    let other_invitee = invite(other.clone()).await?;
    let secret = server_secret(&server)?;
    let admin_id = api.get("/api/auth/me", &admin).await?.expect(200, "me")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let staff_claims = |exp: i64| {
        json!({"iss": "giaoban", "aud": "giaoban-staff", "typ": "staff", "sub": admin_id,
               "name": "admin", "iat": now() - 100, "exp": exp})
    };
    let forged = sign(
        &staff_claims(now() + 3600),
        b"not-the-server-key-not-the-server-key",
    )?;
    let expired = sign(&staff_claims(now() - 60), &secret)?;
    // Sanity: the same claims with the right key and a future exp work.
    let good = sign(&staff_claims(now() + 3600), &secret)?;
    api.get("/api/auth/me", &good)
        .await?
        .expect(200, "self-made staff token")?;
    // The account the account-management routes act on.
    let victim = api
        .post(
            "/api/users",
            &admin,
            json!({"username": "nan-nhan", "display_name": "V", "role": "operator", "password": "mật-khẩu-dài"}),
        )
        .await?
        .expect(201, "victim account")?["id"]
        .as_str()
        .context("id")?
        .to_owned();

    // A named poll of meeting A, opened, voted and closed by its chair
    // over the WebSocket (polls have no REST writes).
    let chair_url = server.invite(&mid, "Chủ tịch", "chair").await?;
    let mut chair = WsClient::connect(&server.ws_url()).await?;
    chair.hello_and_join(token_of(&chair_url)?).await?;
    let r = chair
        .request(json!({"type": "open_vote", "question": "Thông qua?"}))
        .await?;
    anyhow::ensure!(r["type"] == "ok", "open_vote: {r}");
    let poll = chair.recv_type("vote_opened").await?["poll"]["id"]
        .as_str()
        .context("poll id")?
        .to_owned();
    for msg in [
        json!({"type": "cast_vote", "poll_id": poll, "choice": "for"}),
        json!({"type": "close_vote", "poll_id": poll}),
    ] {
        let r = chair.request(msg.clone()).await?;
        anyhow::ensure!(r["type"] == "ok", "{msg}: {r}");
    }

    let tokens: [Option<&str>; 8] = [
        Some(&admin),
        Some(&secretary),
        Some(&operator),
        Some(&invitee),
        Some(&other_invitee),
        None,
        Some(&forged),
        Some(&expired),
    ];

    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    for (ci, caller) in CALLERS.iter().enumerate() {
        let f = fixture(&api, &admin, &mid).await?;
        // A fresh written opinion request (closed by the admin's turn).
        let opinion = api
            .post(
                "/api/opinions",
                &admin,
                json!({"title": "Phiếu", "question": "Đồng ý?", "deadline": now() + 3600,
                       "recipients": [{"name": "A"}]}),
            )
            .await?
            .expect(201, "fixture opinion")?["request"]["id"]
            .as_str()
            .context("opinion id")?
            .to_owned();
        // Saved groups of units: one to change and invite, one to delete.
        let mut groups = Vec::new();
        for name in ["Nhóm", "Nhóm xóa"] {
            let g = api
                .post(
                    "/api/unit-groups",
                    &admin,
                    json!({"name": format!("{name} {caller}"), "bridge_point_ids": [f.bridge_point]}),
                )
                .await?
                .expect(201, "fixture unit group")?;
            groups.push(g["id"].as_str().context("group id")?.to_owned());
        }
        // The short code of the invitee's invitation (a right one: right
        // codes never trip the per-address limit).
        let printed = api
            .get(&format!("/api/meetings/{mid}/invitations/print"), &admin)
            .await?
            .expect(200, "printed links")?;
        let short_code = printed["links"]
            .as_array()
            .context("links")?
            .iter()
            .find(|l| l["name"] == "Điểm cầu")
            .context("the invitee's link")?["short_code"]
            .as_str()
            .context("short code")?
            .to_owned();
        let order: Vec<String> = api
            .get(&format!("/api/meetings/{mid}/agenda"), &admin)
            .await?
            .expect(200, "agenda")?
            .as_array()
            .context("array")?
            .iter()
            .filter_map(|i| i["id"].as_str().map(str::to_owned))
            .collect();
        // A document of the opinion request.
        let opinion_doc = api
            .upload(
                &format!("/api/opinions/{opinion}/documents"),
                Some(&admin),
                form(
                    b"%PDF-1.4\n% opinion\n".to_vec(),
                    "de-an.pdf",
                    "application/pdf",
                    &[],
                ),
            )
            .await?
            .expect(201, "opinion document")?["id"]
            .as_str()
            .context("opinion document id")?
            .to_owned();
        // (method, route, concrete path, body, expected status per caller:
        //  admin, secretary, operator, invitee, other invitee; then 401 for
        //  anonymous, forged and expired unless the route is public).
        let cases: Vec<(&str, &str, String, Body, [u16; 5])> = vec![
            (
                "get",
                "/api/openapi.json",
                "/api/openapi.json".into(),
                Body::None,
                [200; 5],
            ),
            (
                "get",
                "/api/invitation",
                "/api/invitation".into(),
                Body::None,
                [401, 401, 401, 200, 200],
            ),
            (
                "put",
                "/api/invitation/answer",
                "/api/invitation/answer".into(),
                Body::Json(json!({"answer": "attend"})),
                [403, 403, 403, 200, 200],
            ),
            (
                "get",
                "/api/invitation/notices",
                "/api/invitation/notices".into(),
                Body::None,
                [403, 403, 403, 200, 200],
            ),
            (
                "post",
                "/api/auth/login",
                "/api/auth/login".into(),
                Body::Json(
                    json!({"username": format!("nobody-{caller}"), "password": "wrong-password"}),
                ),
                [401; 5],
            ),
            (
                "get",
                "/api/auth/me",
                "/api/auth/me".into(),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "get",
                "/api/users",
                "/api/users".into(),
                Body::None,
                [200, 403, 403, 403, 403],
            ),
            (
                "post",
                "/api/users",
                "/api/users".into(),
                Body::Json(
                    json!({"username": format!("u-{caller}"), "display_name": "U", "role": "operator", "password": "mật-khẩu-dài"}),
                ),
                [201, 403, 403, 403, 403],
            ),
            (
                "post",
                "/api/auth/logout",
                "/api/auth/logout".into(),
                Body::None,
                [204, 204, 204, 403, 403],
            ),
            (
                "post",
                "/api/auth/password",
                "/api/auth/password".into(),
                Body::Json(
                    json!({"old_password": "không-phải-mật-khẩu", "new_password": "mật-khẩu-mới-dài"}),
                ),
                [400, 400, 400, 403, 403],
            ),
            (
                "post",
                "/api/users/{id}/disable",
                format!("/api/users/{victim}/disable"),
                Body::None,
                [200, 403, 403, 403, 403],
            ),
            (
                "post",
                "/api/users/{id}/enable",
                format!("/api/users/{victim}/enable"),
                Body::None,
                [200, 403, 403, 403, 403],
            ),
            (
                "post",
                "/api/users/{id}/password",
                format!("/api/users/{victim}/password"),
                Body::Json(json!({"password": "mật-khẩu-đặt-lại"})),
                [200, 403, 403, 403, 403],
            ),
            (
                "post",
                "/api/users/{id}/revoke-sessions",
                format!("/api/users/{victim}/revoke-sessions"),
                Body::None,
                [204, 403, 403, 403, 403],
            ),
            (
                "get",
                "/api/audit",
                "/api/audit".into(),
                Body::None,
                [200, 403, 403, 403, 403],
            ),
            (
                "get",
                "/api/audit/export",
                "/api/audit/export?format=jsonl".into(),
                Body::None,
                [200, 403, 403, 403, 403],
            ),
            (
                "get",
                "/api/audit/verify",
                "/api/audit/verify".into(),
                Body::None,
                [200, 403, 403, 403, 403],
            ),
            (
                "get",
                "/api/meetings",
                "/api/meetings".into(),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "post",
                "/api/meetings",
                "/api/meetings".into(),
                Body::Json(json!({"title": "Mới"})),
                [201, 201, 403, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}",
                format!("/api/meetings/{mid}"),
                Body::None,
                [200, 200, 200, 200, 403],
            ),
            (
                "patch",
                "/api/meetings/{id}",
                format!("/api/meetings/{mid}"),
                Body::Json(json!({"location": "Phòng 1"})),
                [200, 200, 403, 403, 403],
            ),
            (
                "post",
                "/api/meetings/{id}/status",
                format!("/api/meetings/{}/status", f.draft_meeting),
                Body::Json(json!({"status": "scheduled"})),
                [200, 200, 403, 403, 403],
            ),
            (
                "post",
                "/api/meetings/{id}/copy",
                format!("/api/meetings/{mid}/copy"),
                Body::Json(json!({"title": "Họp A (bản sao)"})),
                [201, 201, 403, 403, 403],
            ),
            (
                "get",
                "/api/unit-groups",
                "/api/unit-groups".into(),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "post",
                "/api/unit-groups",
                "/api/unit-groups".into(),
                Body::Json(json!({"name": format!("Khối {caller}")})),
                [201, 201, 403, 403, 403],
            ),
            (
                "patch",
                "/api/unit-groups/{id}",
                format!("/api/unit-groups/{}", groups[0]),
                Body::Json(json!({"name": format!("Khối đổi tên {caller}")})),
                [200, 200, 403, 403, 403],
            ),
            (
                "delete",
                "/api/unit-groups/{id}",
                format!("/api/unit-groups/{}", groups[1]),
                Body::None,
                [204, 204, 403, 403, 403],
            ),
            (
                "post",
                "/api/meetings/{id}/invitations/unit-group",
                format!("/api/meetings/{mid}/invitations/unit-group"),
                Body::Json(json!({"group_id": groups[0]})),
                [201, 201, 403, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/invitations/print",
                format!("/api/meetings/{mid}/invitations/print"),
                Body::None,
                [200, 200, 403, 403, 403],
            ),
            (
                "post",
                "/api/invitation/code",
                "/api/invitation/code".into(),
                Body::Json(json!({"code": short_code})),
                [200; 5],
            ),
            (
                "get",
                "/api/meetings/{id}/live",
                format!("/api/meetings/{mid}/live"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/attendance",
                format!("/api/meetings/{mid}/attendance"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/attendance.csv",
                format!("/api/meetings/{mid}/attendance.csv"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "put",
                "/api/meetings/{id}/attendance/{invitation_id}",
                format!("/api/meetings/{mid}/attendance/{}", f.invitation),
                Body::Json(json!({"mark": "excused", "note": "Đi công tác"})),
                [200, 200, 403, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/polls",
                format!("/api/meetings/{mid}/polls"),
                Body::None,
                [200, 200, 200, 200, 403],
            ),
            (
                // The ballots: staff, and only the chair's or secretary's
                // invitation (the invitee here is a bridge point's).
                "get",
                "/api/polls/{id}",
                format!("/api/polls/{poll}"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "get",
                "/api/opinions",
                "/api/opinions".into(),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "post",
                "/api/opinions",
                "/api/opinions".into(),
                Body::Json(
                    json!({"title": "Mới", "question": "Đồng ý?", "deadline": now() + 3600, "recipients": [{"name": "B"}]}),
                ),
                [201, 201, 403, 403, 403],
            ),
            (
                "get",
                "/api/opinions/{id}",
                format!("/api/opinions/{opinion}"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "post",
                "/api/opinions/{id}/remind",
                format!("/api/opinions/{opinion}/remind"),
                Body::Json(json!({})),
                [200, 200, 403, 403, 403],
            ),
            (
                "get",
                "/api/opinions/{id}/mail",
                format!("/api/opinions/{opinion}/mail"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "post",
                "/api/opinions/{id}/documents",
                format!("/api/opinions/{opinion}/documents"),
                Body::Upload,
                [201, 201, 403, 403, 403],
            ),
            (
                "get",
                "/api/opinions/{id}/documents/{doc_id}",
                format!("/api/opinions/{opinion}/documents/{opinion_doc}"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                // Only a recipient's opinion token.
                "get",
                "/api/opinion/documents/{doc_id}",
                format!("/api/opinion/documents/{opinion_doc}"),
                Body::None,
                [401; 5],
            ),
            (
                "get",
                "/api/meetings/{id}/mail",
                format!("/api/meetings/{mid}/mail"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                // Meeting A is a draft: its invitations are not sent yet.
                "post",
                "/api/meetings/{id}/mail/invitations",
                format!("/api/meetings/{mid}/mail/invitations"),
                Body::None,
                [409, 409, 403, 403, 403],
            ),
            (
                "post",
                "/api/opinions/{id}/close",
                format!("/api/opinions/{opinion}/close"),
                Body::None,
                [200, 200, 403, 403, 403],
            ),
            (
                // Only a recipient's opinion token: staff and invitation
                // tokens are not one (tests/tests/opinions.rs).
                "get",
                "/api/opinion",
                "/api/opinion".into(),
                Body::None,
                [401; 5],
            ),
            (
                "put",
                "/api/opinion/answer",
                "/api/opinion/answer".into(),
                Body::Json(json!({"answer": "agree"})),
                [401; 5],
            ),
            (
                "get",
                "/api/bridge-points",
                "/api/bridge-points".into(),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "post",
                "/api/bridge-points",
                "/api/bridge-points".into(),
                Body::Json(json!({"name": "Xã", "level": "commune"})),
                [201, 201, 403, 403, 403],
            ),
            (
                "patch",
                "/api/bridge-points/{id}",
                format!("/api/bridge-points/{}", f.bridge_point),
                Body::Json(json!({"active": false})),
                [200, 200, 403, 403, 403],
            ),
            (
                // A JSON body is not a list of units: 415 once authorized.
                "post",
                "/api/bridge-points/import",
                "/api/bridge-points/import?dry_run=true".into(),
                Body::Json(json!({})),
                [415, 415, 403, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/participants",
                format!("/api/meetings/{mid}/participants"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "post",
                "/api/meetings/{id}/participants",
                format!("/api/meetings/{mid}/participants"),
                Body::Json(json!({"name": "Q", "role": "observer"})),
                [201, 201, 403, 403, 403],
            ),
            (
                "patch",
                "/api/participants/{id}",
                format!("/api/participants/{}", f.participant),
                Body::Json(json!({"voting": true})),
                [200, 200, 403, 403, 403],
            ),
            (
                "delete",
                "/api/participants/{id}",
                format!("/api/participants/{}", f.participant),
                Body::None,
                [204, 204, 403, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/invitations",
                format!("/api/meetings/{mid}/invitations"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "post",
                "/api/meetings/{id}/invitations",
                format!("/api/meetings/{mid}/invitations"),
                Body::Json(json!({"name": "W", "role": "observer"})),
                [201, 201, 403, 403, 403],
            ),
            (
                "post",
                "/api/meetings/{id}/invitations/group",
                format!("/api/meetings/{mid}/invitations/group"),
                Body::Json(json!({"levels": ["commune"]})),
                [201, 201, 403, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/invitations/export",
                format!("/api/meetings/{mid}/invitations/export"),
                Body::None,
                [200, 200, 403, 403, 403],
            ),
            (
                "post",
                "/api/invitations/{id}/revoke",
                format!("/api/invitations/{}/revoke", f.invitation),
                Body::Json(json!({})),
                [200, 200, 403, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/agenda",
                format!("/api/meetings/{mid}/agenda"),
                Body::None,
                [200, 200, 200, 200, 403],
            ),
            (
                "put",
                "/api/meetings/{id}/agenda/order",
                format!("/api/meetings/{mid}/agenda/order"),
                Body::Json(json!({"item_ids": order})),
                [200, 200, 403, 403, 403],
            ),
            (
                "post",
                "/api/meetings/{id}/agenda",
                format!("/api/meetings/{mid}/agenda"),
                Body::Json(json!({"title": "Thêm"})),
                [201, 201, 403, 403, 403],
            ),
            (
                "patch",
                "/api/agenda/{item_id}",
                format!("/api/agenda/{}", f.item),
                Body::Json(json!({"presenter": "Sở KH-ĐT"})),
                [200, 200, 403, 403, 403],
            ),
            (
                // The invitee is a bridge point's: only the chair's or the
                // secretary's invitation sets conclusions.
                "put",
                "/api/agenda/{item_id}/conclusion",
                format!("/api/agenda/{}/conclusion", f.item),
                Body::Json(json!({"text": format!("Kết luận ({caller})")})),
                [200, 200, 403, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/conclusions",
                format!("/api/meetings/{mid}/conclusions"),
                Body::None,
                [200, 200, 200, 200, 403],
            ),
            (
                // A bridge point's invitation: only the chair's or the
                // secretary's reads the minutes.
                "get",
                "/api/meetings/{id}/minutes",
                format!("/api/meetings/{mid}/minutes"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/minutes.pdf",
                format!("/api/meetings/{mid}/minutes.pdf"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                // Sealing: the conclusion above changed the minutes for the
                // admin and the secretary, so each makes a new version.
                "post",
                "/api/meetings/{id}/minutes/seal",
                format!("/api/meetings/{mid}/minutes/seal"),
                Body::None,
                [201, 201, 403, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/minutes/versions",
                format!("/api/meetings/{mid}/minutes/versions"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/minutes/versions/{version}",
                format!("/api/meetings/{mid}/minutes/versions/1"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                // Public: readers need it to trust the seal.
                "get",
                "/api/minutes/seal-certificate",
                "/api/minutes/seal-certificate".to_owned(),
                Body::None,
                [200, 200, 200, 200, 200],
            ),
            (
                "get",
                "/api/meetings/{id}/notice",
                format!("/api/meetings/{mid}/notice"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/notice.pdf",
                format!("/api/meetings/{mid}/notice.pdf"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/notice/status",
                format!("/api/meetings/{mid}/notice/status"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                // Only the secretariat marks the notice issued, once the
                // meeting has ended (this one has not: 409).
                "post",
                "/api/meetings/{id}/notice/status",
                format!("/api/meetings/{mid}/notice/status"),
                Body::Json(json!({"issued": true})),
                [409, 409, 403, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/documents-deadline",
                format!("/api/meetings/{mid}/documents-deadline"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "get",
                "/api/agenda/{item_id}/documents",
                format!("/api/agenda/{}/documents", f.item),
                Body::None,
                [200, 200, 200, 200, 403],
            ),
            (
                "post",
                "/api/agenda/{item_id}/documents",
                format!("/api/agenda/{}/documents", f.item),
                Body::Upload,
                [201, 201, 403, 403, 403],
            ),
            (
                "get",
                "/api/documents/{id}",
                format!("/api/documents/{}", f.document),
                Body::None,
                [200, 200, 200, 200, 403],
            ),
            (
                "post",
                "/api/documents/{id}/versions",
                format!("/api/documents/{}/versions", f.document),
                Body::Upload,
                [201, 201, 403, 403, 403],
            ),
            (
                "get",
                "/api/documents/{id}/content",
                format!("/api/documents/{}/content", f.document),
                Body::None,
                [200, 200, 200, 200, 403],
            ),
            (
                "post",
                "/api/documents/{id}/replace",
                format!("/api/documents/{}/replace", f.document),
                Body::Upload,
                [201, 201, 403, 403, 403],
            ),
            (
                "post",
                "/api/documents/{id}/withdraw",
                format!("/api/documents/{}/withdraw", f.document_to_withdraw),
                Body::Json(json!({"reason": "Tải nhầm"})),
                [200, 200, 403, 403, 403],
            ),
            (
                // Notes: staff read the comments, write none; the invitee
                // writes its own; another meeting's invitee reads nothing.
                "get",
                "/api/documents/{id}/notes",
                format!("/api/documents/{}/notes", f.document),
                Body::None,
                [200, 200, 200, 200, 403],
            ),
            (
                "post",
                "/api/documents/{id}/notes",
                format!("/api/documents/{}/notes", f.document),
                Body::Json(json!({"page": 1, "text": format!("Ghi chú ({caller})")})),
                [403, 403, 403, 201, 403],
            ),
            (
                // Only its author finds a note: nobody has this one.
                "patch",
                "/api/notes/{id}",
                "/api/notes/no-such-note".to_owned(),
                Body::Json(json!({"text": "Sửa"})),
                [403, 403, 403, 404, 404],
            ),
            (
                "delete",
                "/api/notes/{id}",
                "/api/notes/no-such-note".to_owned(),
                Body::None,
                [403, 403, 403, 404, 404],
            ),
            (
                "get",
                "/api/meetings/{id}/notes.csv",
                format!("/api/meetings/{mid}/notes.csv"),
                Body::None,
                [403, 403, 403, 200, 403],
            ),
            // The operator's desk: the dashboard and a point's history are
            // staff's; the pre-meeting check is any invitation's own (the
            // other meeting's invitee checks its own link too); the text
            // channel is staff's and this meeting's points'.
            (
                "get",
                "/api/meetings/{id}/dashboard",
                format!("/api/meetings/{mid}/dashboard"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "get",
                "/api/meetings/{id}/link-history/{invitation_id}",
                format!("/api/meetings/{mid}/link-history/no-such-invitation"),
                Body::None,
                [200, 200, 200, 403, 403],
            ),
            (
                "get",
                "/api/link-check",
                "/api/link-check".to_owned(),
                Body::None,
                [403, 403, 403, 200, 200],
            ),
            (
                "post",
                "/api/link-check",
                "/api/link-check".to_owned(),
                Body::Json(
                    json!({"camera": "ok", "microphone": "ok", "speaker": "ok", "path": "udp"}),
                ),
                [403, 403, 403, 201, 201],
            ),
            (
                "get",
                "/api/link-check/probe",
                "/api/link-check/probe?bytes=16".to_owned(),
                Body::None,
                [403, 403, 403, 200, 200],
            ),
            (
                "post",
                "/api/link-check/probe",
                "/api/link-check/probe".to_owned(),
                Body::Json(json!({"x": 1})),
                [403, 403, 403, 200, 200],
            ),
            (
                "post",
                "/api/link-check/ice",
                "/api/link-check/ice".to_owned(),
                Body::Json(json!({"sdp": "v=0"})),
                [403, 403, 403, 400, 400],
            ),
            (
                "get",
                "/api/meetings/{id}/tech-messages",
                format!("/api/meetings/{mid}/tech-messages"),
                Body::None,
                [200, 200, 200, 200, 403],
            ),
            (
                "post",
                "/api/meetings/{id}/tech-messages",
                format!("/api/meetings/{mid}/tech-messages"),
                Body::Json(json!({"text": "Kiểm tra âm thanh"})),
                [201, 201, 201, 201, 403],
            ),
            (
                "delete",
                "/api/agenda/{item_id}",
                format!("/api/agenda/{}", f.item_to_delete),
                Body::None,
                [204, 204, 403, 403, 403],
            ),
        ];
        for (method, route, path, body, expect) in cases {
            covered.insert((method.to_owned(), route.to_owned()));
            let public = route == "/api/openapi.json"
                || route == "/api/auth/login"
                || route == "/api/invitation/code"
                || route == "/api/minutes/seal-certificate";
            let want = if ci < 5 {
                expect[ci]
            } else if public {
                expect[0]
            } else {
                401
            };
            // Logging out revokes the caller's token: staff log out with a
            // fresh one, so the matrix's own tokens keep working.
            let fresh;
            let token = if route == "/api/auth/logout" && ci < 3 {
                let name = ["admin", "thuky", "vanhanh"][ci];
                fresh = server.login(name, &format!("{name}-mật-khẩu")).await?;
                Some(fresh.as_str())
            } else {
                tokens[ci]
            };
            let answer = match body {
                Body::None => {
                    api.call(method.to_uppercase().parse()?, &path, token, None)
                        .await?
                }
                Body::Json(v) => {
                    api.call(method.to_uppercase().parse()?, &path, token, Some(&v))
                        .await?
                }
                Body::Upload => {
                    api.upload(
                        &path,
                        token,
                        form(
                            format!("%PDF-1.4\n% {caller} {path}\n").into_bytes(),
                            "x.pdf",
                            "application/pdf",
                            &[],
                        ),
                    )
                    .await?
                }
            };
            let got = answer.status.as_u16();
            if got != want {
                bail!(
                    "{caller}: {method} {path}: expected {want}, got {got} {}",
                    String::from_utf8_lossy(&answer.body)
                );
            }
            if got >= 400 {
                let v = answer.json();
                let code = v["code"].as_str().unwrap_or_default();
                let expected_code = match (got, *caller) {
                    (403, _) => Some("forbidden"),
                    (401, "anonymous") => Some("unauthorized"),
                    (401, "forged") => Some("token_invalid"),
                    (401, "expired") => Some("token_expired"),
                    _ => None,
                };
                if let Some(c) = expected_code {
                    if route != "/api/invitation" && route != "/api/auth/login" {
                        anyhow::ensure!(
                            code == c,
                            "{caller}: {method} {path}: expected code {c}, got {v}"
                        );
                    }
                }
                anyhow::ensure!(
                    !code.is_empty(),
                    "{caller}: {method} {path}: no code in {v}"
                );
            }
        }
    }

    // The matrix covers every operation of the served OpenAPI document but
    // WHIP/WHEP, whose callers are encoders and players with an invitation
    // as bearer token (their refusals: tests/tests/whip_whep.rs).
    let spec = api
        .call(Method::GET, "/api/openapi.json", None, None)
        .await?
        .expect(200, "openapi")?;
    for (path, item) in spec["paths"].as_object().context("paths")? {
        for m in ["get", "post", "put", "patch", "delete"] {
            let media = path.starts_with("/whip/") || path.starts_with("/whep/");
            if item.get(m).is_some() && path != "/healthz" && !media {
                anyhow::ensure!(
                    covered.contains(&(m.to_owned(), path.clone())),
                    "the matrix misses {m} {path}"
                );
            }
        }
    }

    // An invitation token is never a staff token, and a staff token never
    // joins a meeting.
    api.get("/api/users", &invitee).await?.expect_error(
        403,
        "forbidden",
        "invitation token as staff",
    )?;
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    let hello = ws.request(json!({"type": "hello", "version": 1})).await?;
    assert_eq!(hello["type"], "hello");
    let r = ws.request(json!({"type": "join", "token": admin})).await?;
    assert_eq!(r["type"], "error");
    assert_eq!(
        r["code"], "token_invalid",
        "staff token refused by join: {r}"
    );

    // Unknown endpoints answer JSON 404.
    api.get("/api/nope", &admin)
        .await?
        .expect_error(404, "not_found", "unknown endpoint")?;
    Ok(())
}

// ------------------------------------------------------ access per level ----

#[tokio::test]
async fn download_authorization_per_access_level() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let api = Api::new(&server);
    let sec = server.staff_token("thuky", "secretary").await?;
    let operator = server.staff_token("vanhanh", "operator").await?;
    let m = api
        .post("/api/meetings", &sec, json!({"title": "Họp kín"}))
        .await?
        .expect(201, "meeting")?;
    let mid = m["id"].as_str().context("id")?.to_owned();
    let participant = |name: &str, role: &str| {
        let (api, sec, mid) = (&api, &sec, &mid);
        let body = json!({"name": name, "role": role});
        async move {
            let v = api
                .post(&format!("/api/meetings/{mid}/participants"), sec, body)
                .await?
                .expect(201, "participant")?;
            anyhow::Ok(v["id"].as_str().context("id")?.to_owned())
        }
    };
    let member = participant("Ủy viên", "member").await?;
    let delegate = participant("Đại biểu", "delegate").await?;
    let named_one = participant("Giám đốc Sở", "delegate").await?;
    let invite = |role: &str, pid: Option<&str>| {
        let (api, sec, mid) = (&api, &sec, &mid);
        let body = json!({"name": "X", "role": role, "participant_id": pid});
        async move {
            let v = api
                .post(&format!("/api/meetings/{mid}/invitations"), sec, body)
                .await?
                .expect(201, "invitation")?;
            anyhow::Ok(v["token"].as_str().context("token")?.to_owned())
        }
    };
    // Committee by the invitation's role, by the participant's role; named;
    // a plain bridge point.
    let chair_tok = invite("chair", None).await?;
    let member_tok = invite("delegate", Some(&member)).await?;
    let named_tok = invite("delegate", Some(&named_one)).await?;
    let delegate_tok = invite("delegate", Some(&delegate)).await?;
    let bridge_tok = invite("bridge", None).await?;

    let item = api
        .post(
            &format!("/api/meetings/{mid}/agenda"),
            &sec,
            json!({"title": "Nhân sự"}),
        )
        .await?
        .expect(201, "item")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let mut docs = Vec::new();
    for (access, ids) in [
        ("everyone", "[]".to_owned()),
        ("committee", "[]".to_owned()),
        ("named", format!("[\"{named_one}\"]")),
    ] {
        let d = api
            .upload(
                &format!("/api/agenda/{item}/documents"),
                Some(&sec),
                form(
                    format!("%PDF-1.4 {access}").into_bytes(),
                    &format!("{access}.pdf"),
                    "application/pdf",
                    &[("access", access), ("participant_ids", &ids)],
                ),
            )
            .await?
            .expect(201, access)?;
        assert_eq!(d["access"], access);
        docs.push(d["id"].as_str().context("id")?.to_owned());
    }
    api.upload(
        &format!("/api/agenda/{item}/documents"),
        Some(&sec),
        form(
            b"%PDF-1.4 bad".to_vec(),
            "bad.pdf",
            "application/pdf",
            &[("access", "named"), ("participant_ids", "not json")],
        ),
    )
    .await?
    .expect_error(400, "invalid_input", "bad participant_ids")?;

    // Expected download status for [everyone, committee, named].
    let cases: [(&str, &str, [u16; 3]); 7] = [
        ("secretary", &sec, [200, 200, 200]),
        ("operator", &operator, [200, 200, 200]),
        ("chair invitation", &chair_tok, [200, 200, 403]),
        ("member participant", &member_tok, [200, 200, 403]),
        ("named participant", &named_tok, [200, 403, 200]),
        ("delegate", &delegate_tok, [200, 403, 403]),
        ("bridge", &bridge_tok, [200, 403, 403]),
    ];
    for (who, token, expect) in cases {
        for (doc, want) in docs.iter().zip(expect) {
            for path in [
                format!("/api/documents/{doc}/content"),
                format!("/api/documents/{doc}"),
            ] {
                let got = api.get(&path, token).await?.status.as_u16();
                anyhow::ensure!(got == want, "{who}: GET {path}: expected {want}, got {got}");
            }
        }
        // The list shows exactly the readable ones.
        let listed = api
            .get(&format!("/api/agenda/{item}/documents"), token)
            .await?
            .expect(200, who)?;
        let listed: BTreeSet<String> = listed
            .as_array()
            .context("array")?
            .iter()
            .filter_map(|d| d["id"].as_str().map(str::to_owned))
            .collect();
        let want: BTreeSet<String> = docs
            .iter()
            .zip(expect)
            .filter(|(_, s)| *s == 200)
            .map(|(d, _)| d.clone())
            .collect();
        anyhow::ensure!(
            listed == want,
            "{who}: listed {listed:?}, expected {want:?}"
        );
    }

    // A revoked invitation stops downloads at once.
    let invs = api
        .get(&format!("/api/meetings/{mid}/invitations"), &sec)
        .await?
        .expect(200, "invitations")?;
    let first = invs
        .as_array()
        .context("array")?
        .iter()
        .find(|i| {
            i["url"]
                .as_str()
                .is_some_and(|u| u.ends_with(&format!("#{chair_tok}")))
        })
        .and_then(|i| i["id"].as_str())
        .context("the chair's invitation is listed with its link")?
        .to_owned();
    api.post(&format!("/api/invitations/{first}/revoke"), &sec, json!({}))
        .await?
        .expect(200, "revoke")?;
    api.get(&format!("/api/documents/{}/content", docs[0]), &chair_tok)
        .await?
        .expect_error(401, "token_revoked", "revoked")?;
    // Unknown document: staff learn 404, invitees only 403.
    api.get("/api/documents/nope", &sec).await?.expect_error(
        404,
        "document_not_found",
        "unknown doc",
    )?;
    api.get("/api/documents/nope", &bridge_tok)
        .await?
        .expect_error(403, "forbidden", "unknown doc, invitee")?;
    Ok(())
}

// ---------------------------------------------------------------- uploads ----

#[tokio::test]
async fn upload_limit_and_refusals() -> anyhow::Result<()> {
    const LIMIT: usize = 200_000;
    let server =
        TestServer::start_with_config(&format!("[documents]\nmax_upload_bytes = {LIMIT}\n"))
            .await?;
    let api = Api::new(&server);
    let sec = server.staff_token("thuky", "secretary").await?;
    let mid = api
        .post("/api/meetings", &sec, json!({"title": "Họp"}))
        .await?
        .expect(201, "meeting")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let item = api
        .post(
            &format!("/api/meetings/{mid}/agenda"),
            &sec,
            json!({"title": "Mục"}),
        )
        .await?
        .expect(201, "item")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let path = format!("/api/agenda/{item}/documents");

    // One byte over the limit: 413, nothing stored.
    let v = api
        .upload(
            &path,
            Some(&sec),
            form(
                vec![b'x'; LIMIT + 1],
                "big.bin",
                "application/octet-stream",
                &[],
            ),
        )
        .await?
        .expect_error(413, "upload_too_large", "over the limit")?;
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&LIMIT.to_string()),
        "the message names the limit: {v}"
    );
    // Far over (past the body limit too): still 413.
    let r = api
        .upload(
            &path,
            Some(&sec),
            form(
                vec![b'y'; LIMIT * 10],
                "huge.bin",
                "application/octet-stream",
                &[],
            ),
        )
        .await;
    if let Ok(a) = r {
        a.expect_error(413, "upload_too_large", "far over the limit")?;
    }
    assert!(stored_files(&server).is_empty(), "nothing stored");
    assert_eq!(temp_files(&server), 0, "no temp file left");
    let listed = api.get(&path, &sec).await?.expect(200, "list")?;
    assert_eq!(listed, json!([]));

    // Exactly the limit: accepted (a document: a PDF header).
    let mut max = b"%PDF-1.4\n".to_vec();
    max.resize(LIMIT, b'z');
    api.upload(
        &path,
        Some(&sec),
        form(max, "max.pdf", "application/pdf", &[]),
    )
    .await?
    .expect(201, "at the limit")?;
    assert_eq!(stored_files(&server).len(), 1);

    // Empty file, no file, not multipart, broken multipart, bad access.
    api.upload(
        &path,
        Some(&sec),
        form(Vec::new(), "empty.pdf", "application/pdf", &[]),
    )
    .await?
    .expect_error(400, "empty_file", "empty")?;
    api.upload(&path, Some(&sec), Form::new().text("title", "no file"))
        .await?
        .expect_error(400, "missing_file", "no file")?;
    let r = reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .bearer_auth(&sec)
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc")
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await?;
    assert_eq!(v["code"], "bad_multipart", "{v}");
    let r = reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .bearer_auth(&sec)
        .json(&json!({"file": "x"}))
        .send()
        .await?;
    assert_eq!(r.status(), 415, "not multipart");
    let v: Value = r.json().await?;
    assert_eq!(v["code"], "unsupported_media_type", "{v}");
    api.upload(
        &path,
        Some(&sec),
        form(
            b"%PDF".to_vec(),
            "a.pdf",
            "application/pdf",
            &[("access", "secret")],
        ),
    )
    .await?
    .expect_error(400, "invalid_input", "bad access")?;
    assert_eq!(stored_files(&server).len(), 1, "refusals store nothing");
    assert_eq!(temp_files(&server), 0);
    Ok(())
}

// ----------------------------------------------------------------- login ----

#[tokio::test]
async fn login_errors_and_throttling() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let api = Api::new(&server);
    server
        .add_user("thuky", "secretary", "đúng-mật-khẩu")
        .await?;
    server.add_user("khac", "operator", "mật-khẩu-khác").await?;
    let login = |u: &str, p: &str| {
        let api = &api;
        let body = json!({"username": u, "password": p});
        async move {
            api.call(Method::POST, "/api/auth/login", None, Some(&body))
                .await
        }
    };
    let ok = login("thuky", "đúng-mật-khẩu")
        .await?
        .expect(200, "login")?;
    assert_eq!(ok["user"]["role"], "secretary");
    assert!(ok["expires_at"].as_i64().is_some_and(|e| e > now()));
    login("nobody", "whatever-password").await?.expect_error(
        401,
        "bad_credentials",
        "unknown user",
    )?;
    api.call(
        Method::POST,
        "/api/auth/login",
        None,
        Some(&json!({"username": "x"})),
    )
    .await?
    .expect_error(400, "invalid_json", "missing password")?;
    for i in 0..5 {
        login("thuky", "sai").await?.expect_error(
            401,
            "bad_credentials",
            &format!("failure {i}"),
        )?;
    }
    login("thuky", "đúng-mật-khẩu").await?.expect_error(
        429,
        "too_many_attempts",
        "throttled even with the right password",
    )?;
    login("khac", "mật-khẩu-khác")
        .await?
        .expect(200, "another username is not throttled")?;

    // CLI: no password flag; a short password is refused; user list.
    let out = server
        .cli_output(&[
            "user",
            "add",
            "--username",
            "a",
            "--display-name",
            "A",
            "--role",
            "admin",
            "--password",
            "x",
        ])
        .await?;
    assert!(!out.status.success());
    let out = server
        .cli_output_env(
            &[
                "user",
                "add",
                "--username",
                "a",
                "--display-name",
                "A",
                "--role",
                "admin",
            ],
            &[("GIAOBAN_NEW_PASSWORD", "short")],
        )
        .await?;
    assert!(!out.status.success(), "short password refused");
    let list = server.cli(&["user", "list"]).await?;
    assert!(list.contains("\tthuky\tsecretary\ttrue\t"), "{list}");
    assert_eq!(server.cli(&["audit", "verify"]).await?, "ok");
    Ok(())
}

// ---------------------------------------------------------------- verify ----

#[tokio::test]
async fn cli_verify_exit_codes() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let dir = tempfile::tempdir()?;
    let unsigned = dir.path().join("unsigned.pdf");
    std::fs::write(&unsigned, unsigned_pdf("cli"))?;
    let garbage = dir.path().join("garbage.pdf");
    std::fs::write(&garbage, b"this is not a pdf")?;
    let out = server
        .cli_output(&["verify", unsigned.to_str().context("path")?])
        .await?;
    assert_eq!(out.status.code(), Some(2), "no signature: {out:?}");
    assert!(!out.stdout.is_empty(), "a report is printed");
    let out = server
        .cli_output(&["verify", garbage.to_str().context("path")?])
        .await?;
    assert_eq!(out.status.code(), Some(4), "unreadable: {out:?}");
    let out = server
        .cli_output(&[
            "verify",
            unsigned.to_str().context("path")?,
            "--trust",
            "/nonexistent/ca",
        ])
        .await?;
    assert_eq!(out.status.code(), Some(5), "bad trust store: {out:?}");
    // Give the server a moment to be polite about the lingering connection.
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

// ------------------------------------------------------- signed documents ----

/// PDFs signed by an independent tool (pyHanko), made by the cabinet's
/// fixture script: needs python3 with pyHanko (as the cabinet's signature
/// tests do).
fn signed_fixtures(dir: &std::path::Path) -> anyhow::Result<()> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cabinet/tests/fixtures/make_signed_pdfs.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir)
        .output()
        .context("run python3 (the signed-PDF fixtures need pyHanko)")?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn signed_pdfs_are_verified_on_upload() -> anyhow::Result<()> {
    let fx = tempfile::tempdir()?;
    signed_fixtures(fx.path())?;
    let trust = fx.path().join("trust");
    let server = TestServer::start_with_config(&format!(
        "[documents]\ntrust_dir = {}\n",
        toml_quote(&trust.to_string_lossy())
    ))
    .await?;
    let api = Api::new(&server);
    let sec = server.staff_token("thuky", "secretary").await?;
    let mid = api
        .post("/api/meetings", &sec, json!({"title": "Họp"}))
        .await?
        .expect(201, "meeting")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let item = api
        .post(
            &format!("/api/meetings/{mid}/agenda"),
            &sec,
            json!({"title": "Tờ trình"}),
        )
        .await?
        .expect(201, "item")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    for (file, status) in [
        ("valid_rsa.pdf", "valid"),
        ("two_signatures.pdf", "valid"),
        ("tampered.pdf", "invalid"),
        ("untrusted.pdf", "untrusted"),
        ("expired.pdf", "invalid"),
        ("unsigned.pdf", "no_signature"),
        ("garbage.pdf", "unreadable"),
    ] {
        let bytes = std::fs::read(fx.path().join(file))?;
        if !bytes.starts_with(b"%PDF-") {
            // Not a PDF by its bytes: refused, whatever its name says.
            api.upload(
                &format!("/api/agenda/{item}/documents"),
                Some(&sec),
                form(bytes, file, "application/pdf", &[]),
            )
            .await?
            .expect_error(415, "unsupported_document_type", file)?;
            continue;
        }
        let doc = api
            .upload(
                &format!("/api/agenda/{item}/documents"),
                Some(&sec),
                form(bytes, file, "application/pdf", &[]),
            )
            .await?
            .expect(201, file)?;
        let report = &doc["versions"][0]["signature_report"];
        anyhow::ensure!(
            report["status"] == status,
            "{file}: expected {status}, got {report}"
        );
        if status == "valid" {
            let sig = &report["signatures"][0];
            anyhow::ensure!(
                sig["signer_name"].as_str().is_some_and(|s| !s.is_empty()),
                "{file}: no signer in {report}"
            );
            // The fixture trust folder has current CRLs of both CAs.
            anyhow::ensure!(
                report["revocation"] == "checked_good"
                    && sig["revocation"]["status"] == "checked_good",
                "{file}: revocation not checked in {report}"
            );
        }
        // The stored report is what a reader sees later.
        let again = api
            .get(
                &format!("/api/documents/{}", doc["id"].as_str().unwrap_or("")),
                &sec,
            )
            .await?
            .expect(200, file)?;
        assert_eq!(&again["versions"][0]["signature_report"], report);
    }

    // The same check offline, with the same trust anchors.
    let valid = fx.path().join("valid_rsa.pdf");
    let out = server
        .cli_output(&["verify", valid.to_str().context("path")?])
        .await?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "trusted by documents.trust_dir: {out:?}"
    );
    let out = server
        .cli_output(&[
            "verify",
            fx.path().join("tampered.pdf").to_str().context("path")?,
            "--trust",
            trust.to_str().context("path")?,
        ])
        .await?;
    assert_eq!(out.status.code(), Some(1), "invalid: {out:?}");
    Ok(())
}

/// Uploads `file` of the fixtures `fx` to a new meeting's agenda item on
/// `server`; returns the stored signature report (read back by GET).
async fn upload_signed(
    server: &TestServer,
    sec: &str,
    fx: &std::path::Path,
    file: &str,
) -> anyhow::Result<serde_json::Value> {
    let api = Api::new(server);
    let mid = api
        .post("/api/meetings", sec, json!({"title": "Họp"}))
        .await?
        .expect(201, "meeting")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let item = api
        .post(
            &format!("/api/meetings/{mid}/agenda"),
            sec,
            json!({"title": "Tờ trình"}),
        )
        .await?
        .expect(201, "item")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let doc = api
        .upload(
            &format!("/api/agenda/{item}/documents"),
            Some(sec),
            form(std::fs::read(fx.join(file))?, file, "application/pdf", &[]),
        )
        .await?
        .expect(201, file)?;
    let stored = api
        .get(
            &format!("/api/documents/{}", doc["id"].as_str().unwrap_or("")),
            sec,
        )
        .await?
        .expect(200, file)?;
    let report = stored["versions"][0]["signature_report"].clone();
    anyhow::ensure!(
        report == doc["versions"][0]["signature_report"],
        "{file}: the stored report differs from the upload's"
    );
    Ok(report)
}

#[tokio::test]
async fn signature_reports_carry_the_revocation_check() -> anyhow::Result<()> {
    let fx = tempfile::tempdir()?;
    signed_fixtures(fx.path())?;
    let config = |dir: &str| {
        format!(
            "[documents]\ntrust_dir = {}\n",
            toml_quote(&fx.path().join(dir).to_string_lossy())
        )
    };

    // A CRL of the sub CA revokes the RSA signer: the signature is invalid.
    let server = TestServer::start_with_config(&config("trust_revoked")).await?;
    let sec = server.staff_token("thuky", "secretary").await?;
    let report = upload_signed(&server, &sec, fx.path(), "valid_rsa.pdf").await?;
    let sig = &report["signatures"][0];
    anyhow::ensure!(
        report["status"] == "invalid"
            && report["revocation"] == "revoked"
            && sig["status"] == "invalid"
            && sig["revocation"]["status"] == "revoked"
            && sig["reasons"][0]["code"] == "revoked",
        "revoked signer: {report}"
    );
    let leaf = &sig["revocation"]["certificates"][0];
    anyhow::ensure!(
        leaf["revoked_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
            && leaf["crl"]["file"] == "intermediate.crl"
            && leaf["crl"]["next_update"].is_string(),
        "revocation details: {leaf}"
    );
    // Another signer of the same CA: checked and good.
    let report = upload_signed(&server, &sec, fx.path(), "valid_ecdsa.pdf").await?;
    anyhow::ensure!(
        report["status"] == "valid" && report["revocation"] == "checked_good",
        "not revoked: {report}"
    );
    let out = server
        .cli_output(&[
            "verify",
            fx.path().join("valid_rsa.pdf").to_str().context("path")?,
        ])
        .await?;
    assert_eq!(out.status.code(), Some(1), "revoked: {out:?}");
    drop(server);

    // The sub CA's CRL has expired: valid, but revocation not checked.
    let server = TestServer::start_with_config(&config("trust_expired")).await?;
    let sec = server.staff_token("thuky", "secretary").await?;
    let report = upload_signed(&server, &sec, fx.path(), "valid_rsa.pdf").await?;
    let sig = &report["signatures"][0];
    anyhow::ensure!(
        report["status"] == "valid"
            && report["revocation"] == "not_checked"
            && sig["revocation"]["status"] == "not_checked"
            && sig["reasons"][0]["code"] == "revocation_not_checked"
            && sig["revocation"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("expired")),
        "expired CRL: {report}"
    );
    let out = server
        .cli_output(&[
            "verify",
            fx.path().join("valid_rsa.pdf").to_str().context("path")?,
        ])
        .await?;
    assert_eq!(out.status.code(), Some(7), "not checked: {out:?}");
    anyhow::ensure!(
        String::from_utf8_lossy(&out.stdout).contains("REVOCATION NOT CHECKED"),
        "{out:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_trust_dir_stops_the_server() -> anyhow::Result<()> {
    let r =
        TestServer::start_with_config("[documents]\ntrust_dir = \"/nonexistent/giaoban-trust\"\n")
            .await;
    match r {
        Ok(_) => bail!("the server started with a missing trust_dir"),
        Err(e) => {
            let text = format!("{e:#}");
            anyhow::ensure!(text.contains("trust"), "unclear error: {text}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn revoking_ends_the_live_session() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let api = Api::new(&server);
    let sec = server.staff_token("thuky", "secretary").await?;
    let mid = api
        .post("/api/meetings", &sec, json!({"title": "Họp"}))
        .await?
        .expect(201, "meeting")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let mut invs = Vec::new();
    for name in ["Xã A", "Xã B"] {
        invs.push(
            api.post(
                &format!("/api/meetings/{mid}/invitations"),
                &sec,
                json!({"name": name, "role": "bridge"}),
            )
            .await?
            .expect(201, name)?,
        );
    }
    server.start_meeting(&mid).await?;
    let mut a = WsClient::connect(&server.ws_url()).await?;
    let joined_a = a
        .hello_and_join(invs[0]["token"].as_str().context("token")?)
        .await?;
    let mut b = WsClient::connect(&server.ws_url()).await?;
    b.hello_and_join(invs[1]["token"].as_str().context("token")?)
        .await?;
    a.recv_type("participant_joined").await?;
    api.post(
        &format!(
            "/api/invitations/{}/revoke",
            invs[0]["id"].as_str().context("id")?
        ),
        &sec,
        json!({}),
    )
    .await?
    .expect(200, "revoke")?;
    let err = a.recv_type("error").await?;
    assert_eq!(err["code"], "token_revoked", "{err}");
    assert_eq!(a.expect_close(Duration::from_secs(5)).await?, Some(1008));
    let left = b.recv_type("participant_left").await?;
    assert_eq!(left["reason"], "revoked");
    assert_eq!(left["participant_id"], joined_a["participant"]["id"]);
    // Joining again with the revoked link is refused.
    let mut again = WsClient::connect(&server.ws_url()).await?;
    let r = again
        .hello_and_join(invs[0]["token"].as_str().context("token")?)
        .await;
    assert!(
        r.as_ref()
            .is_err_and(|e| e.to_string().contains("token_revoked")),
        "{r:?}"
    );
    Ok(())
}
