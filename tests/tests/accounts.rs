//! Logins and accounts through a real server (docs/api.md "Accounts"): the
//! login throttle counts before hashing, per username and address and per
//! address, never locks an account out from everywhere, honours
//! `X-Forwarded-For` only from trusted proxies; accounts are disabled and
//! enabled, passwords changed and reset, staff tokens revoked (one, all), by
//! REST and by the CLI while the server runs.

use std::net::IpAddr;

use anyhow::{bail, Context as _};
use giaoban_tests::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// An HTTP client whose connections come from `from` (any 127.x.y.z is
/// this machine's loopback, so one test can be several client addresses).
fn client_from(from: [u8; 4]) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::from(from))
        .build()?)
}

/// `(status, body)` of a login.
async fn login_as(
    http: &reqwest::Client,
    server: &TestServer,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut req = http
        .post(format!("{}/api/auth/login", server.base_url()))
        .json(&json!({"username": username, "password": password}));
    if let Some(f) = forwarded_for {
        req = req.header("x-forwarded-for", f);
    }
    let r = req.send().await.context("login")?;
    let status = r.status();
    if status == 429 || status == 503 {
        anyhow::ensure!(
            r.headers().contains_key("retry-after"),
            "{status} without Retry-After"
        );
    }
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// `(status, body)` of an authorized call.
async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base_url()))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.with_context(|| format!("call {path}"))?;
    let status = r.status();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

async fn me_status(server: &TestServer, token: &str) -> anyhow::Result<u16> {
    Ok(
        call(server, reqwest::Method::GET, "/api/auth/me", token, None)
            .await?
            .0
            .as_u16(),
    )
}

fn token(v: &Value) -> anyhow::Result<String> {
    Ok(v["token"]
        .as_str()
        .with_context(|| format!("no token in {v}"))?
        .to_owned())
}

fn count(statuses: &[StatusCode], code: u16) -> usize {
    statuses.iter().filter(|s| s.as_u16() == code).count()
}

#[tokio::test]
async fn flood_from_one_address_never_locks_admin_out_from_another() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    server.add_user("admin", "admin", "quản-trị-đúng").await?;
    let attacker = client_from([127, 0, 0, 2])?;
    let admin_desk = client_from([127, 0, 0, 3])?;

    // 20 parallel bad logins for admin: counted before hashing, so no more
    // than 5 are even checked (before: every one that started before the
    // first failure was counted got its hash).
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (http, base) = (attacker.clone(), server.base_url());
            tokio::spawn(async move {
                http.post(format!("{base}/api/auth/login"))
                    .json(&json!({"username": "admin", "password": format!("sai-{i}")}))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await??);
    }
    assert!(
        count(&statuses, 401) <= 5,
        "at most 5 checked: {statuses:?}"
    );
    assert_eq!(count(&statuses, 401) + count(&statuses, 429), 20);

    // Distinct usernames from the same address: the address is throttled
    // too (before: only (username, address) pairs were).
    let mut statuses = Vec::new();
    for i in 0..40 {
        statuses.push(
            login_as(
                &attacker,
                &server,
                &format!("khong-co-{i}"),
                "sai-mat-khau",
                None,
            )
            .await?
            .0,
        );
    }
    assert!(
        count(&statuses, 429) > 0,
        "the address is throttled: {statuses:?}"
    );
    assert!(count(&statuses, 401) <= 30, "{statuses:?}");

    // The attacker's address is blocked even with the right password; the
    // admin at another address logs in at once.
    let (s, v) = login_as(&attacker, &server, "admin", "quản-trị-đúng", None).await?;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["code"], "too_many_attempts");
    let (s, v) = login_as(&admin_desk, &server, "ADMIN ", "quản-trị-đúng", None).await?;
    assert_eq!(s, 200, "the admin from another address: {v}");

    // Checked logins are in the audit log with their address; refused ones
    // are not recorded one by one.
    let admin = token(&v)?;
    let failed = audit(&server, &admin, "auth.login_failed").await?;
    let from_attacker = failed
        .iter()
        .filter(|e| e["actor"] == "anonymous" && e["detail"]["address"] == "127.0.0.2")
        .count();
    assert!(
        (1..=35).contains(&from_attacker),
        "{from_attacker} failed logins recorded"
    );
    assert!(failed
        .iter()
        .any(|e| e["target_type"] == "username" && e["target_id"] == "admin"));
    let ok = audit(&server, &admin, "auth.login").await?;
    assert!(
        ok.iter()
            .any(|e| e["detail"]["address"] == "127.0.0.3" && e["target_type"] == "user"),
        "{ok:?}"
    );
    Ok(())
}

/// The audit entries with `action`, newest first.
async fn audit(server: &TestServer, token: &str, action: &str) -> anyhow::Result<Vec<Value>> {
    let (s, v) = call(
        server,
        reqwest::Method::GET,
        &format!("/api/audit?action={action}&limit=500"),
        token,
        None,
    )
    .await?;
    anyhow::ensure!(s == 200, "audit: {s} {v}");
    Ok(v["entries"].as_array().context("entries")?.clone())
}

#[tokio::test]
async fn overlong_username_refused_before_anything() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let http = reqwest::Client::new();
    for name in ["a".repeat(65), "x".repeat(200_000)] {
        let (s, v) = login_as(&http, &server, &name, "whatever-password", None).await?;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["code"], "invalid_input");
    }
    // Refused names are not counted: the address is not throttled after
    // more of them than any limit.
    for _ in 0..40 {
        let (s, _) = login_as(&http, &server, &"y".repeat(65), "p", None).await?;
        assert_eq!(s, 400);
    }
    let (s, v) = login_as(&http, &server, &"z".repeat(64), "whatever-password", None).await?;
    assert_eq!(s, 401, "64 characters is a (wrong) login: {v}");
    Ok(())
}

#[tokio::test]
async fn disable_enable_passwords_logout_and_revoke_all() -> anyhow::Result<()> {
    use reqwest::Method as M;
    let server = TestServer::start().await?;
    server.add_user("admin", "admin", "quản-trị-đúng").await?;
    let admin = server.login("admin", "quản-trị-đúng").await?;
    let thuky_id = server.add_user("thuky", "secretary", "thư-ký-cũ-1").await?;
    let t1 = server.login("thuky", "thư-ký-cũ-1").await?;
    assert_eq!(me_status(&server, &t1).await?, 200);

    // Disabled: the token it holds stops at once, and it cannot log in.
    let (s, v) = call(
        &server,
        M::POST,
        &format!("/api/users/{thuky_id}/disable"),
        &admin,
        None,
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["active"], false);
    assert_eq!(
        me_status(&server, &t1).await?,
        401,
        "a disabled account's token"
    );
    assert!(server.login("thuky", "thư-ký-cũ-1").await.is_err());
    // Enabled again: logging in works; the old token stays dead.
    let (s, v) = call(
        &server,
        M::POST,
        &format!("/api/users/{thuky_id}/enable"),
        &admin,
        None,
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["active"], true);
    assert_eq!(me_status(&server, &t1).await?, 401, "not revived by enable");
    let t2 = server.login("thuky", "thư-ký-cũ-1").await?;
    assert_eq!(me_status(&server, &t2).await?, 200);
    // Only an admin disables; the last admin cannot be disabled.
    let (s, _) = call(
        &server,
        M::POST,
        &format!("/api/users/{thuky_id}/disable"),
        &t2,
        None,
    )
    .await?;
    assert_eq!(s, 403);
    let admin_id = call(&server, M::GET, "/api/auth/me", &admin, None).await?.1["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let (s, v) = call(
        &server,
        M::POST,
        &format!("/api/users/{admin_id}/disable"),
        &admin,
        None,
    )
    .await?;
    assert_eq!(s, 409, "{v}");
    let (s, _) = call(
        &server,
        M::POST,
        "/api/users/no-such-user/disable",
        &admin,
        None,
    )
    .await?;
    assert_eq!(s, 404);

    // Password change: needs the old password; the old password and every
    // earlier token stop; the answer carries a working token.
    let (s, v) = call(
        &server,
        M::POST,
        "/api/auth/password",
        &t2,
        Some(json!({"old_password": "sai-roi-nhe", "new_password": "thư-ký-mới-2"})),
    )
    .await?;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["code"], "wrong_password");
    let (s, v) = call(
        &server,
        M::POST,
        "/api/auth/password",
        &t2,
        Some(json!({"old_password": "thư-ký-cũ-1", "new_password": "ngắn"})),
    )
    .await?;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["code"], "invalid_input");
    let (s, v) = call(
        &server,
        M::POST,
        "/api/auth/password",
        &t2,
        Some(json!({"old_password": "thư-ký-cũ-1", "new_password": "thư-ký-mới-2"})),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    let t3 = token(&v)?;
    assert_eq!(me_status(&server, &t3).await?, 200);
    assert_eq!(
        me_status(&server, &t2).await?,
        401,
        "tokens before the change"
    );
    assert!(
        server.login("thuky", "thư-ký-cũ-1").await.is_err(),
        "old password"
    );
    let t4 = server.login("thuky", "thư-ký-mới-2").await?;

    // Logout revokes this token only.
    let (s, _) = call(&server, M::POST, "/api/auth/logout", &t3, None).await?;
    assert_eq!(s, 204);
    assert_eq!(me_status(&server, &t3).await?, 401, "logged out");
    assert_eq!(me_status(&server, &t4).await?, 200, "another session");

    // Revoke all: every token of the account stops; logging in again works.
    let t5 = server.login("thuky", "thư-ký-mới-2").await?;
    let (s, _) = call(
        &server,
        M::POST,
        &format!("/api/users/{thuky_id}/revoke-sessions"),
        &admin,
        None,
    )
    .await?;
    assert_eq!(s, 204);
    assert_eq!(me_status(&server, &t4).await?, 401);
    assert_eq!(me_status(&server, &t5).await?, 401);
    assert_eq!(
        me_status(&server, &admin).await?,
        200,
        "other accounts untouched"
    );
    // Anyone may end their own sessions, not another's.
    let t6 = server.login("thuky", "thư-ký-mới-2").await?;
    let (s, _) = call(
        &server,
        M::POST,
        &format!("/api/users/{admin_id}/revoke-sessions"),
        &t6,
        None,
    )
    .await?;
    assert_eq!(s, 403);
    let (s, _) = call(
        &server,
        M::POST,
        &format!("/api/users/{thuky_id}/revoke-sessions"),
        &t6,
        None,
    )
    .await?;
    assert_eq!(s, 204);
    assert_eq!(me_status(&server, &t6).await?, 401);

    // Admin reset: the new password works, the old one and old tokens not.
    let t7 = server.login("thuky", "thư-ký-mới-2").await?;
    let (s, v) = call(
        &server,
        M::POST,
        &format!("/api/users/{thuky_id}/password"),
        &admin,
        Some(json!({"password": "đặt-lại-3"})),
    )
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(me_status(&server, &t7).await?, 401);
    assert!(server.login("thuky", "thư-ký-mới-2").await.is_err());
    server.login("thuky", "đặt-lại-3").await?;
    let (s, _) = call(
        &server,
        M::POST,
        &format!("/api/users/{thuky_id}/password"),
        &t7,
        Some(json!({"password": "đặt-lại-4"})),
    )
    .await?;
    assert_eq!(s, 401, "a revoked token resets nothing");

    // Every change is in the audit log, with who did it.
    let admin_actor = format!("user:{admin_id}");
    let thuky_actor = format!("user:{thuky_id}");
    for (action, actor, n) in [
        ("user.active", &admin_actor, 2),
        ("user.password_change", &thuky_actor, 1),
        ("auth.logout", &thuky_actor, 1),
        ("user.revoke_sessions", &admin_actor, 1),
        ("user.revoke_sessions", &thuky_actor, 1),
        ("user.password_reset", &admin_actor, 1),
    ] {
        let rows = audit(&server, &admin, action).await?;
        let mine = rows
            .iter()
            .filter(|e| e["target_id"] == thuky_id.as_str() && e["actor"] == actor.as_str())
            .count();
        assert_eq!(mine, n, "{action} by {actor}: {rows:?}");
    }
    Ok(())
}

#[tokio::test]
async fn cli_disables_enables_resets_and_revokes_while_the_server_runs() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let id = server.add_user("vanhanh", "operator", "vận-hành-1").await?;
    let t1 = server.login("vanhanh", "vận-hành-1").await?;
    assert_eq!(me_status(&server, &t1).await?, 200);

    assert_eq!(server.cli(&["user", "disable", "vanhanh"]).await?, id);
    assert_eq!(me_status(&server, &t1).await?, 401, "disabled by the CLI");
    assert!(server.login("vanhanh", "vận-hành-1").await.is_err());
    let list = server.cli(&["user", "list"]).await?;
    assert!(
        list.contains(&format!("{id}\tvanhanh\toperator\tfalse")),
        "{list}"
    );

    assert_eq!(server.cli(&["user", "enable", &id]).await?, id);
    let t2 = server.login("vanhanh", "vận-hành-1").await?;
    assert_eq!(me_status(&server, &t2).await?, 200);

    assert_eq!(
        server.cli(&["user", "revoke-sessions", "vanhanh"]).await?,
        id
    );
    assert_eq!(me_status(&server, &t2).await?, 401, "revoked by the CLI");

    let t3 = server.login("vanhanh", "vận-hành-1").await?;
    let out = server
        .cli_output_env(
            &["user", "reset-password", "vanhanh"],
            &[("GIAOBAN_NEW_PASSWORD", "vận-hành-mới-2")],
        )
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(me_status(&server, &t3).await?, 401);
    assert!(server.login("vanhanh", "vận-hành-1").await.is_err());
    server.login("vanhanh", "vận-hành-mới-2").await?;
    let out = server
        .cli_output_env(
            &["user", "passwd", "vanhanh"],
            &[("GIAOBAN_NEW_PASSWORD", "ngắn")],
        )
        .await?;
    assert!(!out.status.success(), "a short password is refused");
    let out = server.cli_output(&["user", "disable", "nobody"]).await?;
    assert!(!out.status.success());
    Ok(())
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    server.add_user("thuky", "secretary", "thư-ký-đúng").await?;
    // The proxy is 127.0.0.1 (the config's [server] section gets the key).
    server.kill_hard().await?;
    let config = std::fs::read_to_string(&server.config_path)?;
    if !config.contains("[server]\n") {
        bail!("no [server] section in {config}");
    }
    let config = config.replacen(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        1,
    );
    std::fs::write(&server.config_path, config)?;
    server.restart().await?;

    let proxy = client_from([127, 0, 0, 1])?;
    for _ in 0..5 {
        let (s, _) = login_as(&proxy, &server, "thuky", "sai", Some("10.9.9.1")).await?;
        assert_eq!(s, 401);
    }
    let (s, _) = login_as(&proxy, &server, "thuky", "thư-ký-đúng", Some("10.9.9.1")).await?;
    assert_eq!(s, 429, "the client behind the proxy is throttled");
    // Another client behind the same proxy is not.
    let (s, v) = login_as(
        &proxy,
        &server,
        "thuky",
        "thư-ký-đúng",
        Some("10.9.9.1, 10.9.9.2"),
    )
    .await?;
    assert_eq!(s, 200, "another client behind the proxy: {v}");

    // From a peer that is no proxy, the header is ignored: changing it
    // does not escape the throttle.
    let stranger = client_from([127, 0, 0, 5])?;
    for i in 0..5 {
        let (s, _) = login_as(
            &stranger,
            &server,
            "thuky",
            "sai",
            Some(&format!("10.8.0.{i}")),
        )
        .await?;
        assert_eq!(s, 401);
    }
    let (s, _) = login_as(
        &stranger,
        &server,
        "thuky",
        "thư-ký-đúng",
        Some("10.8.0.99"),
    )
    .await?;
    assert_eq!(s, 429, "X-Forwarded-For from an untrusted peer is ignored");
    Ok(())
}

/// The admin page's accounts view in real Chromium
/// (`tests/e2e/accounts_page.mjs`): disable, enable, reset, end sessions,
/// change one's own password, sign out; checked here on the server.
#[tokio::test]
async fn accounts_page_in_chromium() -> anyhow::Result<()> {
    use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let server = TestServer::start().await?;
    server.add_user("quantri", "admin", "quản-trị-cũ-1").await?;
    server.add_user("thuky", "secretary", "thư-ký-cũ-1").await?;
    let thuky_before = server.login("thuky", "thư-ký-cũ-1").await?;
    let run = run_script(
        "accounts_page.mjs",
        &[server.base_url().as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", "20000".to_owned()),
            ("E2E_USERNAME", "quantri".to_owned()),
            ("E2E_PASSWORD", "quản-trị-cũ-1".to_owned()),
            ("E2E_NEW_PASSWORD", "quản-trị-mới-2".to_owned()),
            ("E2E_OTHER", "thuky".to_owned()),
            ("E2E_OTHER_PASSWORD", "thư-ký-mới-2".to_owned()),
        ],
        std::time::Duration::from_secs(240),
    )
    .await?;
    anyhow::ensure!(
        run.status.success(),
        "accounts_page.mjs failed: {:?}\n{}\n--- server log ---\n{}",
        run.summary,
        tail(&run.stderr, 40),
        tail(&server.log(), 40)
    );
    let summary = run.summary.context("no summary")?;
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(
        summary["steps"].as_array().map(Vec::len),
        Some(8),
        "{summary}"
    );
    // What the page did holds on the server.
    assert_eq!(me_status(&server, &thuky_before).await?, 401);
    assert!(server.login("thuky", "thư-ký-cũ-1").await.is_err());
    server.login("thuky", "thư-ký-mới-2").await?;
    assert!(server.login("quantri", "quản-trị-cũ-1").await.is_err());
    server.login("quantri", "quản-trị-mới-2").await?;
    Ok(())
}
