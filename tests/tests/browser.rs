//! End to end in real Chromium: two browsers open two invitations of one
//! meeting with the web client (web/), join, and must each decode the
//! other's video, receive the other's audio and show the other's name.
//!
//! The browsers are driven by `tests/e2e/two_pages.mjs` (Node +
//! playwright-core, pinned in tests/e2e/package-lock.json; the browser is
//! the system's /usr/bin/chromium, never downloaded). Needs:
//! - `node` and `npm` on the PATH, Chromium at /usr/bin/chromium (or
//!   `CHROMIUM_PATH`);
//! - `tests/e2e/node_modules`: this test runs `npm ci` when it is missing,
//!   which needs the npm registry, so a runner that puts the tests in a
//!   network namespace runs `npm ci --prefix tests/e2e` before entering it.
//!
//! `E2E_SCREENSHOT=/path.png` keeps a screenshot of the first page (1024x768).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
use serde_json::Value;

/// How long the script may wait for media once both pages joined.
const MEDIA_TIMEOUT_MS: u64 = 30_000;
/// A hard limit for the whole script (browser start, page loads, media).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur.as_f64().unwrap_or(0.0)
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur.as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_join_and_receive_each_others_media() -> Result<()> {
    let chromium = chromium()?;
    let dir = e2e_dir();
    ensure_node_modules(&dir).await?;

    // Every audio forwarded, not only the loudest: the check wants each
    // page's audio at the other, and Chromium's fake microphone only beeps
    // (once a run of the full suite on a loaded machine, one page's audio
    // was never loud enough in 30 s to be chosen). The selection itself is
    // tested in media_alloc, the levels from Chromium in browser_media.
    let server =
        giaoban_tests::TestServer::start_with_config("[media]\naudio_loudest = 0\n").await?;
    let meeting = server
        .create_meeting("Giao ban thử nghiệm trình duyệt")
        .await?;
    let names = ["UBND huyện Cư Jút", "Sở Tài chính"];
    let url1 = server.invite(&meeting, names[0], "bridge").await?;
    let url2 = server.invite(&meeting, names[1], "member").await?;

    let run = run_script(
        "two_pages.mjs",
        &[url1.as_ref(), url2.as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", MEDIA_TIMEOUT_MS.to_string()),
        ],
        SCRIPT_TIMEOUT,
    )
    .await?;
    let (stdout, stderr, summary) = (run.stdout, run.stderr, run.summary);
    if !run.status.success() {
        let reason = summary
            .as_ref()
            .map(|s| text(s, &["reason"]).to_string())
            .unwrap_or_default();
        bail!(
            "the browser test failed ({}): {reason}\n--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}\n\
             --- server log (tail) ---\n{}",
            run.status,
            tail(&server.log(), 60)
        );
    }
    let summary =
        summary.with_context(|| format!("no JSON summary on stdout:\n{stdout}\n{stderr}"))?;

    ensure!(
        summary["ok"] == Value::Bool(true),
        "summary not ok: {summary}"
    );
    let pages = summary["pages"]
        .as_array()
        .context("no pages in the summary")?;
    ensure!(pages.len() == 2, "expected 2 pages: {summary}");
    for (i, page) in pages.iter().enumerate() {
        let me = names[i];
        let other = names[1 - i];
        ensure!(
            text(page, &["self", "name"]) == me,
            "page {i}: joined as {}",
            page["self"]
        );
        ensure!(
            text(page, &["other", "name"]) == other,
            "page {i}: other is {}",
            page["other"]
        );
        let other_id = text(page, &["other", "id"]);
        ensure!(
            !other_id.is_empty() && other_id != text(page, &["self", "id"]),
            "page {i}: ids {page}"
        );
        ensure!(
            text(page, &["other_tile_name"]).contains(other),
            "page {i}: the other's tile shows {:?}",
            page["other_tile_name"]
        );
        ensure!(
            text(page, &["video", "owner"]) == other_id,
            "page {i}: video from {}",
            page["video"]
        );
        ensure!(
            num(page, &["video", "framesDecoded"]) > 0.0,
            "page {i}: no decoded frame: {page}"
        );
        ensure!(
            num(page, &["video", "frameWidth"]) > 0.0,
            "page {i}: no frame size: {page}"
        );
        ensure!(
            text(page, &["audio", "owner"]) == other_id,
            "page {i}: audio from {}",
            page["audio"]
        );
        ensure!(
            num(page, &["audio", "packetsReceived"]) > 0.0,
            "page {i}: no audio packet: {page}"
        );
        ensure!(
            text(page, &["subscriber"]) == "connected",
            "page {i}: subscriber {}",
            page["subscriber"]
        );
        ensure!(
            text(page, &["publisher"]) == "connected",
            "page {i}: publisher {}",
            page["publisher"]
        );
        // Loss repair negotiated both ways with Chromium's own offer: RTX
        // for its (simulcast) video and Opus FEC always, RED where Chromium
        // offers it; the server offers all three; the media checked above
        // flowed with them.
        let (offer, answer) = (&page["publish_offer"], &page["publish_answer"]);
        for feature in ["rtx", "fec"] {
            ensure!(
                offer[feature] == Value::Bool(true) && answer[feature] == Value::Bool(true),
                "page {i}: {feature} not negotiated on the publisher: offer {offer}, answer {answer}"
            );
        }
        ensure!(
            answer["red"] == offer["red"],
            "page {i}: RED offered {} but answered {}",
            offer["red"],
            answer["red"]
        );
        let sub = &page["subscriber_offer"];
        for feature in ["rtx", "red", "fec"] {
            ensure!(
                sub[feature] == Value::Bool(true),
                "page {i}: the subscriber offer lacks {feature}: {sub}"
            );
        }
        println!("page {i}: publish offer {offer}, answer {answer}, subscriber offer {sub}");
    }
    Ok(())
}
