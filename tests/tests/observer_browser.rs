//! End to end in real Chromium: an observer's page only watches.
//!
//! A bridge point joins and publishes; an observer opens its invitation
//! (`tests/e2e/observer_page.mjs`). The observer's join page asks for no
//! camera or microphone and says why; after joining it has no publisher
//! connection and no mic/cam buttons, sends neither `publish` nor `mute`
//! (the server refuses both from an observer with `forbidden`) and gets no
//! error, and it decodes the bridge point's video. The operator's live roster
//! (`GET /api/meetings/{id}/live`) shows both, the observer with no track.
//!
//! Needs what `browser.rs` needs (node, npm, Chromium).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, ensure_node_modules, run_script, tail};
use serde_json::Value;

/// Each wait of the script (a page load, the join, the first video frame).
const STEP_TIMEOUT_MS: u64 = 30_000;
/// A hard limit for the whole script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

/// Codes the server sends since the hardening of issue 19: the page must
/// have a Vietnamese and an English text for each (not "unknown error").
const ERROR_CODES: [&str; 17] = [
    "forbidden",
    "join_timeout",
    "too_many_media",
    "meeting_closed",
    "too_many_connections",
    "server_busy",
    "document_withdrawn",
    "unsupported_document_type",
    "body_too_large",
    "too_many_viewers",
    "level_retired",
    "too_many_attempts",
    "busy",
    "token_revoked",
    "resume_failed",
    "media_unavailable",
    "bad_query",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_page_joins_receive_only() -> Result<()> {
    let chromium = chromium()?;
    ensure_node_modules(&giaoban_tests::e2e::e2e_dir()).await?;
    let server = giaoban_tests::TestServer::start().await?;
    let meeting = server.create_meeting("Giao ban có quan sát viên").await?;
    let bridge = server
        .invite(&meeting, "UBND xã Quảng Sơn", "bridge")
        .await?;
    let observer = server
        .invite(&meeting, "Phóng viên Báo Đắk Nông", "observer")
        .await?;
    let staff = server.staff_token("kythuat.e2e", "operator").await?;

    let run = run_script(
        "observer_page.mjs",
        &[bridge.as_ref(), observer.as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", STEP_TIMEOUT_MS.to_string()),
            ("E2E_STAFF_TOKEN", staff),
            ("E2E_ERROR_CODES", ERROR_CODES.join(",")),
        ],
        SCRIPT_TIMEOUT,
    )
    .await?;
    if !run.status.success() {
        bail!(
            "the observer test failed ({}): {}\n--- stderr ---\n{}\n--- server log (tail) ---\n{}",
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

    // The join page: no device asked for, the note instead of the choices.
    let jp = &s["join_page"];
    ensure!(jp["gum_calls"] == 0, "the join page asked for media: {jp}");
    ensure!(jp["note_shown"] == true, "no observer note: {jp}");
    ensure!(
        jp["note"].as_str().unwrap_or("").contains("quan sát viên"),
        "the note is not the Vietnamese one: {jp}"
    );
    for k in [
        "camera_select_shown",
        "mic_select_shown",
        "preview_buttons_shown",
    ] {
        ensure!(jp[k] == false, "{k} on an observer's join page: {jp}");
    }

    // Joined as an observer, receive only, and nothing refused.
    ensure!(s["self"]["role"] == "observer", "joined as {}", s["self"]);
    let mp = &s["meeting_page"];
    ensure!(mp["publisher"].is_null(), "an observer published: {mp}");
    ensure!(mp["receive_only"] == true, "not receive-only: {mp}");
    ensure!(
        mp["mic_button_shown"] == false && mp["cam_button_shown"] == false,
        "mic/cam buttons for an observer: {mp}"
    );
    let sent: Vec<&str> = mp["sent"]
        .as_array()
        .context("no sent messages")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        sent.contains(&"join") && !sent.contains(&"publish") && !sent.contains(&"mute"),
        "the observer sent {sent:?}"
    );
    ensure!(
        mp["errors"].as_array().is_some_and(Vec::is_empty),
        "the server answered errors: {mp}"
    );
    ensure!(mp["banner"].is_null(), "a banner: {mp}");
    ensure!(mp["gum_calls"] == 0, "media asked for later: {mp}");
    ensure!(
        s["video"]["frames"].as_u64().unwrap_or(0) > 0,
        "no video decoded: {}",
        s["video"]
    );
    ensure!(
        s["csp"].as_array().is_some_and(Vec::is_empty),
        "CSP violations: {}",
        s["csp"]
    );

    // Every code has its own text in both languages, and they differ.
    for code in ERROR_CODES {
        let (vi, en) = (&s["error_texts"]["vi"][code], &s["error_texts"]["en"][code]);
        ensure!(
            vi.is_string() && en.is_string() && vi != en,
            "no text for {code}: vi {vi}, en {en}"
        );
    }

    // The operator sees both: the bridge point with its tracks, the
    // observer with none.
    ensure!(s["live"]["status"] == 200, "live roster: {}", s["live"]);
    let parts = s["live"]["body"]["participants"]
        .as_array()
        .context("no participants in the live roster")?;
    let find = |name: &str| parts.iter().find(|p| p["name"] == name);
    let b = find("UBND xã Quảng Sơn").context("the bridge point is not in the roster")?;
    let o = find("Phóng viên Báo Đắk Nông").context("the observer is not in the roster")?;
    ensure!(b["tracks"].as_u64().unwrap_or(0) >= 1, "bridge: {b}");
    ensure!(
        o["tracks"] == 0 && o["role"] == "observer" && o["kind"] == "participant",
        "observer: {o}"
    );
    Ok(())
}
