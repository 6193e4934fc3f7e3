//! Session resume and ICE restart of the web client in real Chromium
//! (issue 6), driven by `tests/e2e/resume.mjs` (Node + playwright-core, the
//! system's Chromium; see tests/tests/browser.rs for what that needs). Two
//! pages, A and B, decode each other's video; then, without any user action:
//!
//! - **reset**: A's TCP connections to the server are destroyed (`ss -K`),
//!   twice. A resumes as the same participant, its "reconnecting" banner
//!   shows and goes, B sees no leave or join of A and keeps A's tile (the
//!   same DOM element), video keeps being decoded both ways;
//! - **idle**: A's pings are lost (the test's page recorder drops them)
//!   while the server keeps talking to A: the server's idle timeout closes
//!   the socket with 1008 and no error, and A resumes instead of ending;
//! - **grace**: the same with new connections refused (nftables) for longer
//!   than the server's grace (`signaling.resume_grace_secs = 3`): B sees A
//!   leave, and once the server is reachable A's client tries to resume, is
//!   refused and joins afresh by itself; B sees the new A and its video;
//! - **ICE restart**: A's media path is cut (nftables drops A's datagrams and
//!   all ICE-TCP; the WebSocket stays up): Chromium's ICE goes disconnected,
//!   the client restarts ICE on both connections (a `publish` with new
//!   credentials, `ice_restart`), and when the path is back media flows again
//!   with new credentials on both sides; B notices nothing;
//! - **offline**: DevTools offline emulation for
//!   6 s: the client gives its hung socket up with close code 4000, restarts
//!   ICE and resumes.
//!
//! Each check runs in a network namespace of its own (this test binary runs
//! again inside `unshare -n` for that test only), where the script may reset
//! connections and add nftables rules without touching other tests: it needs
//! `unshare`, `ip`, `ss` (iproute2) and `nft` (Debian `nftables`). The
//! checks run one at a time and print their figures on stderr
//! (`-- --nocapture` shows them).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
use giaoban_tests::TestServer;
use serde_json::Value;
use tokio::process::Command;

/// How long each wait of the script may take.
const WAIT_MS: u64 = 30_000;
/// A hard limit for one script (browser start, joins, the scenario).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);
/// Set in the child test process that runs inside its own namespace.
const IN_NETNS_ENV: &str = "GIAOBAN_E2E_RESUME_NETNS";
/// The grace of the server in the grace check.
const SHORT_GRACE_SECS: u64 = 3;

/// One browser check at a time: two Chromiums each is enough for 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs the test `name` of this binary again inside a network namespace of
/// its own (loopback up), where it finds [`IN_NETNS_ENV`] set.
async fn in_own_namespace(name: &str) -> Result<()> {
    let _one_at_a_time = SERIAL.lock().await;
    let exe = std::env::current_exe().context("current_exe")?;
    let script = "set -e; PATH=\"$PATH:/usr/sbin:/sbin\"; \
         for t in nft ss ip; do command -v $t >/dev/null || \
         { echo \"$t not found: apt-get install nftables iproute2\" >&2; exit 3; }; done; \
         ip link set lo up; \
         exec \"$0\" \"$1\" --exact --include-ignored --nocapture --test-threads=1";
    let child = Command::new("unshare")
        .arg("-n")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .arg(&exe)
        .arg(name)
        .env(IN_NETNS_ENV, "1")
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
    .with_context(|| format!("{name} did not finish in time"))??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- {name} in its own namespace ---\n{stderr}\n{stdout}");
    ensure!(
        out.status.success(),
        "{name} failed ({}); see its output above",
        out.status
    );
    ensure!(stdout.contains("1 passed"), "{name} did not run: {stdout}");
    Ok(())
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// A started server with one meeting, its two invitations, and a script run.
struct Run {
    server: TestServer,
    summary: Value,
}

/// Starts a server (`extra_toml` added to its config), invites A and B and
/// runs `node resume.mjs SCENARIO URL_A URL_B`; returns the server and the
/// script's summary (whose `ok` is true) or an error with the script's and
/// the server's output.
async fn run_scenario(scenario: &str, extra_toml: &str, grace_secs: u64) -> Result<Run> {
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let server = TestServer::start_with_config(extra_toml).await?;
    let meeting = server.create_meeting("Giao ban: mạng chập chờn").await?;
    let url_a = server.invite(&meeting, "UBND xã Ea Pô", "bridge").await?;
    let url_b = server.invite(&meeting, "UBND tỉnh", "chair").await?;
    let run = run_script(
        "resume.mjs",
        &[scenario.as_ref(), url_a.as_ref(), url_b.as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", WAIT_MS.to_string()),
            ("HTTP_PORT", server.http_addr.port().to_string()),
            ("MEDIA_PORT", server.media_udp.port().to_string()),
            ("GRACE_SECS", grace_secs.to_string()),
        ],
        SCRIPT_TIMEOUT,
    )
    .await?;
    eprintln!("--- {scenario}: script stderr ---\n{}", run.stderr);
    let ok = run.summary.as_ref().map(|s| &s["ok"]) == Some(&Value::Bool(true));
    if !run.status.success() || !ok {
        let reason = run
            .summary
            .as_ref()
            .map(|s| text(s, "reason").to_string())
            .unwrap_or_default();
        bail!(
            "the {scenario} check failed ({}): {reason}\n--- stdout ---\n{}\n\
             --- server log (tail) ---\n{}",
            run.status,
            run.stdout,
            tail(&server.log(), 80)
        );
    }
    let summary = run
        .summary
        .with_context(|| format!("no JSON summary on stdout:\n{}", run.stdout))?;
    eprintln!("--- {scenario}: summary ---\n{summary:#}");
    Ok(Run { server, summary })
}

/// Whether the server let participant `pid` leave before the last line
/// about it that contains `until` (the browsers close at the end of each
/// script, so every participant leaves in the end).
fn left_before(log: &str, pid: &str, until: &str) -> bool {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(pid)).collect();
    let last = lines.iter().rposition(|l| l.contains(until)).unwrap_or(0);
    lines[..last].iter().any(|l| l.contains("participant left"))
}

/// The server log's lines that mention participant `pid` and contain `what`.
fn log_lines(log: &str, pid: &str, what: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(pid) && l.contains(what))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_resumes_after_its_connection_is_reset() -> Result<()> {
    if std::env::var_os(IN_NETNS_ENV).is_none() {
        return in_own_namespace("browser_resumes_after_its_connection_is_reset").await;
    }
    let Run { server, summary } = run_scenario("reset", "", 30).await?;
    let a = text(&summary["ids"], "a").to_owned();
    let log = server.log();
    // The server kept A and took it back twice, and never let it leave.
    ensure!(
        log_lines(&log, &a, "socket lost; waiting for resume") >= 2,
        "the server did not wait for A's resume:\n{}",
        tail(&log, 60)
    );
    ensure!(
        log_lines(&log, &a, "session resumed") >= 2,
        "the server did not resume A:\n{}",
        tail(&log, 60)
    );
    ensure!(
        !left_before(&log, &a, "session resumed"),
        "A left on the server:\n{}",
        tail(&log, 60)
    );
    for ph in summary["phases"].as_array().context("no phases")? {
        eprintln!(
            "{}: A back (connected, probed) {} ms after the reset; closes {}; banner {}; video {}",
            ph["name"], ph["away_ms"], ph["closes"], ph["banner"], ph["video"]
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_resumes_after_the_idle_timeout() -> Result<()> {
    if std::env::var_os(IN_NETNS_ENV).is_none() {
        return in_own_namespace("browser_resumes_after_the_idle_timeout").await;
    }
    let Run { server, summary } = run_scenario("idle", "", 30).await?;
    let a = text(&summary["ids"], "a").to_owned();
    let log = server.log();
    ensure!(
        log.contains("closing an idle websocket"),
        "the server did not close A's socket as idle:\n{}",
        tail(&log, 60)
    );
    ensure!(
        log_lines(&log, &a, "session resumed") == 1 && !left_before(&log, &a, "session resumed"),
        "A was not resumed after the idle close:\n{}",
        tail(&log, 60)
    );
    let ph = &summary["phases"][0];
    eprintln!(
        "idle: the server closed A's socket ({}) {} ms after A's pings stopped; banner {}; video {}",
        ph["closes"], ph["away_ms"], ph["banner"], ph["video"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_joins_afresh_after_the_grace() -> Result<()> {
    if std::env::var_os(IN_NETNS_ENV).is_none() {
        return in_own_namespace("browser_joins_afresh_after_the_grace").await;
    }
    let toml = format!("[signaling]\nresume_grace_secs = {SHORT_GRACE_SECS}\n");
    let Run { server, summary } = run_scenario("grace", &toml, SHORT_GRACE_SECS).await?;
    let a = text(&summary["ids"], "a").to_owned();
    let new_a = text(&summary, "new_a").to_owned();
    ensure!(
        !new_a.is_empty() && new_a != a,
        "no new participant: {summary}"
    );
    let log = server.log();
    ensure!(
        log.lines().any(|l| l.contains(&a)
            && l.contains("participant left")
            && l.contains("disconnected")),
        "the server never let A leave:\n{}",
        tail(&log, 60)
    );
    ensure!(
        log_lines(&log, &new_a, "participant joined") == 1,
        "the server did not see A join again:\n{}",
        tail(&log, 60)
    );
    let ph = &summary["phases"][0];
    eprintln!(
        "grace {SHORT_GRACE_SECS} s: B saw A leave after {} ms ({}); A joined afresh {} ms after \
         the server was reachable; A saw {}; video {}",
        ph["left_after_ms"], ph["left_reason"], ph["rejoined_after_ms"], ph["a_seen"], ph["video"]
    );
    Ok(())
}

/// A's media path is cut while its WebSocket stays up: ICE restart on both
/// connections, media back on new credentials. (It failed in 2 of about 5
/// runs before the publisher's re-offer kept its simulcast layers: see
/// `browser_resumes_after_going_offline`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_restarts_ice_when_its_media_path_is_cut() -> Result<()> {
    if std::env::var_os(IN_NETNS_ENV).is_none() {
        return in_own_namespace("browser_restarts_ice_when_its_media_path_is_cut").await;
    }
    let Run { server, summary } = run_scenario("ice", "", 30).await?;
    let a = text(&summary["ids"], "a").to_owned();
    let log = server.log();
    for pc in ["Publisher", "Subscriber"] {
        ensure!(
            log.lines()
                .any(|l| l.contains("ICE restart") && l.contains(&a) && l.contains(pc)),
            "the server saw no ICE restart of A's {pc} connection:\n{}",
            tail(&log, 60)
        );
    }
    ensure!(
        !left_before(&log, &a, "ICE restart"),
        "A left on the server:\n{}",
        tail(&log, 60)
    );
    let ph = &summary["phases"][0];
    eprintln!(
        "ICE restart: ICE states {}; restart asked {} ms after the cut; path back after {} ms; \
         media back {} ms later; ufrags {} -> {}",
        ph["ice_states"],
        ph["restart_after_ms"],
        ph["blocked_ms"],
        ph["media_back_ms"],
        ph["ufrag_before"],
        ph["ufrag_after"]
    );
    Ok(())
}

/// A goes offline (DevTools emulation) for 6 s; the client restarts ICE
/// and gives its hung socket up with 4000, the restart requests reach the
/// server only when the network is back, and the answers come back in the
/// replay after the resume. A resumes as the same participant and both
/// directions of video come back. This failed until the server kept a
/// publisher's simulcast layers across its re-offer (`sfu::peer`
/// `keep_simulcast_bindings`): rtc 0.21.1 forgot each layer's SSRC on the
/// renegotiation and waited for mid/rid header extensions Chromium no
/// longer sends, so B never got A's video again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_resumes_after_going_offline() -> Result<()> {
    if std::env::var_os(IN_NETNS_ENV).is_none() {
        return in_own_namespace("browser_resumes_after_going_offline").await;
    }
    let Run { server, summary } = run_scenario("offline", "", 30).await?;
    let a = text(&summary["ids"], "a").to_owned();
    let log = server.log();
    ensure!(
        log_lines(&log, &a, "session resumed") >= 1 && !left_before(&log, &a, "session resumed"),
        "A was not resumed:\n{}",
        tail(&log, 60)
    );
    let ph = &summary["phases"][0];
    eprintln!(
        "offline: A back {} ms after going offline (online again after {} ms); closes {}; video {}",
        ph["away_ms"], ph["restored_after_ms"], ph["closes"], ph["video"]
    );
    Ok(())
}
