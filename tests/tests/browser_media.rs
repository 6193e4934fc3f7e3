//! Media behaviour of the web client in real Chromium, two pages in one
//! meeting, driven by `tests/e2e/media_checks.mjs` (Node + playwright-core,
//! the system's Chromium; see tests/tests/browser.rs for what that needs;
//! one check has Firefox ESR receive, through puppeteer-core):
//!
//! - simulcast: page 1 receives page 2's video at `high` (waiting up to 25 s
//!   for Chromium to start its top layer), asks for `low`, stays there long
//!   enough for the server to pause the unused layers, then asks for `high`
//!   again; the decoded width drops and comes back, and frames keep being
//!   decoded (no stall over 2 s after start-up); the same again with a
//!   publisher that prefers H264 (both pages must use H264 alone), and with
//!   Firefox ESR as page 1;
//! - ICE-TCP: with all UDP dropped (an nftables rule in a network namespace
//!   of its own: this test binary runs again inside `unshare -n` for that
//!   test only, so needs `nft` (Debian `nftables`) and `unshare`), both pages
//!   still decode each other's video, every selected candidate pair is TCP;
//! - active speaker: an `active_speaker` message (Chromium's fake microphone
//!   beeps) names one of the two, and the other page marks that tile;
//! - rejoin: page 2 leaves and, after the server's SSRC rest, joins again;
//!   page 1's connection decodes the new video and gets the new audio on the
//!   SSRC the old audio had (the server reuses freed audio SSRCs, continuing
//!   their sequence numbers: Chromium drops a stream that restarts behind).
//!
//! The checks run one at a time (each starts two browsers) and print their
//! figures on stderr (`-- --nocapture` shows them).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, firefox, run_script, tail};
use serde_json::Value;
use tokio::process::Command;

/// How long a script may wait for media once both pages joined.
const MEDIA_TIMEOUT_MS: u64 = 20_000;
/// A hard limit for one script (browser start, page loads, the check).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);
/// Set in the child test process that runs inside the UDP-less namespace.
const UDP_BLOCKED_ENV: &str = "GIAOBAN_E2E_IN_UDP_BLOCKED_NETNS";

/// One browser check at a time: two Chromiums each is enough for 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    at(v, path).as_f64()
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).as_str().unwrap_or("")
}

/// Starts a server, invites two participants to one meeting and runs
/// `node media_checks.mjs CHECK URL1 URL2`; returns the script's summary
/// (whose `ok` is true) or an error with the script's and server's output.
async fn run_check(check: &str) -> Result<Value> {
    run_check_with(check, &[]).await
}

/// [`run_check`] with more environment for the script.
async fn run_check_with(check: &str, env: &[(&str, &str)]) -> Result<Value> {
    run_check_on(check, env, "").await
}

/// [`run_check_with`] on a server with more configuration (TOML).
async fn run_check_on(check: &str, env: &[(&str, &str)], config: &str) -> Result<Value> {
    let chromium = chromium()?;
    let dir = e2e_dir();
    ensure_node_modules(&dir).await?;

    let server = giaoban_tests::TestServer::start_with_config(config).await?;
    let meeting = server.create_meeting("Giao ban kiểm tra media").await?;
    let url1 = server
        .invite(&meeting, "UBND huyện Krông Nô", "bridge")
        .await?;
    let url2 = server.invite(&meeting, "Sở Y tế", "member").await?;

    let mut vars = vec![
        ("CHROMIUM_PATH", chromium),
        ("E2E_TIMEOUT_MS", MEDIA_TIMEOUT_MS.to_string()),
    ];
    vars.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let run = run_script(
        "media_checks.mjs",
        &[check.as_ref(), url1.as_ref(), url2.as_ref()],
        &vars,
        SCRIPT_TIMEOUT,
    )
    .await?;
    let (stdout, stderr) = (run.stdout, run.stderr);
    eprintln!("--- {check}: script stderr ---\n{stderr}");
    let summary = run.summary;
    if !run.status.success() || summary.as_ref().map(|s| &s["ok"]) != Some(&Value::Bool(true)) {
        let reason = summary
            .as_ref()
            .map(|s| text(s, &["reason"]).to_string())
            .unwrap_or_default();
        bail!(
            "the {check} check failed ({}): {reason}\n--- stdout ---\n{stdout}\n\
             --- server log (tail) ---\n{}",
            run.status,
            tail(&server.log(), 200)
        );
    }
    let summary =
        summary.with_context(|| format!("no JSON summary on stdout:\n{stdout}\n{stderr}"))?;
    eprintln!("--- {check}: summary ---\n{summary:#}");
    // The web client receives in slots, except where the rejoin check asks
    // for a track per published track (`?receive=tracks`).
    let slots_messages = num(&summary, &["slots_messages"]).unwrap_or(0.0);
    if check == "rejoin" {
        ensure!(slots_messages == 0.0, "the rejoin check received in slots");
    } else {
        ensure!(slots_messages >= 1.0, "page 1 did not receive in slots");
    }
    Ok(summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_layer_switches_low_then_high_without_freezing() -> Result<()> {
    let _one_at_a_time = SERIAL.lock().await;
    let s = run_check("simulcast").await?;
    check_simulcast(&s, "simulcast")
}

/// The same with a publisher that prefers H264 (packetization mode 1):
/// the server forwards H264 simulcast with the same layer switches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_in_h264_switches_layers_without_freezing() -> Result<()> {
    let _one_at_a_time = SERIAL.lock().await;
    let s = run_check_with("simulcast", &[("E2E_VIDEO_CODEC", "H264")]).await?;
    for side in ["publisher", "subscriber"] {
        let codecs = at(&s, &["codecs", side])
            .as_array()
            .cloned()
            .unwrap_or_default();
        ensure!(
            codecs == [Value::from("video/H264")],
            "the {side} page uses {codecs:?} for video, not H264 alone: {s}"
        );
    }
    check_simulcast(&s, "H264 simulcast")
}

/// The same with Firefox ESR receiving (in slots) Chromium's simulcast: the
/// server's layer switches are seamless for Firefox's decoder too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_to_firefox_switches_layers_without_freezing() -> Result<()> {
    let _one_at_a_time = SERIAL.lock().await;
    let firefox = firefox()?;
    let s = run_check_with(
        "simulcast",
        &[("E2E_BROWSER_1", "firefox"), ("FIREFOX_PATH", &firefox)],
    )
    .await?;
    ensure!(
        text(&s, &["user_agent_1"]).contains("Firefox/"),
        "page 1 was not Firefox: {}",
        s["user_agent_1"]
    );
    check_simulcast(&s, "simulcast to Firefox")
}

/// What the simulcast checks require of the script's summary `s`.
fn check_simulcast(s: &Value, name: &str) -> Result<()> {
    let high = num(s, &["widths", "high_before"]).context("no width at high")?;
    let low = num(s, &["widths", "low"]).context("no width at low")?;
    let high_after = num(s, &["widths", "high_after"]).context("no width back at high")?;
    ensure!(high > 0.0, "nothing decoded at high: {s}");
    ensure!(
        low > 0.0 && low < high,
        "the low layer ({low}px) is not smaller than the high one ({high}px): {s}"
    );
    ensure!(
        high_after >= high,
        "back at high the width is {high_after}px, was {high}px: {s}"
    );
    let to_low = num(s, &["switch_low", "ms"]).context("no time for the switch to low")?;
    let to_high = num(s, &["switch_high", "ms"]).context("no time for the switch to high")?;
    // Start-up stalls are reported only; from then on frames must keep coming.
    let stall_before =
        num(s, &["stalls", "before_switches", "ms"]).context("no stall figure before switches")?;
    let stall = num(s, &["stalls", "switches", "ms"]).context("no stall figure")?;
    ensure!(
        stall_before <= 2000.0,
        "video stalled for {stall_before} ms before the switches: {s}"
    );
    ensure!(
        stall <= 2000.0,
        "video stalled for {stall} ms across the switches: {s}"
    );
    let sent: Vec<&str> = at(s, &["set_quality_sent"])
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    ensure!(
        sent == ["low", "high"],
        "page 1 sent set_quality {sent:?} (expected low then high)"
    );
    ensure!(
        at(s, &["set_quality_errors"]).as_array().map(Vec::len) == Some(0),
        "the server answered errors: {s}"
    );
    eprintln!(
        "{name}: {high}px -> low {low}px in {to_low} ms -> high {high_after}px in {to_high} ms; \
         stalls {}; silent layers {}; top layer after {} ms; widths {}; layers_wanted {}; \
         codecs {}; publisher answer {}",
        s["stalls"],
        s["silent_layers"],
        s["top_layer_wait_ms"],
        s["width_changes"],
        s["layers_wanted"],
        s["codecs"],
        s["publisher_answer"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_speaker_names_a_participant() -> Result<()> {
    let _one_at_a_time = SERIAL.lock().await;
    let s = run_check("speaker").await?;
    let ids: Vec<&str> = at(&s, &["participants"])
        .as_array()
        .map(|a| a.iter().map(|p| text(p, &["id"])).collect())
        .unwrap_or_default();
    ensure!(ids.len() == 2, "participants: {s}");
    let named: Vec<&str> = at(&s, &["active_speaker"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|page| page["messages"].as_array())
        .flatten()
        .map(|m| text(m, &["participant_id"]))
        .collect();
    ensure!(!named.is_empty(), "no active_speaker message: {s}");
    ensure!(
        named.iter().all(|id| ids.contains(id)),
        "active_speaker named {named:?}, participants {ids:?}"
    );
    eprintln!(
        "active speaker: {named:?} (participants {ids:?}); pages told {}; tiles {}",
        s["pages_told"], s["tiles"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoining_participant_is_received_on_the_freed_ssrcs() -> Result<()> {
    let _one_at_a_time = SERIAL.lock().await;
    // Every audio forwarded, not only the loudest: Chromium's fake
    // microphone beeps, and between beeps a page's audio may not be chosen.
    let s = run_check_on("rejoin", &[], "[media]\naudio_loudest = 0\n").await?;
    // The new audio and video come on the SSRCs the old ones had.
    let mut reused = Vec::new();
    for kind in ["audio", "video"] {
        let (first, second) = (
            num(&s, &[&format!("first_{kind}_ssrc")]),
            num(&s, &[&format!("second_{kind}_ssrc")]),
        );
        ensure!(
            first.is_some() && first == second,
            "the new {kind}'s SSRC {second:?} is not the freed {first:?}: {s}"
        );
        reused.push(first);
    }
    let (frames, later) = (
        num(&s, &["second_frames_decoded"]).unwrap_or(0.0),
        num(&s, &["later_frames_decoded"]).unwrap_or(0.0),
    );
    // The check waits for 10 frames decoded on the new SSRC's stats (a
    // reused SSRC may count on from its old value), then 2 s more.
    ensure!(
        frames >= 10.0 && later > frames,
        "page 1 did not keep decoding the new video: {s}"
    );
    eprintln!(
        "rejoin: audio SSRC {:?} reused ({} packets); video SSRC {:?} reused; {frames} then {later} frames decoded, width {}",
        reused[0], s["second_audio_packets"], reused[1], s["second_frame_width"]
    );
    Ok(())
}

/// The nftables rules of the namespace that runs the ICE-TCP check: drop
/// every UDP datagram the namespace sends (loopback included).
const NFT_DROP_UDP: &str = "nft add table inet giaoban_e2e && \
     nft add chain inet giaoban_e2e out '{ type filter hook output priority 0; }' && \
     nft add rule inet giaoban_e2e out meta l4proto udp drop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_only_when_udp_is_dropped() -> Result<()> {
    if std::env::var_os(UDP_BLOCKED_ENV).is_some() {
        return ice_tcp_inside_udp_blocked_namespace().await;
    }
    let _one_at_a_time = SERIAL.lock().await;
    // A network namespace of its own, so the rule cannot touch the other
    // tests: this test binary runs again in it, for this test only.
    let exe = std::env::current_exe().context("current_exe")?;
    let script = format!(
        "set -e; PATH=\"$PATH:/usr/sbin:/sbin\"; \
         command -v nft >/dev/null || {{ echo 'nft not found: apt-get install nftables' >&2; exit 3; }}; \
         ip link set lo up; {NFT_DROP_UDP}; \
         exec \"$0\" ice_tcp_only_when_udp_is_dropped --exact --nocapture --test-threads=1"
    );
    let child = Command::new("unshare")
        .arg("-n")
        .arg("sh")
        .arg("-c")
        .arg(&script)
        .arg(&exe)
        .env(UDP_BLOCKED_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting `unshare -n` (util-linux; needs root or a user namespace)")?;
    let out = tokio::time::timeout(
        SCRIPT_TIMEOUT + Duration::from_secs(30),
        child.wait_with_output(),
    )
    .await
    .context("the ICE-TCP check did not finish in time")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- ICE-TCP check in its own namespace ---\n{stderr}\n{stdout}");
    ensure!(
        out.status.success(),
        "the ICE-TCP check failed ({}); see its output above",
        out.status
    );
    ensure!(
        stdout.contains("1 passed"),
        "the ICE-TCP check did not run: {stdout}"
    );
    Ok(())
}

/// Proves UDP is dropped here: a datagram to a local UDP socket never arrives.
async fn udp_is_dropped() -> Result<bool> {
    let rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let tx = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    // With the rule in place the send itself fails (EPERM) or the datagram
    // vanishes.
    if tx.send_to(b"ping", rx.local_addr()?).await.is_err() {
        return Ok(true);
    }
    let mut buf = [0u8; 16];
    let got = tokio::time::timeout(Duration::from_millis(300), rx.recv_from(&mut buf)).await;
    Ok(got.is_err())
}

async fn ice_tcp_inside_udp_blocked_namespace() -> Result<()> {
    ensure!(
        udp_is_dropped().await?,
        "UDP still flows in this namespace: the nftables rule is not in effect"
    );
    let s = run_check("tcp").await?;
    for (i, page) in at(&s, &["pairs"])
        .as_array()
        .context("no pairs")?
        .iter()
        .enumerate()
    {
        for pc in ["publisher", "subscriber"] {
            ensure!(
                text(page, &[pc, "pair", "local", "protocol"]) == "tcp",
                "page {}: {pc} selected {}",
                i + 1,
                page[pc]
            );
            ensure!(
                text(page, &[pc, "pair", "remote", "protocol"]) == "tcp",
                "page {}: {pc} remote candidate {}",
                i + 1,
                page[pc]
            );
        }
    }
    for (i, v) in at(&s, &["video"])
        .as_array()
        .context("no video")?
        .iter()
        .enumerate()
    {
        ensure!(
            num(v, &["after"]).unwrap_or(0.0) > num(v, &["before"]).unwrap_or(0.0),
            "page {}: video did not keep flowing: {v}",
            i + 1
        );
    }
    eprintln!("ICE-TCP: pairs {} video {}", s["pairs"], s["video"]);
    Ok(())
}
