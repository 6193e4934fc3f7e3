//! An invitation's in-app notices ("Thông báo") in real Chromium, on a real
//! server without e-mail (`tests/e2e/notices.mjs`): the secretary makes a
//! meeting, invites a commune, schedules the meeting (the invitation
//! counts as sent from then), and a second later adds a document; the
//! commune opens its join link on a tablet (768x1024) and its notices list
//! the new document by its title and the invitation, newest first, as
//! `GET /api/invitation/notices` gives them; the CSP blocks nothing.
//!
//! Needs what `browser.rs` needs (node, npm, Chromium).

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
use giaoban_tests::TestServer;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

mod doc_fixtures;

const DOC_TITLE: &str = "Báo cáo tình hình kinh tế – xã hội tháng 12";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The answer of a request, which must have succeeded.
async fn json_ok(req: reqwest::RequestBuilder) -> Result<Value> {
    let r = req.send().await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    ensure!(status.is_success(), "{status}: {v}");
    Ok(v)
}

#[tokio::test]
async fn invitation_notices_on_the_join_page_in_chromium() -> Result<()> {
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let server = TestServer::start().await?;
    let password = "Thư-ký thông báo 2026!";
    server
        .add_user("thuky.notices", "secretary", password)
        .await?;
    let token = server.login("thuky.notices", password).await?;
    let http = reqwest::Client::new();
    let base = server.base_url();
    let post = |path: &str, body: Value| {
        json_ok(
            http.post(format!("{base}{path}"))
                .bearer_auth(&token)
                .json(&body),
        )
    };

    let bp = post(
        "/api/bridge-points",
        json!({"name": "UBND xã Ea Tiêu", "level": "commune"}),
    )
    .await?;
    let m = post(
        "/api/meetings",
        json!({"title": "Giao ban tháng 12", "location": "Hội trường UBND tỉnh",
               "starts_at": now() + 3 * 86_400, "ends_at": now() + 3 * 86_400 + 3 * 3600}),
    )
    .await?;
    let mid = m["id"].as_str().context("meeting id")?.to_owned();
    let inv = post(
        &format!("/api/meetings/{mid}/invitations"),
        json!({"name": "UBND xã Ea Tiêu", "role": "bridge", "bridge_point_id": bp["id"]}),
    )
    .await?;
    let url = inv["url"].as_str().context("url")?;
    let hash = url.find("/join#").context("a join link")?;
    let link = format!("{base}{}", &url[hash..]);
    let invitee = &url[hash + "/join#".len()..];
    // Without e-mail the invitation counts as sent when the meeting is
    // scheduled.
    post(
        &format!("/api/meetings/{mid}/status"),
        json!({"status": "scheduled"}),
    )
    .await?;
    // A document after the invitation (times are whole seconds).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let item = post(
        &format!("/api/meetings/{mid}/agenda"),
        json!({"title": "Tình hình kinh tế – xã hội"}),
    )
    .await?;
    let item_id = item["id"].as_str().context("agenda item id")?;
    let form = Form::new().text("title", DOC_TITLE).part(
        "file",
        Part::bytes(doc_fixtures::pdf("notices")).file_name("bao-cao.pdf"),
    );
    json_ok(
        http.post(format!("{base}/api/agenda/{item_id}/documents"))
            .bearer_auth(&token)
            .multipart(form),
    )
    .await?;

    // What the page will show, over REST first.
    let notices = json_ok(
        http.get(format!("{base}/api/invitation/notices"))
            .bearer_auth(invitee),
    )
    .await?;
    let kinds: Vec<&str> = notices["notices"]
        .as_array()
        .context("notices")?
        .iter()
        .filter_map(|n| n["kind"].as_str())
        .collect();
    ensure!(kinds == ["documents_changed", "invitation"], "{notices}");
    ensure!(notices["notices"][0]["title"] == DOC_TITLE, "{notices}");

    let run = run_script(
        "notices.mjs",
        &[link.as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", "30000".to_owned()),
            ("E2E_DOC_TITLE", DOC_TITLE.to_owned()),
        ],
        Duration::from_secs(180),
    )
    .await?;
    ensure!(
        run.status.success(),
        "notices.mjs failed: {:?}\n{}",
        run.summary,
        tail(&run.stderr, 40)
    );
    let summary = run.summary.context("no summary")?;
    ensure!(summary["ok"] == true, "{summary}");
    eprintln!("notices shown: {}", summary["items"]);
    Ok(())
}
