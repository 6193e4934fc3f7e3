//! Live-session hardening (issue 19) through a real server process: the
//! role-to-permission table on every WebSocket message and on WHIP/WHEP,
//! ending a meeting ends its live sessions, replacements of a live
//! invitation are recorded and shown, WHEP viewers are capped and listed,
//! and the WebSocket's denial-of-service limits.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use giaoban_tests::{token_of, Incoming, TestServer, WsClient};
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
        ("mute", json!({"type": "mute", "kind": "audio", "muted": true}), true),
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
        ("resume", json!({"type": "resume", "resume_token": "x"}), false),
        ("ping", json!({"type": "ping"}), false),
    ];
    for role in ROLES {
        let url = server.invite(&meeting, &format!("Điểm {role}"), role).await?;
        let token = token_of(&url)?.to_owned();
        let mut c = WsClient::connect(&server.ws_url()).await?;
        let joined = c.hello_and_join(&token).await?;
        ensure!(joined["participant"]["role"] == role, "{joined}");
        let own = joined["participant"]["id"].as_str().context("id")?.to_owned();
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
            ("mute", json!({"type": "mute", "kind": "audio", "muted": true})),
            ("set_quality", json!({"type": "set_quality", "track_id": "t", "quality": "low"})),
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
        let url = server.invite(&meeting, &format!("Bộ mã hóa {role}"), role).await?;
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
