//! Attendance ("điểm danh") through a real server, on SQLite and
//! PostgreSQL: the table and its quorum, marks (present in the hall,
//! excused, cleared), who may read and who may mark (staff roles, the
//! chair's and secretary's invitations; a bridge point, an observer and an
//! operator may not mark), bad bodies, the CSV export, the audit log, and
//! marks after the meeting ended (allowed) or once archived (refused).

use anyhow::{bail, ensure, Context as _};
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
        let mut rq = self.http.request(method, format!("{}{path}", self.base));
        if !token.is_empty() {
            rq = rq.bearer_auth(token);
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await?;
        let status = r.status();
        let text = r.text().await?;
        // The CSV comes back as a string.
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
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

    /// `PUT /api/meetings/{mid}/attendance/{inv}`.
    async fn mark(
        &self,
        token: &str,
        mid: &str,
        inv: &str,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.call(
            Method::PUT,
            &format!("/api/meetings/{mid}/attendance/{inv}"),
            token,
            Some(body),
        )
        .await
    }

    async fn report(&self, token: &str, mid: &str) -> anyhow::Result<Value> {
        self.ok(
            Method::GET,
            &format!("/api/meetings/{mid}/attendance"),
            token,
            None,
            200,
        )
        .await
    }
}

/// An invitation: (id, token).
async fn invite(
    api: &Api,
    admin: &str,
    mid: &str,
    name: &str,
    role: &str,
) -> anyhow::Result<(String, String)> {
    let v = api
        .ok(
            Method::POST,
            &format!("/api/meetings/{mid}/invitations"),
            admin,
            Some(json!({"name": name, "role": role})),
            201,
        )
        .await?;
    Ok((
        v["id"].as_str().context("id")?.to_owned(),
        v["token"].as_str().context("token")?.to_owned(),
    ))
}

async fn meeting(api: &Api, admin: &str, title: &str) -> anyhow::Result<String> {
    Ok(api
        .ok(
            Method::POST,
            "/api/meetings",
            admin,
            Some(json!({"title": title})),
            201,
        )
        .await?["id"]
        .as_str()
        .context("id")?
        .to_owned())
}

async fn set_status(api: &Api, admin: &str, mid: &str, status: &str) -> anyhow::Result<()> {
    api.ok(
        Method::POST,
        &format!("/api/meetings/{mid}/status"),
        admin,
        Some(json!({"status": status})),
        200,
    )
    .await
    .map(drop)
}

fn summary_of(report: &Value) -> (u64, u64, u64, bool) {
    let s = &report["summary"];
    (
        s["committee_members"].as_u64().unwrap_or(u64::MAX),
        s["members_present"].as_u64().unwrap_or(u64::MAX),
        s["quorum_needed"].as_u64().unwrap_or(u64::MAX),
        s["quorum_met"].as_bool().unwrap_or(true),
    )
}

async fn flow(server: &TestServer) -> anyhow::Result<()> {
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base_url(),
    };
    let admin = server.staff_token("admin", "admin").await?;
    let secretary = server.staff_token("thuky", "secretary").await?;
    let operator = server.staff_token("kythuat", "operator").await?;

    let mid = meeting(&api, &admin, "Phiên họp UBND tỉnh tháng 12").await?;
    let mut members = Vec::new();
    for n in [
        "Ủy viên A",
        "Ủy viên B",
        "Ủy viên C",
        "Ủy viên D",
        "Ủy viên E",
    ] {
        members.push(invite(&api, &admin, &mid, n, "member").await?.0);
    }
    let (_, sec_token) = invite(&api, &admin, &mid, "Văn phòng UBND", "secretary").await?;
    let (bridge, bridge_token) = invite(&api, &admin, &mid, "UBND xã Ea Tiêu", "bridge").await?;
    let (_, observer_token) = invite(&api, &admin, &mid, "Báo tỉnh", "observer").await?;
    // Another meeting, with its own chair.
    let other = meeting(&api, &admin, "Giao ban khác").await?;
    let (other_inv, chair_token) = invite(&api, &admin, &other, "Chủ tịch", "chair").await?;

    // The table before anyone is there: 5 members, 4 needed (2/3, rounded up).
    let r = api.report(&admin, &mid).await?;
    let rows = r["rows"].as_array().context("rows")?;
    ensure!(rows.len() == 8, "one row per invitation: {r}");
    ensure!(
        rows[0]["role"] == "member" && rows[0]["name"] == "Ủy viên A",
        "{r}"
    );
    ensure!(
        rows[5]["role"] == "secretary" && rows[6]["role"] == "bridge",
        "{r}"
    );
    ensure!(summary_of(&r) == (5, 0, 4, false), "{r}");
    ensure!(
        r["summary"]["expected"] == 8 && r["summary"]["absent"] == 8,
        "{r}"
    );
    ensure!(
        rows[6]["present"] == false
            && rows[6]["intervals"] == json!([])
            && rows[6]["first_joined_at"].is_null()
            && rows[6]["present_seconds"] == 0,
        "{}",
        rows[6]
    );

    // Who may read: staff (operators too), the chair's and secretary's
    // invitations of this meeting; not a bridge point, an observer, the
    // chair of another meeting, nor anyone without a token.
    let path = format!("/api/meetings/{mid}/attendance");
    for (who, token, want) in [
        ("secretary", secretary.as_str(), 200),
        ("operator", operator.as_str(), 200),
        ("secretary's invitation", sec_token.as_str(), 200),
        ("bridge point", bridge_token.as_str(), 403),
        ("observer", observer_token.as_str(), 403),
        ("another meeting's chair", chair_token.as_str(), 403),
        ("anonymous", "", 401),
    ] {
        for p in [path.clone(), format!("{path}.csv")] {
            let (s, v) = api.call(Method::GET, &p, token, None).await?;
            ensure!(s.as_u16() == want, "{who} GET {p}: {s} {v}");
        }
    }
    let r = api.report(&chair_token, &other).await?;
    ensure!(
        r["rows"][0]["invitation_id"] == other_inv,
        "the chair reads its own: {r}"
    );
    let (s, v) = api
        .call(Method::GET, "/api/meetings/nope/attendance", &admin, None)
        .await?;
    ensure!(s == 404 && v["code"] == "meeting_not_found", "{s} {v}");

    // Who may mark: admin, secretary, the chair's or secretary's invitation.
    let present = json!({"mark": "present_in_hall"});
    for (who, token, want, code) in [
        ("operator", operator.as_str(), 403, "forbidden"),
        ("bridge point", bridge_token.as_str(), 403, "forbidden"),
        ("observer", observer_token.as_str(), 403, "forbidden"),
        (
            "another meeting's chair",
            chair_token.as_str(),
            403,
            "forbidden",
        ),
        ("anonymous", "", 401, "unauthorized"),
    ] {
        let (s, v) = api.mark(token, &mid, &members[0], present.clone()).await?;
        ensure!(
            s.as_u16() == want && v["code"] == code,
            "{who} marks: {s} {v}"
        );
    }
    let r = api.report(&admin, &mid).await?;
    ensure!(summary_of(&r).1 == 0, "refused marks store nothing: {r}");

    // Bad bodies and targets.
    for (body, code) in [
        (json!({"mark": "here"}), "invalid_json"),
        (json!({"mark": 1}), "invalid_json"),
        (json!({"mark": "excused", "extra": true}), "invalid_json"),
        (json!({"note": "x"}), "invalid_input"),
        (
            json!({"mark": "excused", "note": "x".repeat(2001)}),
            "invalid_input",
        ),
    ] {
        let (s, v) = api.mark(&admin, &mid, &members[0], body.clone()).await?;
        ensure!(
            s == 400 && v["code"] == code,
            "{body}: expected 400 {code}, got {s} {v}"
        );
    }
    let (s, v) = api.mark(&admin, &mid, &other_inv, present.clone()).await?;
    ensure!(s == 404 && v["code"] == "invitation_not_found", "{s} {v}");
    let (s, v) = api
        .mark(&admin, "nope", &members[0], present.clone())
        .await?;
    ensure!(s == 404 && v["code"] == "meeting_not_found", "{s} {v}");
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/meetings/{mid}/attendance/{}", members[0]),
            &admin,
            None,
        )
        .await?;
    ensure!(s == 415 || s == 400, "no body: {s} {v}");

    // The quorum: 3 of 5 present is not enough, 4 is.
    let v = api
        .ok(
            Method::PUT,
            &format!("/api/meetings/{mid}/attendance/{}", members[0]),
            &admin,
            Some(json!({"mark": "present_in_hall", "note": "  ngồi hàng đầu "})),
            200,
        )
        .await?;
    ensure!(
        v["invitation_id"] == members[0]
            && v["present"] == true
            && v["mark"] == "present_in_hall"
            && v["note"] == "ngồi hàng đầu",
        "the row as it now is: {v}"
    );
    let (s, v) = api
        .mark(&secretary, &mid, &members[1], present.clone())
        .await?;
    ensure!(s == 200, "staff secretary marks: {s} {v}");
    let (s, v) = api
        .mark(&sec_token, &mid, &members[2], present.clone())
        .await?;
    ensure!(s == 200, "the secretary's invitation marks: {s} {v}");
    let r = api.report(&operator, &mid).await?;
    ensure!(
        summary_of(&r) == (5, 3, 4, false),
        "3 of 5: {}",
        r["summary"]
    );
    let (s, v) = api.mark(&admin, &mid, &members[3], present.clone()).await?;
    ensure!(s == 200, "{s} {v}");
    let r = api.report(&admin, &mid).await?;
    ensure!(
        summary_of(&r) == (5, 4, 4, true),
        "4 of 5: {}",
        r["summary"]
    );

    // Excused, then cleared; a mark changes.
    let v = api
        .ok(
            Method::PUT,
            &format!("/api/meetings/{mid}/attendance/{}", members[4]),
            &admin,
            Some(json!({"mark": "excused", "note": "Đi công tác Hà Nội"})),
            200,
        )
        .await?;
    ensure!(v["present"] == false && v["mark"] == "excused", "{v}");
    let r = api.report(&admin, &mid).await?;
    let s = &r["summary"];
    ensure!(
        s["present"] == 4 && s["excused"] == 1 && s["absent"] == 3 && s["expected"] == 8,
        "{s}"
    );
    let (st, v) = api
        .mark(&admin, &mid, &members[3], json!({"mark": null}))
        .await?;
    ensure!(
        st == 200 && v["mark"].is_null() && v["present"] == false && v["note"] == "",
        "cleared: {st} {v}"
    );
    let r = api.report(&admin, &mid).await?;
    ensure!(
        summary_of(&r) == (5, 3, 4, false),
        "back to 3: {}",
        r["summary"]
    );
    let (st, v) = api
        .mark(
            &admin,
            &mid,
            &members[3],
            json!({"mark": "present_in_hall"}),
        )
        .await?;
    ensure!(st == 200, "{st} {v}");

    // The CSV: BOM, header, one line per row.
    let resp = api
        .http
        .get(format!("{}{path}.csv", api.base))
        .bearer_auth(&operator)
        .send()
        .await?;
    ensure!(resp.status() == 200, "csv: {}", resp.status());
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(ctype.starts_with("text/csv"), "content type {ctype}");
    let bytes = resp.bytes().await?;
    ensure!(bytes.starts_with(b"\xEF\xBB\xBF"), "a BOM first");
    let text = std::str::from_utf8(&bytes[3..]).context("UTF-8")?;
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    ensure!(
        lines.first()
            == Some(
                &"name,role,unit,level,present,mark,note,leader,attendees,answer,\
                  first_joined,intervals,present_minutes"
            ),
        "header: {lines:?}"
    );
    ensure!(lines.len() == 9, "a header and 8 rows: {lines:?}");
    ensure!(
        lines[1].starts_with("Ủy viên A,member,,,yes,present_in_hall,ngồi hàng đầu,"),
        "{}",
        lines[1]
    );
    ensure!(
        lines
            .iter()
            .any(|l| l.starts_with("Ủy viên E,member,,,no,excused,Đi công tác Hà Nội,")),
        "{lines:?}"
    );

    // Each mark is in the audit log.
    let audit = api
        .ok(
            Method::GET,
            "/api/audit?action=attendance.mark",
            &admin,
            None,
            200,
        )
        .await?;
    ensure!(
        audit.to_string().matches("attendance.mark").count() >= 7,
        "marks audited: {audit}"
    );

    // A revoked invitation gets no new mark and leaves the table.
    api.ok(
        Method::POST,
        &format!("/api/invitations/{bridge}/revoke"),
        &admin,
        None,
        200,
    )
    .await?;
    let (s, v) = api.mark(&admin, &mid, &bridge, present.clone()).await?;
    ensure!(s == 409 && v["code"] == "conflict", "revoked: {s} {v}");
    let r = api.report(&admin, &mid).await?;
    ensure!(
        r["summary"]["expected"] == 7 && !r["rows"].to_string().contains(&bridge),
        "{r}"
    );

    // After the meeting the secretariat still fixes the record (staff: the
    // invitations stop at the end); once archived, nothing changes.
    set_status(&api, &admin, &mid, "ended").await?;
    let (s, v) = api
        .mark(&sec_token, &mid, &members[1], present.clone())
        .await?;
    ensure!(
        s == 403 && v["code"] == "meeting_closed",
        "ended, invitation: {s} {v}"
    );
    let (s, v) = api
        .mark(&secretary, &mid, &members[1], json!({"mark": "excused"}))
        .await?;
    ensure!(s == 200 && v["mark"] == "excused", "ended, staff: {s} {v}");
    set_status(&api, &admin, &mid, "archived").await?;
    let (s, v) = api.mark(&admin, &mid, &members[1], present.clone()).await?;
    ensure!(
        s == 409 && v["code"] == "meeting_frozen",
        "archived: {s} {v}"
    );
    let r = api.report(&operator, &mid).await?;
    ensure!(summary_of(&r) == (5, 3, 4, false), "kept: {}", r["summary"]);
    Ok(())
}

#[tokio::test]
async fn attendance_sqlite() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let r = flow(&server).await;
    if r.is_err() {
        eprintln!("server log:\n{}", server.log());
    }
    r
}

#[tokio::test]
async fn attendance_postgres() -> anyhow::Result<()> {
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
        format!("attendance_{s}")
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
