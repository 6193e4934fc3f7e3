//! The operator's desk in real Chromium (issue 23), driven by
//! `tests/e2e/dashboard.mjs` (Node + playwright-core, the system's
//! Chromium; see tests/tests/browser.rs for what that needs).
//!
//! - [`pre_meeting_check_shows_on_the_dashboard`]: before the meeting
//!   starts, a bridge point runs the check from its invitation link (fake
//!   camera and microphone, the test tone "heard"); the check is stored with
//!   the path of its test connection to the media server and the operator's
//!   dashboard page shows it.
//! - [`lossy_point_degrades_and_leaves`]: two points in the started meeting,
//!   one of them through the impairment relay (`giaoban_tests::impair`);
//!   10 % loss both ways makes it `degraded` on the dashboard with an alert
//!   (the delay is measured and printed: reports come every 5 s); leaving
//!   makes it `disconnected`. Before that, the operator's message to the
//!   clean point shows in its meeting page's "Kỹ thuật" panel, not in the
//!   other point's.
//! - [`pre_meeting_check_reports_tcp_when_udp_is_dropped`]: the same check
//!   in a network namespace of its own whose nftables rule drops every UDP
//!   datagram (as `browser_media.rs`'s ICE-TCP test): the check reports the
//!   `tcp` path.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
use giaoban_tests::impair::ImpairRelay;
use giaoban_tests::TestServer;
use serde_json::Value;
use tokio::process::Command;

const STEP_TIMEOUT_MS: u64 = 30_000;
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);
/// The longest a 10 % loss may take to show (two report intervals of 5 s,
/// a dashboard poll, and slack for two Chromiums on two loaded cores).
const DEGRADED_WITHIN_MS: u64 = 20_000;

/// One browser check at a time (two cores).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(server: &TestServer, args: &[&str], env: Vec<(&str, String)>) -> Result<Value> {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let run = run_script("dashboard.mjs", &args, &env, SCRIPT_TIMEOUT).await?;
    if !run.status.success() {
        bail!(
            "dashboard.mjs failed ({}): {}\n--- stderr ---\n{}\n--- server log (tail) ---\n{}",
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
    Ok(s)
}

fn base_env(
    server: &TestServer,
    meeting: &str,
    staff: &str,
) -> Result<Vec<(&'static str, String)>> {
    Ok(vec![
        ("CHROMIUM_PATH", chromium()?),
        ("E2E_TIMEOUT_MS", STEP_TIMEOUT_MS.to_string()),
        ("DESK_BASE", server.base_url()),
        ("DESK_MEETING", meeting.to_owned()),
        ("DESK_STAFF", staff.to_owned()),
    ])
}

/// Set in the namespace where UDP is dropped (the test runs again there).
const UDP_BLOCKED_ENV: &str = "GIAOBAN_DESK_UDP_BLOCKED";

/// The nftables rules of that namespace: drop every UDP datagram it sends
/// (loopback included).
const NFT_DROP_UDP: &str = "nft add table inet giaoban_desk && \
     nft add chain inet giaoban_desk out '{ type filter hook output priority 0; }' && \
     nft add rule inet giaoban_desk out meta l4proto udp drop";

/// Runs the check of one bridge point before the meeting; returns the
/// script's summary.
async fn check_run() -> Result<Value> {
    chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let server = TestServer::start().await?;
    let staff = server.staff_token("kythuat.e2e", "operator").await?;
    let meeting = server
        .create_draft_meeting("Giao ban kiểm tra trước")
        .await?;
    let url = server
        .invite(&meeting, "UBND xã Quảng Sơn", "bridge")
        .await?;
    let check_url = url.replacen("/join#", "/check#", 1);
    ensure!(
        check_url.contains("/check#"),
        "unexpected invitation URL shape"
    );
    run(
        &server,
        &["check", &check_url],
        base_env(&server, &meeting, &staff)?,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_meeting_check_reports_tcp_when_udp_is_dropped() -> Result<()> {
    if std::env::var_os(UDP_BLOCKED_ENV).is_some() {
        let s = check_run().await?;
        let c = &s["check"];
        ensure!(c["path"] == "tcp", "with UDP dropped the check says: {c}");
        return Ok(());
    }
    let _one = SERIAL.lock().await;
    let exe = std::env::current_exe().context("current_exe")?;
    let script = format!(
        "set -e; PATH=\"$PATH:/usr/sbin:/sbin\"; \
         command -v nft >/dev/null || {{ echo 'nft not found: apt-get install nftables' >&2; exit 3; }}; \
         ip link set lo up; {NFT_DROP_UDP}; \
         exec \"$0\" pre_meeting_check_reports_tcp_when_udp_is_dropped --exact --nocapture --test-threads=1"
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
        SCRIPT_TIMEOUT + Duration::from_secs(60),
        child.wait_with_output(),
    )
    .await
    .context("the check with UDP dropped did not finish in time")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- the check with UDP dropped ---\n{stderr}\n{stdout}");
    ensure!(
        out.status.success(),
        "the check with UDP dropped failed ({})",
        out.status
    );
    ensure!(
        stdout.contains("1 passed"),
        "the check did not run: {stdout}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_meeting_check_shows_on_the_dashboard() -> Result<()> {
    let _one = SERIAL.lock().await;
    let s = check_run().await?;
    println!("{s}");
    let c = &s["check"];
    // Loopback to the server: a direct path; the fake devices work.
    ensure!(
        c["path"] == "udp" || c["path"] == "tcp",
        "the test connection's path: {c}"
    );
    ensure!(c["camera"] == "ok" && c["speaker"] == "ok", "{c}");
    ensure!(c["rtt_ms"].as_u64().is_some(), "no round-trip time: {c}");
    ensure!(
        c["down_kbps"].as_u64().is_some() && c["up_kbps"].as_u64().is_some(),
        "{c}"
    );
    // The operator's page shows the same verdict.
    let row = &s["operator_row"];
    let shown = row["check"].as_str().unwrap_or_default();
    if c["ready"] == true {
        ensure!(shown.starts_with("Sẵn sàng"), "row: {row}");
    } else {
        ensure!(
            !shown.starts_with("Sẵn sàng") && !shown.is_empty(),
            "row: {row}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_point_degrades_and_leaves() -> Result<()> {
    let _one = SERIAL.lock().await;
    chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    // Every audio forwarded (not only the loudest): the lossy point's
    // received audio shows the loss (video's retransmissions hide some).
    let server = TestServer::start_with_config("[media]\naudio_loudest = 0\n").await?;
    let staff = server.staff_token("kythuat.e2e2", "operator").await?;
    let meeting = server.create_meeting("Giao ban đường truyền").await?;
    let clean = server.invite(&meeting, "UBND xã Sạch", "bridge").await?;
    let lossy = server.invite(&meeting, "UBND xã Mất Gói", "bridge").await?;
    let relay = ImpairRelay::start(server.media_udp, "127.0.0.2".parse()?)
        .await
        .context("start the impairment relay")?;
    let mut env = base_env(&server, &meeting, &staff)?;
    env.push(("IMPAIR_CONTROL", relay.control_addr().to_string()));
    env.push(("IMPAIR_REWRITE_FROM", server.media_udp.to_string()));
    env.push(("IMPAIR_REWRITE_TO", relay.listen_addr().to_string()));
    let s = run(&server, &["loss", &clean, &lossy], env).await?;
    ensure!(
        s["rewrite"]["rewritten"].as_u64().unwrap_or(0) > 0,
        "the lossy page did not go through the relay: {s}"
    );
    let stats = relay.stats();
    println!("relay: {stats:?}");
    let ms = s["degraded_after_ms"].as_u64().context("no delay")?;
    println!("10 % loss shown on the dashboard after {ms} ms");
    ensure!(ms <= DEGRADED_WITHIN_MS, "the loss took {ms} ms to show");
    let p = &s["degraded"]["point"];
    let loss = p["report"]["loss_in_percent"]
        .as_f64()
        .unwrap_or(0.0)
        .max(p["report"]["loss_out_percent"].as_f64().unwrap_or(0.0));
    ensure!(loss >= 5.0, "the loss reported: {p}");
    ensure!(s["degraded"]["alert"]["kind"] == "degraded", "{s}");
    ensure!(s["disconnected"]["point"]["connected"] == false, "{s}");
    // The operator's message reached the clean point's panel (and only it).
    ensure!(s["chat_leaked"] == false, "{s}");
    ensure!(
        s["chat_badge"].as_str().is_some_and(|b| b.contains("(1)")),
        "the unread count on the Kỹ thuật button: {s}"
    );
    Ok(())
}
