//! Weak links: how a Chromium subscriber fares under loss, delay and rate
//! caps, driven by `tests/e2e/impairment.mjs` (Node + playwright-core, the
//! system's Chromium; see tests/tests/browser.rs for what that needs).
//!
//! The kernel of the test machines has no `netem`, so the impairment is the
//! user-space relay of `giaoban_tests::impair`: it listens on 127.0.0.2 and
//! forwards to the server's media port, adding per direction random loss, a
//! rate cap with a drop-tail queue (200 ms) and a fixed delay. Only the
//! subscriber page goes through it: the script rewrites the server's media
//! candidate to the relay's address in that page's remote descriptions and
//! removes the others (ICE-TCP included), and checks that both of that page's
//! connections selected the relay. The other page publishes its fake camera
//! in simulcast over a clean path.
//!
//! One server, one publisher and one subscriber go through the conditions in
//! turn (the relay switches between phases); each phase settles, then is
//! measured from the subscriber's getStats (frames decoded, freezes, the
//! decoded resolution and so the layer, loss, NACKs, PLIs, audio
//! concealment, RTT). Every figure is printed (`-- --nocapture`) as a
//! Markdown table row, the one in docs/media.md "Weak links: measured".
//!
//! - [`weak_links_loss_and_delay`]: 200 ms round trip (100 ms each way),
//!   5 % and 10 % loss both ways: video keeps decoding without long stalls,
//!   audio keeps flowing with bounded concealment.
//! - [`weak_links_bandwidth_caps`]: 1 Mbit/s and 300 kbit/s both ways: the
//!   server must send what fits (the link's 200 ms queue seldom overflows)
//!   and, where the top layer does not fit, a lower layer instead of
//!   freezing; video keeps decoding and audio flowing. This needs the SFU's
//!   layer choice from its bandwidth estimate (`sfu/src/bwe.rs`,
//!   `sfu/src/alloc.rs`); without it the server would keep forwarding the
//!   top layer (~800 kbit/s from the fake camera) into the 300 kbit/s cap.
//!   A last phase lifts the cap: the subscriber must climb back above the
//!   capped layer within 25 s (the server's timed trial upgrades).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
use giaoban_tests::impair::{Conditions, ImpairRelay};
use serde_json::{json, Value};

/// How long the script may wait for the first decoded video.
const MEDIA_TIMEOUT_MS: u64 = 20_000;
/// How long it waits for the publisher's top layer before the first phase
/// (Chromium sometimes starts it only after 20 s on a loaded machine).
const TOP_LAYER_WAIT_MS: u64 = 30_000;
/// Slowest acceptable frame rate over a measured phase (the fake camera
/// gives 20 fps; two Chromiums share two loaded cores with the builds).
const MIN_FPS: f64 = 5.0;
/// Longest acceptable time without a new decoded frame in a measured phase
/// (the samples are 250 ms apart: 2 s of freeze plus one sample).
const MAX_STALL_MS: f64 = 2_250.0;
/// Most audio concealment acceptable in any phase, in percent. Chromium's
/// audio on two cores shared with builds conceals 5-30 % even on a clean
/// link (the publisher's capture stutters), so this bounds "still flowing",
/// not quality; the figures are reported.
const MAX_CONCEALED_PCT: f64 = 60.0;

/// What the publisher's audio weighs on the link, in kbit/s (Opus, RTP and
/// headers), for deciding whether a layer fits a cap.
const AUDIO_KBPS: f64 = 50.0;

/// One browser check at a time: two Chromiums each is enough for 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One condition: the relay's settings and how long to settle and measure.
struct Phase {
    name: &'static str,
    to_client: Conditions,
    to_server: Conditions,
    settle_ms: u64,
    measure_ms: u64,
}

impl Phase {
    /// The same conditions both ways.
    fn both(name: &'static str, c: Conditions, settle_ms: u64, measure_ms: u64) -> Phase {
        Phase {
            name,
            to_client: c.clone(),
            to_server: c,
            settle_ms,
            measure_ms,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "to_client": self.to_client,
            "to_server": self.to_server,
            "settle_ms": self.settle_ms,
            "measure_ms": self.measure_ms,
        })
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur
}

fn num(v: &Value, path: &[&str]) -> f64 {
    at(v, path).as_f64().unwrap_or(f64::NAN)
}

/// A WAV file (48 kHz, mono, 16-bit) of speech-like sound: 200 ms
/// "syllables" of a harmonic tone with changing pitch, 50 ms apart. The
/// publisher's fake microphone plays it in a loop, so its audio is always
/// loud enough to be forwarded (the server forwards only audible
/// microphones; Chromium's default fake microphone beeps once a second and
/// is silent in between), and noise suppression does not flatten it as it
/// would a steady tone.
fn speech_like_wav() -> Vec<u8> {
    const RATE: u32 = 48_000;
    const SECONDS: u32 = 10;
    const PITCHES: [f64; 8] = [140.0, 185.0, 220.0, 160.0, 205.0, 120.0, 240.0, 175.0];
    let slot = (RATE / 4) as usize; // 250 ms
    let voiced = (RATE / 5) as usize; // 200 ms
    let ramp = (RATE / 50) as usize; // 20 ms
    let n = (RATE * SECONDS) as usize;
    let mut pcm = Vec::with_capacity(n * 2);
    for i in 0..n {
        let (k, j) = (i / slot, i % slot);
        let mut x = 0.0;
        if j < voiced {
            let f0 = PITCHES[k % PITCHES.len()];
            let t = i as f64 / f64::from(RATE);
            for h in 1..=5 {
                let h = f64::from(h);
                x += (2.0 * std::f64::consts::PI * f0 * h * t).sin() / h;
            }
            let env = (j.min(voiced - j) as f64 / ramp as f64).min(1.0);
            x *= 0.3 * env;
        }
        let v = (x.clamp(-1.0, 1.0) * f64::from(i16::MAX)) as i16;
        pcm.extend_from_slice(&v.to_le_bytes());
    }
    let data_len = pcm.len() as u32;
    let mut wav = Vec::with_capacity(44 + pcm.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&(RATE * 2).to_le_bytes()); // bytes per second
    wav.extend_from_slice(&2u16.to_le_bytes()); // block align
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.extend_from_slice(&pcm);
    wav
}

/// Starts a server, a relay in front of its media port, invites a publisher
/// and a subscriber, runs the script through `phases`; returns its summary.
async fn run_phases(phases: &[Phase]) -> Result<Value> {
    let chromium = chromium()?;
    let dir = e2e_dir();
    ensure_node_modules(&dir).await?;
    let audio_dir = tempfile::Builder::new()
        .prefix("giaoban-impair-")
        .tempdir()?;
    let wav = audio_dir.path().join("speech.wav");
    std::fs::write(&wav, speech_like_wav()).context("writing the fake microphone's WAV")?;

    let server = giaoban_tests::TestServer::start().await?;
    let relay = ImpairRelay::start(server.media_udp, "127.0.0.2".parse()?)
        .await
        .context("starting the impairment relay on 127.0.0.2")?;
    let meeting = server.create_meeting("Giao ban đường truyền yếu").await?;
    let publisher = server
        .invite(&meeting, "Sở Thông tin và Truyền thông", "member")
        .await?;
    let subscriber = server.invite(&meeting, "UBND xã Đắk Drô", "bridge").await?;

    let phases_json = Value::Array(phases.iter().map(Phase::to_json).collect());
    let phase_ms: u64 = phases.iter().map(|p| p.settle_ms + p.measure_ms).sum();
    // Each phase costs a few seconds more than its plan (sampling, stats).
    let limit = Duration::from_millis(
        MEDIA_TIMEOUT_MS + TOP_LAYER_WAIT_MS + phase_ms + 5_000 * phases.len() as u64 + 60_000,
    );
    let run = run_script(
        "impairment.mjs",
        &[publisher.as_ref(), subscriber.as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", MEDIA_TIMEOUT_MS.to_string()),
            ("E2E_TOP_LAYER_WAIT_MS", TOP_LAYER_WAIT_MS.to_string()),
            ("IMPAIR_CONTROL", relay.control_addr().to_string()),
            ("IMPAIR_REWRITE_FROM", server.media_udp.to_string()),
            ("IMPAIR_REWRITE_TO", relay.listen_addr().to_string()),
            ("IMPAIR_PHASES", phases_json.to_string()),
            ("IMPAIR_PUBLISHER_AUDIO", wav.display().to_string()),
        ],
        limit,
    )
    .await?;
    eprintln!("--- impairment.mjs stderr ---\n{}", run.stderr);
    eprintln!("--- relay totals --- {:?}", relay.stats());
    let ok = run.summary.as_ref().map(|s| &s["ok"]) == Some(&Value::Bool(true));
    if !run.status.success() || !ok {
        let reason = run
            .summary
            .as_ref()
            .and_then(|s| s["reason"].as_str())
            .unwrap_or("")
            .to_owned();
        bail!(
            "impairment.mjs failed ({}): {reason}\n--- stdout ---\n{}\n--- server log (tail) ---\n{}",
            run.status,
            tail(&run.stdout, 5),
            tail(&server.log(), 60)
        );
    }
    let summary = run.summary.context("no JSON summary")?;
    let got = summary["phases"].as_array().map(Vec::len).unwrap_or(0);
    ensure!(
        got == phases.len(),
        "{got} phases measured of {}",
        phases.len()
    );
    print_table(&summary);
    Ok(summary)
}

/// The figures as rows of the table in docs/media.md.
fn print_table(s: &Value) {
    eprintln!("top layer before the phases: {}", s["top_layer"]);
    eprintln!(
        "| condition | frames decoded (fps) | freezes (count / s) | longest stall | resolution (layer) \
         | video kbit/s | packets lost | NACKs | PLIs | audio pps | audio concealed | RTT |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in s["phases"].as_array().into_iter().flatten() {
        eprintln!(
            "| {} | {} ({}) | {} / {} s | {} ms | {}x{} ({}) | {} | {} | {} | {} | {} | {} % | {} ms |",
            p["name"].as_str().unwrap_or("?"),
            p["video"]["frames"],
            p["video"]["fps"],
            p["video"]["freezes"],
            p["video"]["freeze_s"],
            p["video"]["longest_stall_ms"],
            p["video"]["width"],
            p["video"]["height"],
            p["video"]["layer"].as_str().unwrap_or("?"),
            p["video"]["kbps"],
            p["video"]["packets_lost"],
            p["video"]["nacks"],
            p["video"]["plis"],
            p["audio"]["pps"],
            p["audio"]["concealed_pct"],
            p["rtt_ms"],
        );
    }
    for p in s["phases"].as_array().into_iter().flatten() {
        eprintln!(
            "{}: widths {} publisher {} relay {} uplink {}",
            p["name"].as_str().unwrap_or("?"),
            p["video"]["widths"],
            p["publisher_layers"],
            p["relay"],
            p["uplink"]
        );
    }
}

/// What the publisher's layer of `width` sent during phase `p`, in kbit/s
/// (0 if no layer has that width).
fn layer_kbps(p: &Value, width: f64) -> f64 {
    p["publisher_layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["width"].as_f64() == Some(width))
        .filter_map(|l| l["kbps"].as_f64())
        .fold(0.0, f64::max)
}

fn phase<'a>(s: &'a Value, name: &str) -> Result<&'a Value> {
    s["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .with_context(|| format!("no phase {name} in {s}"))
}

/// Video kept being decoded through the measured part of phase `p`.
fn check_video_flows(p: &Value) -> Result<()> {
    let name = p["name"].as_str().unwrap_or("?");
    let fps = num(p, &["video", "fps"]);
    ensure!(
        fps >= MIN_FPS,
        "{name}: the subscriber decoded {fps} fps (at least {MIN_FPS} expected): {p}"
    );
    let stall = num(p, &["video", "longest_stall_ms"]);
    ensure!(
        stall <= MAX_STALL_MS,
        "{name}: no new frame for {stall} ms (at most {MAX_STALL_MS}): {p}"
    );
    Ok(())
}

/// Audio kept flowing: at least `min_delivered_pct` of the packets the
/// publisher sent during the phase reached the subscriber, and the
/// concealment stayed below [`MAX_CONCEALED_PCT`]. (The two pages' stats
/// are read one after the other and up to ~0.4 s of audio can sit in the
/// jitter buffer, so even a clean link shows 89-101 % over 10 s.)
fn check_audio_flows(p: &Value, min_delivered_pct: f64) -> Result<()> {
    let name = p["name"].as_str().unwrap_or("?");
    let delivered = num(p, &["audio", "delivered_pct"]);
    ensure!(
        delivered >= min_delivered_pct,
        "{name}: {delivered} % of the publisher's audio packets arrived \
         (at least {min_delivered_pct} % expected): {p}"
    );
    let concealed = num(p, &["audio", "concealed_pct"]);
    ensure!(
        concealed <= MAX_CONCEALED_PCT,
        "{name}: {concealed} % of the audio was concealed (at most {MAX_CONCEALED_PCT} %): {p}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_links_loss_and_delay() -> Result<()> {
    let _one_at_a_time = SERIAL.lock().await;
    let phases = [
        Phase::both("clean", Conditions::clean(), 2_000, 10_000),
        Phase::both(
            "RTT 200 ms (100 ms each way)",
            Conditions::delay(100),
            4_000,
            20_000,
        ),
        // Loss moves the subscriber to a lower layer, sometimes only after
        // 4-6 s on a loaded machine, and a switch under loss can freeze for
        // 2-3 s (a lost keyframe): let that happen before measuring.
        Phase::both("5 % loss", Conditions::loss(5.0), 8_000, 20_000),
        Phase::both("10 % loss", Conditions::loss(10.0), 8_000, 20_000),
    ];
    let s = run_phases(&phases).await?;

    let clean = phase(&s, "clean")?;
    check_video_flows(clean)?;
    check_audio_flows(clean, 80.0)?;

    let delay = phase(&s, phases[1].name)?;
    // The relay is in the path: the round trip shows its 2 x 100 ms.
    let rtt = num(delay, &["rtt_ms"]);
    ensure!(
        rtt >= 180.0,
        "RTT {rtt} ms with 100 ms added each way: {delay}"
    );
    check_video_flows(delay)?;
    check_audio_flows(delay, 80.0)?;

    // Audio has no retransmission: what arrives is what the relay let by.
    for (name, pct, min_audio) in [("5 % loss", 5.0, 75.0), ("10 % loss", 10.0, 65.0)] {
        let p = phase(&s, name)?;
        // The relay did drop about that share of what the server sent.
        let got = num(p, &["relay", "to_client", "received"]);
        let lost = num(p, &["relay", "to_client", "lost"]);
        let share = 100.0 * lost / got.max(1.0);
        ensure!(
            share > pct / 2.0 && share < pct * 2.0,
            "{name}: the relay dropped {share:.1} % toward the subscriber: {p}"
        );
        check_video_flows(p)?;
        check_audio_flows(p, min_audio)?;
        // The losses were repaired, not just shown: NACKs went out.
        ensure!(
            num(p, &["video", "nacks"]) > 0.0,
            "{name}: the subscriber sent no NACK: {p}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_links_bandwidth_caps() -> Result<()> {
    let _one_at_a_time = SERIAL.lock().await;
    let phases = [
        Phase::both("clean", Conditions::clean(), 2_000, 10_000),
        Phase::both("1 Mbit/s cap", Conditions::rate(1_000_000), 8_000, 20_000),
        Phase::both("300 kbit/s cap", Conditions::rate(300_000), 8_000, 20_000),
        // The link recovers: the server finds out only by trying a higher
        // layer (timed trial upgrades, docs/media.md), one layer at a time.
        Phase::both("cap lifted", Conditions::clean(), 25_000, 10_000),
    ];
    let s = run_phases(&phases).await?;
    let clean = phase(&s, "clean")?;
    check_video_flows(clean)?;
    check_audio_flows(clean, 80.0)?;
    // The top layer's width (Chromium may bring it up only during the clean
    // phase) and what it weighed on the clean link.
    let top_width = num(&s, &["top_layer", "publisher_width"]).max(
        clean["publisher_layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["width"].as_f64())
            .fold(0.0, f64::max),
    );
    ensure!(top_width > 0.0, "no publisher layer before the phases: {s}");
    let top_kbps = layer_kbps(clean, top_width);

    for (name, cap_kbps) in [("1 Mbit/s cap", 1_000.0), ("300 kbit/s cap", 300.0)] {
        let p = phase(&s, name)?;
        // What the server sends fits the cap: the link's queue seldom
        // overflows. A layer above the cap keeps the queue full and drops a
        // third or more of what is sent; the estimator's probes and trial
        // upgrades overflow it briefly, 0-2.5 % of a phase on a busy
        // machine, so the bound leaves room for them.
        let got = num(p, &["relay", "to_client", "received"]);
        let overflow = num(p, &["relay", "to_client", "overflow"]);
        let share = 100.0 * overflow / got.max(1.0);
        ensure!(
            share <= 5.0,
            "{name}: {share:.1} % of what the server sent overflowed the {cap_kbps} kbit/s link: {p}"
        );
        // Where the top layer and the audio do not fit, the subscriber gets
        // a lower layer instead of freezing. (The fake camera's top layer
        // weighs only 600-900 kbit/s, so at 1 Mbit/s it usually fits and
        // staying on it is right.)
        let width = num(p, &["video", "width"]);
        if top_kbps + AUDIO_KBPS > cap_kbps {
            ensure!(
                width > 0.0 && width < top_width,
                "{name}: the subscriber decodes {width}px wide, the top layer ({top_width}px, \
                 {top_kbps} kbit/s on the clean link) does not fit: {p}"
            );
        }
        check_video_flows(p)?;
        check_audio_flows(p, 65.0)?;
    }

    // Once the cap is gone the subscriber climbs back above the layer the
    // 300 kbit/s cap held it to, by the server's trial upgrades.
    let capped = num(phase(&s, "300 kbit/s cap")?, &["video", "width"]);
    let lifted = phase(&s, "cap lifted")?;
    let width = num(lifted, &["video", "width"]);
    if capped < top_width {
        ensure!(
            width > capped,
            "cap lifted: the subscriber still decodes {width}px wide after 25 s on a clean link \
             (held to {capped}px under the cap, the top layer is {top_width}px): {lifted}"
        );
    }
    eprintln!("cap lifted: {capped}px under the 300 kbit/s cap -> {width}px (top {top_width}px)");
    check_video_flows(lifted)?;
    Ok(())
}
