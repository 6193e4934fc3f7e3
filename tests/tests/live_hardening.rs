//! Live-session hardening (issue 19) through a real server process: the
//! role-to-permission table on every WebSocket message and on WHIP/WHEP,
//! ending a meeting ends its live sessions, replacements of a live
//! invitation are recorded and shown, WHEP viewers are capped and listed,
//! and the WebSocket's denial-of-service limits.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use giaoban_tests::{token_of, webrtc_offer, Incoming, TestServer, WsClient};
use serde_json::{json, Value};

/// Every invitation role.
const ROLES: [&str; 6] = [
    "chair",
    "member",
    "secretary",
    "bridge",
    "delegate",
    "observer",
];

/// A minimal SDP offer with `n` audio m-sections (not negotiable, but
/// shaped like an offer).
fn offer_with_sections(n: usize) -> String {
    let mut s = String::from("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    for i in 0..n {
        s.push_str(&format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{i}\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n"
        ));
    }
    s
}

/// Sends `msg` with a fresh id, then a ping; returns the error code the
/// server answered `msg` with, if any (every message is answered in order,
/// so whatever `msg` got arrived before the pong).
async fn error_code_of(c: &mut WsClient, id: &str, mut msg: Value) -> Result<Option<String>> {
    msg["id"] = json!(id);
    c.send(msg).await?;
    let ping_id = format!("{id}-ping");
    c.send(json!({"type": "ping", "id": ping_id})).await?;
    let mut code = None;
    loop {
        match c.next_incoming(Duration::from_secs(10)).await? {
            Incoming::Json(v) if v["id"] == json!(ping_id) => return Ok(code),
            Incoming::Json(v) if v["id"] == json!(id) && v["type"] == "error" => {
                code = v["code"].as_str().map(str::to_owned);
            }
            Incoming::Closed(c) => anyhow::bail!("closed ({c:?}) after {id}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn every_client_message_is_checked_against_the_role_table() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("Quyền theo vai trò").await?;
    let junk_sdp = offer_with_sections(1);
    // (type, body, needs the permission "publish")
    let messages: Vec<(&str, Value, bool)> = vec![
        ("publish", json!({"type": "publish", "sdp": junk_sdp}), true),
        (
            "candidate-publisher",
            json!({"type": "candidate", "pc": "publisher",
                   "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}}),
            true,
        ),
        (
            "candidate-subscriber",
            json!({"type": "candidate", "pc": "subscriber",
                   "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}}),
            false,
        ),
        (
            "mute",
            json!({"type": "mute", "kind": "audio", "muted": true}),
            true,
        ),
        (
            "subscriber_answer",
            json!({"type": "subscriber_answer", "sdp": junk_sdp}),
            false,
        ),
        (
            "set_quality",
            json!({"type": "set_quality", "track_id": "t-none", "quality": "low"}),
            false,
        ),
        ("ice_restart", json!({"type": "ice_restart"}), false),
        ("hello", json!({"type": "hello", "version": 1}), false),
        ("join", json!({"type": "join", "token": "x"}), false),
        (
            "resume",
            json!({"type": "resume", "resume_token": "x"}),
            false,
        ),
        ("ping", json!({"type": "ping"}), false),
    ];
    for role in ROLES {
        let url = server
            .invite(&meeting, &format!("Điểm {role}"), role)
            .await?;
        let token = token_of(&url)?.to_owned();
        let mut c = WsClient::connect(&server.ws_url()).await?;
        let joined = c.hello_and_join(&token).await?;
        ensure!(joined["participant"]["role"] == role, "{joined}");
        let own = joined["participant"]["id"]
            .as_str()
            .context("id")?
            .to_owned();
        for (name, msg, needs_publish) in &messages {
            let code = error_code_of(&mut c, &format!("{role}-{name}"), msg.clone()).await?;
            let forbidden = code.as_deref() == Some("forbidden");
            let expect = *needs_publish && role == "observer";
            ensure!(
                forbidden == expect,
                "{role} sending {name}: answered {code:?}, forbidden expected: {expect}"
            );
        }
        // Nobody acts for another participant, whatever the role.
        for (name, mut msg) in [
            (
                "mute",
                json!({"type": "mute", "kind": "audio", "muted": true}),
            ),
            (
                "set_quality",
                json!({"type": "set_quality", "track_id": "t", "quality": "low"}),
            ),
            ("ping", json!({"type": "ping"})),
        ] {
            msg["participant_id"] = json!("p-000000000000");
            let code = error_code_of(&mut c, &format!("{role}-other-{name}"), msg).await?;
            ensure!(
                code.as_deref() == Some("forbidden"),
                "{role} sending {name} for another participant: {code:?}"
            );
        }
        // Naming itself is fine.
        let code = error_code_of(
            &mut c,
            &format!("{role}-self"),
            json!({"type": "ping", "participant_id": own}),
        )
        .await?;
        ensure!(code.is_none(), "{role} naming itself: {code:?}");
        let bye = c.request(json!({"type": "leave"})).await?;
        ensure!(bye["type"] == "bye", "{role}: {bye}");
    }

    // WHIP: an observer may not publish; WHEP: every role may watch.
    let http = reqwest::Client::new();
    for role in ROLES {
        let url = server
            .invite(&meeting, &format!("Bộ mã hóa {role}"), role)
            .await?;
        let token = token_of(&url)?.to_owned();
        let r = http
            .post(format!("{}/whip/{meeting}", server.base_url()))
            .bearer_auth(&token)
            .header("content-type", "application/sdp")
            .body(junk_sdp.clone())
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if role == "observer" {
            ensure!(
                status == 403 && body["code"] == "forbidden",
                "WHIP as observer: {status} {body}"
            );
        } else {
            ensure!(
                status != 403 && body["code"] != "forbidden",
                "WHIP as {role}: {status} {body}"
            );
        }
        let r = http
            .post(format!("{}/whep/{meeting}", server.base_url()))
            .bearer_auth(&token)
            .header("content-type", "application/sdp")
            .body("v=0\r\n")
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        ensure!(
            status == 400 && body["code"] == "bad_sdp",
            "WHEP as {role} passes the role check: {status} {body}"
        );
    }
    Ok(())
}

/// The invitation id inside an invitation token (its `sub`; no verification).
fn invitation_id(token: &str) -> Result<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    let claims: Value = serde_json::from_slice(&bytes)?;
    Ok(claims["sub"].as_str().context("no sub")?.to_owned())
}

/// The audit rows of `action` for a target, read from the server's SQLite
/// database.
async fn audit_rows(server: &TestServer, action: &str, target_id: &str) -> Result<Vec<Value>> {
    use sqlx::Row;
    let url = format!(
        "sqlite://{}?mode=ro",
        server.data_dir.join("giaoban.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await?;
    let rows = sqlx::query(
        "SELECT actor, detail FROM audit_log WHERE action = $1 AND target_id = $2 ORDER BY seq",
    )
    .bind(action)
    .bind(target_id)
    .fetch_all(&pool)
    .await?;
    pool.close().await;
    rows.iter()
        .map(|r| {
            let actor: String = r.try_get("actor")?;
            let detail: String = r.try_get("detail")?;
            let mut v: Value = serde_json::from_str(&detail)?;
            v["actor"] = json!(actor);
            Ok(v)
        })
        .collect()
}

/// POSTs an offer to `/{kind}/{meeting}`; returns the status, the
/// `Location` and the JSON error body, if any.
async fn post_offer(
    server: &TestServer,
    kind: &str,
    meeting: &str,
    token: &str,
    sdp: &str,
) -> Result<(u16, Option<String>, Value)> {
    let r = reqwest::Client::new()
        .post(format!("{}/{kind}/{meeting}", server.base_url()))
        .bearer_auth(token)
        .header("content-type", "application/sdp")
        .body(sdp.to_owned())
        .send()
        .await?;
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = if status == 201 {
        Value::Null
    } else {
        r.json().await.unwrap_or(Value::Null)
    };
    Ok((status, location, body))
}

/// The operator's live roster of a meeting.
async fn roster(server: &TestServer, staff: &str, meeting: &str) -> Result<Value> {
    let r = reqwest::Client::new()
        .get(format!("{}/api/meetings/{meeting}/live", server.base_url()))
        .bearer_auth(staff)
        .send()
        .await?;
    ensure!(r.status() == 200, "roster: {}", r.status());
    Ok(r.json().await?)
}

/// Waits until a WHIP/WHEP session (its `Location`) is gone: a PATCH then
/// answers 404.
async fn session_gone(server: &TestServer, location: &str, within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let r = reqwest::Client::new()
            .patch(format!("{}{location}", server.base_url()))
            .header("content-type", "application/trickle-ice-sdpfrag")
            .body("a=mid:0\r\n")
            .send()
            .await?;
        if r.status() == 404 {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{location} still there ({})",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the `meeting_closed` error and the close 1008 of a joined
/// socket.
async fn ended_by_meeting(c: &mut WsClient, within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    let mut told = false;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.next_incoming(left).await? {
            Incoming::Json(v) if v["type"] == "error" => {
                ensure!(v["code"] == "meeting_closed", "{v}");
                told = true;
            }
            Incoming::Closed(frame) => {
                ensure!(told, "closed ({frame:?}) without meeting_closed");
                let (code, reason) = frame.context("closed without a close frame")?;
                ensure!(code == 1008 && reason == "meeting ended", "{code} {reason}");
                return Ok(());
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn ending_a_meeting_ends_its_live_sessions_and_refuses_resume_and_joins() -> Result<()> {
    let server = TestServer::start().await?;
    let staff = server.staff_token("thuky", "secretary").await?;
    let http = reqwest::Client::new();
    for via in ["rest", "cli"] {
        let meeting = server
            .create_meeting(&format!("Kết thúc qua {via}"))
            .await?;
        let chair = token_of(&server.invite(&meeting, "Chủ trì", "chair").await?)?.to_owned();
        let bridge = token_of(&server.invite(&meeting, "Xã A", "bridge").await?)?.to_owned();
        let encoder = token_of(&server.invite(&meeting, "Bộ mã hóa", "bridge").await?)?.to_owned();
        let player =
            token_of(&server.invite(&meeting, "Trình phát", "observer").await?)?.to_owned();
        let mut a = WsClient::connect(&server.ws_url()).await?;
        a.hello_and_join(&chair).await?;
        let mut b = WsClient::connect(&server.ws_url()).await?;
        let joined = b.hello_and_join(&bridge).await?;
        let resume_token = joined["resume_token"]
            .as_str()
            .context("resume token")?
            .to_owned();
        let (status, whip, body) = post_offer(
            &server,
            "whip",
            &meeting,
            &encoder,
            &webrtc_offer("sendonly"),
        )
        .await?;
        ensure!(status == 201, "WHIP: {status} {body}");
        let whip = whip.context("WHIP Location")?;
        let (status, whep, body) = post_offer(
            &server,
            "whep",
            &meeting,
            &player,
            &webrtc_offer("recvonly"),
        )
        .await?;
        ensure!(status == 201, "WHEP: {status} {body}");
        let whep = whep.context("WHEP Location")?;
        let live = roster(&server, &staff, &meeting).await?;
        ensure!(
            live["participants"].as_array().map(Vec::len) == Some(3)
                && live["viewers"].as_array().map(Vec::len) == Some(1),
            "{live}"
        );

        let within = match via {
            "rest" => {
                let r = http
                    .post(format!(
                        "{}/api/meetings/{meeting}/status",
                        server.base_url()
                    ))
                    .bearer_auth(&staff)
                    .json(&json!({"status": "ended"}))
                    .send()
                    .await?;
                ensure!(r.status() == 200, "end: {}", r.status());
                // At once: no sweep involved.
                Duration::from_secs(2)
            }
            _ => {
                server.cli(&["meeting", "end", &meeting]).await?;
                // The server notices a change made by another process
                // within a few seconds.
                Duration::from_secs(10)
            }
        };
        ended_by_meeting(&mut a, within).await?;
        ended_by_meeting(&mut b, within).await?;
        session_gone(&server, &whip, within).await?;
        session_gone(&server, &whep, within).await?;
        let live = roster(&server, &staff, &meeting).await?;
        ensure!(
            live["participants"] == json!([]) && live["viewers"] == json!([]),
            "{live}"
        );

        // resume and new joins are refused with meeting_closed.
        let mut c = WsClient::connect(&server.ws_url()).await?;
        c.request(json!({"type": "hello", "version": 1})).await?;
        let r = c
            .request(json!({"type": "resume", "resume_token": resume_token}))
            .await?;
        ensure!(
            r["type"] == "error" && r["code"] == "meeting_closed",
            "resume: {r}"
        );
        let r = c.request(json!({"type": "join", "token": bridge})).await?;
        ensure!(
            r["type"] == "error" && r["code"] == "meeting_closed",
            "join: {r}"
        );
        let (status, _, body) = post_offer(
            &server,
            "whip",
            &meeting,
            &encoder,
            &webrtc_offer("sendonly"),
        )
        .await?;
        ensure!(
            status == 409 && body["code"] == "meeting_closed",
            "WHIP after end: {status} {body}"
        );
        let (status, _, body) = post_offer(
            &server,
            "whep",
            &meeting,
            &player,
            &webrtc_offer("recvonly"),
        )
        .await?;
        ensure!(
            status == 409 && body["code"] == "meeting_closed",
            "WHEP after end: {status} {body}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_replaced_session_is_audited_and_shown_to_the_operator() -> Result<()> {
    let server = TestServer::start().await?;
    let operator = server.staff_token("vanhanh", "operator").await?;
    let meeting = server.create_meeting("Thay thế phiên").await?;
    let token = token_of(&server.invite(&meeting, "Xã B", "bridge").await?)?.to_owned();
    let inv = invitation_id(&token)?;
    let mut watcher = WsClient::connect(&server.ws_url()).await?;
    let chair = token_of(&server.invite(&meeting, "Chủ trì", "chair").await?)?.to_owned();
    watcher.hello_and_join(&chair).await?;

    let mut first = WsClient::connect(&server.ws_url()).await?;
    let old = first.hello_and_join(&token).await?["participant"]["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let mut second = WsClient::connect(&server.ws_url()).await?;
    let new = second.hello_and_join(&token).await?["participant"]["id"]
        .as_str()
        .context("id")?
        .to_owned();
    // The old session is told and closed; the others see it leave.
    let left = first.recv_type("participant_left").await?;
    ensure!(
        left["participant_id"] == json!(old) && left["reason"] == "replaced",
        "{left}"
    );
    let left = loop {
        let v = watcher.recv_type("participant_left").await?;
        if v["participant_id"] == json!(old) {
            break v;
        }
    };
    ensure!(left["reason"] == "replaced", "{left}");

    // The operator sees the replacement in the live roster...
    let live = roster(&server, &operator, &meeting).await?;
    let reps = live["replacements"].as_array().context("replacements")?;
    ensure!(reps.len() == 1, "{live}");
    ensure!(
        reps[0]["invitation_id"] == json!(inv)
            && reps[0]["old_participant_id"] == json!(old)
            && reps[0]["new_participant_id"] == json!(new)
            && reps[0]["name"] == "Xã B",
        "{live}"
    );
    let ids: Vec<&Value> = live["participants"]
        .as_array()
        .context("participants")?
        .iter()
        .map(|p| &p["id"])
        .collect();
    ensure!(
        ids.contains(&&json!(new)) && !ids.contains(&&json!(old)),
        "{live}"
    );
    // ...and the audit log has it.
    let rows = audit_rows(&server, "session.replaced", &inv).await?;
    ensure!(rows.len() == 1, "{rows:?}");
    ensure!(
        rows[0]["old_participant_id"] == json!(old)
            && rows[0]["new_participant_id"] == json!(new)
            && rows[0]["meeting_id"] == json!(meeting)
            && rows[0]["via"] == "websocket"
            && rows[0]["actor"] == json!(format!("invitation:{inv}")),
        "{rows:?}"
    );
    // A first join is no replacement.
    ensure!(
        audit_rows(&server, "session.replaced", &invitation_id(&chair)?)
            .await?
            .is_empty()
    );
    // Invitees do not read the roster.
    let r = reqwest::Client::new()
        .get(format!("{}/api/meetings/{meeting}/live", server.base_url()))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(
        r.status() == 403,
        "invitee reads the roster: {}",
        r.status()
    );
    Ok(())
}

#[tokio::test]
async fn whep_viewers_are_capped_per_invitation_and_listed_as_viewers() -> Result<()> {
    let server = TestServer::start().await?;
    let operator = server.staff_token("vanhanh", "operator").await?;
    let meeting = server.create_meeting("Người xem WHEP").await?;
    let token = token_of(
        &server
            .invite(&meeting, "Màn hình hội trường", "observer")
            .await?,
    )?
    .to_owned();
    let inv = invitation_id(&token)?;
    let other = token_of(&server.invite(&meeting, "Màn hình phụ", "observer").await?)?.to_owned();
    let offer = webrtc_offer("recvonly");
    let (status, first, body) = post_offer(&server, "whep", &meeting, &token, &offer).await?;
    ensure!(status == 201, "first player: {status} {body}");
    let first = first.context("Location")?;
    // The default cap is one player per invitation.
    let (status, _, body) = post_offer(&server, "whep", &meeting, &token, &offer).await?;
    ensure!(
        status == 409 && body["code"] == "too_many_viewers",
        "second player: {status} {body}"
    );
    // Another invitation has its own.
    let (status, _, body) = post_offer(&server, "whep", &meeting, &other, &offer).await?;
    ensure!(status == 201, "other invitation: {status} {body}");
    let live = roster(&server, &operator, &meeting).await?;
    let viewers = live["viewers"].as_array().context("viewers")?;
    ensure!(viewers.len() == 2, "{live}");
    let v = viewers
        .iter()
        .find(|v| v["invitation_id"] == json!(inv))
        .context("the viewer is listed")?;
    ensure!(
        v["kind"] == "viewer"
            && v["name"] == "Màn hình hội trường"
            && v["role"] == "observer"
            && first.ends_with(v["id"].as_str().unwrap_or("?")),
        "{v}"
    );
    ensure!(live["participants"] == json!([]), "{live}");
    // Once the first ends, the invitation may play again.
    let r = reqwest::Client::new()
        .delete(format!("{}{first}", server.base_url()))
        .send()
        .await?;
    ensure!(r.status() == 200, "DELETE: {}", r.status());
    let (status, _, body) = post_offer(&server, "whep", &meeting, &token, &offer).await?;
    ensure!(status == 201, "after DELETE: {status} {body}");

    // A configured cap.
    let server =
        TestServer::start_with_config("[signaling]\nwhep_viewers_per_invitation = 2\n").await?;
    let meeting = server.create_meeting("Hai người xem").await?;
    let token = token_of(&server.invite(&meeting, "Màn hình", "observer").await?)?.to_owned();
    for n in 1..=3 {
        let (status, _, body) = post_offer(&server, "whep", &meeting, &token, &offer).await?;
        let want = if n <= 2 { 201 } else { 409 };
        ensure!(status == want, "player {n}: {status} {body}");
    }
    Ok(())
}

#[tokio::test]
async fn a_socket_that_does_not_join_in_time_is_closed_even_if_it_pings() -> Result<()> {
    let server = TestServer::start_with_config("[signaling]\njoin_timeout_secs = 2\n").await?;
    let started = tokio::time::Instant::now();
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let h = c.request(json!({"type": "hello", "version": 1})).await?;
    ensure!(h["type"] == "hello", "{h}");
    let mut told = false;
    let mut pongs = 0;
    // Ping every 200 ms: it keeps an idle socket open, not an unjoined one.
    loop {
        ensure!(
            started.elapsed() < Duration::from_secs(8),
            "still open after 8 s"
        );
        c.send(json!({"type": "ping"})).await.ok();
        tokio::time::sleep(Duration::from_millis(150)).await;
        match c.next_incoming(Duration::from_millis(200)).await {
            Ok(Incoming::Json(v)) if v["type"] == "pong" => pongs += 1,
            Ok(Incoming::Json(v)) if v["type"] == "error" && v["code"] != "rate_limited" => {
                ensure!(v["code"] == "join_timeout", "{v}");
                told = true;
            }
            Ok(Incoming::Closed(frame)) => {
                let (code, reason) = frame.context("no close frame")?;
                ensure!(code == 1008 && reason == "join timeout", "{code} {reason}");
                break;
            }
            _ => {}
        }
    }
    ensure!(told && pongs > 3, "told {told}, {pongs} pongs");
    ensure!(
        started.elapsed() >= Duration::from_millis(1800),
        "closed too early: {:?}",
        started.elapsed()
    );

    // A socket that joins in time stays.
    let (_, token) = server.meeting_with_token("Xã C", "bridge").await?;
    let mut j = WsClient::connect(&server.ws_url()).await?;
    j.hello_and_join(&token).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pong = j.request(json!({"type": "ping"})).await?;
    ensure!(pong["type"] == "pong", "{pong}");
    Ok(())
}

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects a WebSocket; the HTTP status of a refused upgrade.
async fn ws_status(url: &str) -> Result<std::result::Result<RawWs, u16>> {
    use tokio_tungstenite::tungstenite::Error;
    match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => Ok(Ok(ws)),
        Err(Error::Http(r)) => Ok(Err(r.status().as_u16())),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test]
async fn sockets_are_capped_per_address_and_in_total() -> Result<()> {
    let server = TestServer::start_with_config(
        "[signaling]\nmax_sockets_per_address = 3\nmax_sockets = 5\n",
    )
    .await?;
    let url = server.ws_url();
    let mut open = Vec::new();
    for _ in 0..3 {
        match ws_status(&url).await? {
            Ok(ws) => open.push(ws),
            Err(s) => anyhow::bail!("a socket within the cap got {s}"),
        }
    }
    let r = reqwest::Client::new()
        .get(format!("{}/ws", server.base_url()))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await?;
    ensure!(r.status() == 429, "the 4th socket: {}", r.status());
    let body: Value = r.json().await?;
    ensure!(body["code"] == "too_many_connections", "{body}");
    match ws_status(&url).await? {
        Err(429) => {}
        Err(s) => anyhow::bail!("the 4th socket got {s}"),
        Ok(_) => anyhow::bail!("the 4th socket from one address was accepted"),
    }
    // A closed socket frees its place.
    if let Some(mut c) = open.pop() {
        c.close(None).await.ok();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match ws_status(&url).await? {
            Ok(c) => {
                open.push(c);
                break;
            }
            Err(429) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => anyhow::bail!("after a close: {s}"),
        }
    }
    drop(open);

    // The total cap: 503 server_busy.
    let server = TestServer::start_with_config(
        "[signaling]\nmax_sockets_per_address = 10\nmax_sockets = 3\n",
    )
    .await?;
    let url = server.ws_url();
    let mut open = Vec::new();
    for _ in 0..3 {
        match ws_status(&url).await? {
            Ok(ws) => open.push(ws),
            Err(s) => anyhow::bail!("a socket within the cap got {s}"),
        }
    }
    let r = reqwest::Client::new()
        .get(format!("{}/ws", server.base_url()))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await?;
    ensure!(r.status() == 503, "over the total: {}", r.status());
    let body: Value = r.json().await?;
    ensure!(body["code"] == "server_busy", "{body}");
    drop(open);
    Ok(())
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped() -> Result<()> {
    let server = TestServer::start_with_config(
        "[signaling]\nsend_timeout_secs = 2\nresume_grace_secs = 0\n",
    )
    .await?;
    let meeting = server.create_meeting("Không đọc").await?;
    let watcher = token_of(&server.invite(&meeting, "Chủ trì", "chair").await?)?.to_owned();
    let stuck = token_of(&server.invite(&meeting, "Xã D", "bridge").await?)?.to_owned();
    let mut w = WsClient::connect(&server.ws_url()).await?;
    w.hello_and_join(&watcher).await?;
    let mut s = WsClient::connect(&server.ws_url()).await?;
    let pid = s.hello_and_join(&stuck).await?["participant"]["id"]
        .as_str()
        .context("id")?
        .to_owned();
    // Pings whose echoed `ts` is large: the answers fill the socket
    // buffers, since this client never reads them.
    let big = "x".repeat(200_000);
    let started = tokio::time::Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(20) {
        match tokio::time::timeout(
            Duration::from_millis(500),
            s.send(json!({"type": "ping", "ts": big})),
        )
        .await
        {
            Ok(Ok(())) => sent += 1,
            // The server stopped reading this socket (it is stuck writing,
            // or gone).
            _ => break,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The server gives the writes up and drops the participant.
    let left = loop {
        let v = w.recv_type("participant_left").await;
        match v {
            Ok(v) if v["participant_id"] == json!(pid) => break v,
            Ok(_) => continue,
            Err(e) => {
                ensure!(
                    started.elapsed() < Duration::from_secs(40),
                    "not dropped after {sent} big pings: {e}"
                );
            }
        }
    };
    ensure!(left["reason"] == "disconnected", "{left}");
    ensure!(
        server.log().contains("a client stopped reading"),
        "dropped for another reason"
    );
    let _ = s;
    // The others go on.
    let pong = w.request(json!({"type": "ping"})).await?;
    ensure!(pong["type"] == "pong", "{pong}");
    Ok(())
}

#[tokio::test]
async fn offers_with_too_many_media_sections_are_refused() -> Result<()> {
    let server = TestServer::start_with_config("[signaling]\nmax_offer_media = 4\n").await?;
    let (meeting, token) = server.meeting_with_token("Xã E", "bridge").await?;
    let mut c = WsClient::connect(&server.ws_url()).await?;
    c.hello_and_join(&token).await?;
    let r = c
        .request(json!({"type": "publish", "sdp": offer_with_sections(5)}))
        .await?;
    ensure!(
        r["type"] == "error" && r["code"] == "too_many_media",
        "5 sections: {r}"
    );
    let r = c
        .request(json!({"type": "publish", "sdp": offer_with_sections(4)}))
        .await?;
    ensure!(r["code"] != "too_many_media", "4 sections: {r}");
    // Too many simulcast layers in one section.
    let mut sdp = offer_with_sections(1);
    for i in 0..5 {
        sdp.push_str(&format!("a=rid:r{i} send\r\n"));
    }
    let r = c.request(json!({"type": "publish", "sdp": sdp})).await?;
    ensure!(r["code"] == "too_many_media", "5 layers: {r}");
    // WHIP too.
    let encoder = token_of(&server.invite(&meeting, "Bộ mã hóa", "bridge").await?)?.to_owned();
    let (status, _, body) =
        post_offer(&server, "whip", &meeting, &encoder, &offer_with_sections(5)).await?;
    ensure!(
        status == 400 && body["code"] == "too_many_media",
        "WHIP: {status} {body}"
    );
    let (status, _, body) = post_offer(
        &server,
        "whip",
        &meeting,
        &encoder,
        &webrtc_offer("sendonly"),
    )
    .await?;
    ensure!(status == 201, "WHIP with 2 sections: {status} {body}");
    Ok(())
}
