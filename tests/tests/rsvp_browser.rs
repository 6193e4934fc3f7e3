//! End to end in real Chromium: an invitee answers "Xác nhận tham dự" from
//! its join page (`tests/e2e/rsvp_page.mjs`): it sends a substitute with
//! name and position, a missing name is refused on the page, the answer
//! stays after a reload, and the secretariat's invitations list and its
//! /admin tab (answer column, "N đã trả lời · M chưa trả lời · K cử người
//! dự thay") show it.
//!
//! Needs what `browser.rs` needs (node, npm, Chromium).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, ensure_node_modules, run_script, tail};
use serde_json::Value;

const STEP_TIMEOUT_MS: u64 = 20_000;
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitee_sends_a_substitute_from_its_join_page() -> Result<()> {
    let chromium = chromium()?;
    ensure_node_modules(&giaoban_tests::e2e::e2e_dir()).await?;
    let server = giaoban_tests::TestServer::start().await?;
    let meeting = server.create_meeting("Giao ban tháng 12").await?;
    let url = server
        .invite(&meeting, "UBND xã Quảng Sơn", "bridge")
        .await?;
    let staff = server.staff_token("thuky.e2e", "secretary").await?;

    let run = run_script(
        "rsvp_page.mjs",
        &[url.as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", STEP_TIMEOUT_MS.to_string()),
            ("E2E_USERNAME", "thuky.e2e".to_owned()),
            ("E2E_PASSWORD", "thuky.e2e-mật-khẩu".to_owned()),
            ("E2E_MEETING", meeting.clone()),
        ],
        SCRIPT_TIMEOUT,
    )
    .await?;
    if !run.status.success() {
        bail!(
            "the answer page test failed ({}): {}\n--- stderr ---\n{}\n--- server log (tail) ---\n{}",
            run.status,
            run.summary
                .as_ref()
                .map(|s| s["reason"].to_string())
                .unwrap_or_default(),
            run.stderr,
            tail(&server.log(), 60)
        );
    }
    let s = run
        .summary
        .with_context(|| format!("no JSON summary:\n{}\n{}", run.stdout, run.stderr))?;
    println!("{s}");
    ensure!(s["ok"] == Value::Bool(true), "summary not ok: {s}");
    ensure!(s["legend"] == "Xác nhận tham dự", "legend: {s}");
    ensure!(s["before"] == "Chưa trả lời.", "before: {s}");
    ensure!(
        s["fields_shown"] == true && s["reason_hidden"] == true,
        "fields: {s}"
    );
    ensure!(
        s["missing_name"]
            .as_str()
            .is_some_and(|t| t.contains("người dự thay")),
        "no missing-name message: {s}"
    );
    for k in ["after", "reloaded"] {
        ensure!(
            s[k].as_str()
                .is_some_and(|t| t.contains("Phó Chủ tịch UBND xã")),
            "{k}: {s}"
        );
    }
    ensure!(s["checked"] == "substitute", "checked: {s}");
    ensure!(
        s["csp"].as_array().is_some_and(Vec::is_empty),
        "CSP violations: {}",
        s["csp"]
    );

    // The secretariat's invitations tab shows the answer and the counts.
    let adm = &s["admin"];
    ensure!(
        adm["summary"] == "1 đã trả lời · 0 chưa trả lời · 1 cử người dự thay",
        "admin summary: {adm}"
    );
    ensure!(
        adm["answer"] == "substitute"
            && adm["cell"]
                .as_str()
                .is_some_and(|t| t.contains("Nguyễn Văn B, Phó Chủ tịch UBND xã")),
        "admin cell: {adm}"
    );
    ensure!(
        s["admin_csp"].as_array().is_some_and(Vec::is_empty),
        "CSP violations in /admin: {}",
        s["admin_csp"]
    );

    // The secretariat sees the substitute.
    let list: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/meetings/{meeting}/invitations",
            server.base_url()
        ))
        .bearer_auth(&staff)
        .send()
        .await?
        .json()
        .await?;
    let a = &list[0]["answer"];
    ensure!(
        a["answer"] == "substitute"
            && a["substitute_name"] == "Nguyễn Văn B"
            && a["substitute_position"] == "Phó Chủ tịch UBND xã",
        "staff list: {list}"
    );
    Ok(())
}
