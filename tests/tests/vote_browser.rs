//! End to end in real browsers: a live vote from the meeting page (issue 21).
//!
//! The secretariat prepares a meeting with an agenda item; a chair and two
//! members open their invitations (`tests/e2e/vote_page.mjs`, three
//! browsers with fake cameras and microphones; member 2 on a tablet held
//! upright, 768x1024). The chair starts the meeting and opens a named vote
//! from the console's form; both members vote by clicking on their voting
//! cards (for, against) with a confirmation; member 1 reloads and its card
//! comes back as voted; the chair sees 2/3 with both names, votes for from
//! its own card, closes; all three pages show the result: passed 2-1-0
//! under "more than half of all committee members" (3 members, 2 needed,
//! quorum 2 of 3 met). Run once in Chromium only and once with member 2 in
//! Firefox ESR. In the Chromium run the secretary then seals the minutes
//! from the secretariat page (`tests/e2e/minutes_page.mjs`): the sealed
//! version lists the vote and its result, and `giaoban verify` accepts it.
//!
//! Needs what `browser.rs` needs (node, npm, Chromium; Firefox ESR for the
//! second test). `E2E_SCREENSHOT_DIR=/dir` keeps screenshots of the pages.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, firefox, run_script, tail};
use serde_json::{json, Value};

/// Each wait of the script (a page load, a card, the result).
const STEP_TIMEOUT_MS: u64 = 30_000;
/// A hard limit for the whole script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

const TITLE: &str = "Phiên họp thường kỳ UBND tỉnh tháng 12";
const ITEMS: [&str; 2] = [
    "Kế hoạch phát triển kinh tế - xã hội năm 2027",
    "Chuyển đổi số cấp xã",
];
const QUESTION: &str = "Thông qua Kế hoạch phát triển kinh tế - xã hội năm 2027";
const MEMBERS: [&str; 2] = ["Ông Nguyễn Văn Bình", "Bà Trần Thị Cúc"];
const CHAIR: &str = "Chủ tịch UBND tỉnh";

async fn check(member2_browser: &str) -> Result<()> {
    let chromium = chromium()?;
    let firefox = if member2_browser == "firefox" {
        firefox()?
    } else {
        String::new()
    };
    ensure_node_modules(&e2e_dir()).await?;
    let server = giaoban_tests::TestServer::start().await?;
    let base = server.base_url();
    let staff = server.staff_token("thuky.vote", "secretary").await?;
    let http = reqwest::Client::new();

    let r = http
        .post(format!("{base}/api/meetings"))
        .bearer_auth(&staff)
        .json(&json!({"title": TITLE, "kind": "regular"}))
        .send()
        .await?;
    ensure!(r.status().is_success(), "create meeting: {}", r.status());
    let meeting: Value = r.json().await?;
    let meeting_id = meeting["id"]
        .as_str()
        .with_context(|| format!("no meeting id in {meeting}"))?
        .to_owned();
    for title in ITEMS {
        let r = http
            .post(format!("{base}/api/meetings/{meeting_id}/agenda"))
            .bearer_auth(&staff)
            .json(&json!({"title": title, "duration_minutes": 20}))
            .send()
            .await?;
        ensure!(r.status().is_success(), "agenda item: {}", r.status());
    }
    let chair = server.invite(&meeting_id, CHAIR, "chair").await?;
    let m1 = server.invite(&meeting_id, MEMBERS[0], "member").await?;
    let m2 = server.invite(&meeting_id, MEMBERS[1], "member").await?;

    let mut env = vec![
        ("CHROMIUM_PATH", chromium),
        ("FIREFOX_PATH", firefox),
        ("E2E_MEMBER2_BROWSER", member2_browser.to_owned()),
        ("E2E_QUESTION", QUESTION.to_owned()),
        ("E2E_ITEM", ITEMS[0].to_owned()),
        ("E2E_TIMEOUT_MS", STEP_TIMEOUT_MS.to_string()),
    ];
    if let Ok(dir) = std::env::var("E2E_SCREENSHOT_DIR") {
        env.push(("E2E_SCREENSHOT_DIR", dir));
    }
    let run = run_script(
        "vote_page.mjs",
        &[chair.as_ref(), m1.as_ref(), m2.as_ref()],
        &env,
        SCRIPT_TIMEOUT,
    )
    .await?;
    if !run.status.success() {
        bail!(
            "vote_page.mjs (member 2 in {member2_browser}) failed ({}): {}\n--- stderr ---\n{}\n--- server log (tail) ---\n{}",
            run.status,
            run.summary
                .as_ref()
                .map(|s| s["reason"].to_string())
                .unwrap_or_default(),
            tail(&run.stderr, 60),
            tail(&server.log(), 80)
        );
    }
    let s = run
        .summary
        .with_context(|| format!("no JSON summary:\n{}\n{}", run.stdout, run.stderr))?;
    println!("{s}");
    ensure!(s["ok"] == Value::Bool(true), "summary not ok: {s}");

    // The console's rule select: the three rules in plain Vietnamese.
    let rules: Vec<(&str, &str)> = s["rule_options"]
        .as_array()
        .context("no rule options")?
        .iter()
        .map(|o| {
            (
                o["value"].as_str().unwrap_or_default(),
                o["text"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    ensure!(
        rules
            == [
                (
                    "all_members_majority",
                    "Quá nửa tổng số thành viên UBND tán thành"
                ),
                ("present_majority", "Quá nửa số thành viên có mặt tán thành"),
                (
                    "two_thirds_all",
                    "Ít nhất hai phần ba tổng số thành viên UBND tán thành"
                ),
            ],
        "rule options: {rules:?}"
    );

    // The cards: the question, named, three big buttons, over the video.
    for c in s["cards"].as_array().context("no cards")? {
        ensure!(
            c["question"] == QUESTION && c["secret"] == false,
            "card: {c}"
        );
        ensure!(
            c["item"].as_str().is_some_and(|i| i.contains(ITEMS[0])),
            "the card does not name the agenda item: {c}"
        );
        let buttons = c["buttons"].as_array().context("no buttons")?;
        let texts: Vec<&str> = buttons.iter().filter_map(|b| b["text"].as_str()).collect();
        ensure!(
            texts == ["Tán thành", "Không tán thành", "Không biểu quyết"],
            "buttons: {c}"
        );
        for b in buttons {
            ensure!(
                b["width"].as_i64().unwrap_or(0) >= 44 && b["height"].as_i64().unwrap_or(0) >= 44,
                "a choice smaller than a touch target: {b}"
            );
        }
        ensure!(
            c["on_top"] == json!({"center": true, "button": true, "in_viewport": true}),
            "the card is covered or off screen: {c}"
        );
    }
    ensure!(
        s["member1_vote"]["pending"]
            .as_str()
            .is_some_and(|t| t.contains("Tán thành")),
        "member 1's confirmation: {}",
        s["member1_vote"]
    );
    ensure!(
        s["member2_vote"]["pending"]
            .as_str()
            .is_some_and(|t| t.contains("Không tán thành")),
        "member 2's confirmation: {}",
        s["member2_vote"]
    );
    ensure!(
        s["member1_after_reload"]["state"] == "voted",
        "after the reload: {}",
        s["member1_after_reload"]
    );

    // Progress with names: the members, then everyone.
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v["voters"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        n.sort();
        n
    };
    let mut want: Vec<String> = MEMBERS.iter().map(|m| m.to_string()).collect();
    want.sort();
    let p = &s["progress_members"];
    ensure!(
        p["progress"]["voted"] == 2 && p["progress"]["eligible"] == 3 && names(p) == want,
        "progress after the members: {p}"
    );
    want.push(CHAIR.to_owned());
    want.sort();
    let p = &s["progress_all"];
    ensure!(
        p["progress"]["voted"] == 3 && names(p) == want,
        "progress after the chair: {p}"
    );

    // The result on all three pages, with how it was reached.
    let results = s["results"].as_array().context("no results")?;
    ensure!(results.len() == 3, "results: {s}");
    for r in results {
        ensure!(
            r["passed"] == true && r["verdict"] == "Thông qua",
            "result: {r}"
        );
        ensure!(
            r["tally"] == json!({"for": 2, "against": 1, "abstain": 0}),
            "tally: {r}"
        );
        let how: Vec<&str> = r["how"]
            .as_array()
            .context("no how")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        ensure!(
            how.first()
                .is_some_and(|l| l.contains("Quá nửa tổng số thành viên UBND tán thành")),
            "the rule: {how:?}"
        );
        ensure!(
            how.iter()
                .any(|l| l.contains("tổng số thành viên UBND (3)")),
            "the base: {how:?}"
        );
        ensure!(
            how.iter()
                .any(|l| l.contains("Cần ít nhất 2 phiếu tán thành")),
            "needed: {how:?}"
        );
        ensure!(
            how.iter()
                .any(|l| l.contains("có mặt 3/3") && l.contains("cần 2: đủ")),
            "quorum: {how:?}"
        );
    }
    ensure!(
        s["result_still_shown"] == true,
        "the result went away by itself"
    );
    if member2_browser == "chromium" {
        sealed_minutes_list_the_vote(&server, &meeting_id).await?;
    }
    Ok(())
}

/// The secretary seals the minutes from the secretariat page's "Biên bản"
/// tab (`tests/e2e/minutes_page.mjs`, Chromium); the sealed version lists
/// the poll and its result (pdftotext), and `giaoban verify` accepts it with
/// the seal's certificate as trust root.
async fn sealed_minutes_list_the_vote(
    server: &giaoban_tests::TestServer,
    meeting_id: &str,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pdf = dir.path().join("bien-ban.pdf");
    let args = [
        std::ffi::OsStr::new(&server.base_url()).to_owned(),
        std::ffi::OsStr::new(meeting_id).to_owned(),
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let env = [
        ("CHROMIUM_PATH", chromium()?),
        ("E2E_USERNAME", "thuky.vote".to_owned()),
        ("E2E_PASSWORD", "thuky.vote-mật-khẩu".to_owned()),
        ("E2E_OUT", pdf.display().to_string()),
        ("E2E_EXPECT", QUESTION.to_owned()),
        ("E2E_TIMEOUT_MS", STEP_TIMEOUT_MS.to_string()),
    ];
    let run = run_script("minutes_page.mjs", &args, &env, SCRIPT_TIMEOUT).await?;
    ensure!(
        run.status.success(),
        "minutes_page.mjs failed: {:?}\n{}",
        run.summary,
        tail(&run.stderr, 40)
    );
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&pdf)
        .arg("-")
        .output()
        .context("pdftotext (poppler-utils)")?;
    ensure!(out.status.success(), "pdftotext failed");
    // pdftotext keeps the lines of the page: join them to find sentences.
    let text = String::from_utf8(out.stdout)?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for want in [
        QUESTION,
        "tán thành 2, không tán thành 1, không biểu quyết 0",
        "Kết quả: THÔNG QUA",
    ] {
        ensure!(
            text.contains(want),
            "the sealed minutes lack {want:?}:\n{text}"
        );
    }
    let cert = reqwest::get(format!(
        "{}/api/minutes/seal-certificate",
        server.base_url()
    ))
    .await?
    .error_for_status()?
    .text()
    .await?;
    let trust = dir.path().join("con-dau.pem");
    std::fs::write(&trust, cert)?;
    let verify = server
        .cli_output(&[
            "verify",
            pdf.to_str().context("path")?,
            "--trust",
            trust.to_str().context("path")?,
        ])
        .await?;
    let report = String::from_utf8_lossy(&verify.stdout);
    ensure!(
        verify.status.code() == Some(0),
        "giaoban verify: {:?}\n{report}",
        verify.status
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chair_and_two_members_vote_from_their_pages() -> Result<()> {
    check("chromium").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_votes_from_firefox_on_a_tablet() -> Result<()> {
    check("firefox").await
}
