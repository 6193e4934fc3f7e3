//! End to end in real Chromium: the chair runs the meeting from the meeting
//! page (issue 20).
//!
//! The secretariat prepares a meeting (time, place, two agenda items) that
//! has not started; a chair and two bridge points open their invitations
//! (`tests/e2e/chair_console.mjs`, three browsers with fake cameras and
//! microphones). The points wait on the waiting screen until the chair
//! starts the meeting from the console, then enter by themselves and declare
//! their leaders (roll call). Bridge 1 raises its hand, the chair gives it
//! the floor: it becomes the main view on bridge 2's page and its audio
//! arrives there. The chair takes the floor back and mutes all: the points'
//! audio packets stop arriving at bridge 2 and at the chair; a muted point
//! can still ask to speak. The console's attendance summary shows both
//! points present with their declared leaders and first join times (within
//! the test's run), and ending the meeting shows the points the closing
//! message.
//!
//! The page's own tools on the way: the chair pins bridge 1 (only the
//! chair's main view changes), bridge 1 goes full screen and back, the
//! chair's page switches to English and back. Once the chair started the
//! meeting the test joins [`EXTRA_POINTS`] more bridge points without a
//! browser (signaling and a receiving connection): bridge 2's grid, beside
//! the chair in the main view, then needs two pages, and bridge 2 turns them.
//!
//! Needs what `browser.rs` needs (node, npm, Chromium).
//! `E2E_SCREENSHOT_DIR=/dir` keeps screenshots of the pages at each step.

use std::time::Duration;

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::client::{JoinOptions, MediaOptions, TestClient};
use giaoban_tests::e2e::{chromium, ensure_node_modules, run_script, tail};
use serde_json::{json, Value};

/// Each wait of the script (a page load, the start, the floor, the block).
const STEP_TIMEOUT_MS: u64 = 30_000;
/// A hard limit for the whole script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(420);
/// Bridge points joined without a browser: with bridge 1 they are 7 tiles
/// beside the main view, one more than a page of the grid holds there
/// (`PAGE_SIZE_BESIDE_MAIN` in web/assets/app.js).
const EXTRA_POINTS: usize = 6;

const TITLE: &str = "Giao ban điều hành tháng 12";
const LOCATION: &str = "Hội trường UBND tỉnh";
const ITEMS: [&str; 2] = ["Báo cáo tình hình kinh tế - xã hội", "Chuyển đổi số cấp xã"];

fn unix_now() -> Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
}

/// Waits until the meeting is in progress (the chair started it from the
/// page), then joins one receiving client per token: participants in
/// everyone's grid, without a browser's cost.
async fn join_when_started(
    base: String,
    ws_url: String,
    staff: String,
    meeting_id: String,
    tokens: Vec<String>,
) -> Result<Vec<TestClient>> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + SCRIPT_TIMEOUT;
    loop {
        let r = http
            .get(format!("{base}/api/meetings/{meeting_id}"))
            .bearer_auth(&staff)
            .send()
            .await?;
        ensure!(r.status().is_success(), "read the meeting: {}", r.status());
        let m: Value = r.json().await?;
        if m["status"] == "in_progress" {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the meeting never started: {m}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut clients = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let client = TestClient::join_media(
            &ws_url,
            token,
            JoinOptions::default(),
            MediaOptions {
                publish: false,
                ..MediaOptions::default()
            },
        )
        .await
        .with_context(|| format!("extra point {} joins", i + 1))?;
        clients.push(client);
    }
    Ok(clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chair_runs_the_meeting_from_the_page() -> Result<()> {
    let chromium = chromium()?;
    ensure_node_modules(&giaoban_tests::e2e::e2e_dir()).await?;
    // Every audio forwarded, not only the loudest (Chromium's fake microphone
    // only beeps): the test counts the packets of each point at the others.
    let server =
        giaoban_tests::TestServer::start_with_config("[media]\naudio_loudest = 0\n").await?;
    let base = server.base_url();
    let staff = server.staff_token("thuky.e2e", "secretary").await?;
    let http = reqwest::Client::new();

    // A meeting in a week, with a place and an agenda.
    let starts_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 7 * 24 * 3600;
    let r = http
        .post(format!("{base}/api/meetings"))
        .bearer_auth(&staff)
        .json(&json!({"title": TITLE, "kind": "regular", "starts_at": starts_at, "location": LOCATION}))
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
    // Scheduled (the invitations go out): the chair and the secretary may
    // enter to prepare the room, the others wait for the start.
    let r = http
        .post(format!("{base}/api/meetings/{meeting_id}/status"))
        .bearer_auth(&staff)
        .json(&json!({"status": "scheduled"}))
        .send()
        .await?;
    ensure!(
        r.status().is_success(),
        "schedule the meeting: {}",
        r.status()
    );
    let chair = server
        .invite(&meeting_id, "Chủ tịch UBND tỉnh", "chair")
        .await?;
    let bridge1 = server
        .invite(&meeting_id, "UBND xã Quảng Sơn", "bridge")
        .await?;
    let bridge2 = server
        .invite(&meeting_id, "UBND xã Đắk Ha", "bridge")
        .await?;

    let mut extra_tokens = Vec::new();
    for i in 0..EXTRA_POINTS {
        let url = server
            .invite(
                &meeting_id,
                &format!("UBND xã điểm cầu {}", i + 1),
                "bridge",
            )
            .await?;
        extra_tokens.push(giaoban_tests::token_of(&url)?.to_owned());
    }
    let extras = tokio::spawn(join_when_started(
        base.clone(),
        server.ws_url(),
        staff.clone(),
        meeting_id.clone(),
        extra_tokens,
    ));

    let mut env = vec![
        ("CHROMIUM_PATH", chromium),
        ("E2E_TIMEOUT_MS", STEP_TIMEOUT_MS.to_string()),
        ("E2E_EXTRA_POINTS", EXTRA_POINTS.to_string()),
    ];
    // `E2E_SCREENSHOT_DIR=/some/dir` keeps PNGs of the pages at each step.
    if let Ok(dir) = std::env::var("E2E_SCREENSHOT_DIR") {
        env.push(("E2E_SCREENSHOT_DIR", dir));
    }
    let run_started = unix_now()?;
    let run = run_script(
        "chair_console.mjs",
        &[chair.as_ref(), bridge1.as_ref(), bridge2.as_ref()],
        &env,
        SCRIPT_TIMEOUT,
    )
    .await?;
    let run_ended = unix_now()?;
    // The extra points leave with the script (their clients are dropped).
    let extras = if extras.is_finished() {
        extras.await?
    } else {
        extras.abort();
        Err(anyhow::anyhow!(
            "the extra points had not joined when the script ended"
        ))
    };
    if !run.status.success() {
        bail!(
            "the chair console test failed ({}): {}\n--- extra points: {}\n--- stderr ---\n{}\n--- server log (tail) ---\n{}",
            run.status,
            run.summary
                .as_ref()
                .map(|s| s["reason"].to_string())
                .unwrap_or_default(),
            extras.as_ref().map_or_else(|e| format!("{e:#}"), |c| format!("{} joined", c.len())),
            run.stderr,
            tail(&server.log(), 80)
        );
    }
    let extras = extras?;
    ensure!(
        extras.len() == EXTRA_POINTS,
        "extra points: {}",
        extras.len()
    );
    drop(extras);
    let s = run
        .summary
        .with_context(|| format!("no JSON summary:\n{}\n{}", run.stdout, run.stderr))?;
    println!("{s}");
    ensure!(s["ok"] == Value::Bool(true), "summary not ok: {s}");

    // The points waited for the start, on a screen with the meeting's facts.
    let waiting = s["waiting"].as_array().context("no waiting screens")?;
    ensure!(waiting.len() == 2, "waiting: {s}");
    for w in waiting {
        ensure!(w["title"] == TITLE, "waiting screen title: {w}");
        ensure!(w["where"] == LOCATION, "waiting screen place: {w}");
        ensure!(
            w["when"].as_str().is_some_and(|t| t.contains('/')),
            "waiting screen time: {w}"
        );
        let agenda: Vec<&str> = w["agenda"]
            .as_array()
            .context("no agenda on the waiting screen")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        ensure!(agenda == ITEMS, "waiting screen agenda: {agenda:?}");
    }
    ensure!(
        s["chair_status_at_join"] == "scheduled",
        "the chair found the meeting {}",
        s["chair_status_at_join"]
    );

    // The queue: the kind, the waiting time that runs, our place.
    let ids = &s["ids"];
    let q = s["chair_queue"].as_array().context("no queue")?;
    let h = q
        .iter()
        .find(|h| h["id"] == ids["b1"])
        .context("bridge 1 not in the chair's queue")?;
    ensure!(h["kind"] == "question", "hand kind: {h}");
    ensure!(
        s["bridge1_hand"]["place"] == 1,
        "bridge 1's place: {}",
        s["bridge1_hand"]
    );
    ensure!(
        s["waiting_time"]["first"] != s["waiting_time"]["later"],
        "the waiting time does not run: {}",
        s["waiting_time"]
    );
    ensure!(
        s["bridge1_floor_status"]
            .as_str()
            .is_some_and(|t| t.contains("phát biểu")),
        "bridge 1 is not told it has the floor: {}",
        s["bridge1_floor_status"]
    );

    // Muted by the chair: said in Vietnamese, and the measure saw the chair.
    ensure!(
        s["blocked_notice"]
            .as_str()
            .is_some_and(|t| t.contains("Bạn đang bị chủ tọa tắt micro")),
        "notice: {}",
        s["blocked_notice"]
    );
    ensure!(
        s["chair_audio_after_mute_all"].as_i64().unwrap_or(0) > 0,
        "bridge 2 stopped hearing the chair too (the measure is blind): {}",
        s["muted_audio"]
    );

    // The own camera stays small: under a quarter of the page's width.
    for v in s["self_views"].as_array().context("no self views")? {
        let (w, vw) = (
            v["width"].as_f64().unwrap_or(0.0),
            v["viewport_width"].as_f64().unwrap_or(1.0),
        );
        ensure!(w > 0.0 && w < vw / 4.0, "own camera too large: {v}");
    }

    // The roll call: each point present, with its own declared leader and
    // attendees and a first join time within this run (the server's clock
    // is this machine's; a second of slack for the rounding).
    let att = &s["attendance"];
    let rows = att["rows"].as_array().context("no attendance rows")?;
    for (unit, leader, attendees) in [
        ("UBND xã Quảng Sơn", "Nguyễn Văn An", 12),
        ("UBND xã Đắk Ha", "Trần Thị Bình", 7),
    ] {
        let r = rows
            .iter()
            .find(|r| r["name"] == unit)
            .with_context(|| format!("{unit} not in the attendance summary: {att}"))?;
        ensure!(r["present"] == true, "{unit} not present: {r}");
        let shown = r["leader"].as_str().unwrap_or_default();
        ensure!(
            shown.contains(leader) && shown.contains(&format!("{attendees} người")),
            "{unit}'s declared leader: {r}"
        );
        let joined = r["first_joined_at"].as_u64().unwrap_or(0);
        ensure!(
            (run_started.saturating_sub(1)..=run_ended + 1).contains(&joined),
            "{unit}'s first join time {joined} is not within the run ({run_started}..{run_ended}): {r}"
        );
        let text = r["joined"].as_str().unwrap_or_default();
        ensure!(
            text.starts_with("vào lúc ") && text.contains(':'),
            "{unit}'s join time as shown: {r}"
        );
    }
    ensure!(
        att["present"]
            .as_str()
            .and_then(|p| p.parse::<usize>().ok())
            .is_some_and(|p| p >= 3),
        "present count: {att}"
    );

    // Pin: the chair's main view only.
    let pin = &s["pin"];
    ensure!(
        pin["chair"]["main"] == ids["b1"] && pin["chair"]["pressed"] == "true",
        "the chair's pin: {pin}"
    );
    for page in ["main_at_b1", "main_at_b2"] {
        ensure!(
            pin[page] == ids["chair"],
            "a pin on the chair's page moved another page's main view: {pin}"
        );
    }
    ensure!(pin["pinned_at_b2"].is_null(), "pin: {pin}");
    ensure!(pin["after_unpin"]["main"] != ids["b1"], "unpin: {pin}");

    // Full screen, and out of it.
    let fs = &s["fullscreen"];
    ensure!(fs["entered"]["element"] == "HTML", "full screen: {fs}");
    ensure!(
        fs["entered"]["label"] == "Thoát toàn màn hình" && fs["left"]["label"] == "Toàn màn hình",
        "the full screen button's label: {fs}"
    );

    // English, then Vietnamese again.
    let lang = &s["language"];
    for (k, code, mute_all, leave) in [
        ("vi", "vi", "Tắt micro tất cả", "Rời cuộc họp"),
        ("en", "en", "Mute all", "Leave the meeting"),
        ("vi_again", "vi", "Tắt micro tất cả", "Rời cuộc họp"),
    ] {
        ensure!(
            lang[k]["lang"] == code && lang[k]["mute_all"] == mute_all && lang[k]["leave"] == leave,
            "language {k}: {lang}"
        );
    }

    // Grid pages: bridge 2 (the chair in the main view) sees bridge 1 and
    // the extra points on two pages; each tile on exactly one.
    let paging = &s["paging"];
    ensure!(paging["main"] == ids["chair"], "paging: {paging}");
    let shown = |k: &str| -> BTreeSet<String> {
        paging[k]["shown"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (first, second) = (shown("first"), shown("second"));
    let others = paging["others"].as_u64().unwrap_or(0) as usize;
    ensure!(
        others > EXTRA_POINTS
            && !first.is_empty()
            && !second.is_empty()
            && first.is_disjoint(&second)
            && first.len() + second.len() == others,
        "grid pages: {paging}"
    );
    ensure!(
        paging["first_index"] == 0
            && paging["first"]["text"] == "Trang 1/2"
            && paging["second"]["text"] == "Trang 2/2"
            && shown("back") == first,
        "grid pages: {paging}"
    );

    // The end: a closing message on the points' pages.
    for e in s["end"].as_array().context("no end screens")? {
        ensure!(e["title"] == "Cuộc họp đã kết thúc", "end screen: {e}");
    }
    Ok(())
}
