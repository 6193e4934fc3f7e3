//! Live votes (issue 21) through a real server process: who may open, cast
//! and close; one ballot per voter under concurrent sends; the result
//! under the committee's rules against the attendance (quorum, the
//! all-members base, the chair's tie); secret polls keep voters apart from
//! choices in what the server says and records; and an acknowledged
//! ballot survives SIGKILL, the voting card coming back after the restart.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use giaoban_tests::{token_of, Incoming, TestServer, WsClient};
use serde_json::{json, Value};

struct Person {
    ws: WsClient,
    token: String,
}

async fn person(server: &TestServer, meeting: &str, name: &str, role: &str) -> Result<Person> {
    let url = server.invite(meeting, name, role).await?;
    let token = token_of(&url)?.to_owned();
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    ws.hello_and_join(&token).await?;
    Ok(Person { ws, token })
}

async fn ok(c: &mut WsClient, msg: Value) -> Result<()> {
    let r = c.request(msg.clone()).await?;
    ensure!(r["type"] == "ok", "{msg} answered {r}");
    Ok(())
}

async fn code(c: &mut WsClient, msg: Value) -> Result<String> {
    let r = c.request(msg.clone()).await?;
    ensure!(r["type"] == "error", "{msg} answered {r}");
    Ok(r["code"].as_str().unwrap_or_default().to_owned())
}

async fn opened(c: &mut WsClient) -> Result<Value> {
    Ok(c.recv_type("vote_opened").await?["poll"].clone())
}

fn vote(poll: &str, choice: &str) -> Value {
    json!({"type": "cast_vote", "poll_id": poll, "choice": choice})
}

#[tokio::test]
async fn a_named_vote_under_the_all_members_rule() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("Phiên họp UBND tỉnh").await?;
    let mut chair = person(&server, &meeting, "Chủ tịch", "chair").await?;
    let mut members = Vec::new();
    for n in ["Ông B", "Bà C", "Ông D", "Bà E"] {
        members.push(person(&server, &meeting, n, "member").await?);
    }
    let mut sec = person(&server, &meeting, "Văn phòng", "secretary").await?;
    let mut bridge = person(&server, &meeting, "Xã A", "bridge").await?;

    // Only the chair and the secretary open a vote; bad bodies are refused.
    ensure!(
        code(
            &mut members[0].ws,
            json!({"type": "open_vote", "question": "Q"})
        )
        .await?
            == "forbidden"
    );
    ensure!(
        code(&mut sec.ws, json!({"type": "open_vote", "question": " "})).await? == "bad_request"
    );
    ensure!(
        code(
            &mut sec.ws,
            json!({"type": "open_vote", "question": "Q", "rule": "most"})
        )
        .await?
            == "bad_request"
    );
    ensure!(
        code(
            &mut sec.ws,
            json!({"type": "open_vote", "question": "Q", "voters": ["observer"]})
        )
        .await?
            == "bad_request"
    );
    ensure!(
        code(
            &mut sec.ws,
            json!({"type": "open_vote", "question": "Q", "item_id": "nope"})
        )
        .await?
            == "agenda_item_not_found"
    );
    ok(
        &mut sec.ws,
        json!({"type": "open_vote", "question": "Thông qua kế hoạch năm 2027"}),
    )
    .await?;
    let poll = opened(&mut bridge.ws).await?;
    let pid = poll["id"].as_str().context("poll id")?.to_owned();
    ensure!(poll["eligible"] == 5 && poll["secret"] == false, "{poll}");
    ensure!(
        poll["rule"] == "all_members_majority" && poll["status"] == "open",
        "{poll}"
    );
    ensure!(poll["voter_roles"] == json!(["chair", "member"]), "{poll}");
    ensure!(
        code(
            &mut sec.ws,
            json!({"type": "open_vote", "question": "Một câu khác"})
        )
        .await?
            == "poll_open"
    );

    // Who may vote.
    ensure!(code(&mut sec.ws, vote(&pid, "for")).await? == "forbidden");
    ensure!(code(&mut bridge.ws, vote(&pid, "for")).await? == "not_eligible");
    ensure!(code(&mut members[0].ws, vote(&pid, "maybe")).await? == "bad_request");
    ensure!(code(&mut members[0].ws, vote("no-such-poll", "for")).await? == "poll_not_found");

    // One member sends ten ballots at once: exactly one counts.
    let m0 = &mut members[0].ws;
    for i in 0..10 {
        m0.send(
            json!({"type": "cast_vote", "id": format!("b{i}"), "poll_id": pid, "choice": "for"}),
        )
        .await?;
    }
    let (mut oks, mut twice) = (0, 0);
    while oks + twice < 10 {
        match m0.next_incoming(Duration::from_secs(10)).await? {
            Incoming::Json(v) if v["id"].as_str().is_some_and(|i| i.starts_with('b')) => {
                match (v["type"].as_str(), v["code"].as_str()) {
                    (Some("ok"), _) => oks += 1,
                    (Some("error"), Some("already_voted")) => twice += 1,
                    other => anyhow::bail!("unexpected answer {other:?}: {v}"),
                }
            }
            Incoming::Closed(c) => anyhow::bail!("closed {c:?}"),
            _ => {}
        }
    }
    ensure!(oks == 1 && twice == 9, "oks {oks}, already_voted {twice}");
    ok(&mut chair.ws, vote(&pid, "for")).await?;
    ok(&mut members[1].ws, vote(&pid, "for")).await?;
    ok(&mut members[2].ws, vote(&pid, "against")).await?;
    // The chair sees who voted (a named poll).
    let p = loop {
        let p = chair.ws.recv_type("vote_progress").await?;
        if p["voted"] == 4 {
            break p;
        }
    };
    ensure!(p["eligible"] == 5, "{p}");
    let names = p["voters"].as_array().context("names")?;
    ensure!(
        names.iter().any(|n| n == "Ông B") && names.iter().any(|n| n == "Chủ tịch"),
        "{p}"
    );

    // A member reloads its page mid-vote: the card comes back, voted.
    let mut again = WsClient::connect(&server.ws_url()).await?;
    again.hello_and_join(&members[1].token).await?;
    let card = again.recv_type("vote_opened").await?;
    ensure!(card["voted"] == true && card["poll"]["id"] == pid, "{card}");

    // Close: 3 for of 5 members (needed 3), quorum 4 of 5 present.
    ensure!(
        code(
            &mut members[3].ws,
            json!({"type": "close_vote", "poll_id": pid})
        )
        .await?
            == "forbidden"
    );
    ok(&mut chair.ws, json!({"type": "close_vote", "poll_id": pid})).await?;
    let closed = bridge.ws.recv_type("vote_closed").await?;
    let o = &closed["poll"]["outcome"];
    ensure!(closed["poll"]["status"] == "closed", "{closed}");
    ensure!(
        o["tally"] == json!({"for": 3, "against": 1, "abstain": 0}),
        "{o}"
    );
    ensure!(
        o["committee_members"] == 5 && o["present_members"] == 5 && o["base"] == 5,
        "{o}"
    );
    ensure!(
        o["needed"] == 3 && o["quorum_needed"] == 4 && o["quorum_met"] == true,
        "{o}"
    );
    ensure!(o["passed"] == true, "{o}");
    ensure!(code(&mut members[3].ws, vote(&pid, "for")).await? == "poll_closed");
    // Closing again changes nothing.
    ok(&mut chair.ws, json!({"type": "close_vote", "poll_id": pid})).await?;
    Ok(())
}

#[tokio::test]
async fn ties_quorum_and_secret_ballots() -> Result<()> {
    // A committee of four: a tie is possible, and the quorum is three.
    let server = TestServer::start_with_config("[rules]\ncommittee_members = 4\n").await?;
    let meeting = server.create_meeting("Phiên họp thường kỳ").await?;
    let mut chair = person(&server, &meeting, "Chủ tịch", "chair").await?;
    let mut b = person(&server, &meeting, "Ông B", "member").await?;
    let mut c = person(&server, &meeting, "Bà C", "member").await?;
    let mut d = person(&server, &meeting, "Ông D", "member").await?;

    // Tie 2-2: the chair voted for, so it passes (named poll).
    ok(
        &mut chair.ws,
        json!({"type": "open_vote", "question": "Phương án A"}),
    )
    .await?;
    let pid = opened(&mut b.ws).await?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    ok(&mut chair.ws, vote(&pid, "for")).await?;
    ok(&mut b.ws, vote(&pid, "for")).await?;
    ok(&mut c.ws, vote(&pid, "against")).await?;
    ok(&mut d.ws, vote(&pid, "against")).await?;
    ok(&mut chair.ws, json!({"type": "close_vote", "poll_id": pid})).await?;
    let o = d.ws.recv_type("vote_closed").await?["poll"]["outcome"].clone();
    ensure!(o["base"] == 4 && o["needed"] == 3, "{o}");
    ensure!(
        o["tie_broken_by_chair"] == true && o["passed"] == true,
        "{o}"
    );

    // Secret: the chair sees counts, never names; what the server records
    // of a secret ballot carries no choice.
    ok(
        &mut chair.ws,
        json!({"type": "open_vote", "question": "Nhân sự", "secret": true}),
    )
    .await?;
    let sid = opened(&mut b.ws).await?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    ok(&mut b.ws, vote(&sid, "against")).await?;
    ok(&mut c.ws, vote(&sid, "for")).await?;
    let p = loop {
        let p = chair.ws.recv_type("vote_progress").await?;
        if p["voted"] == 2 {
            break p;
        }
    };
    ensure!(p["voters"].is_null(), "no names in a secret poll: {p}");
    // Two members leave: 2 of 4 present, below the quorum of 3.
    d.ws.request(json!({"type": "leave"})).await?;
    c.ws.request(json!({"type": "leave"})).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ok(&mut chair.ws, json!({"type": "close_vote", "poll_id": sid})).await?;
    let o = b.ws.recv_type("vote_closed").await?["poll"]["outcome"].clone();
    ensure!(
        o["tally"] == json!({"for": 1, "against": 1, "abstain": 0}),
        "{o}"
    );
    ensure!(o["present_members"] == 2 && o["quorum_needed"] == 3, "{o}");
    ensure!(o["quorum_met"] == false && o["passed"] == false, "{o}");

    let admin = server.staff_token("quantri", "admin").await?;
    let audit: Value = reqwest::Client::new()
        .get(format!("{}/api/audit?limit=500", server.base_url()))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    let entries = audit["entries"].as_array().context("entries")?;
    let secret_rows: Vec<&Value> = entries
        .iter()
        .filter(|e| e.to_string().contains(&sid))
        .collect();
    ensure!(
        !secret_rows.is_empty(),
        "the secret poll is in the audit log"
    );
    for e in &secret_rows {
        if e["action"] == "poll.close" {
            continue; // the counts only
        }
        let text = e["detail"].to_string();
        ensure!(
            !text.contains("\"for\"") && !text.contains("\"against\"") && !text.contains("choice"),
            "a secret ballot's audit entry names a choice: {e}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_acknowledged_ballot_survives_sigkill() -> Result<()> {
    let mut server = TestServer::start().await?;
    let meeting = server.create_meeting("Biểu quyết trước sự cố").await?;
    let mut chair = person(&server, &meeting, "Chủ tịch", "chair").await?;
    let mut b = person(&server, &meeting, "Ông B", "member").await?;
    let c = person(&server, &meeting, "Bà C", "member").await?;
    ok(
        &mut chair.ws,
        json!({"type": "open_vote", "question": "Dự toán ngân sách"}),
    )
    .await?;
    let pid = opened(&mut b.ws).await?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    ok(&mut b.ws, vote(&pid, "for")).await?;
    ok(&mut chair.ws, vote(&pid, "against")).await?;

    server.kill_hard().await?;
    server.restart().await?;

    // B comes back: its card, marked voted; a second ballot is refused.
    let mut b2 = WsClient::connect(&server.ws_url()).await?;
    b2.hello_and_join(&b.token).await?;
    let card = b2.recv_type("vote_opened").await?;
    ensure!(card["voted"] == true && card["poll"]["id"] == pid, "{card}");
    ensure!(code(&mut b2, vote(&pid, "against")).await? == "already_voted");
    // C had not voted: its card comes back open, and it votes.
    let mut c2 = WsClient::connect(&server.ws_url()).await?;
    c2.hello_and_join(&c.token).await?;
    let card = c2.recv_type("vote_opened").await?;
    ensure!(card["voted"] == false, "{card}");
    ok(&mut c2, vote(&pid, "for")).await?;
    let mut chair2 = WsClient::connect(&server.ws_url()).await?;
    chair2.hello_and_join(&chair.token).await?;
    // The chair's console gets the progress with the names at once.
    let p = chair2.recv_type("vote_progress").await?;
    ensure!(
        p["voted"] == 3 && p["voters"].as_array().map(Vec::len) == Some(3),
        "{p}"
    );
    ok(&mut chair2, json!({"type": "close_vote", "poll_id": pid})).await?;
    let o = c2.recv_type("vote_closed").await?["poll"]["outcome"].clone();
    ensure!(
        o["tally"] == json!({"for": 2, "against": 1, "abstain": 0}),
        "every ballot once: {o}"
    );
    Ok(())
}
