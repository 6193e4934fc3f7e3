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
//!   dropped, as a closed tab), and new ones join, publish and must receive
//!   media from someone within `--media-timeout`.
//! - [`Crowd`]: who is in the meeting. By default the population *on the
//!   server* is kept at `--steady`: a participant that vanished is still
//!   there for the resume grace, so its replacement joins only once the
//!   server's `giaoban_participants` gauge shows it gone. With
//!   `--replace-at-once` (the earlier behaviour) a replacement joins at once
//!   and the server holds the steady crowd plus the vanished ones.
//! - [`Sample`]: the server's RSS, CPU and gauges from `/metrics`, taken
//!   every `--sample-every` seconds; the report compares every sample after
//!   the warm-up with the one that ended it, and gives the mean RSS at each
//!   count of participants present, early and late, to show creep at equal
//!   population.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{ArgAction, Parser};
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
    /// Participants present on the server at any time (vanished ones count
    /// until the server drops them; see --replace-at-once).
    #[arg(long, default_value_t = 8)]
    steady: usize,
    /// Seconds between churn steps (one leaves; new ones join when the
    /// server has fewer than --steady).
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
    /// Participants receive in slots (`join` with `"receive": "slots"`, as
    /// the web client does); false: a sent track per published track.
    #[arg(long, default_value_t = false, action = ArgAction::Set)]
    slots: bool,
    /// Worker threads of the clients' runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// After the churn, everyone but the chair leaves politely and, this many
    /// seconds later (more than the 30 s resume grace, so that vanished
    /// participants are gone too), the server is sampled once more with the
    /// chair alone: its state then is what the churn left behind. 0: off.
    #[arg(long, default_value_t = 0.0)]
    quiet_end_seconds: f64,
    /// The earlier churn: a replacement joins in the same step as a leave,
    /// so the clients connected stay at --steady and the server holds them
    /// plus the vanished ones still in their resume grace (leave kind drawn
    /// at random instead of alternating).
    #[arg(long)]
    replace_at_once: bool,
    /// The server's resume grace, seconds: only used to forget vanished
    /// participants when /metrics has no `giaoban_participants` gauge.
    #[arg(long, default_value_t = 30.0)]
    resume_grace: f64,
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
    /// The tool's view: clients connected, and vanished ones it believes
    /// the server still holds (none tracked with --replace-at-once).
    live: usize,
    ghosts: usize,
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

/// The server's /metrics text (empty if it did not answer).
async fn metrics(http: &reqwest::Client, server: &TestServer) -> String {
    match http
        .get(format!("{}/metrics", server.base_url()))
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// What the tool reads of the server: its /metrics and its process.
struct Probe<'a> {
    http: reqwest::Client,
    server: &'a TestServer,
    pid: String,
    t0: Instant,
}

impl Probe<'_> {
    /// Participants present on the server by its gauge (None without it).
    async fn participants(&self) -> Option<f64> {
        gauge(
            &metrics(&self.http, self.server).await,
            "giaoban_participants",
        )
    }

    async fn sample(&self, crowd: &Crowd, steps: u64) -> anyhow::Result<Sample> {
        let metrics = metrics(&self.http, self.server).await;
        Ok(Sample {
            at_s: self.t0.elapsed().as_secs_f64(),
            rss: proc_rss(&self.pid)?,
            cpu_ticks: proc_cpu_ticks(&self.pid)?,
            participants: gauge(&metrics, "giaoban_participants"),
            ws_open: gauge(&metrics, "giaoban_ws_sessions_open"),
            sfu_peers: gauge(&metrics, "giaoban_sfu_peers"),
            live: crowd.members.len(),
            ghosts: crowd.ghosts.len(),
            steps,
        })
    }
}

/// A participant in the meeting and the invitation it used.
struct Member {
    client: TestClient,
    token: usize,
}

/// A participant that vanished: the server keeps it for the resume grace.
/// Its invitation is not used again meanwhile (a join with it would replace
/// it on the server at once).
struct Ghost {
    token: usize,
    since: Instant,
}

/// Who is in the meeting, and the joins' outcomes.
struct Crowd {
    members: VecDeque<Member>,
    /// Vanished participants, oldest first (they expire in this order).
    ghosts: VecDeque<Ghost>,
    tokens: Vec<String>,
    ws_url: String,
    media: MediaOptions,
    slots: bool,
    media_timeout: Duration,
    joins: u64,
    join_failures: u64,
    media_failures: u64,
    join_ms: Vec<u64>,
}

impl Crowd {
    /// Participants present on the server: the gauge when /metrics has it
    /// (vanished participants it no longer counts are forgotten, oldest
    /// first), else the clients plus the vanished ones younger than the
    /// grace.
    fn present(&mut self, server_count: Option<f64>, grace: Duration) -> usize {
        let now = Instant::now();
        match server_count {
            Some(n) => {
                let n = n.max(0.0).round() as usize;
                let mut excess = (self.members.len() + self.ghosts.len()).saturating_sub(n);
                while excess > 0 && self.ghosts.pop_front().is_some() {
                    excess -= 1;
                }
                // Never hold a token for long after the grace even if the
                // counts disagree (a join that failed after the server took it).
                while self
                    .ghosts
                    .front()
                    .is_some_and(|g| now.duration_since(g.since) > grace * 2)
                {
                    self.ghosts.pop_front();
                }
                n
            }
            None => {
                while self
                    .ghosts
                    .front()
                    .is_some_and(|g| now.duration_since(g.since) > grace + Duration::from_secs(1))
                {
                    self.ghosts.pop_front();
                }
                self.members.len() + self.ghosts.len()
            }
        }
    }

    /// Brings the population back to `args.steady`: participants present
    /// on the server (by its gauge) or, with `--replace-at-once`, clients
    /// connected. `except`: an invitation not to use now.
    async fn top_up(
        &mut self,
        probe: &Probe<'_>,
        args: &Args,
        grace: Duration,
        except: Option<usize>,
        rng: &mut impl rand::Rng,
    ) {
        let present = if args.replace_at_once {
            self.members.len()
        } else {
            let count = probe.participants().await;
            self.present(count, grace)
        };
        self.join_more(args.steady.saturating_sub(present), except, rng)
            .await;
    }

    /// Joins `n` new participants on free invitations (not held by a member,
    /// a vanished participant, or `except`), each of which must receive
    /// media. Stops at the first failed join (the next step tries again).
    async fn join_more(&mut self, n: usize, except: Option<usize>, rng: &mut impl rand::Rng) {
        for _ in 0..n {
            let free: Vec<usize> = (0..self.tokens.len())
                .filter(|t| {
                    self.members.iter().all(|m| m.token != *t)
                        && self.ghosts.iter().all(|g| g.token != *t)
                        && Some(*t) != except
                })
                .collect();
            if free.is_empty() {
                println!("  no free invitation");
                return;
            }
            let token = free[rng.random_range(0..free.len())];
            self.joins += 1;
            match join(&self.ws_url, &self.tokens[token], &self.media, self.slots).await {
                Ok((client, took)) => {
                    if first_media(&client, self.media_timeout).await {
                        self.join_ms.push(took.as_millis() as u64);
                    } else {
                        self.media_failures += 1;
                    }
                    self.members.push_back(Member { client, token });
                }
                Err(e) => {
                    self.join_failures += 1;
                    println!("  join failed: {e:#}");
                    return;
                }
            }
        }
    }
}

async fn join(
    ws_url: &str,
    token: &str,
    media: &MediaOptions,
    slots: bool,
) -> anyhow::Result<(TestClient, Duration)> {
    let t0 = Instant::now();
    let options = JoinOptions {
        slots,
        ..JoinOptions::default()
    };
    let c = TestClient::join_media(ws_url, token, options, media.clone()).await?;
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

fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or("-".into())
}

/// Mean RSS at each count of participants present on the server, over the
/// judged samples, split at the middle of the judged span: (count, early
/// mean and samples, late mean and samples).
type ByCount = Vec<(usize, Option<f64>, usize, Option<f64>, usize)>;

fn rss_by_present(after: &[&Sample]) -> ByCount {
    let (Some(first), Some(last)) = (after.first(), after.last()) else {
        return Vec::new();
    };
    let mid = (first.at_s + last.at_s) / 2.0;
    let mut by: BTreeMap<usize, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    for s in after {
        let Some(p) = s.participants else { continue };
        let e = by.entry(p.max(0.0).round() as usize).or_default();
        if s.at_s <= mid {
            e.0.push(s.rss);
        } else {
            e.1.push(s.rss);
        }
    }
    let mean = |v: &[u64]| {
        (!v.is_empty()).then(|| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64)
    };
    by.into_iter()
        .map(|(n, (e, l))| (n, mean(&e), e.len(), mean(&l), l.len()))
        .collect()
}

async fn run(args: Args) -> anyhow::Result<()> {
    let started_at = std::time::SystemTime::now();
    let tck = clock_ticks_per_second();
    let server = TestServer::start_with(ServerOptions {
        bin: args.server_bin.clone(),
        log_level: Some("warn".into()),
        // Every participant connects from 127.0.0.1: lift the per-address
        // socket cap (signaling.max_sockets_per_address).
        extra_toml: "[signaling]\nmax_sockets_per_address = 100000\n".into(),
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
    let http = reqwest::Client::new();
    let rss_start = proc_rss(&pid)?;
    let grace = Duration::from_secs_f64(args.resume_grace.max(0.0));

    let mut crowd = Crowd {
        members: VecDeque::new(),
        ghosts: VecDeque::new(),
        tokens,
        ws_url: server.ws_url(),
        media,
        slots: args.slots,
        media_timeout: Duration::from_secs_f64(args.media_timeout),
        joins: 0,
        join_failures: 0,
        media_failures: 0,
        join_ms: Vec::new(),
    };
    for t in 0..args.steady {
        let (client, _) = join(&crowd.ws_url, &crowd.tokens[t], &crowd.media, crowd.slots).await?;
        crowd.members.push_back(Member { client, token: t });
    }
    println!(
        "soak: {} participants joined; churn every {} s for {} min ({} min warm-up), {}, server pid {pid}",
        args.steady,
        args.churn_every,
        args.minutes,
        args.warmup_minutes,
        if args.replace_at_once {
            "replacements join at once"
        } else {
            "population on the server kept steady"
        }
    );

    let t0 = Instant::now();
    let probe = Probe {
        http,
        server: &server,
        pid: pid.clone(),
        t0,
    };
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let warmup = Duration::from_secs_f64(args.warmup_minutes * 60.0);
    let churn_every = Duration::from_secs_f64(args.churn_every);
    let sample_every = Duration::from_secs_f64(args.sample_every);
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = Instant::now();
    let mut steps = 0u64;
    let mut polite = 0u64;
    let mut abrupt = 0u64;
    let mut skipped = 0u64;
    let mut rng = rand::rng();

    while t0.elapsed() < total {
        let step_start = Instant::now();
        // Top up: vanished participants the server has dropped since the
        // last step are replaced now (with --replace-at-once, a join that
        // failed last step).
        crowd.top_up(&probe, &args, grace, None, &mut rng).await;

        if Instant::now() >= next_sample {
            let s = probe.sample(&crowd, steps).await?;
            println!(
                "  t={:>6.0}s rss {:>7.1} MB  participants {:>4}  ws open {:>4}  peers {:>4}  live {:>3}  vanished {:>3}  steps {}",
                s.at_s,
                s.rss as f64 / 1e6,
                opt(s.participants),
                opt(s.ws_open),
                opt(s.sfu_peers),
                s.live,
                s.ghosts,
                s.steps
            );
            samples.push(s);
            next_sample += sample_every;
        }

        // One leaves (never the chair, index 0 of the pool, so there is
        // always someone publishing whom the newcomer can receive).
        let candidates: Vec<usize> = (0..crowd.members.len())
            .filter(|&i| crowd.members[i].token != 0)
            .collect();
        let mut gone_token = None;
        if candidates.is_empty() {
            // Everyone else vanished and is still in its grace.
            skipped += 1;
        } else {
            let victim = candidates[rng.random_range(0..candidates.len())];
            let Some(gone) = crowd.members.remove(victim) else {
                bail!("no member at {victim}");
            };
            gone_token = Some(gone.token);
            let politely = if args.replace_at_once {
                rng.random_bool(0.5)
            } else {
                polite <= abrupt
            };
            if politely {
                if gone.client.leave().await.is_err() {
                    println!("  a polite leave got no bye");
                }
                polite += 1;
            } else {
                let token = gone.token;
                gone.client.vanish();
                abrupt += 1;
                if !args.replace_at_once {
                    crowd.ghosts.push_back(Ghost {
                        token,
                        since: Instant::now(),
                    });
                }
            }
        }
        steps += 1;
        crowd
            .top_up(&probe, &args, grace, gone_token, &mut rng)
            .await;
        let spent = step_start.elapsed();
        if spent < churn_every {
            tokio::time::sleep(churn_every - spent).await;
        }
    }
    let last = probe.sample(&crowd, steps).await?;
    samples.push(last);
    // The chair alone, once the others and their resume grace are gone (not
    // judged: a look at what the churn left behind).
    let quiet = if args.quiet_end_seconds > 0.0 {
        let mut chair = Vec::new();
        for m in crowd.members.drain(..) {
            if m.token == 0 {
                chair.push(m);
            } else if m.client.leave().await.is_err() {
                println!("  a polite leave got no bye");
            }
        }
        crowd.members.extend(chair);
        tokio::time::sleep(Duration::from_secs_f64(args.quiet_end_seconds)).await;
        let q = probe.sample(&crowd, steps).await?;
        println!(
            "  quiet: t={:.0}s rss {:.1} MB  participants {}  peers {}",
            q.at_s,
            q.rss as f64 / 1e6,
            opt(q.participants),
            opt(q.sfu_peers),
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
    let by_count = rss_by_present(&after);
    let at_steady = after
        .iter()
        .filter(|s| s.participants.map(|p| p.round() as usize) == Some(args.steady))
        .count();
    let join_ms = &mut crowd.join_ms;
    join_ms.sort_unstable();
    let pct = |p: f64| -> Option<u64> {
        (!join_ms.is_empty()).then(|| join_ms[((join_ms.len() as f64 - 1.0) * p).round() as usize])
    };
    let (join_failures, media_failures, joins) =
        (crowd.join_failures, crowd.media_failures, crowd.joins);

    let mut report = json!({
        "date_utc": time_string(started_at),
        "machine": machine_description(),
        "server_bin": args.server_bin.clone().unwrap_or_else(giaoban_tests::giaoban_bin).display().to_string(),
        "minutes": args.minutes,
        "warmup_minutes": args.warmup_minutes,
        "steady_participants": args.steady,
        "population": if args.replace_at_once { "clients" } else { "server" },
        "churn_every_s": args.churn_every,
        "steps": steps,
        "polite_leaves": polite,
        "abrupt_leaves": abrupt,
        "steps_without_leave": skipped,
        "joins": joins,
        "join_failures": join_failures,
        "media_failures": media_failures,
        "join_p50_ms": pct(0.5),
        "join_p99_ms": pct(0.99),
        "rss_before_join": rss_start,
        "rss_at_warmup_end": base.rss,
        "participants_at_warmup_end": base.participants,
        "rss_final": samples.last().map(|s| s.rss),
        "rss_max_dev_percent": max_dev,
        "rss_min_dev_percent": min_dev,
        "rss_final_dev_percent": final_dev,
        "band_percent": args.band_percent,
        "within_band": within,
        "judged_samples": after.len(),
        "judged_samples_at_steady": at_steady,
        "rss_by_present": by_count.iter().map(|(n, em, en, lm, ln)| json!({
            "participants": n, "early_mean": em, "early_samples": en,
            "late_mean": lm, "late_samples": ln,
        })).collect::<Vec<Value>>(),
        "server_cpu_cores_after_warmup": if span > 0.0 { cpu_s / span } else { 0.0 },
        "quiet_end": quiet.as_ref().map(|q| json!({
            "at_s": q.at_s, "rss": q.rss, "participants": q.participants,
            "sfu_peers": q.sfu_peers,
        })),
        "samples": samples.iter().map(|s| json!({
            "at_s": s.at_s, "rss": s.rss, "participants": s.participants,
            "ws_open": s.ws_open, "sfu_peers": s.sfu_peers, "live": s.live,
            "vanished": s.ghosts, "steps": s.steps,
        })).collect::<Vec<Value>>(),
    });
    report["receive"] = json!(if args.slots { "slots" } else { "tracks" });
    println!();
    println!("soak result ({})", time_string(started_at));
    println!(
        "  churn steps          {steps} ({polite} polite leaves, {abrupt} abrupt, {skipped} without a leave); {joins} joins, {join_failures} failed, {media_failures} without media in {} s",
        args.media_timeout
    );
    println!(
        "  join to media p50/p99 {} / {} ms",
        pct(0.5).map(|v| v.to_string()).unwrap_or("-".into()),
        pct(0.99).map(|v| v.to_string()).unwrap_or("-".into())
    );
    println!(
        "  RSS before joins     {:.1} MB; at warm-up end (t={:.0}s, {} present) {:.1} MB; final {:.1} MB",
        rss_start as f64 / 1e6,
        base.at_s,
        opt(base.participants),
        base.rss as f64 / 1e6,
        samples.last().map(|s| s.rss as f64 / 1e6).unwrap_or(0.0)
    );
    println!(
        "  RSS after warm-up    max {max_dev:+.2}%, min {min_dev:+.2}%, final {final_dev:+.2}% (band ±{}%): {}; {at_steady} of {} samples with {} present",
        args.band_percent,
        if within { "within" } else { "OUTSIDE" },
        after.len(),
        args.steady
    );
    if let (Some(first), Some(last)) = (after.first(), after.last()) {
        let mid = (first.at_s + last.at_s) / 2.0;
        println!(
            "  RSS by present       mean MB (samples), early t≤{mid:.0}s vs late; late vs early"
        );
    }
    let mb = |m: Option<f64>| m.map(|v| format!("{:.1}", v / 1e6)).unwrap_or("-".into());
    for (n, em, en, lm, ln) in &by_count {
        let change = match (em, lm) {
            (Some(e), Some(l)) => format!("{:+.2}%", (l - e) / e * 100.0),
            _ => "-".into(),
        };
        println!(
            "    {n:>3} present       {:>6} ({en:>3})  {:>6} ({ln:>3})  {change}",
            mb(*em),
            mb(*lm)
        );
    }
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
    drop(crowd);
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

    fn s(at_s: f64, rss: u64, participants: f64) -> Sample {
        Sample {
            at_s,
            rss,
            cpu_ticks: 0,
            participants: Some(participants),
            ws_open: None,
            sfu_peers: None,
            live: 0,
            ghosts: 0,
            steps: 0,
        }
    }

    #[test]
    fn groups_rss_by_present_early_and_late() {
        let v = [
            s(0.0, 100, 8.0),
            s(10.0, 200, 8.0),
            s(20.0, 50, 7.0),
            s(30.0, 300, 8.0),
            s(40.0, 400, 8.0),
        ];
        let refs: Vec<&Sample> = v.iter().collect();
        let by = rss_by_present(&refs);
        assert_eq!(by.len(), 2);
        assert_eq!(by[0], (7, Some(50.0), 1, None, 0));
        assert_eq!(by[1], (8, Some(150.0), 2, Some(350.0), 2));
    }
}
