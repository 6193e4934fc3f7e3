//! The media sockets: one UDP socket and one TCP listener per media address,
//! all on the same port number. Reader tasks hand datagrams to the engine;
//! TCP carries them with RFC 4571 framing (a 16-bit length before each one).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rtc::shared::tcp_framing::{frame_packet, TcpFrameDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::peer::Proto;
use crate::SfuConfig;

/// Largest datagram we accept (and the largest RFC 4571 frame).
const MAX_DATAGRAM: usize = 2048;

/// What the socket tasks tell the engine.
pub(crate) enum Inbound {
    Datagram {
        proto: Proto,
        /// The announced address the datagram arrived on.
        local: SocketAddr,
        remote: SocketAddr,
        data: BytesMut,
    },
    TcpOpen {
        remote: SocketAddr,
        writer: mpsc::UnboundedSender<BytesMut>,
    },
    TcpClosed {
        remote: SocketAddr,
    },
}

/// Where a datagram from `remote` goes, as [`demux`] decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<K> {
    /// A STUN request naming one of our ufrags: the peer, and its address
    /// is to be learnt for what follows.
    ByUfrag(K),
    /// Anything else from a known 5-tuple.
    ByAddr(K),
    /// Nobody's.
    Unrouted,
}

/// The media port's demultiplexer. STUN requests (RFC 8489 class bits 00)
/// go by their USERNAME (our ufrag before the colon): that is how a new
/// flow, or a new path of a known peer, is found. Responses, error
/// responses and indications go by the 5-tuple, whatever USERNAME they
/// carry: libnice (GStreamer) echoes the request's `USERNAME=peer:ours` into
/// its Binding success responses, which names its ufrag first. A request
/// with a ufrag we do not know (an old one after an ICE restart) also falls
/// back to the 5-tuple. Everything that is not STUN goes by the 5-tuple.
pub(crate) fn demux<K: Copy>(
    by_ufrag: &HashMap<String, K>,
    by_addr: &HashMap<(Proto, SocketAddr), K>,
    proto: Proto,
    remote: SocketAddr,
    data: &[u8],
) -> Route<K> {
    if let Some(ours) = request_ufrag(data) {
        if let Some(key) = by_ufrag.get(ours) {
            return Route::ByUfrag(*key);
        }
    }
    match by_addr.get(&(proto, remote)) {
        Some(key) => Route::ByAddr(*key),
        None => Route::Unrouted,
    }
}

/// Our ufrag (the USERNAME before its colon) of a STUN request; `None` for
/// anything else (responses, indications, other protocols, garbage).
fn request_ufrag(data: &[u8]) -> Option<&str> {
    if !crate::stun::is_stun(data) || data.len() < 2 {
        return None;
    }
    // The class is bits C1 (0x0100) and C0 (0x0010) of the message type.
    let typ = u16::from_be_bytes([data[0], data[1]]);
    if typ & 0x0110 != 0 {
        return None;
    }
    let user = crate::stun::stun_username(data)?;
    user.split(':').next()
}

/// The bound sockets.
pub(crate) struct Sockets {
    /// Announced address -> the UDP socket it is served by.
    pub udp: HashMap<SocketAddr, Arc<UdpSocket>>,
    /// Announced UDP and TCP addresses, in announcement order.
    pub udp_announced: Vec<SocketAddr>,
    pub tcp_announced: Vec<SocketAddr>,
    /// Bound addresses (what the OS reports).
    pub udp_bound: Vec<SocketAddr>,
    pub tcp_bound: Vec<SocketAddr>,
    tcp_listeners: Vec<(TcpListener, SocketAddr)>,
    tcp_limits: TcpLimits,
}

/// What one address may hold of the media TCP port.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TcpLimits {
    /// Open connections from one IP address at most; more are closed as
    /// soon as they are accepted.
    pub per_address: usize,
    /// A connection must have passed ICE this soon after it was accepted,
    /// or it is closed: we must have answered a connectivity check on it
    /// with a Binding success response (which the stack sends only for a
    /// check that names one of our peers and carries its integrity).
    pub ice_timeout: Duration,
}

/// A connection that carried nothing at all this long after ICE is closed
/// (the engine gives its peer up after 40 s of silence).
const TCP_IDLE_AFTER_ICE: Duration = Duration::from_secs(60);

/// Open TCP connections per remote IP address.
type TcpCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One counted connection; uncounts it when dropped.
struct TcpSlot {
    counts: TcpCounts,
    ip: IpAddr,
}

impl TcpSlot {
    /// Counts a connection from `ip`, unless `ip` already has `max`.
    fn take(counts: &TcpCounts, ip: IpAddr, max: usize) -> Option<TcpSlot> {
        let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(TcpSlot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for TcpSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(&self.ip);
            }
        }
    }
}

/// TCP connections closed by [`TcpLimits`] (over the per-address cap, or
/// no ICE in time, or idle after it).
static TCP_REFUSED: AtomicU64 = AtomicU64::new(0);

/// TCP connections the media port closed by its limits since the process
/// started.
pub(crate) fn tcp_refused() -> u64 {
    TCP_REFUSED.load(Ordering::Relaxed)
}

/// (address to bind, address to announce) pairs for the configuration.
fn media_ips(config: &SfuConfig) -> Vec<(IpAddr, IpAddr)> {
    let bind = config.udp_bind.ip();
    let mut ips: Vec<IpAddr> = if !config.announce_ips.is_empty() {
        config.announce_ips.clone()
    } else if !bind.is_unspecified() {
        vec![bind]
    } else {
        if_addrs::get_if_addrs()
            .map(|list| {
                list.into_iter()
                    .map(|i| i.ip())
                    .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
                    .collect()
            })
            .unwrap_or_default()
    };
    if config.include_loopback && !ips.iter().any(|ip| ip.is_loopback()) {
        ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let mut out = Vec::new();
    for ip in ips {
        // With an explicit bind address other than the announced one (NAT), bind it.
        let bind_ip = if !bind.is_unspecified() && !ip.is_loopback() {
            bind
        } else {
            ip
        };
        let announce = match config.nat_1to1_ip {
            Some(public) if !ip.is_loopback() => public,
            _ => ip,
        };
        if !out.iter().any(|(b, _)| *b == bind_ip) {
            out.push((bind_ip, announce));
        }
    }
    out
}

/// Binds every media address on one port number (the configured one, or a
/// free one shared by UDP and TCP when the configured port is 0).
pub(crate) async fn bind(config: &SfuConfig) -> io::Result<Sockets> {
    let ips = media_ips(config);
    if ips.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no media address: set media.announce_ips or media.bind_ip",
        ));
    }
    let want = config.udp_bind.port();
    let tcp_port = config.tcp_bind.port();
    // With port 0, a free UDP port may be taken on TCP: try a few.
    let attempts = if want == 0 { 20 } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        match try_bind(&ips, want, tcp_port).await {
            Ok(mut s) => {
                s.tcp_limits = TcpLimits {
                    per_address: config.tcp_max_per_address.max(1),
                    ice_timeout: config.tcp_ice_timeout,
                };
                return Ok(s);
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("bind failed")))
}

async fn try_bind(ips: &[(IpAddr, IpAddr)], port: u16, tcp_port: u16) -> io::Result<Sockets> {
    let mut port = port;
    let mut s = Sockets {
        udp: HashMap::new(),
        udp_announced: vec![],
        tcp_announced: vec![],
        udp_bound: vec![],
        tcp_bound: vec![],
        tcp_listeners: vec![],
        tcp_limits: TcpLimits {
            per_address: usize::MAX,
            ice_timeout: Duration::MAX,
        },
    };
    for &(bind_ip, announce) in ips {
        let udp = UdpSocket::bind(SocketAddr::new(bind_ip, port)).await?;
        enlarge_buffers(&udp);
        let bound = udp.local_addr()?;
        port = bound.port();
        let tport = if tcp_port == 0 { port } else { tcp_port };
        let tcp = TcpListener::bind(SocketAddr::new(bind_ip, tport)).await?;
        let tbound = tcp.local_addr()?;
        let ua = SocketAddr::new(announce, port);
        let ta = SocketAddr::new(announce, tbound.port());
        s.udp.insert(ua, Arc::new(udp));
        s.udp_announced.push(ua);
        s.tcp_announced.push(ta);
        s.udp_bound.push(bound);
        s.tcp_bound.push(tbound);
        s.tcp_listeners.push((tcp, ta));
    }
    Ok(s)
}

/// What the media socket asks of the kernel for its receive and send
/// buffers. The default (`net.core.rmem_default`, 208 KiB) holds about 60
/// video datagrams, as the kernel counts them: 25 ms of what 100 bridge
/// points send. When the engine is not scheduled for longer than that (a
/// busy or shared CPU), everything after is dropped, publishers are NACKed,
/// their retransmissions add to the load, and the meeting degrades for
/// everyone. 4 MiB holds about half a second.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Datagrams dropped because the engine's queue was full.
static QUEUE_DROPS: AtomicU64 = AtomicU64::new(0);

/// Datagrams dropped since the process started because the engine was
/// behind (its inbound queue full).
pub(crate) fn datagrams_dropped() -> u64 {
    QUEUE_DROPS.load(Ordering::Relaxed)
}

/// Asks for [`SOCKET_BUFFER`] bytes of receive and send buffer. The kernel
/// caps the request at `net.core.rmem_max` / `wmem_max` (docs/operations.md
/// says how to raise them) unless the process may force it (root,
/// CAP_NET_ADMIN). What was granted is logged; a failure only leaves the
/// default.
fn enlarge_buffers(udp: &UdpSocket) {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    // Linux reports twice what was set (its bookkeeping overhead).
    if setsockopt(udp, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(udp, sockopt::RcvBuf, &SOCKET_BUFFER);
    }
    if setsockopt(udp, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(udp, sockopt::SndBuf, &SOCKET_BUFFER);
    }
    let rcv = getsockopt(udp, sockopt::RcvBuf).unwrap_or(0) / 2;
    let snd = getsockopt(udp, sockopt::SndBuf).unwrap_or(0) / 2;
    if rcv < SOCKET_BUFFER || snd < SOCKET_BUFFER {
        tracing::warn!(
            receive = rcv,
            send = snd,
            wanted = SOCKET_BUFFER,
            "media socket buffers smaller than wanted: raise net.core.rmem_max and \
             net.core.wmem_max (docs/operations.md)"
        );
    } else {
        tracing::debug!(receive = rcv, send = snd, "media socket buffers");
    }
}

impl Sockets {
    /// Starts the reader tasks; they stop when the engine's receiver is gone.
    /// `handshakes` takes the STUN and DTLS datagrams that find `tx` full.
    pub fn spawn_readers(
        &mut self,
        tx: mpsc::Sender<Inbound>,
        handshakes: mpsc::Sender<Inbound>,
    ) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        for (&announced, sock) in &self.udp {
            let sock = sock.clone();
            let tx = tx.clone();
            let hs = handshakes.clone();
            tasks.push(tokio::spawn(async move {
                udp_reader(sock, announced, tx, hs).await;
            }));
        }
        let counts = TcpCounts::default();
        for (listener, announced) in self.tcp_listeners.drain(..) {
            let tx = tx.clone();
            let limits = self.tcp_limits;
            let counts = counts.clone();
            tasks.push(tokio::spawn(async move {
                tcp_acceptor(listener, announced, tx, limits, counts).await;
            }));
        }
        tasks
    }
}

async fn udp_reader(
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    tx: mpsc::Sender<Inbound>,
    handshakes: mpsc::Sender<Inbound>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, remote)) => {
                let msg = Inbound::Datagram {
                    proto: Proto::Udp,
                    local,
                    remote,
                    data: BytesMut::from(&buf[..n]),
                };
                // A full queue means the engine is behind: drop rather than
                // queue up stale media (the peers' NACK and PLI repair it),
                // so an overload degrades instead of snowballing delay.
                // Handshakes (STUN, DTLS: RFC 7983, first byte below 64)
                // go to the engine's priority queue instead: a bridge point
                // that connects must get through.
                match tx.try_send(msg) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(msg)) if n > 0 && buf[0] < 64 => {
                        if let Err(mpsc::error::TrySendError::Closed(_)) = handshakes.try_send(msg)
                        {
                            return;
                        }
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        QUEUE_DROPS.fetch_add(1, Ordering::Relaxed);
                        tracing::trace!("engine queue full: datagram dropped");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            // ICMP errors (port unreachable) surface here on Linux: not fatal.
            Err(e) => tracing::trace!("udp recv: {e}"),
        }
    }
}

async fn tcp_acceptor(
    listener: TcpListener,
    local: SocketAddr,
    tx: mpsc::Sender<Inbound>,
    limits: TcpLimits,
    counts: TcpCounts,
) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let Some(slot) = TcpSlot::take(&counts, remote.ip(), limits.per_address) else {
                    TCP_REFUSED.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%remote, max = limits.per_address, "media TCP: too many connections from one address");
                    drop(stream);
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    tcp_connection(stream, local, remote, tx, limits.ice_timeout).await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!("tcp accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn tcp_connection(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    tx: mpsc::Sender<Inbound>,
    ice_timeout: Duration,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::unbounded_channel::<BytesMut>();
    if tx
        .send(Inbound::TcpOpen {
            remote,
            writer: wtx,
        })
        .await
        .is_err()
    {
        return;
    }
    // ICE passed on this connection once we answered a check on it with a
    // Binding success response: the stack sends one only for a request that
    // names one of our peers and carries its MESSAGE-INTEGRITY.
    let past_ice = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let past_ice = past_ice.clone();
        tokio::spawn(async move {
            while let Some(data) = wrx.recv().await {
                if data.len() > u16::MAX as usize {
                    continue;
                }
                if is_binding_success(&data) {
                    past_ice.store(true, Ordering::Relaxed);
                }
                if wr.write_all(&frame_packet(&data)).await.is_err() {
                    return;
                }
            }
        })
    };
    let mut decoder = TcpFrameDecoder::new();
    let mut buf = vec![0u8; 8192];
    // Until ICE passed, the connection lives until `ice_deadline`; after,
    // while it carries anything.
    let ice_deadline = tokio::time::Instant::now()
        .checked_add(ice_timeout)
        .unwrap_or_else(|| tokio::time::Instant::now() + TCP_IDLE_AFTER_ICE * 1000);
    'read: loop {
        let passed = past_ice.load(Ordering::Relaxed);
        let deadline = if passed {
            tokio::time::Instant::now() + TCP_IDLE_AFTER_ICE
        } else {
            ice_deadline
        };
        let Ok(read) = tokio::time::timeout_at(deadline, rd.read(&mut buf)).await else {
            if !passed && past_ice.load(Ordering::Relaxed) {
                // ICE passed while we waited: the idle rule from now on.
                continue;
            }
            TCP_REFUSED.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, past_ice = passed, "media TCP: closed, no ICE in time or idle");
            break;
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                decoder.extend_from_slice(&buf[..n]);
                while let Some(frame) = decoder.next_packet() {
                    let msg = Inbound::Datagram {
                        proto: Proto::Tcp,
                        local,
                        remote,
                        data: BytesMut::from(&frame[..]),
                    };
                    if tx.send(msg).await.is_err() {
                        break 'read;
                    }
                }
                // A peer that sends a frame header claiming more than we will ever
                // accept is not speaking RFC 4571 to us.
                if decoder.buffered_len() > 4 * MAX_DATAGRAM + 2 {
                    break;
                }
            }
        }
    }
    writer.abort();
    let _ = tx.send(Inbound::TcpClosed { remote }).await;
}

/// Whether a datagram is a STUN Binding success response (type 0x0101).
fn is_binding_success(data: &[u8]) -> bool {
    data.len() >= 20 && data[..2] == [0x01, 0x01] && data[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// What the TCP reader does with bytes from a connection, on `data` arriving
/// in uneven pieces (used by `crate::fuzzing`): frames out, and the same
/// give-up rule on an oversized frame header.
pub(crate) fn fuzz_tcp_frames(data: &[u8]) {
    let mut decoder = TcpFrameDecoder::new();
    let mut rest = data;
    let mut step = 1;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(step.min(rest.len()));
        rest = tail;
        step = step * 3 % 17 + 1;
        decoder.extend_from_slice(piece);
        while let Some(frame) = decoder.next_packet() {
            let _ = BytesMut::from(&frame[..]);
        }
        if decoder.buffered_len() > 4 * MAX_DATAGRAM + 2 {
            break;
        }
    }
}

/// A UDP datagram the engine has produced and not yet sent.
pub(crate) struct Outgoing {
    /// The announced address to send it from.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub data: BytesMut,
}

/// What `send_batch` did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Sent {
    pub datagrams: usize,
    pub bytes: u64,
    /// System calls made.
    pub calls: u64,
}

/// Most datagrams handed to one `sendmmsg` call.
#[cfg(target_os = "linux")]
const SEND_BATCH: usize = 64;

/// Sends `out` on `sock` in order, many datagrams per system call
/// (`sendmmsg`) where the platform has it. Never waits: a socket that is
/// not writable now drops what it cannot take, as a lone `try_send_to`
/// would (the peers' NACK and PLI repair it).
pub(crate) fn send_batch(sock: &UdpSocket, out: &[Outgoing]) -> Sent {
    let mut sent = Sent::default();
    let mut rest = out;
    while let Some(first) = rest.first() {
        #[cfg(target_os = "linux")]
        if rest.len() > 1 {
            let chunk = &rest[..rest.len().min(SEND_BATCH)];
            let r = sock.try_io(tokio::io::Interest::WRITABLE, || sendmmsg(sock, chunk));
            sent.calls += 1;
            match r {
                Ok(n) if n > 0 => {
                    let (done, tail) = rest.split_at(n.min(rest.len()));
                    sent.datagrams += done.len();
                    sent.bytes += done.iter().map(|o| o.data.len() as u64).sum::<u64>();
                    rest = tail;
                    continue;
                }
                Ok(_) => {}
                // Not writable now: what is left would fail the same way.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tracing::trace!("udp send: {} datagrams dropped: {e}", rest.len());
                    return sent;
                }
                // The first datagram failed (its address, its size): send
                // it alone below, then batch the rest again.
                Err(e) => tracing::trace!("udp sendmmsg: {e}"),
            }
        }
        sent.calls += 1;
        match sock.try_send_to(&first.data, first.remote) {
            Ok(n) => {
                sent.datagrams += 1;
                sent.bytes += n as u64;
            }
            Err(e) => tracing::trace!("udp send to {}: {e}", first.remote),
        }
        rest = &rest[1..];
    }
    sent
}

/// One `sendmmsg` of `chunk`: how many datagrams the kernel took.
#[cfg(target_os = "linux")]
fn sendmmsg(sock: &UdpSocket, chunk: &[Outgoing]) -> io::Result<usize> {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    let slices: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|o| [IoSlice::new(&o.data)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = chunk
        .iter()
        .map(|o| Some(SockaddrStorage::from(o.remote)))
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
    let results = nix::sys::socket::sendmmsg(
        sock.as_raw_fd(),
        &mut headers,
        &slices,
        &addrs,
        [],
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    // The results iterate over the datagrams the kernel took (its return
    // value); nix has no other way to read that number. Each item carries an
    // address slot sendmmsg never writes, and `SockaddrStorage` is a union
    // of plain C structs, for which any bytes are a valid value.
    Ok(results.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A STUN message of `typ` with a USERNAME attribute (when given) and a
    /// transaction id, as a client would send it.
    fn stun(typ: u16, username: Option<&str>) -> Vec<u8> {
        let mut attrs = Vec::new();
        if let Some(u) = username {
            attrs.extend_from_slice(&0x0006u16.to_be_bytes());
            attrs.extend_from_slice(&(u.len() as u16).to_be_bytes());
            attrs.extend_from_slice(u.as_bytes());
            attrs.resize(attrs.len().div_ceil(4) * 4, 0);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&typ.to_be_bytes());
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    const REQUEST: u16 = 0x0001;
    const INDICATION: u16 = 0x0011;
    const SUCCESS: u16 = 0x0101;
    const ERROR: u16 = 0x0111;

    struct Maps {
        by_ufrag: HashMap<String, u32>,
        by_addr: HashMap<(Proto, SocketAddr), u32>,
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Peer 1 has our ufrag "ours" and was learnt at 127.0.0.1:5000 (UDP);
    /// peer 2 has "other" and was learnt at 127.0.0.1:6000 over TCP.
    fn maps() -> Maps {
        Maps {
            by_ufrag: HashMap::from([("ours".to_owned(), 1), ("other".to_owned(), 2)]),
            by_addr: HashMap::from([((Proto::Udp, addr(5000)), 1), ((Proto::Tcp, addr(6000)), 2)]),
        }
    }

    fn route(m: &Maps, proto: Proto, from: SocketAddr, data: &[u8]) -> Route<u32> {
        demux(&m.by_ufrag, &m.by_addr, proto, from, data)
    }

    #[test]
    fn a_request_goes_by_our_ufrag_from_any_address() {
        let m = maps();
        let req = stun(REQUEST, Some("ours:peer"));
        assert_eq!(route(&m, Proto::Udp, addr(5000), &req), Route::ByUfrag(1));
        // A new address (a new path, or the first check) is found by ufrag.
        assert_eq!(route(&m, Proto::Udp, addr(7000), &req), Route::ByUfrag(1));
        let req2 = stun(REQUEST, Some("other:peer"));
        assert_eq!(route(&m, Proto::Tcp, addr(7001), &req2), Route::ByUfrag(2));
    }

    #[test]
    fn a_success_response_echoing_username_goes_by_5_tuple() {
        // libnice copies the request's USERNAME (ours first in *its* request,
        // so "peer:ours" as we see it) into its Binding success response.
        let m = maps();
        let resp = stun(SUCCESS, Some("peer:ours"));
        assert_eq!(route(&m, Proto::Udp, addr(5000), &resp), Route::ByAddr(1));
        // Even when the echoed name happens to start with one of our ufrags,
        // a response is no proof of who sent it: 5-tuple only.
        let resp = stun(SUCCESS, Some("other:ours"));
        assert_eq!(route(&m, Proto::Udp, addr(5000), &resp), Route::ByAddr(1));
        assert_eq!(route(&m, Proto::Udp, addr(7000), &resp), Route::Unrouted);
        let plain = stun(SUCCESS, None);
        assert_eq!(route(&m, Proto::Tcp, addr(6000), &plain), Route::ByAddr(2));
    }

    #[test]
    fn error_responses_and_indications_go_by_5_tuple() {
        let m = maps();
        for typ in [ERROR, INDICATION] {
            let msg = stun(typ, Some("peer:ours"));
            assert_eq!(route(&m, Proto::Udp, addr(5000), &msg), Route::ByAddr(1));
            assert_eq!(route(&m, Proto::Tcp, addr(5000), &msg), Route::Unrouted);
        }
    }

    #[test]
    fn an_unknown_ufrag_falls_back_to_the_5_tuple() {
        let m = maps();
        let req = stun(REQUEST, Some("stale:peer"));
        assert_eq!(route(&m, Proto::Udp, addr(5000), &req), Route::ByAddr(1));
        assert_eq!(route(&m, Proto::Udp, addr(7000), &req), Route::Unrouted);
        // No USERNAME at all (not valid for ICE, but no reason to drop it).
        let bare = stun(REQUEST, None);
        assert_eq!(route(&m, Proto::Udp, addr(5000), &bare), Route::ByAddr(1));
    }

    #[test]
    fn media_and_garbage_go_by_5_tuple() {
        let m = maps();
        // DTLS (20..63) and RTP/RTCP (128..191) first bytes.
        for first in [22u8, 0x80, 0xbf] {
            let d = [first, 1, 2, 3, 4, 5];
            assert_eq!(route(&m, Proto::Udp, addr(5000), &d), Route::ByAddr(1));
            assert_eq!(route(&m, Proto::Udp, addr(5001), &d), Route::Unrouted);
        }
        for d in [&[][..], &[0u8][..], &[1u8, 1, 0, 200][..]] {
            assert_eq!(route(&m, Proto::Udp, addr(5000), d), Route::ByAddr(1));
        }
    }

    #[test]
    fn binding_success_is_recognised() {
        assert!(is_binding_success(&stun(SUCCESS, None)));
        assert!(!is_binding_success(&stun(REQUEST, Some("ours:peer"))));
        assert!(!is_binding_success(&stun(ERROR, None)));
        assert!(!is_binding_success(&[0x01, 0x01, 0, 0]));
    }

    #[test]
    fn tcp_slots_cap_each_address_and_free_on_drop() {
        let counts = TcpCounts::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first: Vec<TcpSlot> = (0..3)
            .filter_map(|_| TcpSlot::take(&counts, a, 3))
            .collect();
        assert_eq!(first.len(), 3);
        assert!(
            TcpSlot::take(&counts, a, 3).is_none(),
            "a fourth from one address"
        );
        let other = TcpSlot::take(&counts, b, 3);
        assert!(other.is_some(), "another address has its own count");
        drop(first);
        assert!(TcpSlot::take(&counts, a, 3).is_some(), "freed when closed");
        drop(other);
        let left = counts.lock().map(|c| c.len()).unwrap_or(usize::MAX);
        assert_eq!(left, 0, "no entry stays for closed connections");
    }
}
