//! The signaling protocol (docs/protocol.md) and the CLI, through a real
//! server process on ephemeral ports.

use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use giaoban_tests::{token_of, Incoming, TestServer, WsClient};
use serde_json::{json, Value};

/// The claims inside a token (no verification).
fn claims_of(token: &str) -> anyhow::Result<Value> {
    let payload = token.split('.').nth(1).context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Signs claims with a secret (HS256).
fn sign(claims: &Value, secret: &[u8]) -> anyhow::Result<String> {
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )?)
}

/// The server's own signing secret, read from its data folder.
fn server_secret(server: &TestServer) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(server.data_dir.join("signing.key"))?;
    Ok(text.trim().as_bytes().to_vec())
}

/// Connects and says hello.
async fn hello(server: &TestServer) -> anyhow::Result<WsClient> {
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let h = c.request(json!({"type": "hello", "version": 1})).await?;
    anyhow::ensure!(h["type"] == "hello", "hello answered {h}");
    Ok(c)
}

/// A connected participant still works: ping gets its pong.
async fn assert_alive(c: &mut WsClient) -> anyhow::Result<()> {
    let pong = c.request(json!({"type": "ping", "ts": 42})).await?;
    anyhow::ensure!(pong["type"] == "pong" && pong["ts"] == 42, "got {pong}");
    Ok(())
}

/// Sends a join with `token` and expects error `code` and close 1008.
async fn join_refused(server: &TestServer, join: Value, code: &str) -> anyhow::Result<()> {
    let mut c = hello(server).await?;
    let r = c.request(join).await?;
    anyhow::ensure!(
        r["type"] == "error" && r["code"] == code,
        "expected {code}, got {r}"
    );
    anyhow::ensure!(r["message"].as_str().is_some_and(|m| !m.is_empty()));
    let close = c.expect_close(Duration::from_secs(5)).await?;
    anyhow::ensure!(
        close == Some(1008),
        "expected close 1008 after {code}, got {close:?}"
    );
    Ok(())
}

#[tokio::test]
async fn healthz_and_static_files() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/healthz", server.base_url()))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await?, json!({"status": "ok"}));

    for (path, ctype) in [
        ("/", "text/html"),
        ("/join", "text/html"),
        ("/assets/app.css", "text/css"),
        ("/assets/protocol.js", "text/javascript"),
    ] {
        let r = http
            .get(format!("{}{path}", server.base_url()))
            .send()
            .await?;
        assert_eq!(r.status(), 200, "{path}");
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(ct.starts_with(ctype), "{path}: {ct}");
        assert!(!r.bytes().await?.is_empty(), "{path} is empty");
    }
    for path in ["/assets/nope.js", "/assets/../Cargo.toml", "/nope"] {
        let r = http
            .get(format!("{}{path}", server.base_url()))
            .send()
            .await?;
        assert_eq!(r.status(), 404, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn api_invitation() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let m = server.create_meeting("Giao ban tháng 11").await?;
    let url = server.invite(&m, "UBND huyện Cư Jút", "bridge").await?;
    let token = token_of(&url)?;
    let http = reqwest::Client::new();
    let api = format!("{}/api/invitation", server.base_url());
    let r = http.get(&api).bearer_auth(token).send().await?;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await?;
    assert_eq!(v["meeting"]["id"], m.as_str());
    assert_eq!(v["meeting"]["title"], "Giao ban tháng 11");
    assert_eq!(v["name"], "UBND huyện Cư Jút");
    assert_eq!(v["role"], "bridge");
    assert!(v["expires_at"].as_i64().is_some_and(|e| e > 0));

    let r = http.get(&api).send().await?;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await?["code"], "token_invalid");

    let inv = claims_of(token)?["sub"].as_str().context("sub")?.to_owned();
    server.cli(&["invite", "revoke", &inv]).await?;
    let r = http.get(&api).bearer_auth(token).send().await?;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await?["code"], "token_revoked");
    Ok(())
}

#[tokio::test]
async fn hello_version_negotiation() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let h = c
        .request(json!({"type": "hello", "version": 1, "client": "t/1"}))
        .await?;
    assert_eq!(h["type"], "hello");
    assert_eq!(h["version"], 1);
    assert!(h["server"]
        .as_str()
        .is_some_and(|s| s.starts_with("giaoban/")));
    assert_eq!(h["max_message_bytes"], 262144);

    let mut c = WsClient::connect(&server.ws_url()).await?;
    let r = c.request(json!({"type": "hello"})).await?;
    assert_eq!(r["code"], "bad_request", "{r}");

    let r = c.request(json!({"type": "hello", "version": 99})).await?;
    assert_eq!(r["type"], "error");
    assert_eq!(r["code"], "unsupported_version");
    assert_eq!(c.expect_close(Duration::from_secs(5)).await?, Some(1002));
    Ok(())
}

#[tokio::test]
async fn join_roster_mute_ping_leave() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let m = server.create_meeting("Họp UBND").await?;
    let ta = token_of(&server.invite(&m, "Chủ tịch UBND tỉnh", "chair").await?)?.to_owned();
    let tb = token_of(&server.invite(&m, "UBND xã Đắk Wil", "bridge").await?)?.to_owned();
    let tc = token_of(&server.invite(&m, "Sở Tài chính", "member").await?)?.to_owned();

    let mut a = WsClient::connect(&server.ws_url()).await?;
    let ja = a.hello_and_join(&ta).await?;
    assert_eq!(ja["meeting"]["id"], m.as_str());
    assert_eq!(ja["meeting"]["title"], "Họp UBND");
    assert_eq!(ja["participant"]["name"], "Chủ tịch UBND tỉnh");
    assert_eq!(ja["participant"]["role"], "chair");
    assert_eq!(ja["participant"]["audio_muted"], false);
    assert_eq!(ja["participants"], json!([]));
    assert_eq!(ja["tracks"], json!([]));
    assert!(ja["ice_servers"].is_array());
    let pa = ja["participant"]["id"].as_str().context("id")?.to_owned();
    assert!(pa.starts_with("p-") && pa.len() == 14, "{pa}");

    let mut b = WsClient::connect(&server.ws_url()).await?;
    let jb = b.hello_and_join(&tb).await?;
    let pb = jb["participant"]["id"].as_str().context("id")?.to_owned();
    assert_ne!(pa, pb);
    let others = jb["participants"].as_array().context("participants")?;
    assert_eq!(others.len(), 1);
    assert_eq!(others[0]["id"], pa.as_str());
    assert_eq!(others[0]["role"], "chair");

    let ev = a.recv_type("participant_joined").await?;
    assert_eq!(ev["participant"]["id"], pb.as_str());
    assert_eq!(ev["participant"]["name"], "UBND xã Đắk Wil");
    assert_eq!(ev["participant"]["role"], "bridge");

    // mute: ok to the sender, mute_changed to the others
    let ok = b
        .request(json!({"type": "mute", "kind": "video", "muted": true}))
        .await?;
    assert_eq!(ok["type"], "ok");
    let ev = a.recv_type("mute_changed").await?;
    assert_eq!(
        ev,
        json!({"type": "mute_changed", "participant_id": pb, "kind": "video", "muted": true})
    );
    let bad = b
        .request(json!({"type": "mute", "kind": "smell", "muted": true}))
        .await?;
    assert_eq!(bad["code"], "bad_request");

    // a third one sees both, with b's mute state
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let jc = c.hello_and_join(&tc).await?;
    let others = jc["participants"].as_array().context("participants")?;
    assert_eq!(others.len(), 2);
    let b_seen = others
        .iter()
        .find(|p| p["id"] == pb.as_str())
        .context("b listed")?;
    assert_eq!(b_seen["video_muted"], true);

    // ping with a string id
    b.send(json!({"type": "ping", "id": "abc", "ts": 1732425600123u64}))
        .await?;
    let pong = b.recv_type("pong").await?;
    assert_eq!(
        pong,
        json!({"type": "pong", "id": "abc", "ts": 1732425600123u64})
    );

    // leave: bye, close 1000, the others see participant_left (left)
    b.send(json!({"type": "leave"})).await?;
    assert_eq!(b.recv_type("bye").await?["type"], "bye");
    assert_eq!(b.expect_close(Duration::from_secs(5)).await?, Some(1000));
    let left = a.recv_type("participant_left").await?;
    assert_eq!(
        left,
        json!({"type": "participant_left", "participant_id": pb, "reason": "left"})
    );
    assert_eq!(c.recv_type("participant_left").await?["reason"], "left");

    // a dropped socket: reason disconnected
    c.close().await;
    let left = a.recv_type("participant_left").await?;
    assert_eq!(left["reason"], "disconnected");
    assert_alive(&mut a).await?;
    Ok(())
}

#[tokio::test]
async fn same_invitation_rejoining_replaces_the_old_session() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let m = server.create_meeting("M").await?;
    let ta = token_of(&server.invite(&m, "A", "chair").await?)?.to_owned();
    let tb = token_of(&server.invite(&m, "B", "bridge").await?)?.to_owned();
    let mut a = WsClient::connect(&server.ws_url()).await?;
    a.hello_and_join(&ta).await?;
    let mut b1 = WsClient::connect(&server.ws_url()).await?;
    let old = b1.hello_and_join(&tb).await?["participant"]["id"]
        .as_str()
        .context("id")?
        .to_owned();
    a.recv_type("participant_joined").await?;

    let mut b2 = WsClient::connect(&server.ws_url()).await?;
    let j2 = b2.hello_and_join(&tb).await?;
    let new = j2["participant"]["id"].as_str().context("id")?.to_owned();
    assert_ne!(old, new);
    // the new session sees only a
    assert_eq!(j2["participants"].as_array().map(Vec::len), Some(1));

    let left = a.recv_type("participant_left").await?;
    assert_eq!(
        left,
        json!({"type": "participant_left", "participant_id": old, "reason": "replaced"})
    );
    let joined = a.recv_type("participant_joined").await?;
    assert_eq!(joined["participant"]["id"], new.as_str());

    // the old socket is told and closed
    let ev = b1.recv_type("participant_left").await?;
    assert_eq!(ev["participant_id"], old.as_str());
    assert_eq!(ev["reason"], "replaced");
    assert_eq!(b1.expect_close(Duration::from_secs(5)).await?, Some(1000));
    // and nobody sees a second leave for it
    assert_alive(&mut a).await?;
    assert_alive(&mut b2).await?;
    Ok(())
}

#[tokio::test]
async fn bad_tokens_are_refused_and_others_unaffected() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let m = server.create_meeting("M").await?;
    let other_meeting = server.create_meeting("Other").await?;
    let good = token_of(&server.invite(&m, "A", "chair").await?)?.to_owned();
    let mut a = WsClient::connect(&server.ws_url()).await?;
    a.hello_and_join(&good).await?;

    // forged: valid claims, signed with another key
    let tb = token_of(&server.invite(&m, "B", "bridge").await?)?.to_owned();
    let claims = claims_of(&tb)?;
    let forged = sign(&claims, &[0x55; 48])?;
    join_refused(
        &server,
        json!({"type": "join", "token": forged}),
        "token_invalid",
    )
    .await?;
    // tampered: the payload changed, the signature kept
    let mut parts: Vec<String> = tb.split('.').map(str::to_owned).collect();
    let mut c2 = claims.clone();
    c2["role"] = json!("chair");
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c2.to_string());
    join_refused(
        &server,
        json!({"type": "join", "token": parts.join(".")}),
        "token_invalid",
    )
    .await?;
    join_refused(
        &server,
        json!({"type": "join", "token": "garbage"}),
        "token_invalid",
    )
    .await?;
    // A valid token, but a way of receiving the server does not know.
    join_refused(
        &server,
        json!({"type": "join", "token": tb, "receive": "everything"}),
        "bad_request",
    )
    .await?;
    assert_alive(&mut a).await?;

    // expired (issued already expired, with the hidden test flag)
    let expired_url = server
        .cli(&[
            "invite",
            "--meeting",
            &m,
            "--name",
            "Late",
            "--role",
            "member",
            "--ttl-seconds",
            "-60",
        ])
        .await?;
    let expired = token_of(&expired_url)?;
    join_refused(
        &server,
        json!({"type": "join", "token": expired}),
        "token_expired",
    )
    .await?;
    // expired, signed by the server's own key
    let secret = server_secret(&server)?;
    let mut c3 = claims.clone();
    c3["exp"] = json!(c3["iat"].as_i64().context("iat")? - 30);
    let expired2 = sign(&c3, &secret)?;
    join_refused(
        &server,
        json!({"type": "join", "token": expired2}),
        "token_expired",
    )
    .await?;

    // for another meeting than asked
    join_refused(
        &server,
        json!({"type": "join", "token": tb, "meeting_id": other_meeting}),
        "token_wrong_meeting",
    )
    .await?;
    // for a meeting that does not exist (signed with the real key)
    let mut c4 = claims.clone();
    c4["mtg"] = json!("00000000-0000-4000-8000-000000000000");
    join_refused(
        &server,
        json!({"type": "join", "token": sign(&c4, &secret)?}),
        "meeting_not_found",
    )
    .await?;
    // wrong issuer with the real key
    let mut c5 = claims.clone();
    c5["iss"] = json!("someone-else");
    join_refused(
        &server,
        json!({"type": "join", "token": sign(&c5, &secret)?}),
        "token_invalid",
    )
    .await?;
    assert_alive(&mut a).await?;

    // revoked
    let inv = claims["sub"].as_str().context("sub")?;
    assert_eq!(server.cli(&["invite", "revoke", inv]).await?, inv);
    join_refused(
        &server,
        json!({"type": "join", "token": tb}),
        "token_revoked",
    )
    .await?;

    // an ended meeting
    let tc = token_of(&server.invite(&other_meeting, "C", "member").await?)?.to_owned();
    server.cli(&["meeting", "end", &other_meeting]).await?;
    join_refused(
        &server,
        json!({"type": "join", "token": tc}),
        "meeting_closed",
    )
    .await?;

    assert_alive(&mut a).await?;
    // none of that reached a
    a.send(json!({"type": "ping", "id": "last"})).await?;
    let next = a.recv().await?;
    assert_eq!(next["type"], "pong", "a got {next}");
    Ok(())
}

#[tokio::test]
async fn protocol_errors_keep_the_socket_and_others_unaffected() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (_m, token) = server.meeting_with_token("A", "chair").await?;
    let mut a = WsClient::connect(&server.ws_url()).await?;
    a.hello_and_join(&token).await?;

    let mut c = WsClient::connect(&server.ws_url()).await?;
    // before hello
    let r = c.request(json!({"type": "ping"})).await?;
    assert_eq!(r["code"], "hello_required", "{r}");
    let r = c.request(json!({"type": "join", "token": token})).await?;
    assert_eq!(r["code"], "hello_required", "{r}");
    c.request(json!({"type": "hello", "version": 1})).await?;

    // malformed JSON
    c.send_raw("{not json").await?;
    let r = c.recv().await?;
    assert_eq!(r["type"], "error");
    assert_eq!(r["code"], "bad_json");
    assert!(r.get("id").is_none());
    c.send_raw("[1,2,3]").await?;
    assert_eq!(c.recv().await?["code"], "bad_json");
    // unknown or missing type
    let r = c.request(json!({"type": "dance"})).await?;
    assert_eq!(r["code"], "unknown_type");
    let r = c.request(json!({"kind": "ping"})).await?;
    assert_eq!(r["code"], "unknown_type");
    // binary frame
    c.send_binary(vec![1, 2, 3]).await?;
    assert_eq!(c.recv().await?["code"], "binary_not_supported");
    // meeting messages before join
    for msg in [
        json!({"type": "publish", "sdp": "v=0"}),
        json!({"type": "subscriber_answer", "sdp": "v=0"}),
        json!({"type": "mute", "kind": "audio", "muted": true}),
        json!({"type": "candidate", "pc": "publisher", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}}),
    ] {
        let r = c.request(msg.clone()).await?;
        assert_eq!(r["code"], "not_joined", "{msg} -> {r}");
    }
    // wrong field types
    let r = c.request(json!({"type": "join", "token": 5})).await?;
    assert_eq!(r["code"], "bad_request");
    c.send_raw(r#"{"type":"ping","id":{"x":1}}"#).await?;
    let r = c.recv().await?;
    assert_eq!(r["code"], "bad_request", "{r}");
    assert!(r.get("id").is_none(), "an invalid id is not echoed: {r}");
    assert_alive(&mut c).await?;

    // a second join on a joined socket
    let r = a.request(json!({"type": "join", "token": token})).await?;
    assert_eq!(r["code"], "already_joined");
    let r = a
        .request(json!({"type": "candidate", "pc": "sideways", "candidate": {"candidate": "x"}}))
        .await?;
    assert_eq!(r["code"], "bad_request");
    // set_quality: one track or a list, never both or neither; a list may
    // name tracks that are gone (the answer names them), one track may not
    for msg in [
        json!({"type": "set_quality", "quality": "low"}),
        json!({"type": "set_quality", "track_id": "t1", "track_ids": ["t2"], "quality": "low"}),
        json!({"type": "set_quality", "track_ids": [], "quality": "low"}),
        json!({"type": "set_quality", "track_ids": ["t1"], "quality": "best"}),
    ] {
        let r = a.request(msg.clone()).await?;
        assert_eq!(r["code"], "bad_request", "{msg} -> {r}");
    }
    let r = a
        .request(
            json!({"type": "set_quality", "track_ids": ["t-x", "t-y", "t-x"], "quality": "low"}),
        )
        .await?;
    assert_eq!(r["type"], "ok", "{r}");
    assert_eq!(r["unknown_track_ids"], json!(["t-x", "t-y"]), "{r}");
    let r = a
        .request(json!({"type": "set_quality", "track_id": "t-x", "quality": "low"}))
        .await?;
    assert_eq!(r["code"], "unknown_track", "{r}");
    // the end-of-candidates marker is accepted silently
    a.send(json!({"type": "candidate", "pc": "publisher", "candidate": {"candidate": ""}}))
        .await?;
    assert_alive(&mut a).await?;

    // oversized message: message_too_large, close 1009
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(262_144));
    c.send_raw(&big).await?;
    let r = c.recv().await?;
    assert_eq!(r["code"], "message_too_large");
    assert_eq!(c.expect_close(Duration::from_secs(5)).await?, Some(1009));

    // far over the limit (over the WebSocket layer's own cap of 4x): the
    // socket is closed (1009, or dropped while the client still sends), and
    // the server and the others are fine
    let mut d = hello(&server).await?;
    let huge = format!(
        r#"{{"type":"ping","pad":"{}"}}"#,
        "x".repeat(4 * 1024 * 1024)
    );
    // the server may close while we are still sending
    let _ = d.send_raw(&huge).await;
    let code = loop {
        match d.next_incoming(Duration::from_secs(5)).await? {
            Incoming::Json(v) => assert_eq!(v["code"], "message_too_large", "{v}"),
            Incoming::Closed(c) => break c.map(|(code, _)| code),
            other => anyhow::bail!("unexpected {other:?}"),
        }
    };
    assert!(code.is_none() || code == Some(1009), "closed with {code:?}");

    assert_alive(&mut a).await?;
    Ok(())
}

#[tokio::test]
async fn rate_limit_drops_messages_but_keeps_the_socket() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut c = hello(&server).await?;
    for i in 0..200 {
        c.send(json!({"type": "ping", "id": i})).await?;
    }
    let mut pongs = 0;
    let mut limited = 0;
    loop {
        match c.next_incoming(Duration::from_millis(700)).await {
            Ok(Incoming::Json(v)) if v["type"] == "pong" => pongs += 1,
            Ok(Incoming::Json(v)) if v["code"] == "rate_limited" => limited += 1,
            Ok(other) => anyhow::bail!("unexpected {other:?}"),
            Err(_) => break,
        }
    }
    assert!(limited >= 1, "no rate_limited notice");
    // a burst of 50 (hello took one), then about 50 a second
    assert!((45..200).contains(&pongs), "{pongs} pongs");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_alive(&mut c).await?;
    Ok(())
}

#[tokio::test]
async fn graceful_shutdown_closes_sockets_with_1001() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let (_m, token) = server.meeting_with_token("A", "chair").await?;
    let mut a = WsClient::connect(&server.ws_url()).await?;
    a.hello_and_join(&token).await?;
    let mut idle = hello(&server).await?;
    let status = server.terminate(Duration::from_secs(10)).await?;
    assert!(status.success(), "exit status {status}");
    assert_eq!(a.expect_close(Duration::from_secs(5)).await?, Some(1001));
    assert_eq!(idle.expect_close(Duration::from_secs(5)).await?, Some(1001));
    Ok(())
}

#[tokio::test]
async fn cli_meetings_and_invitations() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let id = server.create_draft_meeting("Giao ban quý IV").await?;
    assert_eq!(id.len(), 36, "only the id is printed: {id:?}");
    assert!(!id.contains(char::is_whitespace));
    let status = |list: &str| {
        list.lines().find(|l| l.starts_with(&id)).map(|l| {
            (
                l.contains("Giao ban quý IV"),
                l.split('\t').nth(1).map(str::to_owned),
            )
        })
    };
    // New meetings start as drafts; `meeting start` moves one to in
    // progress (through scheduled), and starting again changes nothing.
    let list = server.cli(&["meeting", "list"]).await?;
    assert_eq!(status(&list), Some((true, Some("draft".into()))), "{list}");
    assert_eq!(server.cli(&["meeting", "start", &id]).await?, id);
    server.start_meeting(&id).await?;
    let list = server.cli(&["meeting", "list"]).await?;
    assert_eq!(
        status(&list),
        Some((true, Some("in_progress".into()))),
        "{list}"
    );
    let out = server
        .cli_output(&["meeting", "start", "no-such-meeting"])
        .await?;
    assert!(!out.status.success(), "starting an unknown meeting fails");

    let url = server.invite(&id, "UBND huyện", "bridge").await?;
    let prefix = format!("{}/join#", server.base_url());
    assert!(url.starts_with(&prefix), "{url}");
    assert_eq!(url.lines().count(), 1);
    let claims = claims_of(token_of(&url)?)?;
    assert_eq!(claims["iss"], "giaoban");
    assert_eq!(claims["mtg"], id.as_str());
    assert_eq!(claims["name"], "UBND huyện");
    assert_eq!(claims["role"], "bridge");
    let ttl = claims["exp"].as_i64().context("exp")? - claims["iat"].as_i64().context("iat")?;
    assert_eq!(ttl, 72 * 3600);

    let url = server
        .cli(&[
            "invite",
            "--meeting",
            &id,
            "--name",
            "X",
            "--role",
            "observer",
            "--ttl-hours",
            "2",
        ])
        .await?;
    let claims = claims_of(token_of(&url)?)?;
    let ttl = claims["exp"].as_i64().context("exp")? - claims["iat"].as_i64().context("iat")?;
    assert_eq!(ttl, 2 * 3600);

    // every role is accepted
    for role in [
        "chair",
        "member",
        "secretary",
        "bridge",
        "delegate",
        "observer",
    ] {
        server.invite(&id, "R", role).await?;
    }
    let bad_role = server
        .cli_output(&["invite", "--meeting", &id, "--name", "X", "--role", "king"])
        .await?;
    assert!(!bad_role.status.success());
    assert!(bad_role.stdout.is_empty());
    let err = String::from_utf8_lossy(&bad_role.stderr);
    assert!(err.contains("king") && err.contains("role"), "{err}");

    let unknown = server
        .cli_output(&[
            "invite",
            "--meeting",
            "00000000-0000-4000-8000-000000000000",
            "--name",
            "X",
            "--role",
            "chair",
        ])
        .await?;
    assert!(!unknown.status.success());
    assert!(unknown.stdout.is_empty());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("not found"), "{err}");

    let inv = claims["sub"].as_str().context("sub")?;
    assert_eq!(server.cli(&["invite", "revoke", inv]).await?, inv);
    let list = server.cli(&["invite", "list", "--meeting", &id]).await?;
    assert!(
        list.lines()
            .any(|l| l.starts_with(inv) && l.ends_with("revoked")),
        "{list}"
    );
    let r = server.cli_output(&["invite", "revoke", "nope"]).await?;
    assert!(!r.status.success());
    let r = server
        .cli_output(&["meeting", "create", "--title", "  "])
        .await?;
    assert!(!r.status.success());
    Ok(())
}

#[tokio::test]
async fn config_errors_stop_the_binary() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[server]\nhttp_adr = \"127.0.0.1:0\"\n")?;
    let out = std::process::Command::new(giaoban_tests::giaoban_bin())
        .arg("--config")
        .arg(&cfg)
        .args(["meeting", "list"])
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http_adr"), "{err}");
    Ok(())
}

#[tokio::test]
async fn media_ports_are_bound_and_media_errors_have_codes() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    assert_ne!(
        server.media_udp.port(),
        0,
        "the ready line names the bound port"
    );
    assert_eq!(server.media_udp.port(), server.media_tcp.port());
    let (_m, token) = server.meeting_with_token("A", "bridge").await?;
    let mut a = WsClient::connect(&server.ws_url()).await?;
    a.hello_and_join(&token).await?;
    let r = a
        .request(json!({"type": "publish", "sdp": "this is not sdp"}))
        .await?;
    assert_eq!(r["type"], "error");
    assert_eq!(r["code"], "bad_sdp", "{r}");
    let r = a
        .request(json!({"type": "candidate", "pc": "publisher", "candidate": {"candidate": "candidate:garbage", "sdpMid": "0", "sdpMLineIndex": 0}}))
        .await;
    // success has no answer; a refused candidate is answered bad_candidate
    if let Ok(r) = r {
        assert_eq!(r["code"], "bad_candidate", "{r}");
    }
    assert_alive(&mut a).await?;
    Ok(())
}

/// The same server scenario on PostgreSQL (`GIAOBAN_TEST_PG_URL`; fails when
/// unset unless `GIAOBAN_SKIP_PG=1`).
#[tokio::test]
async fn postgres_backed_server() -> anyhow::Result<()> {
    let url = match std::env::var("GIAOBAN_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ if std::env::var("GIAOBAN_SKIP_PG").as_deref() == Ok("1") => {
            eprintln!("GIAOBAN_SKIP_PG=1: skipping the PostgreSQL server test");
            return Ok(());
        }
        _ => anyhow::bail!(
            "GIAOBAN_TEST_PG_URL is not set (set GIAOBAN_SKIP_PG=1 to skip PostgreSQL tests)"
        ),
    };
    // A schema of its own: the database's default schema may hold tables a
    // run of another version left there, whose migrations differ.
    let schema = format!("signaling_{}", rand::random::<u64>());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await?;
    let sep = if url.contains('?') { '&' } else { '?' };
    let db = format!("{url}{sep}options[search_path]={schema}");
    let server = TestServer::start_with_config(&format!(
        "[database]\nurl = {}\n",
        giaoban_tests::toml_quote(&db)
    ))
    .await?;
    let r = postgres_scenario(&server).await;
    drop(server);
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await?;
    pool.close().await;
    r
}

async fn postgres_scenario(server: &TestServer) -> anyhow::Result<()> {
    let m = server.create_meeting("Giao ban trên PostgreSQL").await?;
    let list = server.cli(&["meeting", "list"]).await?;
    assert!(list.lines().any(|l| l.starts_with(&m)), "{list}");
    assert!(
        !server.data_dir.join("giaoban.db").exists(),
        "no SQLite file when PostgreSQL is configured"
    );
    let ta = token_of(&server.invite(&m, "A", "chair").await?)?.to_owned();
    let tb = token_of(&server.invite(&m, "B", "bridge").await?)?.to_owned();
    let mut a = WsClient::connect(&server.ws_url()).await?;
    a.hello_and_join(&ta).await?;
    let mut b = WsClient::connect(&server.ws_url()).await?;
    let jb = b.hello_and_join(&tb).await?;
    assert_eq!(jb["participants"].as_array().map(Vec::len), Some(1));
    a.recv_type("participant_joined").await?;
    let inv = claims_of(&tb)?["sub"].as_str().context("sub")?.to_owned();
    server.cli(&["invite", "revoke", &inv]).await?;
    join_refused(
        server,
        json!({"type": "join", "token": tb}),
        "token_revoked",
    )
    .await?;
    Ok(())
}

/// A joined socket silent for 40 s is closed; one that pings every 10 s is
/// not. (A socket that never joins is closed sooner: live_hardening.rs.)
#[tokio::test]
async fn idle_sockets_are_closed_after_40_seconds() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (m, token) = server.meeting_with_token("A", "chair").await?;
    let mut busy = WsClient::connect(&server.ws_url()).await?;
    busy.hello_and_join(&token).await?;
    let quiet = token_of(&server.invite(&m, "B", "bridge").await?)?.to_owned();
    let mut silent = WsClient::connect(&server.ws_url()).await?;
    silent.hello_and_join(&quiet).await?;
    let started = std::time::Instant::now();
    let silent_closed = tokio::spawn(async move {
        let code = silent.expect_close(Duration::from_secs(50)).await;
        (code, started.elapsed())
    });
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_alive(&mut busy).await?;
    }
    let (code, after) = silent_closed.await?;
    assert_eq!(code?, Some(1008));
    assert!(
        after >= Duration::from_secs(39) && after <= Duration::from_secs(45),
        "closed after {after:?}"
    );
    assert_alive(&mut busy).await?;
    Ok(())
}

/// `giaoban invite revoke` writes only to the database: the running server
/// notices within seconds and ends that invitation's live session.
#[tokio::test]
async fn cli_revocation_ends_a_live_session() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let m = server.create_meeting("Thu hồi từ dòng lệnh").await?;
    let ta = token_of(&server.invite(&m, "A", "chair").await?)?.to_owned();
    let tb = token_of(&server.invite(&m, "B", "bridge").await?)?.to_owned();
    let mut a = WsClient::connect(&server.ws_url()).await?;
    a.hello_and_join(&ta).await?;
    let mut b = WsClient::connect(&server.ws_url()).await?;
    let jb = b.hello_and_join(&tb).await?;
    a.recv_type("participant_joined").await?;
    let inv = claims_of(&tb)?["sub"].as_str().context("sub")?.to_owned();
    server.cli(&["invite", "revoke", &inv]).await?;
    // The sweep runs every 5 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let err = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = b.recv_within(left).await?;
        if msg["type"] == "error" {
            break msg;
        }
    };
    assert_eq!(err["code"], "token_revoked", "{err}");
    assert_eq!(b.expect_close(Duration::from_secs(5)).await?, Some(1008));
    let left = a.recv_type("participant_left").await?;
    assert_eq!(left["reason"], "revoked");
    assert_eq!(left["participant_id"], jb["participant"]["id"]);
    // The other participant is unaffected.
    let pong = a.request(json!({"type": "ping", "ts": 7})).await?;
    assert_eq!(pong["type"], "pong", "{pong}");
    Ok(())
}
