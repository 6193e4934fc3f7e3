//! The chair runs the live meeting (issue 20), through a real server
//! process and the public protocol: every new message against the role
//! table, the speaking queue and the floor, the server's blocks and
//! "join muted", lock and removal, the current agenda item, the waiting
//! screen and the chair's start and end, the roll call, the WHIP and WHEP
//! admission going through the same checks as the WebSocket's, the chair's
//! lock, removal and current item kept across a restart of the server, and
//! the attendance intervals of WebSocket and WHIP sessions, and the floor
//! holder as the main view of a WHEP player (packets counted at the player).
//! (That a block really stops the media: tests/tests/media_block.rs.)

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::client::{JoinOptions, Kind, MediaOptions, TestClient, WhepPlayer};
use giaoban_tests::repair::RepairOptions;
use giaoban_tests::{token_of, webrtc_offer, Incoming, TestServer, WsClient};
use serde_json::{json, Value};

const ROLES: [&str; 6] = [
    "chair",
    "member",
    "secretary",
    "bridge",
    "delegate",
    "observer",
];

/// Sends `msg` with id `id`, then a ping; returns the error code `msg` got,
/// if any (answers come in order, so it arrived before the pong).
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

async fn join(
    server: &TestServer,
    meeting: &str,
    name: &str,
    role: &str,
) -> Result<(WsClient, String)> {
    let url = server.invite(meeting, name, role).await?;
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let joined = c.hello_and_join(token_of(&url)?).await?;
    let pid = joined["participant"]["id"]
        .as_str()
        .context("participant id")?
        .to_owned();
    Ok((c, pid))
}

/// Asks `ok` of a request; fails with the answer otherwise.
async fn ok(c: &mut WsClient, msg: Value) -> Result<()> {
    let r = c.request(msg.clone()).await?;
    ensure!(r["type"] == "ok", "{msg} answered {r}");
    Ok(())
}

/// The next `type` message matching `pred` (others skipped).
async fn until(c: &mut WsClient, kind: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
    loop {
        let v = c.recv_type(kind).await?;
        if pred(&v) {
            return Ok(v);
        }
    }
}

#[tokio::test]
async fn every_live_message_is_checked_against_the_role_table() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("Quyền điều hành").await?;
    // A target that is there and not a chair.
    let (_target, target) = join(&server, &meeting, "Xã đích", "bridge").await?;
    // (message, permission it needs). The bodies name the target so that a
    // permitted sender gets `ok` or a refusal that is not `forbidden`.
    let messages: Vec<(Value, &str)> = vec![
        (
            json!({"type": "raise_hand", "kind": "speak"}),
            "request_floor",
        ),
        (json!({"type": "lower_hand"}), "request_floor"),
        (
            json!({"type": "clear_hand", "participant_id": target}),
            "moderate",
        ),
        (
            json!({"type": "mute_participant", "participant_id": target, "kind": "video", "muted": false}),
            "moderate",
        ),
        (json!({"type": "lock_meeting", "locked": false}), "moderate"),
        (
            json!({"type": "set_current_item", "item_id": null}),
            "moderate",
        ),
        (
            json!({"type": "give_floor", "participant_id": "p-nobody"}),
            "moderate",
        ),
        (json!({"type": "take_floor"}), "moderate"),
        (json!({"type": "mute_all"}), "moderate"),
        (
            json!({"type": "remove_participant", "participant_id": "p-nobody", "reason": "thử"}),
            "moderate",
        ),
        (json!({"type": "start_meeting"}), "preside"),
        (
            json!({"type": "declare_attendance", "leader": "Ông A", "attendees": 3}),
            "declare_attendance",
        ),
    ];
    let allowed = |role: &str, perm: &str| match perm {
        "request_floor" | "declare_attendance" => role != "observer",
        "moderate" => matches!(role, "chair" | "secretary"),
        "preside" => role == "chair",
        _ => false,
    };
    for role in ROLES {
        let (mut c, _) = join(&server, &meeting, &format!("Điểm {role}"), role).await?;
        for (i, (msg, perm)) in messages.iter().enumerate() {
            let code = error_code_of(&mut c, &format!("{role}-{i}"), msg.clone()).await?;
            let forbidden = code.as_deref() == Some("forbidden");
            ensure!(
                forbidden != allowed(role, perm),
                "{role} sending {msg}: answered {code:?}"
            );
        }
        // end_meeting last and only by a forbidden role (the chair would
        // end the meeting for the other roles' turns).
        if role != "chair" {
            let code = error_code_of(
                &mut c,
                &format!("{role}-end"),
                json!({"type": "end_meeting"}),
            )
            .await?;
            ensure!(
                code.as_deref() == Some("forbidden"),
                "{role} end_meeting: {code:?}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_chair_runs_the_floor_blocks_lock_and_removal() -> Result<()> {
    // Every meeting joins muted here (one invitation is enough).
    let server = TestServer::start_with_config("[signaling]\njoin_muted_from = 1\n").await?;
    let meeting = server.create_meeting("Giao ban điều hành").await?;
    let (mut chair, chair_id) = join(&server, &meeting, "Chủ tịch", "chair").await?;
    let url_a = server.invite(&meeting, "Xã A", "bridge").await?;
    let mut a = WsClient::connect(&server.ws_url()).await?;
    let joined_a = a.hello_and_join(token_of(&url_a)?).await?;
    let a_id = joined_a["participant"]["id"]
        .as_str()
        .context("id")?
        .to_owned();
    ensure!(
        joined_a["participant"]["audio_blocked"] == true,
        "joins muted: {joined_a}"
    );
    ensure!(joined_a["state"]["join_muted"] == true, "{joined_a}");
    ensure!(joined_a["state"]["status"] == "in_progress", "{joined_a}");
    let chair_seen = joined_a["participants"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["id"] == chair_id))
        .context("the chair is listed")?;
    ensure!(chair_seen["audio_blocked"] == false, "{chair_seen}");
    let hands = a.recv_type("hands").await?;
    ensure!(hands["queue"] == json!([]), "{hands}");
    let (mut b, b_id) = join(&server, &meeting, "Phường B", "bridge").await?;

    // Hands up: the queue in order, to everyone.
    ok(&mut a, json!({"type": "raise_hand", "kind": "question"})).await?;
    ok(&mut b, json!({"type": "raise_hand"})).await?;
    let q = until(&mut chair, "hands", |v| {
        v["queue"].as_array().map(Vec::len) == Some(2)
    })
    .await?;
    ensure!(
        q["queue"][0]["participant_id"] == a_id && q["queue"][0]["kind"] == "question",
        "{q}"
    );
    ensure!(
        q["queue"][1]["participant_id"] == b_id && q["queue"][1]["kind"] == "speak",
        "{q}"
    );
    ensure!(
        q["queue"][0]["name"] == "Xã A" && q["queue"][0]["since"].is_i64(),
        "{q}"
    );
    until(&mut b, "hands", |v| {
        v["queue"].as_array().map(Vec::len) == Some(2)
    })
    .await?;

    // A bridge point cannot give itself the floor.
    let r = b
        .request(json!({"type": "give_floor", "participant_id": b_id}))
        .await?;
    ensure!(r["code"] == "forbidden", "{r}");

    // The floor to A: its block lifted, the state names it, its hand down.
    ok(
        &mut chair,
        json!({"type": "give_floor", "participant_id": a_id}),
    )
    .await?;
    let blk = until(&mut b, "media_blocked", |v| v["participant_id"] == a_id).await?;
    ensure!(blk["audio_blocked"] == false, "{blk}");
    let st = until(&mut b, "meeting_state", |v| !v["floor"].is_null()).await?;
    ensure!(st["floor"]["participant_id"] == a_id, "{st}");
    let q = until(&mut chair, "hands", |v| {
        v["queue"].as_array().map(Vec::len) == Some(1)
    })
    .await?;
    ensure!(q["queue"][0]["participant_id"] == b_id, "{q}");

    // mute_all spares the chair and the floor holder; B is blocked already.
    ok(&mut chair, json!({"type": "mute_all"})).await?;
    // Taking the floor back blocks A again (the meeting joins muted).
    ok(&mut chair, json!({"type": "take_floor"})).await?;
    // (A also got the unblock of the floor earlier.)
    until(&mut a, "media_blocked", |v| {
        v["participant_id"] == a_id && v["audio_blocked"] == true
    })
    .await?;
    let st = until(&mut a, "meeting_state", |v| v["floor"].is_null()).await?;
    ensure!(st["status"] == "in_progress", "{st}");

    // Video block and its lifting; the chair cannot be blocked.
    ok(
        &mut chair,
        json!({"type": "mute_participant", "participant_id": b_id, "kind": "video", "muted": true}),
    )
    .await?;
    let blk = until(&mut a, "media_blocked", |v| v["participant_id"] == b_id).await?;
    ensure!(
        blk["video_blocked"] == true && blk["audio_blocked"] == true,
        "{blk}"
    );
    let r = chair
        .request(json!({"type": "mute_participant", "participant_id": chair_id, "kind": "audio", "muted": true}))
        .await?;
    ensure!(r["code"] == "forbidden", "{r}");
    let r = chair
        .request(json!({"type": "clear_hand", "participant_id": a_id}))
        .await?;
    ensure!(r["code"] == "no_hand", "{r}");
    ok(
        &mut chair,
        json!({"type": "clear_hand", "participant_id": b_id}),
    )
    .await?;
    let r = chair
        .request(json!({"type": "give_floor", "participant_id": "p-gone"}))
        .await?;
    ensure!(r["code"] == "not_in_meeting", "{r}");

    // Lock: a new bridge point is refused, a secretary still enters.
    ok(&mut chair, json!({"type": "lock_meeting", "locked": true})).await?;
    until(&mut a, "meeting_state", |v| v["locked"] == true).await?;
    let late = server.invite(&meeting, "Xã đến muộn", "bridge").await?;
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let err = c
        .hello_and_join(token_of(&late)?)
        .await
        .err()
        .context("locked")?;
    ensure!(err.to_string().contains("meeting_locked"), "{err}");
    ensure!(c.expect_close(Duration::from_secs(5)).await? == Some(1008));
    let (_sec, _) = join(&server, &meeting, "Văn phòng", "secretary").await?;
    // A reload of A (same invitation) still enters while locked: it
    // replaces the old session.
    let mut a2 = WsClient::connect(&server.ws_url()).await?;
    let j2 = a2.hello_and_join(token_of(&url_a)?).await?;
    let a2_id = j2["participant"]["id"].as_str().context("id")?.to_owned();
    ok(&mut chair, json!({"type": "lock_meeting", "locked": false})).await?;

    // Removal: reason required, told to the removed one, recorded; the
    // invitation cannot come back.
    let r = chair
        .request(json!({"type": "remove_participant", "participant_id": a2_id, "reason": " "}))
        .await?;
    ensure!(r["code"] == "bad_request", "{r}");
    ok(&mut chair, json!({"type": "remove_participant", "participant_id": a2_id, "reason": "Không phải thành phần dự họp"})).await?;
    let removed = a2.recv_type("removed").await?;
    ensure!(
        removed["reason"] == "Không phải thành phần dự họp",
        "{removed}"
    );
    ensure!(a2.expect_close(Duration::from_secs(5)).await? == Some(1008));
    let left = until(&mut b, "participant_left", |v| v["participant_id"] == a2_id).await?;
    ensure!(left["reason"] == "removed", "{left}");
    let mut again = WsClient::connect(&server.ws_url()).await?;
    let err = again
        .hello_and_join(token_of(&url_a)?)
        .await
        .err()
        .context("removed")?;
    ensure!(err.to_string().contains("removed_from_meeting"), "{err}");
    let r = chair
        .request(json!({"type": "remove_participant", "participant_id": chair_id, "reason": "x"}))
        .await?;
    ensure!(r["code"] == "forbidden", "{r}");

    // Current item: another meeting's item is refused; the meeting's own
    // goes to everyone.
    let sec = server.staff_token("thuky", "secretary").await?;
    let http = reqwest::Client::new();
    let item: Value = http
        .post(format!(
            "{}/api/meetings/{meeting}/agenda",
            server.base_url()
        ))
        .bearer_auth(&sec)
        .json(&json!({"title": "Báo cáo tình hình"}))
        .send()
        .await?
        .json()
        .await?;
    let item_id = item["id"].as_str().context("item id")?.to_owned();
    let r = chair
        .request(json!({"type": "set_current_item", "item_id": "no-such-item"}))
        .await?;
    ensure!(r["code"] == "agenda_item_not_found", "{r}");
    ok(
        &mut chair,
        json!({"type": "set_current_item", "item_id": item_id}),
    )
    .await?;
    until(&mut b, "meeting_state", |v| {
        v["current_item_id"] == json!(item_id)
    })
    .await?;

    // The facts are in the audit log.
    let admin = server.staff_token("quantri", "admin").await?;
    for action in [
        "live.floor_given",
        "live.floor_taken",
        "live.participant_removed",
        "live.locked",
        "live.current_item",
        "live.mute_all",
    ] {
        let v: Value = http
            .get(format!("{}/api/audit?action={action}", server.base_url()))
            .bearer_auth(&admin)
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            v["entries"].as_array().is_some_and(|e| !e.is_empty()),
            "{action} not recorded: {v}"
        );
        if action == "live.participant_removed" {
            ensure!(
                v["entries"][0]["detail"]["reason"] == "Không phải thành phần dự họp",
                "{v}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn participants_wait_for_the_chair_to_start_and_leave_when_it_ends() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_draft_meeting("Giao ban chưa bắt đầu").await?;
    let url_a = server.invite(&meeting, "Xã A", "bridge").await?;
    let mut a = WsClient::connect(&server.ws_url()).await?;
    ok_hello(&mut a).await?;
    let w = a
        .request(json!({"type": "join", "token": token_of(&url_a)?}))
        .await?;
    ensure!(w["type"] == "waiting", "{w}");
    ensure!(
        w["meeting"]["id"] == meeting && w["meeting"]["status"] == "draft",
        "{w}"
    );
    ensure!(
        w["meeting"]["title"] == "Giao ban chưa bắt đầu" && w["agenda"].is_array(),
        "{w}"
    );
    // It waits longer than the join timeout (10 s) without being closed;
    // pings keep it.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let p = a.request(json!({"type": "ping"})).await?;
        ensure!(p["type"] == "pong", "{p}");
    }
    // A WHIP encoder cannot wait: 409 meeting_not_started.
    let enc = server.invite(&meeting, "Bộ mã hóa", "bridge").await?;
    let r = reqwest::Client::new()
        .post(format!("{}/whip/{meeting}", server.base_url()))
        .bearer_auth(token_of(&enc)?)
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?;
    ensure!(r.status() == 409, "whip before the start: {}", r.status());
    let body: Value = r.json().await?;
    ensure!(body["code"] == "meeting_not_started", "{body}");
    // Nor can a WHEP player: it would see the chair preparing the room.
    let player = server.invite(&meeting, "Màn hình", "observer").await?;
    let (status, code, _) = post_offer(&server, "whep", &meeting, token_of(&player)?).await?;
    ensure!(
        status == 409 && code.as_deref() == Some("meeting_not_started"),
        "whep before the start: {status} {code:?}"
    );

    // The chair enters before the start, an observer cannot start it.
    let chair_url = server.invite(&meeting, "Chủ tịch", "chair").await?;
    let mut chair = WsClient::connect(&server.ws_url()).await?;
    chair.hello_and_join(token_of(&chair_url)?).await?;
    let url_o = server.invite(&meeting, "Quan sát", "observer").await?;
    let mut o = WsClient::connect(&server.ws_url()).await?;
    ok_hello(&mut o).await?;
    let w = o
        .request(json!({"type": "join", "token": token_of(&url_o)?}))
        .await?;
    ensure!(w["type"] == "waiting", "{w}");
    let started_at = std::time::Instant::now();
    ok(&mut chair, json!({"type": "start_meeting"})).await?;
    let st = a.recv_type("meeting_started").await?;
    ensure!(st["id"].is_null(), "{st}");
    eprintln!(
        "start -> meeting_started at the waiting socket: {:?}",
        started_at.elapsed()
    );
    let j = a
        .request(json!({"type": "join", "token": token_of(&url_a)?}))
        .await?;
    ensure!(j["type"] == "joined", "{j}");
    ensure!(j["state"]["status"] == "in_progress", "{j}");
    o.recv_type("meeting_started").await?;
    let j = o
        .request(json!({"type": "join", "token": token_of(&url_o)?}))
        .await?;
    ensure!(j["type"] == "joined", "{j}");
    // Starting again is no error.
    ok(&mut chair, json!({"type": "start_meeting"})).await?;

    // Roll call: the point declares its leader; the chair is told.
    let r = a
        .request(json!({"type": "declare_attendance", "leader": "", "attendees": 5}))
        .await?;
    ensure!(r["code"] == "bad_request", "{r}");
    ok(&mut a, json!({"type": "declare_attendance", "leader": "Ông Nguyễn Văn A, Chủ tịch UBND xã", "attendees": 12})).await?;
    let d = chair.recv_type("attendance_declared").await?;
    ensure!(
        d["leader"] == "Ông Nguyễn Văn A, Chủ tịch UBND xã" && d["attendees"] == 12,
        "{d}"
    );

    // The chair ends it: `ok`, then every session closes with meeting_closed.
    ok(&mut chair, json!({"type": "end_meeting"})).await?;
    for c in [&mut a, &mut o] {
        let mut code = None;
        loop {
            match c.next_incoming(Duration::from_secs(10)).await? {
                Incoming::Json(v) if v["type"] == "error" => {
                    code = v["code"].as_str().map(str::to_owned)
                }
                Incoming::Closed(close) => {
                    ensure!(close.as_ref().map(|c| c.0) == Some(1008), "{close:?}");
                    break;
                }
                _ => {}
            }
        }
        ensure!(code.as_deref() == Some("meeting_closed"), "{code:?}");
    }
    let out = server.cli(&["meeting", "list"]).await?;
    ensure!(
        out.lines()
            .any(|l| l.starts_with(&meeting) && l.contains("\tended\t")),
        "{out}"
    );
    Ok(())
}

async fn ok_hello(c: &mut WsClient) -> Result<()> {
    let h = c.request(json!({"type": "hello", "version": 1})).await?;
    ensure!(h["type"] == "hello", "{h}");
    Ok(())
}

/// The WHIP join goes through the same admission as the WebSocket's: a
/// removed invitation and a locked meeting refuse an encoder too.
/// WHIP publishers and WHEP players go through the WebSocket join's
/// admission: the chair's removal keeps an invitation out of all three
/// (and ends its player), the lock keeps new invitations out of all three,
/// with the same codes.
#[tokio::test]
async fn whip_is_admitted_like_a_websocket_join() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("Bộ mã hóa").await?;
    let (mut chair, _) = join(&server, &meeting, "Chủ tịch", "chair").await?;
    let operator = server.staff_token("kythuat", "operator").await?;
    let http = reqwest::Client::new();
    let viewers = || async {
        let v: Value = http
            .get(format!("{}/api/meetings/{meeting}/live", server.base_url()))
            .bearer_auth(&operator)
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(v["viewers"].as_array().map_or(0, Vec::len))
    };

    // Removal: a bridge point inside, with its invitation's WHEP player.
    let url_r = server.invite(&meeting, "Xã bị mời ra", "bridge").await?;
    let mut r = WsClient::connect(&server.ws_url()).await?;
    let r_id = r.hello_and_join(token_of(&url_r)?).await?["participant"]["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let (status, code, _) = post_offer(&server, "whep", &meeting, token_of(&url_r)?).await?;
    ensure!(status == 201, "whep of a participant: {status} {code:?}");
    ensure!(viewers().await? == 1, "the player is in the roster");
    ok(&mut chair, json!({"type": "remove_participant", "participant_id": r_id, "reason": "Không phải thành phần dự họp"})).await?;
    // Its player ends with it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while viewers().await? != 0 {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the removed invitation's player still plays"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for kind in ["whip", "whep"] {
        let (status, code, _) = post_offer(&server, kind, &meeting, token_of(&url_r)?).await?;
        ensure!(
            status == 403 && code.as_deref() == Some("removed_from_meeting"),
            "{kind} of a removed invitation: {status} {code:?}"
        );
    }
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let err = c
        .hello_and_join(token_of(&url_r)?)
        .await
        .err()
        .context("removed")?;
    ensure!(err.to_string().contains("removed_from_meeting"), "{err}");

    // Lock: a new encoder and a new player are refused like a new socket.
    ok(&mut chair, json!({"type": "lock_meeting", "locked": true})).await?;
    let enc = server.invite(&meeting, "Bộ mã hóa xã", "bridge").await?;
    let r = reqwest::Client::new()
        .post(format!("{}/whip/{meeting}", server.base_url()))
        .bearer_auth(token_of(&enc)?)
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?;
    ensure!(
        r.status() == 409,
        "whip into a locked meeting: {}",
        r.status()
    );
    let body: Value = r.json().await?;
    ensure!(body["code"] == "meeting_locked", "{body}");
    let player = server
        .invite(&meeting, "Màn hình hội trường", "observer")
        .await?;
    let (status, code, _) = post_offer(&server, "whep", &meeting, token_of(&player)?).await?;
    ensure!(
        status == 409 && code.as_deref() == Some("meeting_locked"),
        "whep into a locked meeting: {status} {code:?}"
    );
    // And the WebSocket's refusal of the same invitation has the same code.
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let err = c
        .hello_and_join(token_of(&enc)?)
        .await
        .err()
        .context("locked")?;
    ensure!(err.to_string().contains("meeting_locked"), "{err}");
    Ok(())
}

/// A meeting's own `join_muted` setting wins over the size rule: set on a
/// small meeting, its bridge points enter blocked; cleared, they do not.
#[tokio::test]
async fn the_meeting_setting_decides_who_joins_muted() -> Result<()> {
    let server = TestServer::start().await?;
    let sec = server.staff_token("thuky", "secretary").await?;
    let http = reqwest::Client::new();
    let m: Value = http
        .post(format!("{}/api/meetings", server.base_url()))
        .bearer_auth(&sec)
        .json(&json!({"title": "Họp nhỏ, tắt micro", "join_muted": true}))
        .send()
        .await?
        .json()
        .await?;
    ensure!(m["join_muted"] == true, "{m}");
    let meeting = m["id"].as_str().context("id")?.to_owned();
    server.start_meeting(&meeting).await?;
    let url = server.invite(&meeting, "Xã A", "bridge").await?;
    let mut a = WsClient::connect(&server.ws_url()).await?;
    let j = a.hello_and_join(token_of(&url)?).await?;
    ensure!(j["participant"]["audio_blocked"] == true, "{j}");
    ensure!(j["state"]["join_muted"] == true, "{j}");
    let r = http
        .patch(format!("{}/api/meetings/{meeting}", server.base_url()))
        .bearer_auth(&sec)
        .json(&json!({"join_muted": false}))
        .send()
        .await?;
    ensure!(r.status() == 200, "patch: {}", r.status());
    let url = server.invite(&meeting, "Phường B", "bridge").await?;
    let mut b = WsClient::connect(&server.ws_url()).await?;
    let j = b.hello_and_join(token_of(&url)?).await?;
    ensure!(j["participant"]["audio_blocked"] == false, "{j}");
    Ok(())
}

/// POSTs a real offer to `/{kind}/{meeting}` (`whip` or `whep`); returns
/// the status, the error code (if any) and the session's `Location`.
async fn post_offer(
    server: &TestServer,
    kind: &str,
    meeting: &str,
    token: &str,
) -> Result<(u16, Option<String>, Option<String>)> {
    let dir = if kind == "whip" {
        "sendonly"
    } else {
        "recvonly"
    };
    let r = reqwest::Client::new()
        .post(format!("{}/{kind}/{meeting}", server.base_url()))
        .bearer_auth(token)
        .header("content-type", "application/sdp")
        .body(webrtc_offer(dir))
        .send()
        .await?;
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let code = if status == 201 {
        None
    } else {
        let v: Value = r.json().await.unwrap_or(Value::Null);
        v["code"].as_str().map(str::to_owned)
    };
    Ok((status, code, location))
}

/// The chair's removal, lock and current item are facts of the meeting:
/// after a restart of the server (same data folder) the removed invitation
/// is still refused, by the WebSocket, WHIP and WHEP alike, the meeting is
/// still locked, and the agenda is still on its item.
#[tokio::test]
async fn the_chairs_decisions_survive_a_restart() -> Result<()> {
    let mut server = TestServer::start().await?;
    let meeting = server.create_meeting("Giao ban khởi động lại").await?;
    let chair_url = server.invite(&meeting, "Chủ tịch", "chair").await?;
    let mut chair = WsClient::connect(&server.ws_url()).await?;
    chair.hello_and_join(token_of(&chair_url)?).await?;
    let url_a = server.invite(&meeting, "Xã A", "bridge").await?;
    let mut a = WsClient::connect(&server.ws_url()).await?;
    let a_id = a.hello_and_join(token_of(&url_a)?).await?["participant"]["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let sec = server.staff_token("thuky", "secretary").await?;
    let item: Value = reqwest::Client::new()
        .post(format!(
            "{}/api/meetings/{meeting}/agenda",
            server.base_url()
        ))
        .bearer_auth(&sec)
        .json(&json!({"title": "Báo cáo tình hình"}))
        .send()
        .await?
        .json()
        .await?;
    let item_id = item["id"].as_str().context("item id")?.to_owned();
    ok(
        &mut chair,
        json!({"type": "set_current_item", "item_id": item_id}),
    )
    .await?;
    ok(&mut chair, json!({"type": "remove_participant", "participant_id": a_id, "reason": "Không phải thành phần dự họp"})).await?;
    ensure!(a.expect_close(Duration::from_secs(5)).await? == Some(1008));
    ok(&mut chair, json!({"type": "lock_meeting", "locked": true})).await?;

    server.terminate(Duration::from_secs(10)).await?;
    server.restart().await?;

    // The removed invitation stays out, whichever way it comes.
    let mut again = WsClient::connect(&server.ws_url()).await?;
    let err = again
        .hello_and_join(token_of(&url_a)?)
        .await
        .err()
        .context("removed after the restart")?;
    ensure!(err.to_string().contains("removed_from_meeting"), "{err}");
    for kind in ["whip", "whep"] {
        let (status, code, _) = post_offer(&server, kind, &meeting, token_of(&url_a)?).await?;
        ensure!(
            status == 403 && code.as_deref() == Some("removed_from_meeting"),
            "{kind} of the removed invitation after the restart: {status} {code:?}"
        );
    }
    // Still locked: a new bridge point is refused, the chair enters and
    // finds the lock and the current item.
    let late = server.invite(&meeting, "Xã đến muộn", "bridge").await?;
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let err = c
        .hello_and_join(token_of(&late)?)
        .await
        .err()
        .context("locked after the restart")?;
    ensure!(err.to_string().contains("meeting_locked"), "{err}");
    let mut chair = WsClient::connect(&server.ws_url()).await?;
    let j = chair.hello_and_join(token_of(&chair_url)?).await?;
    ensure!(j["state"]["locked"] == true, "{j}");
    ensure!(j["state"]["current_item_id"] == json!(item_id), "{j}");
    // Unlocked, the late point enters; the removed one still does not.
    ok(&mut chair, json!({"type": "lock_meeting", "locked": false})).await?;
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let j = c.hello_and_join(token_of(&late)?).await?;
    ensure!(j["state"]["current_item_id"] == json!(item_id), "{j}");
    let mut again = WsClient::connect(&server.ws_url()).await?;
    let err = again
        .hello_and_join(token_of(&url_a)?)
        .await
        .err()
        .context("still removed")?;
    ensure!(err.to_string().contains("removed_from_meeting"), "{err}");
    Ok(())
}

/// Attendance through the real server: a bridge point that joins, leaves
/// and comes back has two intervals with their join and leave times; a
/// WHIP encoder's session is one interval, `via` `whip`.
#[tokio::test]
async fn attendance_records_each_session_as_an_interval() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("Giao ban điểm danh").await?;
    let url_a = server.invite(&meeting, "Xã A", "bridge").await?;
    let enc = server.invite(&meeting, "Bộ mã hóa xã B", "bridge").await?;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    for _ in 0..2 {
        let mut a = WsClient::connect(&server.ws_url()).await?;
        a.hello_and_join(token_of(&url_a)?).await?;
        let bye = a.request(json!({"type": "leave"})).await?;
        ensure!(bye["type"] == "bye", "{bye}");
        a.close().await;
    }
    let (status, code, location) = post_offer(&server, "whip", &meeting, token_of(&enc)?).await?;
    ensure!(status == 201, "whip: {status} {code:?}");
    let location = location.context("Location")?;
    let http = reqwest::Client::new();
    let r = http
        .delete(format!("{}{location}", server.base_url()))
        .send()
        .await?;
    ensure!(r.status().is_success(), "DELETE whip: {}", r.status());

    // The intervals close as the sessions end: wait for all three.
    let sec = server.staff_token("thuky", "secretary").await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (row_a, row_b) = loop {
        let report: Value = http
            .get(format!(
                "{}/api/meetings/{meeting}/attendance",
                server.base_url()
            ))
            .bearer_auth(&sec)
            .send()
            .await?
            .json()
            .await?;
        let row = |name: &str| {
            report["rows"]
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["name"] == name))
                .cloned()
        };
        let (a, b) = (row("Xã A"), row("Bộ mã hóa xã B"));
        let closed = |r: &Option<Value>, n: usize| {
            r.as_ref().is_some_and(|r| {
                r["intervals"]
                    .as_array()
                    .is_some_and(|l| l.len() == n && l.iter().all(|i| i["left_at"].is_i64()))
            })
        };
        if closed(&a, 2) && closed(&b, 1) {
            break (a.context("a")?, b.context("b")?);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the intervals did not close: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let ia = row_a["intervals"].as_array().context("intervals")?;
    let t = |i: &Value, k: &str| i[k].as_i64().unwrap_or(i64::MIN);
    for i in ia {
        ensure!(i["via"] == "websocket", "{row_a}");
        ensure!(
            before <= t(i, "joined_at")
                && t(i, "joined_at") <= t(i, "left_at")
                && t(i, "left_at") <= after,
            "interval times: {row_a}"
        );
    }
    ensure!(
        t(&ia[0], "left_at") <= t(&ia[1], "joined_at"),
        "the second session began after the first ended: {row_a}"
    );
    ensure!(
        row_a["first_joined_at"] == ia[0]["joined_at"] && row_a["present"] == false,
        "{row_a}"
    );
    let ib = &row_b["intervals"][0];
    ensure!(ib["via"] == "whip", "{row_b}");
    ensure!(
        before <= t(ib, "joined_at") && t(ib, "joined_at") <= t(ib, "left_at"),
        "{row_b}"
    );
    Ok(())
}

/// Time allowed for connecting, the first packets, and a switch of the
/// main view at the WHEP player (generous: CI runs every test at once).
const SWITCH_BOUND: Duration = Duration::from_secs(10);
/// How long a settled main view is watched at the player.
const VIEW_WINDOW: Duration = Duration::from_secs(1);

/// Video packets the player received from `who` so far.
fn whep_video(player: &WhepPlayer, who: &str) -> u64 {
    player.state().packets(who, Kind::Video)
}

/// Audio packets the player received from `who` so far.
fn whep_audio(player: &WhepPlayer, who: &str) -> u64 {
    player.state().packets(who, Kind::Audio)
}

/// Polls the player until it received more than `above` video packets from
/// `who`; returns when the first of them was counted.
async fn whep_video_above(player: &WhepPlayer, who: &str, above: u64) -> Result<Instant> {
    let deadline = Instant::now() + SWITCH_BOUND;
    loop {
        if whep_video(player, who) > above {
            return Ok(Instant::now());
        }
        if Instant::now() >= deadline {
            bail!(
                "no video of {who} at the WHEP player within {SWITCH_BOUND:?}: {:?}",
                player.state()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The player's video and audio come from `main` and not from `other`:
/// over [`VIEW_WINDOW`], after the switch had a moment to settle.
async fn check_main_view(player: &WhepPlayer, main: &str, other: &str) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let count = || {
        [
            whep_video(player, main),
            whep_video(player, other),
            whep_audio(player, main),
            whep_audio(player, other),
        ]
    };
    let c0 = count();
    tokio::time::sleep(VIEW_WINDOW).await;
    let c1 = count();
    let [mv, ov, ma, oa]: [u64; 4] = std::array::from_fn(|i| c1[i] - c0[i]);
    println!(
        "main view {main}: {mv} video and {ma} audio packets of it, {ov} and {oa} of {other} \
         in {VIEW_WINDOW:?}"
    );
    // 30 frames and 50 audio packets a second are sent.
    ensure!(
        mv >= 10 && ma >= 15,
        "too little of {main} in {VIEW_WINDOW:?}: {:?}",
        player.state()
    );
    ensure!(
        ov == 0 && oa == 0,
        "{other} still played after the switch: {:?}",
        player.state()
    );
    Ok(())
}

/// The floor holder becomes the WHEP player's main view, and taking the
/// floor back restores the chair (docs/whip-whep.md, "WHEP: the main
/// view"): the chair and a bridge point both publish VP8 (webrtc-rs, each
/// payload naming its sender), a webrtc-rs WHEP player plays the meeting,
/// and the packets it counts per sender decide. The time from each request
/// to the first packet of the new main view is printed.
#[tokio::test]
async fn the_floor_holder_becomes_the_whep_players_main_view() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("Giao ban màn hình chính").await?;
    let media = |name: &'static str, role: &'static str| {
        let server = &server;
        let meeting = &meeting;
        async move {
            let url = server.invite(meeting, name, role).await?;
            // Key frame requests answered, as a browser does.
            TestClient::join_repair(
                &server.ws_url(),
                token_of(&url)?,
                JoinOptions::default(),
                MediaOptions::default(),
                RepairOptions {
                    answer_keyframe_requests: true,
                    ..RepairOptions::default()
                },
            )
            .await
            .with_context(|| format!("{name} joins"))
        }
    };
    let chair = media("Chủ tịch", "chair").await?;
    let point = media("Xã Tân Phú", "bridge").await?;
    let (chair_id, point_id) = (
        chair.participant_id().to_owned(),
        point.participant_id().to_owned(),
    );
    let player_url = server.invite(&meeting, "Màn hình tỉnh", "observer").await?;
    let player = WhepPlayer::play(&server.base_url(), &meeting, token_of(&player_url)?).await?;

    // Before the floor: the chair's video.
    whep_video_above(&player, &chair_id, 0)
        .await
        .with_context(|| format!("server log:\n{}", server.log()))?;
    check_main_view(&player, &chair_id, &point_id).await?;

    // The floor to the point: its video within the bound.
    let before = whep_video(&player, &point_id);
    let asked = Instant::now();
    chair.send(json!({"type": "give_floor", "participant_id": point_id}))?;
    let kf = |c: &TestClient| {
        let st = c.state();
        (st.keyframe_requests, st.keyframes_on_request)
    };
    let kf_before = kf(&point);
    let first = whep_video_above(&player, &point_id, before).await?;
    println!(
        "give_floor → the point's first video packet at the WHEP player: {:?} \
         (key frame requests at the point, key frames sent on request: {kf_before:?} → {:?})",
        first - asked,
        kf(&point)
    );
    chair
        .wait_until(SWITCH_BOUND, "the floor in the meeting state", |st| {
            st.has_event("meeting_state", |e| {
                e["floor"]["participant_id"] == point_id
            })
        })
        .await?;
    check_main_view(&player, &point_id, &chair_id).await?;

    // The floor taken back: the chair's video again.
    let before = whep_video(&player, &chair_id);
    let asked = Instant::now();
    chair.send(json!({"type": "take_floor"}))?;
    let kf_before = kf(&chair);
    let first = whep_video_above(&player, &chair_id, before).await?;
    println!(
        "take_floor → the chair's first video packet at the WHEP player: {:?} \
         (key frame requests at the chair, key frames sent on request: {kf_before:?} → {:?})",
        first - asked,
        kf(&chair)
    );
    check_main_view(&player, &chair_id, &point_id).await?;
    {
        let st = player.state();
        println!("WHEP player: {st:?}");
        ensure!(st.errors.is_empty(), "{st:?}");
    }
    ensure!(
        chair.state().errors.is_empty(),
        "the chair's requests: {}",
        chair.summary()
    );
    Ok(())
}
