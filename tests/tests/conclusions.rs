//! Conclusions of agenda items (docs/api.md, "Conclusions") through a real
//! server, on SQLite and on PostgreSQL: set, updated and cleared by the
//! secretariat's account and by the chair's and secretary's invitations;
//! refused to a bridge point's and a member's invitation, an operator and
//! an anonymous caller; too long; an unknown item; once the meeting ended
//! for an invitation (its token stops) but not for the secretariat; frozen
//! once archived. A bridge point connected to the meeting receives each
//! change as `conclusion_changed`, and every change is in the audit log.

use anyhow::{bail, ensure, Context as _, Result};
use giaoban_tests::{token_of, toml_quote, TestServer, WsClient};
use reqwest::Method;
use serde_json::{json, Value};

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// (status, JSON body or null).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut rq = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn put(&self, item: &str, token: Option<&str>, text: &str) -> Result<(u16, Value)> {
        self.call(
            Method::PUT,
            &format!("/api/agenda/{item}/conclusion"),
            token,
            Some(json!({ "text": text })),
        )
        .await
    }

    async fn list(&self, meeting: &str, token: Option<&str>) -> Result<(u16, Value)> {
        self.call(
            Method::GET,
            &format!("/api/meetings/{meeting}/conclusions"),
            token,
            None,
        )
        .await
    }
}

fn refused(what: &str, got: (u16, Value), status: u16, code: &str) -> Result<()> {
    ensure!(
        got.0 == status && got.1["code"] == code,
        "{what}: expected {status} {code}, got {} {}",
        got.0,
        got.1
    );
    Ok(())
}

/// The next `conclusion_changed` the bridge point receives: (item, text).
async fn pushed(ws: &mut WsClient) -> Result<(String, Value)> {
    let ev = ws.recv_type("conclusion_changed").await?;
    Ok((
        ev["item_id"].as_str().context("item_id")?.to_owned(),
        ev["text"].clone(),
    ))
}

async fn flow(server: &TestServer) -> Result<()> {
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base_url(),
    };
    let admin = server.staff_token("admin", "admin").await?;
    let secretary = server.staff_token("thuky", "secretary").await?;
    let operator = server.staff_token("vanhanh", "operator").await?;
    let meeting = server
        .create_meeting("Phiên họp UBND tỉnh tháng 12")
        .await?;
    let mut items = Vec::new();
    for title in [
        "Kế hoạch phát triển kinh tế - xã hội năm 2027",
        "Dự toán ngân sách",
    ] {
        let (s, v) = api
            .call(
                Method::POST,
                &format!("/api/meetings/{meeting}/agenda"),
                Some(&admin),
                Some(json!({ "title": title })),
            )
            .await?;
        ensure!(s == 201, "agenda item: {s} {v}");
        items.push(v["id"].as_str().context("item id")?.to_owned());
    }
    let (first, second) = (items[0].clone(), items[1].clone());
    let invite = |name: &'static str, role: &'static str| {
        let meeting = meeting.clone();
        async move {
            let url = server.invite(&meeting, name, role).await?;
            anyhow::Ok(token_of(&url)?.to_owned())
        }
    };
    let chair = invite("Chủ tịch UBND tỉnh", "chair").await?;
    let sec_inv = invite("Văn phòng UBND tỉnh", "secretary").await?;
    let member = invite("Phó Chủ tịch", "member").await?;
    let bridge = invite("UBND xã Tân Phú", "bridge").await?;
    let other_meeting = server.create_meeting("Họp khác").await?;
    let other = token_of(&server.invite(&other_meeting, "Xã Z", "bridge").await?)?.to_owned();
    let mut live = WsClient::connect(&server.ws_url()).await?;
    live.hello_and_join(&bridge).await?;

    // Nothing yet.
    let (s, v) = api.list(&meeting, Some(&bridge)).await?;
    ensure!(s == 200 && v == json!([]), "empty list: {s} {v}");

    // The secretariat's account sets the first item's conclusion (trimmed).
    let text1 = "Thống nhất thông qua; giao Sở Kế hoạch và Đầu tư hoàn thiện.";
    let (s, c) = api
        .put(&first, Some(&secretary), &format!("  {text1}\n"))
        .await?;
    ensure!(s == 200, "set by the secretariat: {s} {c}");
    ensure!(
        c["text"] == text1 && c["agenda_item_id"] == first.as_str() && c["meeting_id"] == meeting,
        "the conclusion: {c}"
    );
    ensure!(
        c["updated_by"]
            .as_str()
            .is_some_and(|a| a.starts_with("user:")),
        "updated_by: {c}"
    );
    ensure!(pushed(&mut live).await? == (first.clone(), json!(text1)));

    // The chair's invitation sets the second; the secretary's updates the first.
    let text2 = "Giao Sở Tài chính rà soát, trình lại tại phiên họp tháng 1.";
    let (s, c) = api.put(&second, Some(&chair), text2).await?;
    ensure!(s == 200 && c["text"] == text2, "set by the chair: {s} {c}");
    ensure!(
        c["updated_by"]
            .as_str()
            .is_some_and(|a| a.starts_with("invitation:")),
        "updated_by: {c}"
    );
    ensure!(pushed(&mut live).await? == (second.clone(), json!(text2)));
    let text1b = "Thống nhất thông qua, có chỉnh sửa theo ý kiến thành viên.";
    let (s, c) = api.put(&first, Some(&sec_inv), text1b).await?;
    ensure!(
        s == 200 && c["text"] == text1b,
        "updated by the secretary: {s} {c}"
    );
    ensure!(pushed(&mut live).await? == (first.clone(), json!(text1b)));

    // Everyone in the meeting reads them, in agenda order.
    for (who, token) in [
        ("admin", &admin),
        ("operator", &operator),
        ("bridge", &bridge),
        ("member", &member),
    ] {
        let (s, v) = api.list(&meeting, Some(token)).await?;
        ensure!(s == 200, "{who} reads: {s} {v}");
        let got: Vec<(&str, &str)> = v
            .as_array()
            .context("array")?
            .iter()
            .map(|c| {
                (
                    c["agenda_item_id"].as_str().unwrap_or_default(),
                    c["text"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        ensure!(
            got == vec![(first.as_str(), text1b), (second.as_str(), text2)],
            "{who} reads {v}"
        );
    }
    refused(
        "another meeting's invitee reads",
        api.list(&meeting, Some(&other)).await?,
        403,
        "forbidden",
    )?;
    refused(
        "anonymous reads",
        api.list(&meeting, None).await?,
        401,
        "unauthorized",
    )?;

    // Refusals: nothing changes, nothing is pushed.
    refused(
        "a bridge point's invitation",
        api.put(&first, Some(&bridge), "x").await?,
        403,
        "forbidden",
    )?;
    refused(
        "a member's invitation",
        api.put(&first, Some(&member), "x").await?,
        403,
        "forbidden",
    )?;
    refused(
        "another meeting's invitee",
        api.put(&first, Some(&other), "x").await?,
        403,
        "forbidden",
    )?;
    refused(
        "an operator",
        api.put(&first, Some(&operator), "x").await?,
        403,
        "forbidden",
    )?;
    refused(
        "anonymous",
        api.put(&first, None, "x").await?,
        401,
        "unauthorized",
    )?;
    refused(
        "too long",
        api.put(&first, Some(&secretary), &"ế".repeat(20_001))
            .await?,
        400,
        "invalid_input",
    )?;
    refused(
        "an unknown item",
        api.put("no-such-item", Some(&secretary), "x").await?,
        404,
        "agenda_item_not_found",
    )?;
    refused(
        "no text",
        api.call(
            Method::PUT,
            &format!("/api/agenda/{first}/conclusion"),
            Some(&secretary),
            Some(json!({})),
        )
        .await?,
        400,
        "invalid_json",
    )?;
    // The longest one is accepted.
    let longest = "ế".repeat(20_000);
    let (s, c) = api.put(&second, Some(&admin), &longest).await?;
    ensure!(
        s == 200 && c["text"] == longest.as_str(),
        "20000 characters: {s}"
    );
    ensure!(pushed(&mut live).await? == (second.clone(), json!(longest)));

    // The chair clears the second: 204, pushed as null.
    let (s, v) = api.put(&second, Some(&chair), "  ").await?;
    ensure!(s == 204, "cleared: {s} {v}");
    ensure!(pushed(&mut live).await? == (second.clone(), Value::Null));
    let (_, v) = api.list(&meeting, Some(&bridge)).await?;
    ensure!(
        v.as_array().map(Vec::len) == Some(1) && v[0]["agenda_item_id"] == first.as_str(),
        "after the clear: {v}"
    );

    // The audit log has every change with its text.
    let (s, v) = api
        .call(
            Method::GET,
            "/api/audit?action=conclusion.set",
            Some(&admin),
            None,
        )
        .await?;
    ensure!(s == 200, "audit: {s} {v}");
    let entries = v["entries"].as_array().context("entries")?;
    let of = |item: &str| -> Vec<Value> {
        entries
            .iter()
            .filter(|e| e["target_type"] == "agenda_item" && e["target_id"] == item)
            .map(|e| e["detail"]["text"].clone())
            .collect()
    };
    let mut firsts = of(&first);
    let mut seconds = of(&second);
    // Newest first in the page: oldest first here.
    firsts.reverse();
    seconds.reverse();
    ensure!(
        firsts == vec![json!(text1), json!(text1b)],
        "audit of the first item: {firsts:?}"
    );
    ensure!(
        seconds == vec![json!(text2), json!(longest), Value::Null],
        "audit of the second item: {} entries",
        seconds.len()
    );
    ensure!(
        entries.iter().all(|e| e["detail"]["meeting_id"] == meeting),
        "audit detail names the meeting"
    );

    // Ended: the invitations stop, the secretariat writes conclusions up.
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/meetings/{meeting}/status"),
            Some(&admin),
            Some(json!({"status": "ended"})),
        )
        .await?;
    ensure!(s == 200, "end: {s} {v}");
    refused(
        "the chair after the end",
        api.put(&first, Some(&chair), "late").await?,
        403,
        "meeting_closed",
    )?;
    let (s, c) = api
        .put(&second, Some(&secretary), "Kết luận bổ sung sau phiên họp.")
        .await?;
    ensure!(s == 200, "the secretariat after the end: {s} {c}");

    // Archived: frozen.
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/meetings/{meeting}/status"),
            Some(&admin),
            Some(json!({"status": "archived"})),
        )
        .await?;
    ensure!(s == 200, "archive: {s} {v}");
    refused(
        "archived",
        api.put(&second, Some(&secretary), "x").await?,
        409,
        "meeting_frozen",
    )?;
    refused(
        "archived, clearing",
        api.put(&second, Some(&admin), "").await?,
        409,
        "meeting_frozen",
    )?;
    let (s, v) = api.list(&meeting, Some(&operator)).await?;
    ensure!(
        s == 200 && v.as_array().map(Vec::len) == Some(2),
        "kept: {s} {v}"
    );
    Ok(())
}

#[tokio::test]
async fn conclusions_sqlite() -> Result<()> {
    let server = TestServer::start().await?;
    let r = flow(&server).await;
    if r.is_err() {
        eprintln!("server log:\n{}", server.log());
    }
    r
}

#[tokio::test]
async fn conclusions_postgres() -> Result<()> {
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
        format!("conclusions_{s}")
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
    drop(server);
    r?; // a failed run leaves the schema for a look
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(())
}
