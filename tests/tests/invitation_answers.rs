//! Invitees' answers (`PUT /api/invitation/answer`) through a real server,
//! on SQLite and PostgreSQL: attend, absent with a reason, a substitute with
//! name and position; validation; staff refused; an ended meeting refused;
//! the answers in `GET /api/invitation` and in the staff invitations list.

use anyhow::{bail, Context as _};
use giaoban_tests::{toml_quote, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut rq = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await?;
        let status = r.status();
        let text = r.text().await?;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?
        };
        Ok((status, v))
    }

    async fn ok(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (s, v) = self.call(method.clone(), path, token, body).await?;
        if s.as_u16() != want {
            bail!("{method} {path}: expected {want}, got {s} {v}");
        }
        Ok(v)
    }

    async fn answer(&self, token: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        self.call(Method::PUT, "/api/invitation/answer", token, Some(body))
            .await
    }
}

async fn invite(api: &Api, admin: &str, mid: &str, name: &str) -> anyhow::Result<String> {
    let v = api
        .ok(
            Method::POST,
            &format!("/api/meetings/{mid}/invitations"),
            admin,
            Some(json!({"name": name, "role": "bridge"})),
            201,
        )
        .await?;
    Ok(v["token"].as_str().context("token")?.to_owned())
}

async fn flow(server: &TestServer) -> anyhow::Result<()> {
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base_url(),
    };
    let admin = server.staff_token("admin", "admin").await?;
    let mid = api
        .ok(
            Method::POST,
            "/api/meetings",
            &admin,
            Some(json!({"title": "Giao ban tháng"})),
            201,
        )
        .await?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let a = invite(&api, &admin, &mid, "Xã An Bình").await?;
    let b = invite(&api, &admin, &mid, "Phường Hòa Bình").await?;
    let c = invite(&api, &admin, &mid, "Sở Tài chính").await?;
    let d = invite(&api, &admin, &mid, "Xã Tân Lập").await?;

    // Before answering: no answer.
    let v = api
        .ok(Method::GET, "/api/invitation", &a, None, 200)
        .await?;
    anyhow::ensure!(v["answer"].is_null(), "no answer yet: {v}");

    // The three answers.
    let (s, v) = api.answer(&a, json!({"answer": "attend"})).await?;
    anyhow::ensure!(s == 200 && v["answer"]["answer"] == "attend", "{s} {v}");
    let (s, v) = api
        .answer(
            &b,
            json!({"answer": "absent", "reason": "Trùng lịch tiếp dân"}),
        )
        .await?;
    anyhow::ensure!(
        s == 200 && v["answer"]["reason"] == "Trùng lịch tiếp dân",
        "{s} {v}"
    );
    let (s, v) = api
        .answer(
            &c,
            json!({"answer": "substitute", "substitute_name": "Nguyễn Văn B",
                   "substitute_position": "Phó Giám đốc Sở"}),
        )
        .await?;
    anyhow::ensure!(
        s == 200
            && v["answer"]["substitute_name"] == "Nguyễn Văn B"
            && v["answer"]["substitute_position"] == "Phó Giám đốc Sở",
        "{s} {v}"
    );
    // An answer can change: the last one counts; fields of another kind go.
    let (s, v) = api
        .answer(&a, json!({"answer": "attend", "reason": "bỏ qua"}))
        .await?;
    anyhow::ensure!(s == 200 && v["answer"]["reason"] == "", "{s} {v}");
    // The invitee sees its answer.
    let v = api
        .ok(Method::GET, "/api/invitation", &b, None, 200)
        .await?;
    anyhow::ensure!(
        v["answer"]["answer"] == "absent" && v["answer"]["answered_at"].as_i64().is_some(),
        "{v}"
    );

    // Validation.
    for (body, code) in [
        (json!({"answer": "absent"}), "invalid_input"),
        (
            json!({"answer": "absent", "reason": "   "}),
            "invalid_input",
        ),
        (json!({"answer": "substitute"}), "invalid_input"),
        (
            json!({"answer": "substitute", "substitute_position": "Phó"}),
            "invalid_input",
        ),
        (
            json!({"answer": "absent", "reason": "x".repeat(501)}),
            "invalid_input",
        ),
        (json!({}), "invalid_input"),
        (json!({"answer": "maybe"}), "invalid_json"),
        (json!({"answer": "attend", "extra": 1}), "invalid_json"),
    ] {
        let (s, v) = api.answer(&d, body.clone()).await?;
        anyhow::ensure!(
            s == 400 && v["code"] == code,
            "{body}: expected 400 {code}, got {s} {v}"
        );
    }
    let v = api
        .ok(Method::GET, "/api/invitation", &d, None, 200)
        .await?;
    anyhow::ensure!(v["answer"].is_null(), "refused answers store nothing: {v}");

    // Staff cannot answer for an invitee; no token is 401.
    let (s, v) = api.answer(&admin, json!({"answer": "attend"})).await?;
    anyhow::ensure!(s == 403 && v["code"] == "forbidden", "staff: {s} {v}");
    let (s, _) = api.answer("", json!({"answer": "attend"})).await?;
    anyhow::ensure!(s == 401, "anonymous: {s}");

    // The staff list shows each answer.
    let list = api
        .ok(
            Method::GET,
            &format!("/api/meetings/{mid}/invitations"),
            &admin,
            None,
            200,
        )
        .await?;
    let by_name = |n: &str| -> anyhow::Result<Value> {
        list.as_array()
            .context("array")?
            .iter()
            .find(|i| i["name"] == n)
            .cloned()
            .with_context(|| format!("{n} in {list}"))
    };
    anyhow::ensure!(by_name("Xã An Bình")?["answer"]["answer"] == "attend");
    anyhow::ensure!(by_name("Phường Hòa Bình")?["answer"]["reason"] == "Trùng lịch tiếp dân");
    let sub = by_name("Sở Tài chính")?;
    anyhow::ensure!(
        sub["answer"]["answer"] == "substitute"
            && sub["answer"]["substitute_name"] == "Nguyễn Văn B",
        "{sub}"
    );
    anyhow::ensure!(by_name("Xã Tân Lập")?["answer"].is_null());

    // Each answer is in the audit log.
    let audit = api
        .ok(
            Method::GET,
            "/api/audit?action=invitation.answer",
            &admin,
            None,
            200,
        )
        .await?;
    anyhow::ensure!(
        audit.to_string().matches("invitation.answer").count() >= 4,
        "answers audited: {audit}"
    );

    // Once the meeting has ended, answers are refused and stay as they were.
    api.ok(
        Method::POST,
        &format!("/api/meetings/{mid}/status"),
        &admin,
        Some(json!({"status": "ended"})),
        200,
    )
    .await?;
    let (s, v) = api.answer(&d, json!({"answer": "attend"})).await?;
    anyhow::ensure!(s == 403 && v["code"] == "meeting_closed", "ended: {s} {v}");
    let list = api
        .ok(
            Method::GET,
            &format!("/api/meetings/{mid}/invitations"),
            &admin,
            None,
            200,
        )
        .await?;
    anyhow::ensure!(
        list.as_array()
            .context("array")?
            .iter()
            .any(|i| i["name"] == "Xã Tân Lập" && i["answer"].is_null()),
        "{list}"
    );
    Ok(())
}

#[tokio::test]
async fn answers_sqlite() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let r = flow(&server).await;
    if r.is_err() {
        eprintln!("server log:\n{}", server.log());
    }
    r
}

#[tokio::test]
async fn answers_postgres() -> anyhow::Result<()> {
    let url = match std::env::var("GIAOBAN_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var("GIAOBAN_SKIP_PG").as_deref() == Ok("1") {
                eprintln!("GIAOBAN_SKIP_PG=1: skipping a PostgreSQL test");
                return Ok(());
            }
            bail!("GIAOBAN_TEST_PG_URL is not set; set GIAOBAN_SKIP_PG=1 to skip");
        }
    };
    let schema = {
        use rand::Rng;
        let mut rng = rand::rng();
        let s: String = (0..16)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
            .collect();
        format!("answers_{s}")
    };
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
    let db = format!("{url}{sep}options[search_path]={schema}");
    let server =
        TestServer::start_with_config(&format!("[database]\nurl = {}\n", toml_quote(&db))).await?;
    let r = flow(&server).await;
    if r.is_err() {
        eprintln!("server log:\n{}", server.log());
    }
    r
}
