//! `bareforward`: the floor of issue 7's benchmark. A forwarder with no SFU
//! logic at all: every SRTP packet from a publisher is decrypted once,
//! re-addressed (SSRC) and encrypted once per subscriber with that
//! subscriber's own SRTP context, and the copies are sent in batches with
//! `sendmmsg`. What it costs per forwarded packet on this machine is the
//! least any SFU built on the same crypto and the same kernel can cost;
//! `loadgen --reference bare` runs it with the same load as the server and
//! reports the server's CPU per packet as a ratio to it.
//!
//! The keys are fixed (no DTLS handshake): the handshake is a one-time cost
//! per connection, not a per-packet one. Crypto is webrtc-rs's SRTP
//! (`rtc::srtp`, AES128_CM_HMAC_SHA1_80 with the default crypto provider),
//! the same code the server uses.
//!
//! # Layout
//! - [`Args`]: publishers, fan-out, receivers, packet rate and size.
//! - `forwarder` (thread, measured): `recvmmsg` → decrypt → per subscriber
//!   rewrite + encrypt → `sendmmsg`. Its CPU time is read from
//!   `/proc/self/task/<tid>/stat`, so the senders and receivers (other
//!   threads of this process) are not counted.
//! - `sender` (thread): paces every publisher's packets (RTP with the send
//!   time in the payload).
//! - `receivers` (thread): drains the subscribers' sockets and counts
//!   datagrams and forwarding delay.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use giaoban_tests::procstat::{clock_ticks_per_second, machine_description};
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrIn, SockaddrStorage};
use rtc::srtp::context::Context;
use rtc::srtp::protection_profile::ProtectionProfile;
use serde_json::json;
use std::io::IoSlice;
use std::io::IoSliceMut;

/// Bare forwarder benchmark (decrypt once, encrypt per subscriber, sendmmsg).
#[derive(Debug, Clone, Parser)]
#[command(name = "bareforward")]
struct Args {
    /// Publishers (each one SSRC sending `--pps` packets per second).
    #[arg(long, default_value_t = 15)]
    publishers: usize,
    /// Receiving sockets (subscribers).
    #[arg(long, default_value_t = 15)]
    receivers: usize,
    /// Copies of each packet (subscribers per publisher, at most
    /// `--receivers`). Publisher i goes to receivers i+1 .. i+fanout (mod
    /// receivers), so with publishers = receivers = N and fanout N-1 every
    /// participant gets everybody else's packets, as an all-to-all meeting.
    #[arg(long, default_value_t = 14)]
    fanout: usize,
    /// Packets per second of each publisher.
    #[arg(long, default_value_t = 110.0)]
    pps: f64,
    /// RTP payload bytes of each packet.
    #[arg(long, default_value_t = 900)]
    size: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds of warm-up.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// Fixed test keys: one per publisher (inbound) and one per subscriber
/// (outbound), derived from the index so senders and receivers agree.
fn key_of(kind: u8, i: usize) -> (Vec<u8>, Vec<u8>) {
    let mut key = vec![kind; 16];
    key[0] = (i & 0xff) as u8;
    key[1] = (i >> 8) as u8;
    let mut salt = vec![kind ^ 0x5a; 14];
    salt[0] = (i & 0xff) as u8;
    (key, salt)
}

fn srtp_context(kind: u8, i: usize) -> anyhow::Result<Context> {
    let (key, salt) = key_of(kind, i);
    let provider =
        rtc::crypto::default_provider().map_err(|e| anyhow::anyhow!("crypto provider: {e}"))?;
    Context::new(
        &key,
        &salt,
        ProtectionProfile::Aes128CmHmacSha1_80,
        None,
        None,
        provider.crypto(),
    )
    .map_err(|e| anyhow::anyhow!("srtp context: {e}"))
}

const PUB_SSRC_BASE: u32 = 0x1000_0000;
const SUB_SSRC_BASE: u32 = 0x2000_0000;
/// Messages per recvmmsg/sendmmsg call.
const BATCH: usize = 64;

/// A minimal RTP packet: 12-byte header, payload with the send time.
fn rtp(ssrc: u32, seq: u16, ts: u32, sent_ns: u64, size: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + size.max(8));
    p.extend_from_slice(&[0x80, 96]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&sent_ns.to_be_bytes());
    p.resize(12 + size.max(8), 0xab);
    p
}

/// CPU ticks (utime + stime) of one thread of this process.
fn thread_cpu_ticks(tid: i32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .with_context(|| format!("read /proc/self/task/{tid}/stat"))?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| -> anyhow::Result<u64> {
        f.get(i - 3)
            .context("short stat")?
            .parse::<u64>()
            .context("bad stat number")
    };
    Ok(get(14)? + get(15)?)
}

/// Counters shared by the threads.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    forwarded: AtomicU64,
    received: AtomicU64,
    received_bytes: AtomicU64,
    decrypt_errors: AtomicU64,
}

fn v4(addr: SocketAddr) -> anyhow::Result<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => bail!("IPv4 only"),
    }
}

/// The measured thread. Returns when `stop` is set.
fn forwarder(
    sock: UdpSocket,
    args: Args,
    receivers: Vec<SocketAddrV4>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    tid_out: std::sync::mpsc::Sender<i32>,
) -> anyhow::Result<()> {
    let _ = tid_out.send(nix::unistd::gettid().as_raw());
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let fd = sock.as_raw_fd();
    let mut inbound: Vec<Context> = (0..args.publishers)
        .map(|i| srtp_context(1, i))
        .collect::<anyhow::Result<_>>()?;
    let mut outbound: Vec<Context> = (0..args.receivers)
        .map(|i| srtp_context(2, i))
        .collect::<anyhow::Result<_>>()?;
    let dests: Vec<SockaddrIn> = receivers.iter().map(|a| SockaddrIn::from(*a)).collect();
    let mut rbufs = vec![vec![0u8; 1500]; BATCH];
    let mut rheaders = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut sheaders = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut out: Vec<(Vec<u8>, SockaddrIn)> = Vec::with_capacity(BATCH);
    let flush = |out: &mut Vec<(Vec<u8>, SockaddrIn)>,
                 sheaders: &mut MultiHeaders<SockaddrIn>|
     -> anyhow::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let slices: Vec<[IoSlice<'_>; 1]> = out.iter().map(|(b, _)| [IoSlice::new(b)]).collect();
        let addrs: Vec<Option<SockaddrIn>> = out.iter().map(|(_, a)| Some(*a)).collect();
        let mut done = 0;
        while done < slices.len() {
            let n = sendmmsg(
                fd,
                sheaders,
                &slices[done..],
                &addrs[done..],
                [],
                MsgFlags::empty(),
            )
            .map(|r| r.count())
            .unwrap_or(0);
            if n == 0 {
                break;
            }
            done += n;
        }
        counters.forwarded.fetch_add(done as u64, Ordering::Relaxed);
        out.clear();
        Ok(())
    };
    while !stop.load(Ordering::Relaxed) {
        let lens: Vec<usize> = {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                rbufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            match recvmmsg(
                fd,
                &mut rheaders,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(res) => res.map(|m| m.bytes).collect(),
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => bail!("recvmmsg: {e}"),
            }
        };
        for (i, len) in lens.into_iter().enumerate() {
            let data = &rbufs[i][..len];
            if len < 12 {
                continue;
            }
            let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
            let p = ssrc.wrapping_sub(PUB_SSRC_BASE) as usize;
            let Some(ctx) = inbound.get_mut(p) else {
                continue;
            };
            let Ok(plain) = ctx.decrypt_rtp(data) else {
                counters.decrypt_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let mut plain = plain.to_vec();
            for k in 1..=args.fanout {
                let r = (p + k) % args.receivers;
                plain[8..12].copy_from_slice(&(SUB_SSRC_BASE + r as u32).to_be_bytes());
                let Ok(enc) = outbound[r].encrypt_rtp(&plain) else {
                    continue;
                };
                out.push((enc.to_vec(), dests[r]));
                if out.len() == BATCH {
                    flush(&mut out, &mut sheaders)?;
                }
            }
        }
        flush(&mut out, &mut sheaders)?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.publishers == 0 || args.receivers == 0 {
        bail!("need publishers and receivers");
    }
    if args.fanout == 0 || args.fanout > args.receivers {
        bail!("--fanout must be between 1 and --receivers");
    }
    let tck = clock_ticks_per_second();
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let base = Instant::now();
    let delays: Arc<std::sync::Mutex<Vec<u32>>> = Arc::default();
    let measuring = Arc::new(AtomicBool::new(false));

    // Receivers: one socket each, drained by one thread.
    let mut rsocks = Vec::new();
    let mut raddrs = Vec::new();
    for _ in 0..args.receivers {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.set_nonblocking(true)?;
        raddrs.push(v4(s.local_addr()?)?);
        rsocks.push(s);
    }
    let fsock = UdpSocket::bind("127.0.0.1:0")?;
    let faddr = fsock.local_addr()?;

    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let fwd = {
        let (args, counters, stop) = (args.clone(), counters.clone(), stop.clone());
        let raddrs = raddrs.clone();
        std::thread::Builder::new()
            .name("forwarder".into())
            .spawn(move || forwarder(fsock, args, raddrs, counters, stop, tid_tx))?
    };
    let tid = tid_rx.recv_timeout(Duration::from_secs(5))?;

    let recv_thread = {
        let (counters, stop, delays, measuring) = (
            counters.clone(),
            stop.clone(),
            delays.clone(),
            measuring.clone(),
        );
        std::thread::Builder::new()
            .name("receivers".into())
            .spawn(move || {
                let mut buf = vec![0u8; 2048];
                let mut ctxs: Vec<Context> = (0..rsocks.len())
                    .filter_map(|i| srtp_context(2, i).ok())
                    .collect();
                while !stop.load(Ordering::Relaxed) {
                    let mut got = false;
                    for (i, s) in rsocks.iter().enumerate() {
                        while let Ok(n) = s.recv(&mut buf) {
                            got = true;
                            counters.received.fetch_add(1, Ordering::Relaxed);
                            counters
                                .received_bytes
                                .fetch_add(n as u64, Ordering::Relaxed);
                            // Check one packet in 16 end to end (decrypts
                            // with the subscriber's key, reads the stamp).
                            if measuring.load(Ordering::Relaxed) && buf[3] & 0x0f == 0 {
                                if let Some(Ok(plain)) =
                                    ctxs.get_mut(i).map(|c| c.decrypt_rtp(&buf[..n]))
                                {
                                    if plain.len() >= 20 {
                                        let mut t = [0u8; 8];
                                        t.copy_from_slice(&plain[12..20]);
                                        let sent = u64::from_be_bytes(t);
                                        let now = base.elapsed().as_nanos() as u64;
                                        if let Ok(mut d) = delays.lock() {
                                            d.push((now.saturating_sub(sent) / 1000) as u32);
                                        }
                                    }
                                }
                            }
                        }
                    }
                    if !got {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })?
    };

    // Sender: paces every publisher.
    let send_thread = {
        let (args, counters, stop) = (args.clone(), counters.clone(), stop.clone());
        std::thread::Builder::new()
            .name("sender".into())
            .spawn(move || -> anyhow::Result<()> {
                let s = UdpSocket::bind("127.0.0.1:0")?;
                let mut ctxs: Vec<Context> = (0..args.publishers)
                    .map(|i| srtp_context(1, i))
                    .collect::<anyhow::Result<_>>()?;
                let interval = Duration::from_secs_f64(1.0 / args.pps);
                let start = Instant::now();
                let mut next: Vec<Instant> = (0..args.publishers)
                    .map(|i| start + interval.mul_f64(i as f64 / args.publishers as f64))
                    .collect();
                let mut seq = vec![0u16; args.publishers];
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    for p in 0..args.publishers {
                        while next[p] <= now {
                            let sent_ns = base.elapsed().as_nanos() as u64;
                            let pkt = rtp(
                                PUB_SSRC_BASE + p as u32,
                                seq[p],
                                u32::from(seq[p]) * 3000,
                                sent_ns,
                                args.size,
                            );
                            seq[p] = seq[p].wrapping_add(1);
                            if let Ok(enc) = ctxs[p].encrypt_rtp(&pkt) {
                                if s.send_to(&enc, faddr).is_ok() {
                                    counters.sent.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            next[p] += interval;
                        }
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
                Ok(())
            })?
    };

    std::thread::sleep(Duration::from_secs(args.warmup));
    let c0 = thread_cpu_ticks(tid)?;
    let (f0, r0, s0) = (
        counters.forwarded.load(Ordering::Relaxed),
        counters.received.load(Ordering::Relaxed),
        counters.sent.load(Ordering::Relaxed),
    );
    let t0 = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(args.duration));
    measuring.store(false, Ordering::Relaxed);
    let c1 = thread_cpu_ticks(tid)?;
    let window = t0.elapsed().as_secs_f64();
    let (f1, r1, s1) = (
        counters.forwarded.load(Ordering::Relaxed),
        counters.received.load(Ordering::Relaxed),
        counters.sent.load(Ordering::Relaxed),
    );
    stop.store(true, Ordering::Relaxed);
    fwd.join()
        .map_err(|_| anyhow::anyhow!("forwarder panicked"))??;
    send_thread
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    recv_thread
        .join()
        .map_err(|_| anyhow::anyhow!("receivers panicked"))?;

    let cpu_s = (c1 - c0) as f64 / tck;
    let forwarded = f1 - f0;
    let received = r1 - r0;
    let us_per_pkt = if forwarded > 0 {
        cpu_s * 1e6 / forwarded as f64
    } else {
        f64::NAN
    };
    let mut d = delays.lock().map(|d| d.clone()).unwrap_or_default();
    d.sort_unstable();
    let pct = |p: f64| -> Option<f64> {
        (!d.is_empty())
            .then(|| f64::from(d[((d.len() as f64 - 1.0) * p).round() as usize]) / 1000.0)
    };
    let report = json!({
        "machine": machine_description(),
        "publishers": args.publishers,
        "receivers": args.receivers,
        "fanout": args.fanout,
        "size": args.size,
        "in_pps": (s1 - s0) as f64 / window,
        "out_pps": forwarded as f64 / window,
        "received_pps": received as f64 / window,
        "forwarder_cpu_cores": cpu_s / window,
        "cpu_us_per_forwarded_packet": us_per_pkt,
        "delay_p50_ms": pct(0.5),
        "delay_p99_ms": pct(0.99),
        "decrypt_errors": counters.decrypt_errors.load(Ordering::Relaxed),
        "window_s": window,
    });
    println!(
        "bareforward: {} publishers x {} copies, {:.0} pkt/s in, {:.0} pkt/s out ({:.0} received), forwarder CPU {:.3} cores, {:.2} us per forwarded packet, delay p50/p99 {:.2}/{:.2} ms",
        args.publishers,
        args.fanout,
        (s1 - s0) as f64 / window,
        forwarded as f64 / window,
        received as f64 / window,
        cpu_s / window,
        us_per_pkt,
        pct(0.5).unwrap_or(f64::NAN),
        pct(0.99).unwrap_or(f64::NAN),
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}
