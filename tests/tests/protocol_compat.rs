//! The typed protocol (signaling/src/protocol.rs) keeps the wire of
//! docs/protocol.md: the order of the checks a request goes through (hello,
//! the join state, the permission, then the body), the error codes, and
//! the exact shape of the replies, through a real server process.

use anyhow::{ensure, Result};
use giaoban_tests::{TestServer, WsClient};
use serde_json::json;

#[tokio::test]
async fn checks_come_in_the_same_order_with_the_same_codes() -> Result<()> {
    let server = TestServer::start().await?;
    let (_m, observer) = server.meeting_with_token("Compat", "observer").await?;

    let mut c = WsClient::connect(&server.ws_url()).await?;
    // Before hello, even a bad body is hello_required.
    let r = c.request(json!({"type": "publish"})).await?;
    ensure!(r["code"] == "hello_required", "{r}");
    let r = c.request(json!({"type": "hello", "version": 1})).await?;
    ensure!(r["type"] == "hello" && r["version"] == 1, "{r}");
    ensure!(
        r["server"]
            .as_str()
            .is_some_and(|s| s.starts_with("giaoban/")),
        "{r}"
    );
    ensure!(r["max_message_bytes"].as_u64().is_some(), "{r}");
    // Not joined: a mute with a bad kind is not_joined (the join state is
    // checked first), a candidate with a bad pc is bad_request.
    let r = c
        .request(json!({"type": "mute", "kind": "screen", "muted": true}))
        .await?;
    ensure!(r["code"] == "not_joined", "{r}");
    let r = c
        .request(json!({"type": "candidate", "pc": "x", "candidate": {}}))
        .await?;
    ensure!(r["code"] == "bad_request", "{r}");
    let r = c
        .request(json!({"type": "set_quality", "quality": "low"}))
        .await?;
    ensure!(r["code"] == "bad_request", "{r}");
    // pong echoes ts as it came, null included, and has nothing else.
    c.send(json!({"type": "ping", "id": "p1", "ts": null}))
        .await?;
    let r = c.recv_reply(&json!("p1")).await?;
    ensure!(r == json!({"type": "pong", "id": "p1", "ts": null}), "{r}");
    c.send(json!({"type": "ping", "id": 9, "received": "x"}))
        .await?;
    let r = c.recv_reply(&json!(9)).await?;
    ensure!(r == json!({"type": "pong", "id": 9}), "{r}");

    let joined = c
        .request(json!({"type": "join", "token": observer}))
        .await?;
    ensure!(joined["type"] == "joined", "{joined}");
    for key in [
        "participant",
        "meeting",
        "participants",
        "tracks",
        "receive",
        "resume_token",
        "ice_servers",
        "ice_transport_policy",
    ] {
        ensure!(joined.get(key).is_some(), "joined has no {key}: {joined}");
    }
    ensure!(joined["meeting"]["title"].is_string(), "{joined}");
    ensure!(
        joined["participant"]["name"] == "Compat" && joined["participant"]["role"] == "observer",
        "{joined}"
    );
    // Joined: the permission is checked before the body (an observer's
    // publish without sdp is forbidden), a participant_id of another is
    // forbidden, a second join is already_joined even with a bad body.
    let r = c.request(json!({"type": "publish"})).await?;
    ensure!(r["code"] == "forbidden", "{r}");
    let r = c
        .request(json!({"type": "ping", "participant_id": "p-000000000000"}))
        .await?;
    ensure!(r["code"] == "forbidden", "{r}");
    let r = c.request(json!({"type": "join"})).await?;
    ensure!(r["code"] == "already_joined", "{r}");
    let r = c
        .request(json!({"type": "resume", "resume_token": 5}))
        .await?;
    ensure!(r["code"] == "already_joined", "{r}");
    // An error answer has exactly type, id, code and message.
    let r = c.request(json!({"type": "dance"})).await?;
    let keys: Vec<&String> = r
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    ensure!(keys == ["code", "id", "message", "type"], "{r}");
    ensure!(r["code"] == "unknown_type", "{r}");
    // leave with extra fields: bye, and nothing else in it.
    c.send(json!({"type": "leave", "id": "bye-1", "why": "done"}))
        .await?;
    let r = c.recv_reply(&json!("bye-1")).await?;
    ensure!(r == json!({"type": "bye", "id": "bye-1"}), "{r}");
    Ok(())
}
