//! Live votes read over REST (docs/api.md, "Votes") through a real server:
//! polls opened, cast and closed over the WebSocket, then
//! `GET /api/meetings/{id}/polls` and `GET /api/polls/{id}` with every kind
//! of caller (staff roles, the chair's, secretary's, a member's and a
//! bridge point's invitation, an invitation of another meeting, nobody);
//! no choice and no count while a poll is open; a named poll's ballots; a
//! secret poll's voters, never next to a choice; an unknown poll.

use anyhow::{bail, ensure, Context as _, Result};
use giaoban_tests::{token_of, TestServer, WsClient};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, path: &str, token: &str) -> Result<(StatusCode, Value)> {
        let mut rq = self.http.get(format!("{}{path}", self.base));
        if !token.is_empty() {
            rq = rq.bearer_auth(token);
        }
        let r = rq.send().await?;
        let status = r.status();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn ok(&self, path: &str, token: &str) -> Result<Value> {
        let (s, v) = self.get(path, token).await?;
        if s != StatusCode::OK {
            bail!("GET {path}: expected 200, got {s} {v}");
        }
        Ok(v)
    }

    async fn refused(&self, path: &str, token: &str, status: u16, code: &str) -> Result<()> {
        let (s, v) = self.get(path, token).await?;
        ensure!(
            s.as_u16() == status && v["code"] == code,
            "GET {path}: expected {status} {code}, got {s} {v}"
        );
        Ok(())
    }
}

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

fn vote(poll: &str, choice: &str) -> Value {
    json!({"type": "cast_vote", "poll_id": poll, "choice": choice})
}

/// Every object in `v` (at any depth) that has a `name` has no `choice`
/// and no counter of a choice.
fn no_choice_by_a_name(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            let named = m.contains_key("name");
            let tells = ["choice", "for", "against", "abstain"]
                .iter()
                .any(|k| m.contains_key(*k));
            !(named && tells) && m.values().all(no_choice_by_a_name)
        }
        Value::Array(a) => a.iter().all(no_choice_by_a_name),
        _ => true,
    }
}

#[tokio::test]
async fn polls_read_over_rest_by_every_kind_of_caller() -> Result<()> {
    let server = TestServer::start().await?;
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base_url(),
    };
    let admin = server.staff_token("admin", "admin").await?;
    let secretary = server.staff_token("thuky", "secretary").await?;
    let operator = server.staff_token("vanhanh", "operator").await?;
    let meeting = server.create_meeting("Phiên họp UBND tỉnh").await?;
    let mut chair = person(&server, &meeting, "Chủ tịch", "chair").await?;
    let mut b = person(&server, &meeting, "Ông B", "member").await?;
    let mut c = person(&server, &meeting, "Bà C", "member").await?;
    let sec = person(&server, &meeting, "Văn phòng", "secretary").await?;
    let bridge = person(&server, &meeting, "Xã A", "bridge").await?;
    let other_meeting = server.create_meeting("Họp khác").await?;
    let other = token_of(&server.invite(&other_meeting, "Xã Z", "bridge").await?)?.to_owned();
    let list = format!("/api/meetings/{meeting}/polls");

    // No poll yet.
    ensure!(api.ok(&list, &admin).await? == json!([]));

    // A named poll: while it is open, who voted but no choice, no count.
    ok(
        &mut chair.ws,
        json!({"type": "open_vote", "question": "Thông qua kế hoạch năm 2027"}),
    )
    .await?;
    let named = chair.ws.recv_type("vote_opened").await?["poll"]["id"]
        .as_str()
        .context("poll id")?
        .to_owned();
    let details = format!("/api/polls/{named}");
    ok(&mut b.ws, vote(&named, "for")).await?;
    let open = api.ok(&details, &admin).await?;
    ensure!(
        open["poll"]["status"] == "open" && open["tally"].is_null() && open["voters"].is_null(),
        "{open}"
    );
    ensure!(
        open["ballots"]
            == json!([{"invitation_id": open["ballots"][0]["invitation_id"],
            "name": "Ông B", "role": "member", "choice": null}]),
        "{open}"
    );
    let listed = api.ok(&list, &bridge.token).await?;
    ensure!(
        listed[0]["voted"] == 1 && listed[0]["outcome"].is_null(),
        "{listed}"
    );
    ok(&mut chair.ws, vote(&named, "for")).await?;
    ok(&mut c.ws, vote(&named, "against")).await?;
    ok(
        &mut chair.ws,
        json!({"type": "close_vote", "poll_id": named}),
    )
    .await?;

    // The list, with the outcome, for staff and every invitee of the meeting.
    for token in [
        &admin,
        &secretary,
        &operator,
        &chair.token,
        &sec.token,
        &b.token,
        &bridge.token,
    ] {
        let polls = api.ok(&list, token).await?;
        let p = &polls[0];
        ensure!(polls.as_array().map(Vec::len) == Some(1), "{polls}");
        ensure!(p["id"] == named.as_str() && p["status"] == "closed", "{p}");
        let o = &p["outcome"];
        ensure!(
            o["tally"] == json!({"for": 2, "against": 1, "abstain": 0}),
            "{o}"
        );
        // Three members (chair included): 2 needed of all 3, quorum 2.
        ensure!(
            o["base"] == 3 && o["needed"] == 2 && o["quorum_needed"] == 2,
            "{o}"
        );
        ensure!(o["quorum_met"] == true && o["passed"] == true, "{o}");
    }
    api.refused(&list, &other, 403, "forbidden").await?;
    api.refused(&list, "", 401, "unauthorized").await?;
    api.refused(
        "/api/meetings/no-such-meeting/polls",
        &admin,
        404,
        "meeting_not_found",
    )
    .await?;

    // The ballots: staff and the chair's or secretary's invitation.
    for token in [&admin, &secretary, &operator, &chair.token, &sec.token] {
        let d = api.ok(&details, token).await?;
        ensure!(
            d["tally"] == json!({"for": 2, "against": 1, "abstain": 0}),
            "{d}"
        );
        ensure!(
            d["voters"].is_null() && d["poll"]["id"] == named.as_str(),
            "{d}"
        );
        let ballots: Vec<(String, String, String)> = d["ballots"]
            .as_array()
            .context("ballots")?
            .iter()
            .map(|x| {
                (
                    x["name"].as_str().unwrap_or_default().to_owned(),
                    x["role"].as_str().unwrap_or_default().to_owned(),
                    x["choice"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let want = [
            ("Bà C", "member", "against"),
            ("Chủ tịch", "chair", "for"),
            ("Ông B", "member", "for"),
        ];
        ensure!(
            ballots
                == want
                    .iter()
                    .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
                    .collect::<Vec<_>>(),
            "{ballots:?}"
        );
    }
    // A bridge point or a member reads the outcome, not the ballots.
    api.refused(&details, &bridge.token, 403, "forbidden")
        .await?;
    api.refused(&details, &b.token, 403, "forbidden").await?;
    api.refused(&details, &other, 403, "forbidden").await?;
    api.refused(&details, "", 401, "unauthorized").await?;
    // An unknown poll: staff learn it does not exist, invitees only that
    // they may not.
    api.refused("/api/polls/no-such-poll", &admin, 404, "poll_not_found")
        .await?;
    api.refused("/api/polls/no-such-poll", &operator, 404, "poll_not_found")
        .await?;
    api.refused("/api/polls/no-such-poll", &chair.token, 403, "forbidden")
        .await?;

    // A secret poll: who voted and the counts, never a choice by a name.
    ok(
        &mut chair.ws,
        json!({"type": "open_vote", "question": "Bầu trưởng ban", "secret": true}),
    )
    .await?;
    let secret = loop {
        let p = chair.ws.recv_type("vote_opened").await?;
        if p["poll"]["secret"] == true {
            break p["poll"]["id"].as_str().context("poll id")?.to_owned();
        }
    };
    let secret_details = format!("/api/polls/{secret}");
    ok(&mut c.ws, vote(&secret, "against")).await?;
    let open = api.ok(&secret_details, &sec.token).await?;
    ensure!(
        open["tally"].is_null() && open["ballots"].is_null(),
        "{open}"
    );
    ensure!(
        open["voters"]
            == json!([{"invitation_id": open["voters"][0]["invitation_id"],
            "name": "Bà C", "role": "member"}]),
        "{open}"
    );
    ok(&mut b.ws, vote(&secret, "for")).await?;
    ok(&mut chair.ws, vote(&secret, "abstain")).await?;
    ok(
        &mut chair.ws,
        json!({"type": "close_vote", "poll_id": secret}),
    )
    .await?;
    for token in [&admin, &operator, &chair.token, &sec.token] {
        let d = api.ok(&secret_details, token).await?;
        ensure!(
            d["tally"] == json!({"for": 1, "against": 1, "abstain": 1}),
            "{d}"
        );
        ensure!(d["ballots"].is_null(), "{d}");
        let names: Vec<&str> = d["voters"]
            .as_array()
            .context("voters")?
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        ensure!(names == ["Bà C", "Chủ tịch", "Ông B"], "{d}");
        for v in d["voters"].as_array().context("voters")? {
            let keys: Vec<&String> = v.as_object().context("voter")?.keys().collect();
            ensure!(keys == ["invitation_id", "name", "role"], "{v}");
        }
        ensure!(no_choice_by_a_name(&d), "a choice next to a name: {d}");
        ensure!(
            !d.to_string().contains("\"choice\""),
            "a choice in the secret poll's details: {d}"
        );
    }
    api.refused(&secret_details, &bridge.token, 403, "forbidden")
        .await?;
    let polls = api.ok(&list, &bridge.token).await?;
    // Oldest first; both opened within the same second here, so by id.
    let listed = polls.as_array().context("polls")?;
    let p = listed
        .iter()
        .find(|p| p["id"] == secret.as_str())
        .context("the secret poll in the list")?;
    ensure!(listed.len() == 2, "{polls}");
    ensure!(
        p["outcome"]["tally"] == json!({"for": 1, "against": 1, "abstain": 1})
            && p["outcome"]["passed"] == false,
        "{polls}"
    );
    ensure!(no_choice_by_a_name(&polls), "{polls}");
    Ok(())
}
