//! `soak`: the churn soak of issue 7. Participants join and leave the real
//! server every few seconds for a long time (30 minutes by default) while
//! the server's resident memory is sampled; after a warm-up, memory must
//! stay within a band (5 % by default) of what it was when the warm-up ended.
//!
//! It is a tool that prints figures, not a timed test: run it in release,
//! `cargo run --release -p giaoban-tests --bin soak -- --help`. What it does
//! and the figures measured are in `docs/performance.md`.
//!
//! # Layout
//! - [`Args`]: the command line.
//! - [`run`]: server, a meeting, a pool of invitations, the steady crowd,
//!   then one churn step every `--churn-every` seconds: one participant
//!   leaves (politely with `leave`, or abruptly: its task and sockets are
//!   dropped, as a closed tab), a new one joins, publishes and must receive
//!   media from someone within `--media-timeout`.
//! - [`Sample`]: the server's RSS, CPU and gauges from `/metrics`, taken
//!   every `--sample-every` seconds; the report compares every sample after
//!   the warm-up with the one that ended it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use giaoban_tests::client::{JoinOptions, Kind, MediaOptions, TestClient};
use giaoban_tests::procstat::{
    clock_ticks_per_second, machine_description, proc_cpu_ticks, proc_rss, time_string,
};
use giaoban_tests::{token_of, ServerOptions, TestServer};
use rand::Rng as _;
use serde_json::{json, Value};

/// Churn soak: participants join and leave for a long time; the server's
/// memory must stay flat after the warm-up.
#[derive(Debug, Clone, Parser)]
#[command(name = "soak")]
struct Args {
    /// Minutes of churn in all (warm-up included).
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Minutes of warm-up: samples before this are not judged.
    #[arg(long, default_value_t = 5.0)]
    warmup_minutes: f64,
    /// Participants in the meeting at any time.
    #[arg(long, default_value_t = 8)]
    steady: usize,
    /// Seconds between churn steps (one leaves, one joins).
    #[arg(long, default_value_t = 3.0)]
    churn_every: f64,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 10.0)]
    sample_every: f64,
    /// Allowed deviation of RSS from the end-of-warm-up sample, percent.
    #[arg(long, default_value_t = 5.0)]
    band_percent: f64,
    /// A new participant must receive media within this many seconds.
    #[arg(long, default_value_t = 10.0)]
    media_timeout: f64,
    /// Video bitrate of each participant, kbit/s.
    #[arg(long, default_value_t = 200)]
    video_kbps: u32,
    /// Worker threads of the clients' runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// After the churn, everyone but the chair leaves politely and, this many
    /// seconds later (more than the 30 s resume grace, so that vanished
    /// participants are gone too), the server is sampled once more with the
    /// chair alone: its state then is what the churn left behind. 0: off.
    #[arg(long, default_value_t = 0.0)]
    quiet_end_seconds: f64,
    /// The giaoban binary (default: next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Write the results (every sample included) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One look at the server.
#[derive(Debug, Clone)]
struct Sample {
    /// Seconds since the churn started.
    at_s: f64,
    rss: u64,
    /// Server CPU ticks since it started.
    cpu_ticks: u64,
    /// `giaoban_participants`, `giaoban_ws_sessions_open` and
    /// `giaoban_sfu_peers` (peer connections in the media engine) from
    /// /metrics: what the server holds, to tell growth of memory from
    /// growth of state.
    participants: Option<f64>,
    ws_open: Option<f64>,
    sfu_peers: Option<f64>,
    /// Churn steps done so far.
    steps: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.steady < 2 {
        bail!("--steady must be at least 2");
    }
    if args.warmup_minutes >= args.minutes {
        bail!("--warmup-minutes must be less than --minutes");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(run(args))
}

/// A gauge's value in Prometheus text (the unlabelled sample).
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

async fn sample(
    http: &reqwest::Client,
    server: &TestServer,
    pid: &str,
    at_s: f64,
    steps: u64,
) -> anyhow::Result<Sample> {
    let metrics = match http
        .get(format!("{}/metrics", server.base_url()))
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    Ok(Sample {
        at_s,
        rss: proc_rss(pid)?,
        cpu_ticks: proc_cpu_ticks(pid)?,
        participants: gauge(&metrics, "giaoban_participants"),
        ws_open: gauge(&metrics, "giaoban_ws_sessions_open"),
        sfu_peers: gauge(&metrics, "giaoban_sfu_peers"),
        steps,
    })
}

/// A participant in the meeting and the invitation it used.
struct Member {
    client: TestClient,
    token: usize,
}

async fn join(
    ws_url: &str,
    token: &str,
    media: &MediaOptions,
) -> anyhow::Result<(TestClient, Duration)> {
    let t0 = Instant::now();
    let c = TestClient::join_media(ws_url, token, JoinOptions::default(), media.clone()).await?;
    Ok((c, t0.elapsed()))
}

/// Waits until `c` receives video from anyone.
async fn first_media(c: &TestClient, timeout: Duration) -> bool {
    c.wait_until(timeout, "media from someone", |st| {
        st.media
            .iter()
            .any(|((_, kind), m)| *kind == Kind::Video && m.packets > 0)
    })
    .await
    .is_ok()
}

async fn run(args: Args) -> anyhow::Result<()> {
    let started_at = std::time::SystemTime::now();
    let tck = clock_ticks_per_second();
    let server = TestServer::start_with(ServerOptions {
        bin: args.server_bin.clone(),
        log_level: Some("warn".into()),
        extra_toml: String::new(),
    })
    .await
    .context("start the server")?;
    let pid = server
        .pid()
        .context("the server exited at once")?
        .to_string();
    let meeting = server.create_meeting("Giao ban: chạy bền").await?;
    // A pool of invitations a little larger than the crowd: a participant
    // that left frees its invitation for a later join (a bridge point
    // reconnecting), as in real meetings.
    let pool = args.steady + 4;
    let mut tokens = Vec::with_capacity(pool);
    for i in 0..pool {
        let role = if i == 0 { "chair" } else { "bridge" };
        let url = server
            .invite(&meeting, &format!("Điểm cầu {i:03}"), role)
            .await?;
        tokens.push(token_of(&url)?.to_owned());
    }
    let media = MediaOptions {
        video_frame_bytes: Some((args.video_kbps as usize * 1000 / 8 / 30).max(64)),
        keyframe_every: 60,
        ..MediaOptions::default()
    };
    let ws_url = server.ws_url();
    let http = reqwest::Client::new();
    let rss_start = proc_rss(&pid)?;

    let mut members: VecDeque<Member> = VecDeque::new();
    for (t, token) in tokens.iter().enumerate().take(args.steady) {
        let (client, _) = join(&ws_url, token, &media).await?;
        members.push_back(Member { client, token: t });
    }
    println!(
        "soak: {} participants joined; churn every {} s for {} min ({} min warm-up), server pid {pid}",
        args.steady, args.churn_every, args.minutes, args.warmup_minutes
    );

    let t0 = Instant::now();
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let warmup = Duration::from_secs_f64(args.warmup_minutes * 60.0);
    let churn_every = Duration::from_secs_f64(args.churn_every);
    let sample_every = Duration::from_secs_f64(args.sample_every);
    let media_timeout = Duration::from_secs_f64(args.media_timeout);
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = Instant::now();
    let mut steps = 0u64;
    let mut polite = 0u64;
    let mut abrupt = 0u64;
    let mut join_failures = 0u64;
    let mut media_failures = 0u64;
    let mut join_ms: Vec<u64> = Vec::new();
    let mut rng = rand::rng();

    while t0.elapsed() < total {
        let step_start = Instant::now();
        if step_start >= next_sample {
            let s = sample(&http, &server, &pid, t0.elapsed().as_secs_f64(), steps).await?;
            println!(
                "  t={:>6.0}s rss {:>7.1} MB  participants {:>4}  ws open {:>4}  peers {:>4}  steps {}",
                s.at_s,
                s.rss as f64 / 1e6,
                s.participants.map(|v| v.to_string()).unwrap_or("-".into()),
                s.ws_open.map(|v| v.to_string()).unwrap_or("-".into()),
                s.sfu_peers.map(|v| v.to_string()).unwrap_or("-".into()),
                s.steps
            );
            samples.push(s);
            next_sample += sample_every;
        }

        // One leaves (never the chair, index 0 of the pool, so there is
        // always someone publishing whom the newcomer can receive).
        let candidates: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].token != 0)
            .collect();
        let victim = candidates[rng.random_range(0..candidates.len())];
        let Some(gone) = members.remove(victim) else {
            bail!("no member at {victim}");
        };
        if rng.random_bool(0.5) {
            if gone.client.leave().await.is_err() {
                println!("  a polite leave got no bye");
            }
            polite += 1;
        } else {
            gone.client.vanish();
            abrupt += 1;
        }
        let free: Vec<usize> = (0..pool)
            .filter(|t| members.iter().all(|m| m.token != *t) && *t != gone.token)
            .collect();
        let token = free[rng.random_range(0..free.len())];
        match join(&ws_url, &tokens[token], &media).await {
            Ok((client, took)) => {
                if first_media(&client, media_timeout).await {
                    join_ms.push(took.as_millis() as u64);
                } else {
                    media_failures += 1;
                }
                members.push_back(Member { client, token });
            }
            Err(e) => {
                join_failures += 1;
                println!("  join failed: {e:#}");
            }
        }
        steps += 1;
        // Keep the crowd at its size even after a failed join.
        while members.len() < args.steady {
            let free: Vec<usize> = (0..pool)
                .filter(|t| members.iter().all(|m| m.token != *t))
                .collect();
            let token = free[rng.random_range(0..free.len())];
            match join(&ws_url, &tokens[token], &media).await {
                Ok((client, _)) => members.push_back(Member { client, token }),
                Err(_) => {
                    join_failures += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        let spent = step_start.elapsed();
        if spent < churn_every {
            tokio::time::sleep(churn_every - spent).await;
        }
    }
    let last = sample(&http, &server, &pid, t0.elapsed().as_secs_f64(), steps).await?;
    samples.push(last);
    // The chair alone, once the others and their resume grace are gone (not
    // judged: a look at what the churn left behind).
    let quiet = if args.quiet_end_seconds > 0.0 {
        let mut chair = Vec::new();
        for m in members.drain(..) {
            if m.token == 0 {
                chair.push(m);
            } else if m.client.leave().await.is_err() {
                println!("  a polite leave got no bye");
            }
        }
        members.extend(chair);
        tokio::time::sleep(Duration::from_secs_f64(args.quiet_end_seconds)).await;
        let q = sample(&http, &server, &pid, t0.elapsed().as_secs_f64(), steps).await?;
        println!(
            "  quiet: t={:.0}s rss {:.1} MB  participants {}  peers {}",
            q.at_s,
            q.rss as f64 / 1e6,
            q.participants.map(|v| v.to_string()).unwrap_or("-".into()),
            q.sfu_peers.map(|v| v.to_string()).unwrap_or("-".into()),
        );
        Some(q)
    } else {
        None
    };

    // Judge every sample after the warm-up against the one that ended it.
    let warm_s = warmup.as_secs_f64();
    let base = samples
        .iter()
        .rev()
        .find(|s| s.at_s <= warm_s)
        .or(samples.first())
        .cloned()
        .context("no samples")?;
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at_s > base.at_s).collect();
    let dev = |s: &Sample| (s.rss as f64 - base.rss as f64) / base.rss as f64 * 100.0;
    let max_dev = after.iter().map(|s| dev(s)).fold(0.0_f64, |a, b| a.max(b));
    let min_dev = after.iter().map(|s| dev(s)).fold(0.0_f64, |a, b| a.min(b));
    let final_dev = after.last().map(|s| dev(s)).unwrap_or(0.0);
    let within = max_dev <= args.band_percent && min_dev >= -args.band_percent;
    let cpu_s = (samples.last().map(|s| s.cpu_ticks).unwrap_or(0) - base.cpu_ticks) as f64 / tck;
    let span = samples.last().map(|s| s.at_s).unwrap_or(0.0) - base.at_s;
    join_ms.sort_unstable();
    let pct = |p: f64| -> Option<u64> {
        (!join_ms.is_empty()).then(|| join_ms[((join_ms.len() as f64 - 1.0) * p).round() as usize])
    };

    let report = json!({
        "date_utc": time_string(started_at),
        "machine": machine_description(),
        "server_bin": args.server_bin.clone().unwrap_or_else(giaoban_tests::giaoban_bin).display().to_string(),
        "minutes": args.minutes,
        "warmup_minutes": args.warmup_minutes,
        "steady_participants": args.steady,
        "churn_every_s": args.churn_every,
        "steps": steps,
        "polite_leaves": polite,
        "abrupt_leaves": abrupt,
        "join_failures": join_failures,
        "media_failures": media_failures,
        "join_p50_ms": pct(0.5),
        "join_p99_ms": pct(0.99),
        "rss_before_join": rss_start,
        "rss_at_warmup_end": base.rss,
        "rss_final": samples.last().map(|s| s.rss),
        "rss_max_dev_percent": max_dev,
        "rss_min_dev_percent": min_dev,
        "rss_final_dev_percent": final_dev,
        "band_percent": args.band_percent,
        "within_band": within,
        "server_cpu_cores_after_warmup": if span > 0.0 { cpu_s / span } else { 0.0 },
        "quiet_end": quiet.as_ref().map(|q| json!({
            "at_s": q.at_s, "rss": q.rss, "participants": q.participants,
            "sfu_peers": q.sfu_peers,
        })),
        "samples": samples.iter().map(|s| json!({
            "at_s": s.at_s, "rss": s.rss, "participants": s.participants,
            "ws_open": s.ws_open, "sfu_peers": s.sfu_peers, "steps": s.steps,
        })).collect::<Vec<Value>>(),
    });
    println!();
    println!("soak result ({})", time_string(started_at));
    println!(
        "  churn steps          {steps} ({polite} polite leaves, {abrupt} abrupt), {join_failures} failed joins, {media_failures} joins without media in {} s",
        args.media_timeout
    );
    println!(
        "  join to media p50/p99 {} / {} ms",
        pct(0.5).map(|v| v.to_string()).unwrap_or("-".into()),
        pct(0.99).map(|v| v.to_string()).unwrap_or("-".into())
    );
    println!(
        "  RSS before joins     {:.1} MB; at warm-up end (t={:.0}s) {:.1} MB; final {:.1} MB",
        rss_start as f64 / 1e6,
        base.at_s,
        base.rss as f64 / 1e6,
        samples.last().map(|s| s.rss as f64 / 1e6).unwrap_or(0.0)
    );
    println!(
        "  RSS after warm-up    max {max_dev:+.2}%, min {min_dev:+.2}%, final {final_dev:+.2}% (band ±{}%): {}",
        args.band_percent,
        if within { "within" } else { "OUTSIDE" }
    );
    println!(
        "  server CPU           {:.3} cores on average after warm-up",
        report["server_cpu_cores_after_warmup"]
            .as_f64()
            .unwrap_or(0.0)
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
        println!("  JSON                 {}", path.display());
    }
    drop(members);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unlabelled_gauges() {
        let text = "# HELP giaoban_participants x\n# TYPE giaoban_participants gauge\n\
                    giaoban_participants 7\ngiaoban_participants_other 3\n\
                    giaoban_ws_sessions_open 9\n";
        assert_eq!(gauge(text, "giaoban_participants"), Some(7.0));
        assert_eq!(gauge(text, "giaoban_ws_sessions_open"), Some(9.0));
        assert_eq!(gauge(text, "giaoban_missing"), None);
    }
}
