//! The HTTP side of the server as an attacker and as a clerk meet it:
//! security headers on every answer, a deadline for request headers, a body
//! limit on every route, and invitation links that work on other machines
//! and live until the meeting is over.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use giaoban_tests::{token_of, TestServer};
use reqwest::header::{HeaderMap, HOST};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Checks the headers every answer must carry.
fn check_security_headers(what: &str, h: &HeaderMap) -> anyhow::Result<()> {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let csp = get("content-security-policy");
    for want in [
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ] {
        anyhow::ensure!(csp.contains(want), "{what}: CSP {csp:?} lacks {want}");
    }
    anyhow::ensure!(!csp.contains("unsafe"), "{what}: CSP allows unsafe: {csp}");
    anyhow::ensure!(get("referrer-policy") == "no-referrer", "{what}: referrer");
    anyhow::ensure!(get("x-frame-options") == "DENY", "{what}: framing");
    anyhow::ensure!(
        get("x-content-type-options") == "nosniff",
        "{what}: nosniff"
    );
    anyhow::ensure!(
        h.get("strict-transport-security").is_none(),
        "{what}: HSTS over plain HTTP"
    );
    Ok(())
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let http = reqwest::Client::new();
    let base = server.base_url();
    for path in [
        "/",
        "/join",
        "/admin",
        "/assets/app.js",
        "/assets/app.css",
        "/api/openapi.json",
        "/healthz",
        "/api/meetings",
        "/no-such-page",
    ] {
        let r = http.get(format!("{base}{path}")).send().await?;
        check_security_headers(path, r.headers())?;
    }
    Ok(())
}

#[tokio::test]
async fn slow_headers_are_cut_off() -> anyhow::Result<()> {
    let server = TestServer::start_with_config("[server]\nheader_read_timeout_secs = 1\n").await?;
    let mut s = tokio::net::TcpStream::connect(server.http_addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\n").await?;
    // One header byte every 200 ms: never a complete request.
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if s.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            // hyper may answer 408 before closing.
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    anyhow::ensure!(
        closed,
        "a connection dribbling its headers stayed open for 6 s"
    );
    let waited = started.elapsed();
    anyhow::ensure!(
        waited < Duration::from_secs(4),
        "cut off only after {waited:?}"
    );
    // A normal request on a new connection still works.
    let r = reqwest::get(format!("{}/healthz", server.base_url())).await?;
    anyhow::ensure!(r.status() == 200, "healthz after: {}", r.status());
    Ok(())
}

#[tokio::test]
async fn every_route_limits_the_request_body() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let admin = server.staff_token("quantri", "admin").await?;
    for (path, token) in [
        ("/api/meetings", Some(admin.as_str())),
        ("/api/auth/login", None),
    ] {
        // The client announces 3 MiB but sends only a little over the
        // limit, then reads: the server must refuse once past 2 MiB (all it
        // was sent is read by then, so its close cannot reset the answer).
        let mut s = tokio::net::TcpStream::connect(server.http_addr).await?;
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n{auth}\r\n",
            server.http_addr,
            3 * 1024 * 1024
        );
        s.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..33 {
            if s.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .with_context(|| format!("{path}: no answer to a 3 MiB body"))??;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&answer);
        anyhow::ensure!(
            text.starts_with("HTTP/1.1 413"),
            "{path}: a 3 MiB body got {}",
            text.lines().next().unwrap_or_default()
        );
    }
    Ok(())
}

/// POSTs `body` to `path` with an optional `Host`; returns (status, JSON).
async fn post(
    server: &TestServer,
    token: &str,
    path: &str,
    host: Option<&str>,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let mut req = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}{path}",
            server.http_addr.port()
        ))
        .bearer_auth(token)
        .json(&body);
    if let Some(h) = host {
        req = req.header(HOST, h);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn invitation_links_work_elsewhere_and_last_until_the_meeting_ends() -> anyhow::Result<()> {
    // Bound to every interface with no public_url: the default setup.
    let server = TestServer::start_with_config("[server]\nhttp_addr = \"0.0.0.0:0\"\n").await?;
    let admin = server.staff_token("thuky", "secretary").await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let (starts, ends) = (now + 14 * 86_400, now + 14 * 86_400 + 4 * 3600);
    let (st, m) = post(
        &server,
        &admin,
        "/api/meetings",
        None,
        json!({"title": "Giao ban ngày 14", "starts_at": starts, "ends_at": ends}),
    )
    .await?;
    anyhow::ensure!(st == 201, "create meeting: {st} {m}");
    let mid = m["id"].as_str().context("meeting id")?.to_owned();
    let invitations = format!("/api/meetings/{mid}/invitations");

    // The secretary reached the server at 10.9.8.7:8080: links use it.
    let (st, inv) = post(
        &server,
        &admin,
        &invitations,
        Some("10.9.8.7:8080"),
        json!({"name": "UBND xã Cư Jút", "role": "bridge"}),
    )
    .await?;
    anyhow::ensure!(st == 201, "create invitation: {st} {inv}");
    let url = inv["url"].as_str().context("url")?;
    anyhow::ensure!(url.starts_with("http://10.9.8.7:8080/join#"), "link {url}");
    anyhow::ensure!(inv["url_warning"] == "insecure", "warning: {inv}");
    // Valid until the meeting's end plus the default 12 h grace.
    anyhow::ensure!(
        inv["expires_at"].as_i64() == Some(ends + 12 * 3600),
        "expires_at {} for a meeting ending at {ends}",
        inv["expires_at"]
    );
    anyhow::ensure!(inv["expires_before_meeting"] == false, "{inv}");
    // The link works on the server: it is the same token.
    let token = token_of(url)?;
    let r = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/api/invitation",
            server.http_addr.port()
        ))
        .bearer_auth(token)
        .send()
        .await?;
    anyhow::ensure!(r.status() == 200, "the link's token: {}", r.status());

    // Reached at 127.0.0.1: a link other machines cannot open, flagged.
    let (st, local) = post(
        &server,
        &admin,
        &invitations,
        None,
        json!({"name": "Sở Nội vụ", "role": "bridge", "ttl_hours": 2}),
    )
    .await?;
    anyhow::ensure!(st == 201, "second invitation: {st} {local}");
    let url = local["url"].as_str().context("url")?;
    anyhow::ensure!(!url.contains("0.0.0.0"), "link to 0.0.0.0: {url}");
    anyhow::ensure!(local["url_warning"] == "local_only", "{local}");
    // Two hours from now: before the meeting, and the list says so.
    anyhow::ensure!(local["expires_before_meeting"] == true, "{local}");

    // An explicit expiry is kept; one in the past is refused.
    let (st, exact) = post(
        &server,
        &admin,
        &invitations,
        None,
        json!({"name": "UBND phường 1", "role": "bridge", "expires_at": ends + 3600}),
    )
    .await?;
    anyhow::ensure!(
        st == 201 && exact["expires_at"] == ends + 3600,
        "{st} {exact}"
    );
    let (st, bad) = post(
        &server,
        &admin,
        &invitations,
        None,
        json!({"name": "x", "role": "bridge", "expires_at": now - 10}),
    )
    .await?;
    anyhow::ensure!(st == 400 && bad["code"] == "invalid_input", "{st} {bad}");

    let list: Value = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}{invitations}",
            server.http_addr.port()
        ))
        .header(HOST, "hop.tinh.gov.vn")
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    let list = list.as_array().context("list")?;
    anyhow::ensure!(list.len() == 3, "{list:?}");
    let early: Vec<&Value> = list
        .iter()
        .filter(|i| i["expires_before_meeting"] == true)
        .collect();
    anyhow::ensure!(
        early.len() == 1 && early[0]["name"] == "Sở Nội vụ",
        "{list:?}"
    );
    for i in list {
        let url = i["url"].as_str().context("listed url")?;
        anyhow::ensure!(url.starts_with("http://hop.tinh.gov.vn/join#"), "{url}");
    }

    // The command line: never 0.0.0.0, and a warning when the link is
    // unusable elsewhere.
    let out = server
        .cli_output(&[
            "invite",
            "--meeting",
            &mid,
            "--name",
            "UBND xã A",
            "--role",
            "bridge",
        ])
        .await?;
    let link = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("cli invite failed: {stderr}");
    }
    anyhow::ensure!(!link.contains("0.0.0.0"), "CLI link {link}");
    if link.contains("localhost") || link.starts_with("http://") {
        anyhow::ensure!(
            stderr.contains("warning"),
            "no warning for {link}: {stderr}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_join_page_learns_when_where_and_whom_to_call() -> anyhow::Result<()> {
    let contact = "Văn phòng UBND tỉnh, 0262 3 123 456";
    let server = TestServer::start_with_config(&format!(
        "[server]\ncontact = {}\n",
        giaoban_tests::toml_quote(contact)
    ))
    .await?;
    let admin = server.staff_token("thuky", "secretary").await?;
    let (starts, ends) = (1_900_000_000_i64, 1_900_012_600_i64);
    let (st, m) = post(
        &server,
        &admin,
        "/api/meetings",
        None,
        json!({"title": "Giao ban", "starts_at": starts, "ends_at": ends,
               "location": "Hội trường UBND tỉnh"}),
    )
    .await?;
    anyhow::ensure!(st == 201, "meeting: {st} {m}");
    let mid = m["id"].as_str().context("id")?;
    let (st, inv) = post(
        &server,
        &admin,
        &format!("/api/meetings/{mid}/invitations"),
        None,
        json!({"name": "UBND xã Ea Tiêu", "role": "bridge"}),
    )
    .await?;
    anyhow::ensure!(st == 201, "invitation: {st} {inv}");
    let token = inv["token"].as_str().context("token")?;
    let get = |token: String| {
        let url = format!("{}/api/invitation", server.base_url());
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await?;
            let status = r.status().as_u16();
            anyhow::Ok((status, r.json::<Value>().await?))
        }
    };
    let (st, v) = get(token.to_owned()).await?;
    anyhow::ensure!(st == 200, "{st} {v}");
    let meeting = &v["meeting"];
    anyhow::ensure!(
        meeting["starts_at"] == starts
            && meeting["ends_at"] == ends
            && meeting["location"] == "Hội trường UBND tỉnh"
            && meeting["status"] == "draft",
        "{v}"
    );
    anyhow::ensure!(v["contact"] == contact, "{v}");
    // A link that does not work still says whom to call.
    let (st, v) = get("not-a-token".to_owned()).await?;
    anyhow::ensure!(st == 401 && v["contact"] == contact, "{st} {v}");
    Ok(())
}
