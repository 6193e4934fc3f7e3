//! End to end in real Chromium: a committee member answers a written
//! opinion request from its link (`tests/e2e/opinion_page.mjs`): the page
//! shows the question, the deadline and the secretariat's reminder, refuses
//! "other" without a comment, sends it with one, keeps it after a reload
//! and offers no second answer; the secretariat's page shows the answer
//! and who has not answered.
//!
//! Needs what `browser.rs` needs (node, npm, Chromium).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, ensure_node_modules, run_script, tail};
use serde_json::{json, Value};

const STEP_TIMEOUT_MS: u64 = 20_000;
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_answers_a_written_opinion_from_its_link() -> Result<()> {
    let chromium = chromium()?;
    ensure_node_modules(&giaoban_tests::e2e::e2e_dir()).await?;
    let server = giaoban_tests::TestServer::start().await?;
    let staff = server.staff_token("thuky.e2e", "secretary").await?;
    let http = reqwest::Client::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let created: Value = http
        .post(format!("{}/api/opinions", server.base_url()))
        .bearer_auth(&staff)
        .json(&json!({
            "title": "Lấy ý kiến về đề án chuyển đổi số",
            "question": "Đồng chí có đồng ý thông qua đề án chuyển đổi số năm 2026 không?",
            "deadline": now + 2 * 86400,
            "recipients": [{"name": "Nguyễn Văn A", "chair": true}, {"name": "Trần Thị B"}]
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["request"]["id"].as_str().context("id")?.to_owned();
    let a = &created["recipients"][0];
    ensure!(a["name"] == "Nguyễn Văn A", "{created}");
    let url = a["url"].as_str().context("url")?.to_owned();
    let a_id = a["id"].as_str().context("recipient id")?.to_owned();
    http.post(format!("{}/api/opinions/{id}/remind", server.base_url()))
        .bearer_auth(&staff)
        .json(&json!({"recipient_ids": [a_id], "message": "Đề nghị đồng chí trả lời trước hạn"}))
        .send()
        .await?
        .error_for_status()?;

    let run = run_script(
        "opinion_page.mjs",
        &[url.as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", STEP_TIMEOUT_MS.to_string()),
            ("E2E_USERNAME", "thuky.e2e".to_owned()),
            ("E2E_PASSWORD", "thuky.e2e-mật-khẩu".to_owned()),
            ("E2E_OPINION", id.clone()),
        ],
        SCRIPT_TIMEOUT,
    )
    .await?;
    if !run.status.success() {
        bail!(
            "the opinion page test failed ({}): {}\n--- stderr ---\n{}\n--- server log (tail) ---\n{}",
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
    ensure!(s["legend"] == "Ý kiến của đồng chí", "legend: {s}");
    ensure!(s["before"] == "Đồng chí chưa gửi ý kiến.", "before: {s}");
    ensure!(
        s["question"]
            .as_str()
            .is_some_and(|q| q.contains("chuyển đổi số năm 2026")),
        "question: {s}"
    );
    ensure!(
        s["countdown"]
            .as_str()
            .is_some_and(|c| c.starts_with("còn 1 ngày") || c.starts_with("còn 2 ngày")),
        "countdown: {s}"
    );
    ensure!(
        s["reminder"]
            .as_str()
            .is_some_and(|r| r.contains("Đề nghị đồng chí trả lời trước hạn")),
        "reminder: {s}"
    );
    ensure!(
        s["missing_comment"] == "Hãy ghi ý kiến cụ thể.",
        "missing comment: {s}"
    );
    for k in ["after", "reloaded"] {
        ensure!(
            s[k].as_str()
                .is_some_and(|t| t.contains("Ý kiến khác") && t.contains("kinh phí")),
            "{k}: {s}"
        );
    }
    ensure!(
        s["form_hidden_after"] == true && s["form_hidden_reloaded"] == true,
        "a second answer is offered: {s}"
    );
    for k in ["csp", "admin_csp"] {
        ensure!(
            s[k].as_array().is_some_and(Vec::is_empty),
            "CSP violations ({k}): {}",
            s[k]
        );
    }
    let adm = &s["admin"];
    ensure!(
        adm["answer"] == "Ý kiến khác" && adm["not_answered"] == "Trần Thị B",
        "admin: {adm}"
    );
    ensure!(
        adm["tally"]
            .as_str()
            .is_some_and(|t| t.contains("Khác 1") && t.contains("1/2")),
        "admin tally: {adm}"
    );
    ensure!(
        s["admin_list"]
            .as_str()
            .is_some_and(|t| t.contains("Lấy ý kiến về đề án chuyển đổi số")),
        "admin list: {s}"
    );

    // Stored as sent.
    let d: Value = http
        .get(format!("{}/api/opinions/{id}", server.base_url()))
        .bearer_auth(&staff)
        .send()
        .await?
        .json()
        .await?;
    let ans = &d["recipients"][0]["answer"];
    ensure!(
        ans["answer"] == "other" && ans["comment"] == "Đề nghị bổ sung nguồn kinh phí",
        "stored: {d}"
    );
    Ok(())
}
