//! `loginflood`: what a flood of logins costs the server (issue 19, "Login
//! and accounts"), and whether the real admin still gets in.
//!
//! It starts the real `giaoban` binary on loopback with its own temp config
//! and an `admin` account, optionally a live meeting of a few publishing
//! test clients (synthetic Opus and VP8 stamped with their send time), then:
//!
//! 1. `--distinct` (400) parallel bad logins with distinct usernames, spread
//!    over `--addresses` (100) loopback source addresses 127.0.1.x, so that
//!    the per-address throttle lets every one through to the password hash
//!    (the worst case for memory and CPU);
//! 2. `--admin-flood` (200) parallel bad logins for `admin` from one address;
//! 3. right after, the admin with the right password from that address and
//!    from another one.
//!
//! It prints the server's resident memory (VmRSS) before, at its peak
//! (sampled every 20 ms) and after each flood (and after a short settle),
//! the answers' status counts, the admin's answers and, with the meeting,
//! the media forwarding delay (p50 / p99 / max) in a quiet window before
//! and in a window during the first flood. Run it in release against a
//! release server: `cargo build --release --bin giaoban -p giaoban-signaling
//! && cargo run --release -p giaoban-tests --bin loginflood`; the meeting's
//! WebRTC wants a private network namespace like the tests
//! (`unshare -n bash -c 'ip link set lo up && ...'`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{ArgAction, Parser};
use giaoban_tests::client::{JoinOptions, MediaClock, MediaOptions, TestClient};
use giaoban_tests::procstat::proc_rss;
use giaoban_tests::{token_of, ServerOptions, TestServer};
use serde_json::{json, Value};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "loginflood",
    about = "RSS, status codes and admin access under a login flood"
)]
struct Args {
    /// The giaoban binary (default: GIAOBAN_BIN, else `giaoban` next to
    /// this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Parallel bad logins with distinct usernames (flood 1).
    #[arg(long, default_value_t = 400)]
    distinct: usize,
    /// Source addresses flood 1 is spread over (127.0.1.1 ..).
    #[arg(long, default_value_t = 100)]
    addresses: u8,
    /// Parallel bad logins for `admin` from one address (flood 2).
    #[arg(long, default_value_t = 200)]
    admin_flood: usize,
    /// The server's `auth.password_hash_concurrency` (0: its CPU cores).
    #[arg(long, default_value_t = 0)]
    hash_concurrency: usize,
    /// Run a live meeting during flood 1 and measure its forwarding delay.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    meeting: bool,
    /// Publishing participants of the meeting.
    #[arg(long, default_value_t = 3)]
    publishers: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

const ADMIN_PASSWORD: &str = "quản-trị-viên-đúng";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?
        .block_on(run(args))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn client_from(ip: [u8; 4]) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        // No idle connections kept: the server's RSS after a flood is then
        // what the logins left, not the buffers of open keep-alive sockets.
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// Samples the server's RSS every 20 ms while `running`; the maximum seen.
fn peak_sampler(pid: String, running: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let peak = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while running.load(Ordering::Relaxed) {
            if let Ok(r) = proc_rss(&pid) {
                peak.fetch_max(r, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak.load(Ordering::Relaxed)
    })
}

/// Sends the logins at once; status counts (0: no answer) and wall time.
async fn flood(
    logins: Vec<(reqwest::Client, String, String)>,
    base: &str,
) -> (BTreeMap<u16, usize>, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = logins
        .into_iter()
        .map(|(http, username, password)| {
            let url = format!("{base}/api/auth/login");
            tokio::spawn(async move {
                http.post(url)
                    .json(&json!({"username": username, "password": password}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    let mut counts = BTreeMap::new();
    for t in tasks {
        *counts.entry(t.await.unwrap_or(0)).or_insert(0) += 1;
    }
    (counts, started.elapsed())
}

/// One admin login: status and milliseconds.
async fn admin_login(http: &reqwest::Client, base: &str) -> (u16, f64) {
    let t = Instant::now();
    let s = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    (s, t.elapsed().as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(i.min(sorted.len() - 1))
        .map(|d| f64::from(*d) / 1000.0)
}

/// Forwarding delays (ms) of the packets stamped in a window of `secs`
/// while `during` runs; the clients' delay lists are emptied first.
async fn delay_window<F: std::future::Future>(
    clients: &[TestClient],
    clock: &MediaClock,
    secs: f64,
    during: F,
) -> (Value, F::Output) {
    for c in clients {
        c.state().delays_us.clear();
    }
    clock.start_window();
    let (out, _) = tokio::join!(during, tokio::time::sleep(Duration::from_secs_f64(secs)));
    clock.end_window();
    // Packets stamped at the end of the window are still on their way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut d: Vec<u32> = Vec::new();
    for c in clients {
        d.extend_from_slice(&c.state().delays_us);
    }
    d.sort_unstable();
    (
        json!({"p50_ms": percentile(&d, 0.5), "p99_ms": percentile(&d, 0.99),
               "max_ms": percentile(&d, 1.0), "samples": d.len()}),
        out,
    )
}

async fn run(args: Args) -> anyhow::Result<()> {
    let server = TestServer::start_with(ServerOptions {
        bin: args.server_bin.clone(),
        log_level: Some("warn".into()),
        extra_toml: format!(
            "[auth]\npassword_hash_concurrency = {}\n",
            args.hash_concurrency
        ),
    })
    .await?;
    let pid = server.pid().context("server pid")?.to_string();
    let base = server.base_url();
    server.add_user("admin", "admin", ADMIN_PASSWORD).await?;
    // One good login first, so the baseline includes a hash.
    server.login("admin", ADMIN_PASSWORD).await?;

    let clock = MediaClock::new();
    let mut clients = Vec::new();
    if args.meeting {
        let mid = server.create_meeting("Họp đo tải đăng nhập").await?;
        for i in 0..args.publishers {
            let url = server
                .invite(&mid, &format!("Điểm cầu {i}"), "bridge")
                .await?;
            let media = MediaOptions {
                clock: Some(clock.clone()),
                ..MediaOptions::default()
            };
            clients.push(
                TestClient::join_media(
                    &server.ws_url(),
                    token_of(&url)?,
                    JoinOptions::default(),
                    media,
                )
                .await
                .with_context(|| format!("participant {i} joins"))?,
            );
        }
        // Every stream flowing.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let (quiet_delay, _) = if args.meeting {
        delay_window(&clients, &clock, 3.0, async {}).await
    } else {
        (Value::Null, ())
    };

    let rss_start = proc_rss(&pid)?;

    // Flood 1: distinct usernames over many addresses.
    let mut http = Vec::new();
    for a in 0..args.addresses.max(1) {
        http.push(client_from([127, 0, 1, a.saturating_add(1)])?);
    }
    let logins: Vec<_> = (0..args.distinct)
        .map(|i| {
            (
                http[i % http.len()].clone(),
                format!("khong-ton-tai-{i}"),
                format!("sai-mat-khau-{i}"),
            )
        })
        .collect();
    let running = Arc::new(AtomicBool::new(true));
    let sampler = peak_sampler(pid.clone(), running.clone());
    let (flood_delay, (counts1, wall1)) = if args.meeting {
        delay_window(&clients, &clock, 2.0, flood(logins, &base)).await
    } else {
        (Value::Null, flood(logins, &base).await)
    };
    running.store(false, Ordering::Relaxed);
    let peak1 = sampler.await?;
    let rss_after1 = proc_rss(&pid)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_settled1 = proc_rss(&pid)?;

    // Flood 2: the admin's username from one address.
    let attacker = client_from([127, 0, 2, 1])?;
    let logins: Vec<_> = (0..args.admin_flood)
        .map(|i| (attacker.clone(), "admin".to_owned(), format!("doan-{i}")))
        .collect();
    let running = Arc::new(AtomicBool::new(true));
    let sampler = peak_sampler(pid.clone(), running.clone());
    let (counts2, wall2) = flood(logins, &base).await;
    running.store(false, Ordering::Relaxed);
    let peak2 = sampler.await?;

    // Right after: the real admin, from the flood's address and another.
    let (same_status, same_ms) = admin_login(&attacker, &base).await;
    let (other_status, other_ms) = admin_login(&client_from([127, 0, 3, 1])?, &base).await;
    let rss_after2 = proc_rss(&pid)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_end = proc_rss(&pid)?;

    for c in &clients {
        let _ = c.leave().await;
    }

    let report = json!({
        "server_bin": args.server_bin.as_ref().map(|p| p.display().to_string()),
        "hash_concurrency": args.hash_concurrency,
        "rss_mib": {
            "start": mib(rss_start),
            "flood1_peak": mib(peak1), "flood1_after": mib(rss_after1), "flood1_after_2s": mib(rss_settled1),
            "flood2_peak": mib(peak2), "flood2_after": mib(rss_after2), "end_after_2s": mib(rss_end),
        },
        "flood1": {"logins": args.distinct, "addresses": args.addresses, "status": counts1, "seconds": wall1.as_secs_f64()},
        "flood2": {"logins": args.admin_flood, "status": counts2, "seconds": wall2.as_secs_f64()},
        "admin_right_after": {
            "from_flood_address": {"status": same_status, "ms": same_ms},
            "from_another_address": {"status": other_status, "ms": other_ms},
        },
        "forwarding_delay": {"quiet": quiet_delay, "during_flood1": flood_delay, "publishers": clients.len()},
    });
    if args.json {
        println!("{report}");
        return Ok(());
    }
    let r = &report;
    println!("loginflood (server {})", r["server_bin"]);
    println!(
        "RSS MiB: start {:.1} | flood 1 peak {:.1}, after {:.1}, +2 s {:.1} | flood 2 peak {:.1}, after {:.1} | end +2 s {:.1}",
        mib(rss_start), mib(peak1), mib(rss_after1), mib(rss_settled1), mib(peak2), mib(rss_after2), mib(rss_end)
    );
    println!(
        "flood 1: {} bad logins, distinct usernames, {} addresses, {:.2} s: {}",
        args.distinct,
        args.addresses,
        wall1.as_secs_f64(),
        r["flood1"]["status"]
    );
    println!(
        "flood 2: {} bad logins for admin from one address, {:.2} s: {}",
        args.admin_flood,
        wall2.as_secs_f64(),
        r["flood2"]["status"]
    );
    println!(
        "admin, right password, right after: from the flood's address {same_status} ({same_ms:.0} ms); from another address {other_status} ({other_ms:.0} ms)"
    );
    if args.meeting {
        println!(
            "forwarding delay ({} publishers), p50 / p99 / max ms: quiet {} / {} / {} ({} packets); during flood 1 {} / {} / {} ({} packets)",
            clients.len(),
            r["forwarding_delay"]["quiet"]["p50_ms"], r["forwarding_delay"]["quiet"]["p99_ms"],
            r["forwarding_delay"]["quiet"]["max_ms"], r["forwarding_delay"]["quiet"]["samples"],
            r["forwarding_delay"]["during_flood1"]["p50_ms"], r["forwarding_delay"]["during_flood1"]["p99_ms"],
            r["forwarding_delay"]["during_flood1"]["max_ms"], r["forwarding_delay"]["during_flood1"]["samples"],
        );
    }
    Ok(())
}
