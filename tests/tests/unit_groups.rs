//! Saved groups of units and short codes of invitations (issue 22), through
//! a real server:
//!
//! - groups: create, rename, change, delete (`/api/unit-groups`), refusals
//!   (empty or taken name, unknown or repeated unit, operator), invite a
//!   saved group in one step (active units without an active invitation
//!   only; calling again invites nobody), and a copy of the meeting names
//!   the group in `invited_groups`; on SQLite and PostgreSQL.
//! - short codes ("mã tham dự"): the printable links give one per active
//!   invitation (8 symbols without 0/O/1/I, a QR code as SVG); a typed code
//!   (any case, spaces, dashes) gives the invitation's token, which opens
//!   the invitation; unknown, malformed and forged codes are 404, a revoked
//!   invitation's code 401 `token_revoked`, an expired one's 401
//!   `token_expired`, an ended meeting's 401 `meeting_closed`; after 5 wrong
//!   codes from one address, 429 with `Retry-After`, even for a right code.

use anyhow::{bail, ensure, Context as _};
use giaoban_tests::{token_of, toml_quote, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

struct Client {
    http: reqwest::Client,
    base: String,
}

/// One answer: status, `Retry-After`, body as JSON (Null if none).
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Client {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Answer> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = r.text().await?;
        Ok(Answer {
            status,
            retry_after,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let a = self.send(method.clone(), path, Some(token), body).await?;
        if a.status != want {
            bail!(
                "{method} {path}: expected {want}, got {}: {}",
                a.status,
                a.body
            );
        }
        Ok(a.body)
    }

    /// `POST /api/invitation/code` without a token.
    async fn code(&self, code: &str) -> anyhow::Result<Answer> {
        self.send(
            Method::POST,
            "/api/invitation/code",
            None,
            Some(json!({ "code": code })),
        )
        .await
    }
}

fn id(v: &Value) -> anyhow::Result<String> {
    Ok(v["id"].as_str().context("id")?.to_owned())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

fn client(server: &TestServer) -> Client {
    Client {
        http: reqwest::Client::new(),
        base: server.base_url(),
    }
}

/// Groups: CRUD, refusals, invite in one step, kept by a copy.
async fn groups_flow(server: &TestServer) -> anyhow::Result<()> {
    let c = client(server);
    let sec = server.staff_token("thuky", "secretary").await?;
    let op = server.staff_token("vanhanh", "operator").await?;
    let mut units = Vec::new();
    for (name, level) in [
        ("Sở Tài chính", "department"),
        ("Sở Công Thương", "department"),
        ("Sở Kế hoạch và Đầu tư", "department"),
        ("Sở Văn hóa", "department"),
        ("Xã Tân Thành", "commune"),
    ] {
        let u = c
            .call(
                Method::POST,
                "/api/bridge-points",
                &sec,
                Some(json!({"name": name, "level": level})),
                201,
            )
            .await?;
        units.push(id(&u)?);
    }
    let economy = c
        .call(
            Method::POST,
            "/api/unit-groups",
            &sec,
            Some(json!({"name": "  Khối   kinh tế ", "bridge_point_ids": [units[0], units[1], units[2]]})),
            201,
        )
        .await?;
    ensure!(economy["name"] == "Khối kinh tế", "{economy}");
    // Listed by unit name.
    let mut by_name = vec![units[1].clone(), units[2].clone(), units[0].clone()];
    ensure!(economy["bridge_point_ids"] == json!(by_name), "{economy}");
    let gid = id(&economy)?;

    // Refusals.
    for (body, status, code) in [
        (json!({"name": "Khối kinh tế"}), 409, "conflict"),
        (json!({"name": "   "}), 400, "invalid_input"),
        (
            json!({"name": "Khối X", "bridge_point_ids": [units[0], units[0]]}),
            400,
            "invalid_input",
        ),
        (
            json!({"name": "Khối X", "bridge_point_ids": ["no-such-unit"]}),
            404,
            "bridge_point_not_found",
        ),
        (json!({"name": "Khối X", "extra": 1}), 400, "invalid_json"),
    ] {
        let v = c
            .call(
                Method::POST,
                "/api/unit-groups",
                &sec,
                Some(body.clone()),
                status,
            )
            .await?;
        ensure!(v["code"] == code, "{body}: {v}");
    }
    let v = c
        .call(
            Method::POST,
            "/api/unit-groups",
            &op,
            Some(json!({"name": "Khối Y"})),
            403,
        )
        .await?;
    ensure!(v["code"] == "forbidden", "{v}");
    // The operator reads them.
    let list = c
        .call(Method::GET, "/api/unit-groups", &op, None, 200)
        .await?;
    ensure!(list.as_array().map(Vec::len) == Some(1), "{list}");

    // Rename and change; another group's name is taken.
    let culture = c
        .call(
            Method::POST,
            "/api/unit-groups",
            &sec,
            Some(json!({"name": "Khối văn hoá – xã hội", "bridge_point_ids": [units[3]]})),
            201,
        )
        .await?;
    let cid = id(&culture)?;
    let v = c
        .call(
            Method::PATCH,
            &format!("/api/unit-groups/{cid}"),
            &sec,
            Some(json!({"name": "Khối kinh tế"})),
            409,
        )
        .await?;
    ensure!(v["code"] == "conflict", "{v}");
    let renamed = c
        .call(
            Method::PATCH,
            &format!("/api/unit-groups/{gid}"),
            &sec,
            Some(json!({"name": "Khối kinh tế – tài chính", "bridge_point_ids": [units[0], units[1], units[2], units[4]]})),
            200,
        )
        .await?;
    ensure!(renamed["name"] == "Khối kinh tế – tài chính", "{renamed}");
    by_name.push(units[4].clone());
    ensure!(renamed["bridge_point_ids"] == json!(by_name), "{renamed}");
    c.call(
        Method::PATCH,
        "/api/unit-groups/no-such-group",
        &sec,
        Some(json!({"name": "Z"})),
        404,
    )
    .await?;

    // One unit is inactive, one already invited: the others get a link.
    c.call(
        Method::PATCH,
        &format!("/api/bridge-points/{}", units[2]),
        &sec,
        Some(json!({"active": false})),
        200,
    )
    .await?;
    let m = c
        .call(
            Method::POST,
            "/api/meetings",
            &sec,
            Some(
                json!({"title": "Giao ban khối kinh tế", "starts_at": now() + 7 * 86_400,
                        "ends_at": now() + 7 * 86_400 + 7200}),
            ),
            201,
        )
        .await?;
    let mid = id(&m)?;
    c.call(
        Method::POST,
        &format!("/api/meetings/{mid}/invitations"),
        &sec,
        Some(json!({"name": "Sở Tài chính", "role": "bridge", "bridge_point_id": units[0]})),
        201,
    )
    .await?;
    let made = c
        .call(
            Method::POST,
            &format!("/api/meetings/{mid}/invitations/unit-group"),
            &sec,
            Some(json!({ "group_id": gid })),
            201,
        )
        .await?;
    let made = made.as_array().context("list")?;
    let names: Vec<&str> = made.iter().filter_map(|i| i["name"].as_str()).collect();
    ensure!(
        names == ["Sở Công Thương", "Xã Tân Thành"],
        "invited {names:?}"
    );
    ensure!(
        made.iter().all(|i| i["role"] == "bridge"
            && i["state"] == "active"
            && i["url"].as_str().is_some_and(|u| u.contains("/join#"))
            && i["expires_before_meeting"] == false),
        "{made:?}"
    );
    // The links work.
    for i in made {
        let token = token_of(i["url"].as_str().context("url")?)?;
        let a = c
            .send(Method::GET, "/api/invitation", Some(token), None)
            .await?;
        ensure!(a.status == 200 && a.body["name"] == i["name"], "{}", a.body);
    }
    let again = c
        .call(
            Method::POST,
            &format!("/api/meetings/{mid}/invitations/unit-group"),
            &sec,
            Some(json!({ "group_id": gid })),
            201,
        )
        .await?;
    ensure!(again.as_array().map(Vec::len) == Some(0), "{again}");
    for (body, status) in [
        (json!({"group_id": "no-such-group"}), 404),
        (json!({"levels": ["commune"]}), 400),
    ] {
        c.call(
            Method::POST,
            &format!("/api/meetings/{mid}/invitations/unit-group"),
            &sec,
            Some(body),
            status,
        )
        .await?;
    }
    c.call(
        Method::POST,
        &format!("/api/meetings/{mid}/invitations/unit-group"),
        &op,
        Some(json!({ "group_id": gid })),
        403,
    )
    .await?;

    // A copy of the meeting names the group; inviting it to the copy gives
    // every active unit a new link.
    let copy = c
        .call(
            Method::POST,
            &format!("/api/meetings/{mid}/copy"),
            &sec,
            Some(
                json!({"title": "Giao ban khối kinh tế tháng sau", "starts_at": 1_902_000_000i64}),
            ),
            201,
        )
        .await?;
    ensure!(
        copy["invited_groups"] == json!([{"id": gid, "name": "Khối kinh tế – tài chính"}]),
        "{copy}"
    );
    ensure!(
        copy["invited_levels"] == json!(["commune", "department"]),
        "{copy}"
    );
    let copy_id = id(&copy)?;
    let made = c
        .call(
            Method::POST,
            &format!("/api/meetings/{copy_id}/invitations/unit-group"),
            &sec,
            Some(json!({ "group_id": gid })),
            201,
        )
        .await?;
    ensure!(made.as_array().map(Vec::len) == Some(3), "{made}");

    // Deleting a group keeps the units and the invitations; copies forget it.
    c.call(
        Method::DELETE,
        &format!("/api/unit-groups/{gid}"),
        &sec,
        None,
        204,
    )
    .await?;
    c.call(
        Method::DELETE,
        &format!("/api/unit-groups/{gid}"),
        &sec,
        None,
        404,
    )
    .await?;
    let list = c
        .call(Method::GET, "/api/unit-groups", &sec, None, 200)
        .await?;
    ensure!(
        list.as_array().map(Vec::len) == Some(1) && list[0]["id"] == cid.as_str(),
        "{list}"
    );
    let invs = c
        .call(
            Method::GET,
            &format!("/api/meetings/{mid}/invitations"),
            &sec,
            None,
            200,
        )
        .await?;
    ensure!(invs.as_array().map(Vec::len) == Some(3), "{invs}");
    let copy2 = c
        .call(
            Method::POST,
            &format!("/api/meetings/{mid}/copy"),
            &sec,
            Some(json!({})),
            201,
        )
        .await?;
    ensure!(copy2["invited_groups"] == json!([]), "{copy2}");
    ensure!(
        c.call(Method::GET, "/api/bridge-points", &sec, None, 200)
            .await?
            .as_array()
            .map(Vec::len)
            == Some(5),
        "units stay"
    );
    // Audited.
    let admin = server.staff_token("quantri", "admin").await?;
    let log = c
        .call(
            Method::GET,
            "/api/audit?action=unit_group.*",
            &admin,
            None,
            200,
        )
        .await?;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .context("entries")?
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "unit_group.create",
        "unit_group.update",
        "unit_group.delete",
    ] {
        ensure!(actions.contains(&a), "{a} not in {actions:?}");
    }
    Ok(())
}

#[tokio::test]
async fn unit_groups_sqlite() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    groups_flow(&server).await
}

#[tokio::test]
async fn unit_groups_postgres() -> anyhow::Result<()> {
    let url = match std::env::var("GIAOBAN_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ if std::env::var("GIAOBAN_SKIP_PG").as_deref() == Ok("1") => return Ok(()),
        _ => bail!("GIAOBAN_TEST_PG_URL is not set (GIAOBAN_SKIP_PG=1 skips)"),
    };
    let schema = format!("groups_{}", std::process::id());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await?;
    pool.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let db = format!("{url}{sep}options[search_path]={schema}");
    let server =
        TestServer::start_with_config(&format!("[database]\nurl = {}\n", toml_quote(&db))).await?;
    groups_flow(&server).await?;
    codes_flow(&server).await
}

/// The printable links of `mid`, as the secretariat gets them.
async fn print(c: &Client, sec: &str, mid: &str) -> anyhow::Result<Vec<Value>> {
    let v = c
        .call(
            Method::GET,
            &format!("/api/meetings/{mid}/invitations/print"),
            sec,
            None,
            200,
        )
        .await?;
    ensure!(
        v["join_url"] == format!("{}/join", c.base),
        "{}",
        v["join_url"]
    );
    Ok(v["links"].as_array().context("links")?.clone())
}

/// The printed short code of the invitation named `name`.
fn code_of(links: &[Value], name: &str) -> anyhow::Result<String> {
    Ok(links
        .iter()
        .find(|l| l["name"] == name)
        .with_context(|| format!("{name} is not printed"))?["short_code"]
        .as_str()
        .context("short_code")?
        .to_owned())
}

/// Short codes: printed, typed, refused, throttled.
async fn codes_flow(server: &TestServer) -> anyhow::Result<()> {
    let c = client(server);
    let sec = server.staff_token("thuky2", "secretary").await?;
    let op = server.staff_token("vanhanh2", "operator").await?;
    let m = c
        .call(
            Method::POST,
            "/api/meetings",
            &sec,
            Some(json!({"title": "Giao ban mã tham dự", "location": "Hội trường A"})),
            201,
        )
        .await?;
    let mid = id(&m)?;
    let mut urls = std::collections::HashMap::new();
    for name in ["Xã Một", "Xã Hai", "Xã Ba"] {
        let inv = c
            .call(
                Method::POST,
                &format!("/api/meetings/{mid}/invitations"),
                &sec,
                Some(json!({"name": name, "role": "bridge"})),
                201,
            )
            .await?;
        urls.insert(
            name,
            (id(&inv)?, inv["url"].as_str().context("url")?.to_owned()),
        );
    }
    c.call(
        Method::GET,
        &format!("/api/meetings/{mid}/invitations/print"),
        &op,
        None,
        403,
    )
    .await?;
    let links = print(&c, &sec, &mid).await?;
    ensure!(links.len() == 3, "{links:?}");
    let alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    for l in &links {
        let name = l["name"].as_str().context("name")?;
        let (_, url) = &urls[name];
        ensure!(l["url"] == url.as_str(), "{l}");
        let code = l["short_code"].as_str().context("code")?;
        ensure!(
            code.len() == 9
                && code.as_bytes()[4] == b'-'
                && code
                    .chars()
                    .filter(|c| *c != '-')
                    .all(|c| alphabet.contains(c)),
            "{code}"
        );
        let svg = l["qr_svg"].as_str().context("svg")?;
        ensure!(
            svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\"") && !svg.contains("<script"),
            "{svg}"
        );
    }
    // The same codes when printed again.
    let again = print(&c, &sec, &mid).await?;
    for l in &links {
        let name = l["name"].as_str().context("name")?;
        ensure!(
            code_of(&again, name)? == l["short_code"],
            "{name}: code changed"
        );
    }
    let one = code_of(&links, "Xã Một")?;
    let two = code_of(&links, "Xã Hai")?;
    let three = code_of(&links, "Xã Ba")?;
    ensure!(one != two && two != three && one != three, "codes differ");

    // Typed as read out: lower case, spaces, no dash; the token opens the
    // invitation.
    let typed = format!(" {} {} ", one[..4].to_lowercase(), &one[5..]);
    let a = c.code(&typed).await?;
    ensure!(a.status == 200, "{typed:?}: {} {}", a.status, a.body);
    let token = a.body["token"].as_str().context("token")?;
    ensure!(
        token == token_of(&urls["Xã Một"].1)?,
        "the invitation's own token"
    );
    ensure!(a.body["url"] == urls["Xã Một"].1.as_str(), "{}", a.body);
    let inv = c
        .send(Method::GET, "/api/invitation", Some(token), None)
        .await?;
    ensure!(
        inv.status == 200 && inv.body["name"] == "Xã Một",
        "{}",
        inv.body
    );

    // Unknown, malformed, forged: 404, with whom to call.
    for bad in ["ZZZZ-ZZZZ", "ABCD", "0000-OOOO", "%%%%", ""] {
        let a = c.code(bad).await?;
        ensure!(
            a.status == 404 && a.body["code"] == "invitation_not_found",
            "{bad:?}: {} {}",
            a.status,
            a.body
        );
        ensure!(a.body.get("contact").is_some(), "{}", a.body);
        // A right code starts the count afresh (the limit is tested below).
        ensure!(c.code(&two).await?.status == 200);
    }
    let a = c.code(&"A".repeat(65)).await?;
    ensure!(
        a.status == 400 && a.body["code"] == "invalid_input",
        "{}",
        a.body
    );

    // Revoked with its link.
    let (two_id, _) = &urls["Xã Hai"];
    c.call(
        Method::POST,
        &format!("/api/invitations/{two_id}/revoke"),
        &sec,
        None,
        200,
    )
    .await?;
    let a = c.code(&two).await?;
    ensure!(
        a.status == 401 && a.body["code"] == "token_revoked",
        "{} {}",
        a.status,
        a.body
    );
    ensure!(
        print(&c, &sec, &mid)
            .await?
            .iter()
            .all(|l| l["name"] != "Xã Hai"),
        "a revoked link is not printed"
    );

    // Expires with its link: an invitation living 4 s.
    let url = server
        .cli(&[
            "invite",
            "--meeting",
            &mid,
            "--name",
            "Xã Ngắn Hạn",
            "--role",
            "bridge",
            "--ttl-seconds",
            "4",
            "--base-url",
            &c.base,
        ])
        .await?;
    ensure!(url.contains("/join#"), "{url}");
    let short = code_of(&print(&c, &sec, &mid).await?, "Xã Ngắn Hạn")?;
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let a = c.code(&short).await?;
    ensure!(
        a.status == 401 && a.body["code"] == "token_expired",
        "{} {}",
        a.status,
        a.body
    );
    ensure!(c.code(&three).await?.status == 200);

    // Five wrong codes from this address within a minute: the sixth lookup
    // is refused, a right code too, with Retry-After.
    for i in 0..5 {
        let a = c.code("ZZZZ-ZZZ2").await?;
        ensure!(a.status == 404, "wrong code {i}: {}", a.status);
    }
    for code in ["ZZZZ-ZZZ3", three.as_str()] {
        let a = c.code(code).await?;
        ensure!(
            a.status == 429 && a.body["code"] == "too_many_attempts",
            "{code}: {} {}",
            a.status,
            a.body
        );
        let wait: u64 = a.retry_after.as_deref().context("Retry-After")?.parse()?;
        ensure!((1..=60).contains(&wait), "Retry-After {wait}");
    }

    Ok(())
}

#[tokio::test]
async fn short_codes_sqlite() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    codes_flow(&server).await?;
    // A closed meeting's code, from a fresh address budget: a new server.
    let server = TestServer::start().await?;
    let c = client(&server);
    let sec = server.staff_token("thuky", "secretary").await?;
    let m = c
        .call(
            Method::POST,
            "/api/meetings",
            &sec,
            Some(json!({"title": "Họp kết thúc"})),
            201,
        )
        .await?;
    let mid = id(&m)?;
    c.call(
        Method::POST,
        &format!("/api/meetings/{mid}/invitations"),
        &sec,
        Some(json!({"name": "Phường Một", "role": "bridge"})),
        201,
    )
    .await?;
    let code = code_of(&print(&c, &sec, &mid).await?, "Phường Một")?;
    ensure!(c.code(&code).await?.status == 200);
    for status in ["ended"] {
        c.call(
            Method::POST,
            &format!("/api/meetings/{mid}/status"),
            &sec,
            Some(json!({ "status": status })),
            200,
        )
        .await?;
    }
    let a = c.code(&code).await?;
    ensure!(
        a.status == 401 && a.body["code"] == "meeting_closed",
        "{} {}",
        a.status,
        a.body
    );
    // The use of the code is in the audit log (written just after the answer).
    let admin = server.staff_token("quantri", "admin").await?;
    for _ in 0..50 {
        let log = c
            .call(
                Method::GET,
                "/api/audit?action=invitation.code_used",
                &admin,
                None,
                200,
            )
            .await?;
        if log["entries"].as_array().map(Vec::len) == Some(1) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bail!("invitation.code_used is not in the audit log")
}
