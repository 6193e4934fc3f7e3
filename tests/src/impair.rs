//! A user-space network impairment relay for UDP, used where the kernel has
//! no `netem` (this project's test machines: `tc qdisc add ... netem` says
//! "Specified qdisc kind is unknown").
//!
//! The relay listens on one address (normally a second loopback address such
//! as 127.0.0.2) and forwards every datagram to the server's real media
//! address, one upstream socket per client flow, so the server sees each flow
//! as a client of its own. Each direction is an emulated link with, in this
//! order:
//!
//! 1. **random loss**: a datagram is dropped on entry with probability
//!    `loss_pct` (independent draws from a seeded generator);
//! 2. **a rate cap** with a drop-tail queue: the link sends one datagram at a
//!    time at `rate_bps` (counting 28 bytes of IPv4 + UDP header, as a real
//!    link would); a datagram that would wait longer than `queue_ms` before its
//!    turn is dropped (like `tbf`'s `latency`);
//! 3. **a fixed delay** of `delay_ms` added after the link.
//!
//! Conditions can change while traffic flows ([`ImpairRelay::set`], or a
//! JSON datagram on the control socket, see [`ImpairRelay::control_addr`]),
//! so one browser session can go through several conditions in turn.
//! Counters per direction say what was dropped where.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// IPv4 + UDP header bytes counted against the rate cap per datagram.
const HEADER_BYTES: u64 = 28;
/// Large enough for any datagram.
const MAX_DATAGRAM: usize = 65_536;
/// Socket buffers asked for (the kernel caps them at `net.core.rmem_max`):
/// the relay itself must not drop a burst, such as a forwarded keyframe,
/// before its link model sees it.
const SOCKET_BUFFER: usize = 4 << 20;

/// Binds a UDP socket with large buffers (best effort).
async fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    use nix::sys::socket::{setsockopt, sockopt};
    let sock = UdpSocket::bind(addr).await?;
    let _ = setsockopt(&sock, sockopt::RcvBuf, &SOCKET_BUFFER);
    let _ = setsockopt(&sock, sockopt::SndBuf, &SOCKET_BUFFER);
    Ok(sock)
}

/// What one direction of the emulated link does to datagrams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// Share of datagrams dropped at random, in percent (0 to 100).
    #[serde(default)]
    pub loss_pct: f64,
    /// The link's rate in bit/s; 0 means no cap.
    #[serde(default)]
    pub rate_bps: u64,
    /// The longest a datagram may wait in the cap's queue before it is
    /// dropped (only with a cap).
    #[serde(default = "default_queue_ms")]
    pub queue_ms: u64,
    /// One-way delay added to every datagram, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
}

fn default_queue_ms() -> u64 {
    200
}

impl Default for Conditions {
    fn default() -> Self {
        Conditions {
            loss_pct: 0.0,
            rate_bps: 0,
            queue_ms: default_queue_ms(),
            delay_ms: 0,
        }
    }
}

impl Conditions {
    /// A clean link.
    pub fn clean() -> Self {
        Self::default()
    }

    /// Random loss only.
    pub fn loss(pct: f64) -> Self {
        Conditions {
            loss_pct: pct,
            ..Self::default()
        }
    }

    /// A rate cap only, with the default queue.
    pub fn rate(bps: u64) -> Self {
        Conditions {
            rate_bps: bps,
            ..Self::default()
        }
    }

    /// A fixed one-way delay only.
    pub fn delay(ms: u64) -> Self {
        Conditions {
            delay_ms: ms,
            ..Self::default()
        }
    }
}

/// Counters of one direction, since the relay started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionStats {
    /// Datagrams that entered the link.
    pub received: u64,
    /// Their bytes (UDP payload).
    pub received_bytes: u64,
    /// Dropped by random loss.
    pub lost: u64,
    /// Dropped because the cap's queue was full.
    pub overflow: u64,
    /// Delivered to the other side.
    pub sent: u64,
    /// Their bytes (UDP payload).
    pub sent_bytes: u64,
    /// Sends that failed (the other side's socket is gone).
    pub send_errors: u64,
}

/// Counters of both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayStats {
    /// Server to client (what a subscriber receives).
    pub to_client: DirectionStats,
    /// Client to server.
    pub to_server: DirectionStats,
    /// Client flows (distinct client addresses) seen so far.
    pub flows: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    received_bytes: AtomicU64,
    lost: AtomicU64,
    overflow: AtomicU64,
    sent: AtomicU64,
    sent_bytes: AtomicU64,
    send_errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> DirectionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionStats {
            received: get(&self.received),
            received_bytes: get(&self.received_bytes),
            lost: get(&self.lost),
            overflow: get(&self.overflow),
            sent: get(&self.sent),
            sent_bytes: get(&self.sent_bytes),
            send_errors: get(&self.send_errors),
        }
    }
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A datagram on its way out of a link.
struct Outgoing {
    /// When it leaves (after the queue, the serialisation and the delay).
    at: Instant,
    data: Vec<u8>,
    /// The socket it leaves from.
    via: Arc<UdpSocket>,
    to: SocketAddr,
}

/// The state of one direction that admission changes.
struct LinkState {
    cond: Conditions,
    /// When the emulated link finishes sending what it has accepted.
    next_free: Instant,
    rng: StdRng,
}

/// One direction: admission (loss, queue, cap, delay) and the counters; a
/// task of its own sends what was admitted at its time, in order.
struct Link {
    state: Mutex<LinkState>,
    counters: Counters,
    out: mpsc::UnboundedSender<Outgoing>,
}

impl Link {
    fn new(seed: u64) -> (Arc<Link>, mpsc::UnboundedReceiver<Outgoing>) {
        let (out, rx) = mpsc::unbounded_channel();
        let link = Arc::new(Link {
            state: Mutex::new(LinkState {
                cond: Conditions::clean(),
                next_free: Instant::now(),
                rng: StdRng::seed_from_u64(seed),
            }),
            counters: Counters::default(),
            out,
        });
        (link, rx)
    }

    fn state(&self) -> MutexGuard<'_, LinkState> {
        // A panic elsewhere cannot leave the state half-written: every
        // update is a plain assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, cond: Conditions) {
        self.state().cond = cond;
    }

    fn conditions(&self) -> Conditions {
        self.state().cond.clone()
    }

    /// Decides the fate of one datagram that arrives now.
    fn admit(&self, data: &[u8], via: &Arc<UdpSocket>, to: SocketAddr) {
        let len = data.len() as u64;
        bump(&self.counters.received, 1);
        bump(&self.counters.received_bytes, len);
        let now = Instant::now();
        let at = {
            let mut st = self.state();
            let loss = st.cond.loss_pct.clamp(0.0, 100.0) / 100.0;
            if loss > 0.0 && st.rng.random::<f64>() < loss {
                bump(&self.counters.lost, 1);
                return;
            }
            let mut leaves = now;
            if st.cond.rate_bps > 0 {
                let start = st.next_free.max(now);
                if start.duration_since(now) > Duration::from_millis(st.cond.queue_ms) {
                    bump(&self.counters.overflow, 1);
                    return;
                }
                let bits = (len + HEADER_BYTES) * 8;
                let serialise = Duration::from_secs_f64(bits as f64 / st.cond.rate_bps as f64);
                st.next_free = start + serialise;
                leaves = st.next_free;
            }
            leaves + Duration::from_millis(st.cond.delay_ms)
        };
        let item = Outgoing {
            at,
            data: data.to_vec(),
            via: via.clone(),
            to,
        };
        if self.out.send(item).is_err() {
            bump(&self.counters.send_errors, 1);
        }
    }
}

/// Sends a link's datagrams at their times, in the order admitted.
async fn deliver(link: Arc<Link>, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(o) = rx.recv().await {
        tokio::time::sleep_until(o.at).await;
        match o.via.send_to(&o.data, o.to).await {
            Ok(_) => {
                bump(&link.counters.sent, 1);
                bump(&link.counters.sent_bytes, o.data.len() as u64);
            }
            Err(_) => bump(&link.counters.send_errors, 1),
        }
    }
}

struct Shared {
    to_server: Arc<Link>,
    to_client: Arc<Link>,
    flows: AtomicU64,
    /// Every task the relay started (the per-flow ones too), stopped on drop.
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    fn keep(&self, h: AbortHandle) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(h);
    }
}

/// A running relay; its tasks stop when it is dropped.
pub struct ImpairRelay {
    listen_addr: SocketAddr,
    control_addr: SocketAddr,
    server: SocketAddr,
    shared: Arc<Shared>,
}

/// A request on the control socket (one JSON object per datagram).
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
enum Control {
    /// `{"cmd":"set","to_client":{...},"to_server":{...}}`: new conditions
    /// (a direction left out becomes clean).
    Set {
        #[serde(default)]
        to_client: Conditions,
        #[serde(default)]
        to_server: Conditions,
    },
    /// `{"cmd":"stats"}`: the counters and conditions.
    Stats,
}

impl ImpairRelay {
    /// Starts a relay in front of `server` (a UDP address), listening on
    /// `listen_ip` (port chosen by the system), with a clean link both ways
    /// and a control socket on 127.0.0.1.
    pub async fn start(server: SocketAddr, listen_ip: IpAddr) -> io::Result<ImpairRelay> {
        let listen = Arc::new(bind(SocketAddr::new(listen_ip, 0)).await?);
        let control = UdpSocket::bind("127.0.0.1:0").await?;
        let listen_addr = listen.local_addr()?;
        let control_addr = control.local_addr()?;
        let (to_server, rx_server) = Link::new(0x6961_6f62_616e_0001);
        let (to_client, rx_client) = Link::new(0x6961_6f62_616e_0002);
        let shared = Arc::new(Shared {
            to_server: to_server.clone(),
            to_client: to_client.clone(),
            flows: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let relay = ImpairRelay {
            listen_addr,
            control_addr,
            server,
            shared: shared.clone(),
        };
        shared.keep(tokio::spawn(deliver(to_server, rx_server)).abort_handle());
        shared.keep(tokio::spawn(deliver(to_client, rx_client)).abort_handle());
        shared.keep(tokio::spawn(from_clients(listen, server, shared.clone())).abort_handle());
        shared.keep(tokio::spawn(serve_control(control, shared.clone())).abort_handle());
        Ok(relay)
    }

    /// Where clients send (the address to announce to them instead of the
    /// server's).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// The control socket: a JSON datagram `{"cmd":"set","to_client":C,
    /// "to_server":C}` (C as [`Conditions`]) or `{"cmd":"stats"}` is answered
    /// with `{"ok":true,"conditions":{...},"stats":{...}}` (or `"ok":false`
    /// and `"error"`), sent back to the asking address.
    pub fn control_addr(&self) -> SocketAddr {
        self.control_addr
    }

    /// The server address the relay forwards to.
    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// New conditions for both directions, effective for the next datagram.
    pub fn set(&self, to_client: Conditions, to_server: Conditions) {
        self.shared.to_client.set(to_client);
        self.shared.to_server.set(to_server);
    }

    /// The counters so far.
    pub fn stats(&self) -> RelayStats {
        stats_of(&self.shared)
    }
}

impl Drop for ImpairRelay {
    fn drop(&mut self) {
        for h in self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            h.abort();
        }
    }
}

fn stats_of(shared: &Shared) -> RelayStats {
    RelayStats {
        to_client: shared.to_client.counters.snapshot(),
        to_server: shared.to_server.counters.snapshot(),
        flows: shared.flows.load(Ordering::Relaxed),
    }
}

/// Reads what clients send; opens an upstream socket per new client address
/// and passes datagrams to the client-to-server link.
async fn from_clients(listen: Arc<UdpSocket>, server: SocketAddr, shared: Arc<Shared>) {
    let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let upstream_ip: IpAddr = if server.is_ipv4() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
    };
    loop {
        let (n, client) = match listen.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP errors of earlier sends surface here on Linux: go on.
            Err(_) => continue,
        };
        let upstream = match flows.get(&client) {
            Some(s) => s.clone(),
            None => {
                let Ok(sock) = bind(SocketAddr::new(upstream_ip, 0)).await else {
                    continue;
                };
                let sock = Arc::new(sock);
                flows.insert(client, sock.clone());
                shared.flows.fetch_add(1, Ordering::Relaxed);
                let task = tokio::spawn(from_server(
                    sock.clone(),
                    listen.clone(),
                    client,
                    server,
                    shared.to_client.clone(),
                ));
                shared.keep(task.abort_handle());
                sock
            }
        };
        shared.to_server.admit(&buf[..n], &upstream, server);
    }
}

/// Reads what the server sends to one client flow and passes it to the
/// server-to-client link (leaving from the listening socket).
async fn from_server(
    upstream: Arc<UdpSocket>,
    listen: Arc<UdpSocket>,
    client: SocketAddr,
    server: SocketAddr,
    link: Arc<Link>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match upstream.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(_) => continue,
        };
        if from != server {
            continue;
        }
        link.admit(&buf[..n], &listen, client);
    }
}

async fn serve_control(sock: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let reply = match serde_json::from_slice::<Control>(&buf[..n]) {
            Ok(Control::Set {
                to_client,
                to_server,
            }) => {
                shared.to_client.set(to_client);
                shared.to_server.set(to_server);
                control_reply(&shared)
            }
            Ok(Control::Stats) => control_reply(&shared),
            Err(e) => serde_json::json!({ "ok": false, "error": e.to_string() }),
        };
        let _ = sock.send_to(reply.to_string().as_bytes(), from).await;
    }
}

fn control_reply(shared: &Shared) -> serde_json::Value {
    serde_json::json!({
        "ok": true,
        "conditions": {
            "to_client": shared.to_client.conditions(),
            "to_server": shared.to_server.conditions(),
        },
        "stats": stats_of(shared),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server and a relay in front of it; returns (relay, client).
    async fn echo_behind_relay() -> (ImpairRelay, Arc<UdpSocket>) {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let echo = bind(any).await.expect("bind echo");
        let echo_addr = echo.local_addr().expect("echo addr");
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        let relay = ImpairRelay::start(echo_addr, IpAddr::from([127, 0, 0, 2]))
            .await
            .expect("start relay");
        let client = bind(any).await.expect("bind client");
        (relay, Arc::new(client))
    }

    /// Receives until nothing comes for `quiet` (after a first datagram, or
    /// for `first` before it), in a task of its own so the socket buffer
    /// never overflows while the test sends; returns (count, last arrival).
    fn drain(
        sock: &Arc<UdpSocket>,
        quiet: Duration,
    ) -> tokio::task::JoinHandle<(usize, Option<Instant>)> {
        let sock = sock.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            let mut n = 0;
            let mut last = None;
            let first = Duration::from_secs(3);
            while let Ok(Ok(_)) =
                tokio::time::timeout(if n == 0 { first } else { quiet }, sock.recv_from(&mut buf))
                    .await
            {
                n += 1;
                last = Some(Instant::now());
            }
            (n, last)
        })
    }

    #[tokio::test]
    async fn clean_link_echoes_everything_from_the_listen_address() {
        let (relay, client) = echo_behind_relay().await;
        client
            .send_to(b"first", relay.listen_addr())
            .await
            .expect("send");
        let mut buf = [0u8; 64];
        let (_, from) = client.recv_from(&mut buf).await.expect("recv");
        assert_eq!(from, relay.listen_addr());
        let rest = drain(&client, Duration::from_millis(300));
        for i in 0..49u32 {
            client
                .send_to(&i.to_be_bytes(), relay.listen_addr())
                .await
                .expect("send");
        }
        let (rest, _) = rest.await.expect("drain");
        assert_eq!(rest + 1, 50);
        let s = relay.stats();
        assert_eq!(s.flows, 1);
        assert_eq!(s.to_server.sent, 50);
        assert_eq!(s.to_client.sent, 50);
        assert_eq!(s.to_client.lost + s.to_client.overflow, 0);
    }

    #[tokio::test]
    async fn delay_adds_to_the_round_trip() {
        let (relay, client) = echo_behind_relay().await;
        relay.set(Conditions::delay(60), Conditions::delay(60));
        let start = Instant::now();
        client
            .send_to(b"ping", relay.listen_addr())
            .await
            .expect("send");
        let mut buf = [0u8; 16];
        tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
            .await
            .expect("echo within 2 s")
            .expect("recv");
        let rtt = start.elapsed();
        assert!(
            rtt >= Duration::from_millis(120) && rtt < Duration::from_millis(600),
            "round trip {rtt:?} with 60 ms each way"
        );
    }

    #[tokio::test]
    async fn loss_drops_about_the_asked_share() {
        let (relay, client) = echo_behind_relay().await;
        relay.set(Conditions::loss(20.0), Conditions::clean());
        let echoes = drain(&client, Duration::from_millis(300));
        for i in 0..2000u32 {
            client
                .send_to(&i.to_be_bytes(), relay.listen_addr())
                .await
                .expect("send");
            if i % 100 == 99 {
                // Let the echo keep up (no socket buffer overflow).
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let (got, _) = echoes.await.expect("drain");
        let s = relay.stats();
        assert_eq!(s.to_client.received, 2000);
        assert_eq!(s.to_client.lost as usize + got, 2000, "{s:?}");
        assert!(
            (300..500).contains(&s.to_client.lost),
            "20 % of 2000 lost: {s:?}"
        );
    }

    #[tokio::test]
    async fn rate_cap_paces_and_drops_past_the_queue() {
        let (relay, client) = echo_behind_relay().await;
        // 4 Mbit/s with a queue that holds the whole burst: 100 datagrams of
        // 1000 bytes (+28 header) take ~206 ms to pass.
        let paced = Conditions {
            rate_bps: 4_000_000,
            queue_ms: 10_000,
            ..Conditions::default()
        };
        relay.set(paced, Conditions::clean());
        let payload = [7u8; 1000];
        let echoes = drain(&client, Duration::from_millis(400));
        let start = Instant::now();
        for _ in 0..100 {
            client
                .send_to(&payload, relay.listen_addr())
                .await
                .expect("send");
        }
        let (got, last) = echoes.await.expect("drain");
        assert_eq!(got, 100, "{:?}", relay.stats());
        let took = last.expect("something arrived").duration_since(start);
        assert!(
            took >= Duration::from_millis(190) && took < Duration::from_millis(1500),
            "100 kB at 4 Mbit/s took {took:?}"
        );

        // 1 Mbit/s with a 50 ms queue: of a burst of 100, only the first few
        // fit (each takes ~8.2 ms on the link).
        let tight = Conditions {
            rate_bps: 1_000_000,
            queue_ms: 50,
            ..Conditions::default()
        };
        relay.set(tight, Conditions::clean());
        let before = relay.stats().to_client;
        let echoes = drain(&client, Duration::from_millis(400));
        for _ in 0..100 {
            client
                .send_to(&payload, relay.listen_addr())
                .await
                .expect("send");
        }
        let (got, _) = echoes.await.expect("drain");
        let after = relay.stats().to_client;
        let overflow = after.overflow - before.overflow;
        assert_eq!(got as u64 + overflow, 100, "{after:?}");
        assert!(
            (5..=40).contains(&got),
            "{got} of a 100-datagram burst passed a 50 ms queue at 1 Mbit/s"
        );
    }

    #[tokio::test]
    async fn control_socket_sets_and_reports() {
        let (relay, _client) = echo_behind_relay().await;
        let ctl = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let ask = |msg: &'static str| {
            let ctl = &ctl;
            let to = relay.control_addr();
            async move {
                ctl.send_to(msg.as_bytes(), to).await.expect("send");
                let mut buf = vec![0u8; MAX_DATAGRAM];
                let (n, _) = tokio::time::timeout(Duration::from_secs(2), ctl.recv_from(&mut buf))
                    .await
                    .expect("reply")
                    .expect("recv");
                serde_json::from_slice::<serde_json::Value>(&buf[..n]).expect("json")
            }
        };
        let r = ask(r#"{"cmd":"set","to_client":{"loss_pct":5,"delay_ms":100},"to_server":{"rate_bps":300000}}"#).await;
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["conditions"]["to_client"]["loss_pct"], 5.0);
        assert_eq!(r["conditions"]["to_client"]["delay_ms"], 100);
        assert_eq!(r["conditions"]["to_server"]["rate_bps"], 300_000);
        assert_eq!(r["conditions"]["to_server"]["queue_ms"], 200);
        assert_eq!(r["stats"]["flows"], 0);
        let r = ask(r#"{"cmd":"stats"}"#).await;
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["conditions"]["to_server"]["rate_bps"], 300_000);
        let r = ask(r#"{"cmd":"explode"}"#).await;
        assert_eq!(r["ok"], false, "{r}");
        assert!(r["error"].is_string());
    }
}
