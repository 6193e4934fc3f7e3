//! WHIP ingest and WHEP playback with GStreamer's `webrtcbin` (libnice ICE),
//! the stack behind many hall encoders and `whipclientsink` (issue 24).
//!
//! `tests/gst/gst_whip_whep.py` (system python3 with Debian's python3-gi and
//! python3-gst-1.0) publishes a live VP8 test pattern and an Opus tone by
//! WHIP as the meeting's chair; once connected it plays the meeting's main
//! view (the chair) by WHEP, decodes it for [`PLAY_SECONDS`] and DELETEs
//! both sessions (the publisher [`TAIL_SECONDS`] after the player).
//! Meanwhile a Chromium bridge point (the web client, driven by
//! `tests/gst/chromium_watch.mjs`) receives the publisher; the frames it
//! decodes of it are sampled every 5 s and must keep growing for at least a
//! minute.
//!
//! What it guards: libnice echoes USERNAME into its STUN responses (the
//! demultiplexer used to drop them: no connection at all), and keeps its
//! consent with keepalives every 25 s while streaming (the server used to
//! declare the publisher disconnected 5 s after it connected and end the
//! WHIP session about 16 s later). The server's unrouted-datagram counter is
//! printed.
//!
//! Runs inside a private network namespace (loopback only), like the other
//! media tests; skipped with a message when GStreamer's Python bindings are
//! missing (scripts/test installs them).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules};
use giaoban_tests::{token_of, TestServer};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const PLAY_SECONDS: u64 = 60;
/// The publisher goes on this long after the player ends, so that the
/// browser's 5 s samples cover a full minute of it.
const TAIL_SECONDS: u64 = 15;
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(PLAY_SECONDS + TAIL_SECONDS + 90);
const PYTHON: &str = "/usr/bin/python3";

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gst/gst_whip_whep.py")
}

fn gstreamer_present() -> bool {
    std::process::Command::new(PYTHON)
        .args([
            "-c",
            "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0'); \
             from gi.repository import Gst; Gst.init(None); \
             assert Gst.ElementFactory.find('webrtcbin') and Gst.ElementFactory.find('vp8enc') \
             and Gst.ElementFactory.find('nicesrc')",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Scrapes one counter of `/metrics`.
async fn metric(server: &TestServer, name: &str) -> Result<f64> {
    let text = reqwest::get(format!("{}/metrics", server.base_url()))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .with_context(|| format!("no {name} in /metrics"))
}

/// Spawns `cmd` with piped output; its stdout lines as a stream, its stderr
/// collected by a task.
fn spawn(
    mut cmd: tokio::process::Command,
    what: &str,
) -> Result<(
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    tokio::task::JoinHandle<String>,
)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {what}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let err = tokio::spawn(async move {
        let mut out = String::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            out.push_str(&l);
            out.push('\n');
        }
        out
    });
    Ok((child, BufReader::new(stdout).lines(), err))
}

/// The browser's decoded video frames of `owner` in one sample, with the
/// frame width.
fn decoded_of(sample: &Value, owner: &str) -> Option<(u64, u64)> {
    sample["streams"].as_array()?.iter().find_map(|s| {
        (s["kind"] == "video" && s["owner"] == owner).then(|| {
            (
                s["framesDecoded"].as_u64().unwrap_or(0),
                s["frameWidth"].as_u64().unwrap_or(0),
            )
        })
    })
}

#[tokio::test]
async fn gstreamer_publishes_with_whip_and_plays_with_whep_for_a_minute() -> Result<()> {
    if !gstreamer_present() {
        eprintln!(
            "SKIPPED: GStreamer webrtcbin with Python bindings is missing \
             (apt-get install gstreamer1.0-plugins-bad gstreamer1.0-nice python3-gst-1.0 ...)"
        );
        return Ok(());
    }
    let chromium_path = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("Giao ban GStreamer").await?;
    let mixer_url = server
        .invite(&meeting, "Bàn trộn GStreamer", "chair")
        .await?;
    let player_url = server
        .invite(&meeting, "Màn hình hội trường", "observer")
        .await?;
    let bridge_url = server.invite(&meeting, "Xã Hòa Bình", "bridge").await?;
    let unrouted_before = metric(&server, "giaoban_sfu_datagrams_unrouted_total").await?;

    // The Chromium bridge point joins first and watches.
    let mut node = tokio::process::Command::new("node");
    node.arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gst/chromium_watch.mjs"))
        .arg(&bridge_url)
        .current_dir(e2e_dir())
        .env("CHROMIUM_PATH", &chromium_path)
        .env(
            "E2E_WATCH_MS",
            ((PLAY_SECONDS + TAIL_SECONDS + 40) * 1000).to_string(),
        );
    let (_browser, mut browser_lines, browser_err) = spawn(node, "node (Chromium)")?;
    let mut browser: Vec<Value> = Vec::new();
    let joined = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = browser_lines.next_line().await? {
            let v: Value = serde_json::from_str(&l).unwrap_or(Value::String(l));
            let done = v["event"] == "joined" || v["event"] == "error";
            browser.push(v);
            if done {
                break;
            }
        }
        anyhow::Ok(())
    })
    .await;
    if !matches!(joined, Ok(Ok(()))) || browser.last().is_none_or(|v| v["event"] != "joined") {
        bail!(
            "the Chromium page did not join: {browser:?}\n{}",
            browser_err.await.unwrap_or_default()
        );
    }

    let mut py = tokio::process::Command::new(PYTHON);
    py.arg(script())
        .args([
            "--base",
            &server.base_url(),
            "--meeting",
            &meeting,
            "--whip-token",
            token_of(&mixer_url)?,
            "--whep-token",
            token_of(&player_url)?,
            "--seconds",
            &PLAY_SECONDS.to_string(),
            "--tail-seconds",
            &TAIL_SECONDS.to_string(),
        ])
        .env("PYTHONUNBUFFERED", "1");
    let (mut gst, mut gst_lines, gst_err) = spawn(py, "/usr/bin/python3 with GStreamer")?;

    // Both outputs, until the GStreamer script ends (and one browser
    // sample after).
    let mut events: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + SCRIPT_TIMEOUT;
    let mut gst_done: Option<tokio::time::Instant> = None;
    loop {
        let stop = gst_done.map_or(deadline, |t| t + Duration::from_secs(6));
        tokio::select! {
            line = gst_lines.next_line(), if gst_done.is_none() => match line? {
                Some(l) => {
                    println!("gst: {l}");
                    events.push(serde_json::from_str(&l).unwrap_or(Value::String(l)));
                }
                None => gst_done = Some(tokio::time::Instant::now()),
            },
            line = browser_lines.next_line() => match line? {
                Some(l) => browser.push(serde_json::from_str(&l).unwrap_or(Value::String(l))),
                None => {
                    if gst_done.is_some() {
                        break;
                    }
                    bail!(
                        "the Chromium page ended early: {:?}\n{}",
                        browser.last(),
                        browser_err.await.unwrap_or_default()
                    );
                }
            },
            _ = tokio::time::sleep_until(stop) => {
                if gst_done.is_some() {
                    break;
                }
                bail!("the GStreamer script did not finish in time; events: {events:?}");
            }
        }
    }
    let status = gst.wait().await?;
    let stderr = gst_err.await.unwrap_or_default();
    let unrouted_after = metric(&server, "giaoban_sfu_datagrams_unrouted_total").await?;
    println!("unrouted datagrams: {unrouted_before} before, {unrouted_after} after");
    let log = server.log();
    let fail = |what: String| -> anyhow::Error {
        anyhow::anyhow!(
            "{what}\nevents: {events:#?}\n--- script stderr (tail) ---\n{}\n--- server log (tail) ---\n{}",
            tail(&stderr, 40),
            tail(&log, 60)
        )
    };
    if !status.success() || events.iter().any(|e| e["event"] == "error") {
        return Err(fail(format!("the GStreamer script failed ({status})")));
    }
    let find = |name: &str| events.iter().find(|e| e["event"] == name).cloned();

    // WHIP and WHEP connected and stayed: the DELETEs at the end find both
    // sessions (a session the server dropped answers 404).
    for name in ["whip_created", "whep_created"] {
        let e = find(name).ok_or_else(|| fail(format!("no {name}")))?;
        ensure!(e["status"] == 201, "{name}: {e}");
        println!(
            "{name}: offer candidates {}, rtcp-mux only {}",
            e["offer_candidates"], e["rtcp_mux_only"]
        );
    }
    let whip_deleted = find("whip_deleted").ok_or_else(|| fail("no whip_deleted".into()))?;
    let whep_deleted = find("whep_deleted").ok_or_else(|| fail("no whep_deleted".into()))?;
    if whip_deleted["status"] != 200 || whep_deleted["status"] != 200 {
        return Err(fail(format!(
            "a session was gone before its DELETE: WHIP {} WHEP {}",
            whip_deleted["status"], whep_deleted["status"]
        )));
    }
    // The publisher's own view of its connection never went down.
    let states = whip_deleted["states"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        !states
            .iter()
            .any(|s| matches!(s[1].as_str(), Some("disconnected" | "failed" | "closed"))),
        "the publisher's connection went down: {states:?}"
    );

    // The player decoded the main view for the whole minute: every 10 s
    // window brought new frames and audio.
    let result = find("whep_result").ok_or_else(|| fail("no whep_result".into()))?;
    println!("WHEP player (GStreamer): {result}");
    ensure!(
        result["width"] == 320 && result["height"] == 240,
        "decoded frame size: {result}"
    );
    // 15 fps for 60 s is 900 frames; allow a loaded machine half.
    ensure!(
        result["video_frames"].as_u64().unwrap_or(0) >= 450,
        "too few frames decoded: {result}"
    );
    ensure!(
        result["audio_ms"].as_u64().unwrap_or(0) >= (PLAY_SECONDS - 10) * 1000,
        "too little audio decoded: {result}"
    );
    let progress: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "whep_progress")
        .collect();
    ensure!(
        progress.len() >= 5,
        "too few progress reports: {progress:?}"
    );
    for p in &progress {
        ensure!(
            p["new_frames"].as_u64().unwrap_or(0) >= 50
                && p["new_audio_ms"].as_u64().unwrap_or(0) >= 5000,
            "a 10 s window of the player decoded too little: {p}"
        );
    }

    // The Chromium bridge point decoded the publisher for at least a minute.
    let pid = log
        .lines()
        .find(|l| l.contains("WHIP publisher joined"))
        .and_then(|l| l.split("participant=").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_owned)
        .ok_or_else(|| fail("no WHIP publisher joined in the log".into()))?;
    let samples: Vec<(u64, u64, u64)> = browser
        .iter()
        .filter(|v| v["event"] == "sample")
        .filter_map(|v| {
            let (frames, width) = decoded_of(v, &pid)?;
            Some((v["t"].as_u64().unwrap_or(0), frames, width))
        })
        .filter(|s| s.1 > 0)
        .collect();
    println!("Chromium decoded of the GStreamer publisher (ms, frames, width): {samples:?}");
    // The longest run of 5 s samples that each brought new frames.
    let (mut best, mut start) = (0u64, None::<u64>);
    for w in samples.windows(2) {
        if w[1].1 >= w[0].1 + 20 {
            let s = *start.get_or_insert(w[0].0);
            best = best.max(w[1].0 - s);
        } else {
            start = None;
        }
    }
    println!("Chromium kept decoding it for {} s", best / 1000);
    ensure!(
        best >= PLAY_SECONDS * 1000,
        "the Chromium bridge point decoded the publisher for only {best} ms: {samples:?}"
    );
    ensure!(
        samples.iter().any(|s| s.2 == 320),
        "Chromium decoded no 320-wide frame: {samples:?}"
    );

    // It left only on DELETE.
    ensure!(
        log.lines()
            .any(|l| l.contains("WHIP publisher left") && !l.contains("disconnected")),
        "the publisher did not leave by its DELETE:\n{}",
        tail(&log, 60)
    );
    Ok(())
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
