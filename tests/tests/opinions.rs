//! Written opinion ballots ("phiếu lấy ý kiến thành viên UBND", docs/api.md
//! "Written opinions") through a real server: the secretariat creates a
//! request, two recipients answer by their links, a second answer is
//! refused (or replaces the first when changes are allowed), the tally and
//! who has not answered, an in-app reminder the recipient sees, answers
//! after the deadline refused and the server closing the request by itself,
//! the outcome stored once; who may do what (staff roles, invitation and
//! staff tokens at the recipient's endpoints, one recipient's token for
//! another request).

use std::time::Duration;

use anyhow::{bail, ensure, Context as _, Result};
use giaoban_tests::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut rq = self.http.request(method, format!("{}{path}", self.base));
        if !token.is_empty() {
            rq = rq.bearer_auth(token);
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await?;
        let status = r.status();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: u16,
    ) -> Result<Value> {
        let (s, v) = self.call(method.clone(), path, token, body).await?;
        if s.as_u16() != want {
            bail!("{method} {path}: expected {want}, got {s} {v}");
        }
        Ok(v)
    }

    async fn refused(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: u16,
        code: &str,
    ) -> Result<()> {
        let v = self.expect(method.clone(), path, token, body, want).await?;
        ensure!(
            v["code"] == code,
            "{method} {path}: expected {code}, got {v}"
        );
        Ok(())
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The token of each recipient, by name.
fn token_of(created: &Value, name: &str) -> Result<String> {
    let r = created["recipients"]
        .as_array()
        .context("recipients")?
        .iter()
        .find(|r| r["name"] == name)
        .with_context(|| format!("no recipient {name} in {created}"))?;
    let url = r["url"].as_str().context("url")?;
    let token = r["token"].as_str().context("token")?;
    ensure!(
        url.ends_with(&format!("/opinion#{token}")),
        "link {url} does not carry the token"
    );
    Ok(token.to_owned())
}

#[tokio::test]
async fn written_opinions_end_to_end() -> Result<()> {
    let server = TestServer::start().await?;
    let r = run(&server).await;
    if r.is_err() {
        eprintln!("server log:\n{}", server.log());
    }
    r
}

async fn run(server: &TestServer) -> Result<()> {
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base_url(),
    };
    let secretary = server.staff_token("thuky", "secretary").await?;
    let operator = server.staff_token("vanhanh", "operator").await?;
    let meeting = server.create_meeting("Giao ban").await?;
    let invitation_url = server.invite(&meeting, "Ủy viên", "member").await?;
    let invitation = giaoban_tests::token_of(&invitation_url)?.to_owned();

    // Who may create: the secretariat, not operators nor invitees.
    let body = json!({
        "title": "Lấy ý kiến về đề án chuyển đổi số",
        "question": "Đồng chí có đồng ý thông qua đề án không?",
        "deadline": now() + 3600,
        "recipients": [
            {"name": "Nguyễn Văn A", "chair": true},
            {"name": "Trần Thị B"},
            {"name": "Lê Văn C"},
            {"name": "Phạm Thị D"}
        ]
    });
    for (token, code) in [(&operator, "forbidden"), (&invitation, "forbidden")] {
        api.refused(
            Method::POST,
            "/api/opinions",
            token,
            Some(body.clone()),
            403,
            code,
        )
        .await?;
    }
    api.refused(
        Method::POST,
        "/api/opinions",
        "",
        Some(body.clone()),
        401,
        "unauthorized",
    )
    .await?;
    let mut past = body.clone();
    past["deadline"] = json!(now() - 5);
    api.refused(
        Method::POST,
        "/api/opinions",
        &secretary,
        Some(past),
        400,
        "invalid_input",
    )
    .await?;

    let created = api
        .expect(
            Method::POST,
            "/api/opinions",
            &secretary,
            Some(body.clone()),
            201,
        )
        .await?;
    let id = created["request"]["id"].as_str().context("id")?.to_owned();
    ensure!(created["request"]["rule"] == "all_members_majority");
    ensure!(created["request"]["committee_members"] == 4);
    let a = token_of(&created, "Nguyễn Văn A")?;
    let b = token_of(&created, "Trần Thị B")?;
    let c = token_of(&created, "Lê Văn C")?;

    // The recipient's view: the question, no answer, can answer.
    let v = api
        .expect(Method::GET, "/api/opinion", &b, None, 200)
        .await?;
    ensure!(v["request"]["question"] == body["question"], "{v}");
    ensure!(v["recipient"]["name"] == "Trần Thị B" && v["recipient"]["answer"].is_null());
    ensure!(v["can_answer"] == true && v["request"]["outcome"].is_null());

    // Other tokens at the recipient's endpoints; an opinion token elsewhere.
    for (t, code) in [
        (&secretary, "token_invalid"),
        (&invitation, "token_invalid"),
        (&"garbage".to_owned(), "token_invalid"),
    ] {
        api.refused(Method::GET, "/api/opinion", t, None, 401, code)
            .await?;
    }
    api.refused(Method::GET, "/api/opinion", "", None, 401, "unauthorized")
        .await?;
    api.refused(
        Method::GET,
        &format!("/api/opinions/{id}"),
        &b,
        None,
        401,
        "token_invalid",
    )
    .await?;
    api.refused(
        Method::GET,
        &format!("/api/meetings/{meeting}"),
        &b,
        None,
        401,
        "token_invalid",
    )
    .await?;

    // Two answers; another opinion needs a comment; no second answer.
    api.refused(
        Method::PUT,
        "/api/opinion/answer",
        &c,
        Some(json!({"answer": "other"})),
        400,
        "invalid_input",
    )
    .await?;
    let v = api
        .expect(
            Method::PUT,
            "/api/opinion/answer",
            &a,
            Some(json!({"answer": "agree", "comment": "Nhất trí"})),
            200,
        )
        .await?;
    ensure!(
        v["recipient"]["answer"]["answer"] == "agree" && v["can_answer"] == false,
        "{v}"
    );
    api.expect(
        Method::PUT,
        "/api/opinion/answer",
        &c,
        Some(json!({"answer": "other", "comment": "Cần bổ sung kinh phí"})),
        200,
    )
    .await?;
    api.refused(
        Method::PUT,
        "/api/opinion/answer",
        &a,
        Some(json!({"answer": "disagree"})),
        409,
        "already_voted",
    )
    .await?;

    // The secretariat: the tally and who has not answered (operators read,
    // without the links).
    let d = api
        .expect(
            Method::GET,
            &format!("/api/opinions/{id}"),
            &secretary,
            None,
            200,
        )
        .await?;
    ensure!(
        d["request"]["tally"] == json!({"for": 1, "against": 0, "abstain": 1}),
        "{d}"
    );
    ensure!(d["request"]["answered"] == 2);
    ensure!(
        d["not_answered"] == json!(["Trần Thị B", "Phạm Thị D"]),
        "{d}"
    );
    let od = api
        .expect(
            Method::GET,
            &format!("/api/opinions/{id}"),
            &operator,
            None,
            200,
        )
        .await?;
    ensure!(od["recipients"][0]["url"].is_null() && od["recipients"][0]["token"].is_null());
    ensure!(od["recipients"][0]["answer"]["comment"] == "Nhất trí");
    let list = api
        .expect(Method::GET, "/api/opinions", &operator, None, 200)
        .await?;
    ensure!(list[0]["id"] == id.as_str() && list[0]["tally"]["for"] == 1);
    api.refused(
        Method::GET,
        "/api/opinions",
        &invitation,
        None,
        403,
        "forbidden",
    )
    .await?;

    // A reminder: only the operator may not; B's page shows it.
    api.refused(
        Method::POST,
        &format!("/api/opinions/{id}/remind"),
        &operator,
        Some(json!({})),
        403,
        "forbidden",
    )
    .await?;
    let sent = api
        .expect(
            Method::POST,
            &format!("/api/opinions/{id}/remind"),
            &secretary,
            Some(json!({"message": "Đề nghị trả lời trước hạn"})),
            200,
        )
        .await?;
    ensure!(
        sent["reminders"].as_array().map(Vec::len) == Some(2),
        "{sent}"
    );
    let v = api
        .expect(Method::GET, "/api/opinion", &b, None, 200)
        .await?;
    ensure!(
        v["reminders"][0]["message"] == "Đề nghị trả lời trước hạn",
        "{v}"
    );
    api.expect(
        Method::PUT,
        "/api/opinion/answer",
        &b,
        Some(json!({"answer": "disagree"})),
        200,
    )
    .await?;

    // Closed by the secretariat: 1 for of 4 members does not pass; the
    // outcome does not change; no answer afterwards.
    api.refused(
        Method::POST,
        &format!("/api/opinions/{id}/close"),
        &operator,
        None,
        403,
        "forbidden",
    )
    .await?;
    let closed = api
        .expect(
            Method::POST,
            &format!("/api/opinions/{id}/close"),
            &secretary,
            None,
            200,
        )
        .await?;
    let o = &closed["request"]["outcome"];
    ensure!(
        o["passed"] == false && o["base"] == 4 && o["needed"] == 3 && o["quorum_met"] == true,
        "{closed}"
    );
    ensure!(o["tally"] == json!({"for": 1, "against": 1, "abstain": 1}));
    let d = token_of(&created, "Phạm Thị D")?;
    api.refused(
        Method::PUT,
        "/api/opinion/answer",
        &d,
        Some(json!({"answer": "agree"})),
        409,
        "poll_closed",
    )
    .await?;
    let again = api
        .expect(
            Method::POST,
            &format!("/api/opinions/{id}/close"),
            &secretary,
            None,
            200,
        )
        .await?;
    ensure!(
        again["request"]["outcome"] == *o
            && again["request"]["closed_at"] == closed["request"]["closed_at"]
    );
    api.refused(
        Method::POST,
        &format!("/api/opinions/{id}/remind"),
        &secretary,
        Some(json!({})),
        409,
        "poll_closed",
    )
    .await?;
    let v = api
        .expect(Method::GET, "/api/opinion", &a, None, 200)
        .await?;
    ensure!(v["request"]["status"] == "closed" && v["request"]["outcome"]["passed"] == false);

    // Changes allowed, a short deadline: a change replaces the answer; after
    // the deadline answers are refused, and the server closes it.
    let short = json!({
        "title": "Ý kiến nhanh",
        "question": "Đồng ý điều chỉnh lịch họp?",
        "deadline": now() + 4,
        "allow_changes": true,
        "rule": "present_majority",
        "recipients": [{"name": "X"}, {"name": "Y"}, {"name": "Z"}]
    });
    let created2 = api
        .expect(Method::POST, "/api/opinions", &secretary, Some(short), 201)
        .await?;
    let id2 = created2["request"]["id"].as_str().context("id")?.to_owned();
    let x = token_of(&created2, "X")?;
    let z = token_of(&created2, "Z")?;
    api.expect(
        Method::PUT,
        "/api/opinion/answer",
        &x,
        Some(json!({"answer": "disagree"})),
        200,
    )
    .await?;
    let v = api
        .expect(
            Method::PUT,
            "/api/opinion/answer",
            &x,
            Some(json!({"answer": "agree", "comment": "Đổi ý"})),
            200,
        )
        .await?;
    ensure!(
        v["recipient"]["answer"]["answer"] == "agree"
            && v["recipient"]["answer"]["changes"] == 1
            && v["can_answer"] == true,
        "{v}"
    );
    // A token of one request does not answer another.
    let v = api
        .expect(Method::GET, "/api/opinion", &x, None, 200)
        .await?;
    ensure!(v["request"]["id"] == id2.as_str());
    tokio::time::sleep(Duration::from_secs(5)).await;
    api.refused(
        Method::PUT,
        "/api/opinion/answer",
        &z,
        Some(json!({"answer": "agree"})),
        409,
        "poll_closed",
    )
    .await?;
    // The sweep closes it within seconds of the deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let d = loop {
        let d = api
            .expect(
                Method::GET,
                &format!("/api/opinions/{id2}"),
                &secretary,
                None,
                200,
            )
            .await?;
        if d["request"]["status"] == "closed" {
            break d;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "not closed at the deadline: {d}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    ensure!(d["request"]["closed_by"] == "system:deadline", "{d}");
    let o = &d["request"]["outcome"];
    // Present majority: 1 answered, 1 for: passes.
    ensure!(
        o["passed"] == true && o["base"] == 1 && o["present_members"] == 1,
        "{d}"
    );
    ensure!(d["not_answered"] == json!(["Y", "Z"]), "{d}");

    // The audit log has every step.
    let admin = server.staff_token("quantri", "admin").await?;
    let log = api
        .expect(
            Method::GET,
            &format!("/api/audit?target_type=opinion_request&target_id={id}"),
            &admin,
            None,
            200,
        )
        .await?;
    let text = log.to_string();
    for action in [
        "opinion.create",
        "opinion.answer",
        "opinion.remind",
        "opinion.close",
    ] {
        ensure!(text.contains(action), "no {action} in {log}");
    }
    Ok(())
}
