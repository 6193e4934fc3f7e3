//! The secretariat's attendance ("Điểm danh") and votes ("Biểu quyết") tabs
//! in real Chromium at 768 px (`tests/e2e/attendance_page.mjs`): a bridge
//! point joined with its declared leader shows present, the secretary marks
//! a member excused and the summary changes, the CSV downloads, and the
//! closed named vote shows its outcome and ballots.

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
use giaoban_tests::{token_of, TestServer, WsClient};
use serde_json::{json, Value};

/// Joins `name` as `role`; returns its socket and its invitation id.
async fn join(
    server: &TestServer,
    admin: &str,
    meeting: &str,
    name: &str,
    role: &str,
) -> Result<(WsClient, String)> {
    let url = server.invite(meeting, name, role).await?;
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    ws.hello_and_join(token_of(&url)?).await?;
    Ok((ws, invitation_id(server, admin, meeting, name).await?))
}

async fn invitation_id(
    server: &TestServer,
    admin: &str,
    meeting: &str,
    name: &str,
) -> Result<String> {
    let v: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/meetings/{meeting}/invitations",
            server.base_url()
        ))
        .bearer_auth(admin)
        .send()
        .await?
        .json()
        .await?;
    let list = v
        .as_array()
        .or_else(|| v["invitations"].as_array())
        .context("invitations")?;
    list.iter()
        .find(|i| i["name"] == name)
        .and_then(|i| i["id"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no invitation named {name} in {v}"))
}

async fn ok(c: &mut WsClient, msg: Value) -> Result<()> {
    let r = c.request(msg.clone()).await?;
    ensure!(r["type"] == "ok", "{msg} answered {r}");
    Ok(())
}

#[tokio::test]
async fn attendance_and_votes_tabs_in_chromium() -> Result<()> {
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let server = TestServer::start().await?;
    let admin = server.staff_token("admin", "admin").await?;
    let password = "Thư-ký e2e 2026!";
    server.add_user("thuky.e2e", "secretary", password).await?;
    let meeting = server
        .create_meeting("Phiên họp UBND tỉnh tháng 12")
        .await?;

    let (mut chair, _) = join(&server, &admin, &meeting, "Chủ tịch UBND tỉnh", "chair").await?;
    let (mut member, _) = join(&server, &admin, &meeting, "Ông Trần Văn B", "member").await?;
    // Invited, not joined: the secretary excuses her.
    server.invite(&meeting, "Bà Lê Thị C", "member").await?;
    let absent = invitation_id(&server, &admin, &meeting, "Bà Lê Thị C").await?;
    let (mut bridge, bridge_inv) =
        join(&server, &admin, &meeting, "UBND xã Ea Tiêu", "bridge").await?;
    let leader = "Ông Nguyễn Văn A, Chủ tịch UBND xã";
    ok(
        &mut bridge,
        json!({"type": "declare_attendance", "leader": leader, "attendees": 12}),
    )
    .await?;

    // A named vote: the chair and the member present vote for; closed.
    ok(
        &mut chair,
        json!({"type": "open_vote", "question": "Thông qua Kế hoạch năm 2027"}),
    )
    .await?;
    let poll = chair.recv_type("vote_opened").await?["poll"]["id"]
        .as_str()
        .context("poll id")?
        .to_owned();
    for c in [&mut chair, &mut member] {
        ok(
            c,
            json!({"type": "cast_vote", "poll_id": poll, "choice": "for"}),
        )
        .await?;
    }
    ok(&mut chair, json!({"type": "close_vote", "poll_id": poll})).await?;

    let base = server.base_url();
    let args: [&std::ffi::OsStr; 2] = [base.as_ref(), meeting.as_ref()];
    let env = [
        ("CHROMIUM_PATH", chromium),
        ("E2E_TIMEOUT_MS", "20000".to_owned()),
        ("E2E_USERNAME", "thuky.e2e".to_owned()),
        ("E2E_PASSWORD", password.to_owned()),
        ("E2E_BRIDGE_INVITATION", bridge_inv),
        ("E2E_LEADER", leader.to_owned()),
        ("E2E_MEMBER_INVITATION", absent.clone()),
        ("E2E_POLL_ID", poll),
    ];
    let script = run_script("attendance_page.mjs", &args, &env, Duration::from_secs(240));
    tokio::pin!(script);
    // The sockets stay active (the server closes idle ones after 40 s).
    let run = loop {
        tokio::select! {
            r = &mut script => break r?,
            () = tokio::time::sleep(Duration::from_secs(10)) => {
                for c in [&mut chair, &mut member, &mut bridge] {
                    c.send(json!({"type": "ping"})).await?;
                }
            }
        }
    };
    ensure!(
        run.status.success(),
        "attendance_page.mjs failed: {:?}\n{}",
        run.summary,
        tail(&run.stderr, 40)
    );
    let summary = run.summary.context("no summary")?;
    ensure!(summary["ok"] == true, "{summary}");
    ensure!(
        summary["steps"].as_array().map(Vec::len) == Some(7),
        "{summary}"
    );

    // The mark is on record.
    let report: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/meetings/{meeting}/attendance",
            server.base_url()
        ))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    let row = report["rows"]
        .as_array()
        .context("rows")?
        .iter()
        .find(|r| r["invitation_id"] == absent.as_str())
        .context("the excused member's row")?;
    ensure!(
        row["mark"] == "excused" && row["note"] == "Đi công tác, được Chủ tịch đồng ý",
        "{row}"
    );
    ensure!(report["summary"]["excused"] == 1, "{report}");
    Ok(())
}
