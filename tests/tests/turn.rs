//! TURN with a real coturn (Debian `coturn`, `turnserver` on PATH or in
//! /usr/bin), started by each test on loopback with its own config in a temp
//! folder (REST API credentials: `use-auth-secret`, a test secret; TURN over
//! TLS with a certificate from a test CA made here; loopback peers allowed,
//! which only a test may do):
//!
//! - coturn accepts the credentials giaoban hands out in `joined` (an
//!   Allocate over plain TCP and over TLS succeeds), and refuses a tampered
//!   one and an expired one (401), so the scheme is coturn's and expiry is
//!   enforced by coturn itself; an allocation opened before the expiry is
//!   still refreshed after it (the expiry limits opening allocations only); with the peer rules of
//!   deploy/coturn/turnserver.conf (everything denied but the SFU's address)
//!   a permission for the SFU is granted and one for another address refused;
//! - a session gets fresh credentials (`ice_servers`) every half lifetime;
//! - without `[turn]`, `joined` has no ICE servers and policy `all`;
//! - real Chromium, told to use relay only (`turn.force_relay`), with UDP
//!   dropped in its network namespace except between coturn's relay ports and
//!   the SFU: two pages decode each other's video through coturn, reached
//!   over TLS (`turns:`); every selected local candidate is `relay` with
//!   relayProtocol `tls` (tests/e2e/turn.mjs); with a 60 s credential
//!   lifetime, the fresh credentials pushed after 30 s reach every
//!   connection (`setConfiguration`) and the video goes on. Chromium checks the TURN
//!   server's certificate, so the test CA goes into a fresh NSS database
//!   (`certutil`, Debian `libnss3-tools`) under a HOME of the test's own.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context as _, Result};
use base64::Engine as _;
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
use giaoban_tests::{TestServer, WsClient};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::process::{Child, Command};
use tokio_rustls::rustls;

/// The secret coturn and giaoban share in these tests.
const SECRET: &str = "giaoban-test-turn-secret-0123456789";
/// coturn's realm in these tests.
const REALM: &str = "giaoban.test";
/// coturn's relay ports (below Linux's ephemeral range, so no browser or
/// server socket takes one): the nftables rule lets UDP through only between
/// these and the SFU's port.
const RELAY_PORTS: (u16, u16) = (20000, 20099);

/// Set in the child test process that runs inside the UDP-less namespace.
const UDP_BLOCKED_ENV: &str = "GIAOBAN_E2E_IN_TURN_NETNS";
/// How long the browser script may wait for media once both pages joined.
const MEDIA_TIMEOUT_MS: u64 = 25_000;
/// The credential lifetime of the browser test: fresh ones come after 30 s.
const BROWSER_TTL_SECONDS: u64 = 60;
/// How long the browser script waits for the fresh credentials.
const REFRESH_WAIT_MS: u64 = 45_000;
/// A hard limit for the browser script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

fn turnserver_bin() -> Result<PathBuf> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("turnserver");
        if p.is_file() {
            return Ok(p);
        }
    }
    let p = PathBuf::from("/usr/bin/turnserver");
    ensure!(
        p.is_file(),
        "turnserver not found (apt-get install coturn; scripts/test installs it)"
    );
    Ok(p)
}

/// A port free for both TCP and UDP on 127.0.0.1 right now.
fn free_port() -> Result<u16> {
    for _ in 0..50 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free for both TCP and UDP")
}

/// A test CA and a certificate it issued for `localhost` and 127.0.0.1.
struct TestPki {
    ca_pem: String,
    ca_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

fn make_pki() -> Result<TestPki> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "giaoban test TURN CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    Ok(TestPki {
        ca_pem: ca.pem(),
        ca_der: ca.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A `turnserver` process with its own config, killed on drop.
struct Coturn {
    /// Plain TURN (UDP and TCP) on 127.0.0.1.
    plain: SocketAddr,
    /// TURN over TLS on 127.0.0.1.
    tls: SocketAddr,
    pki: TestPki,
    log_path: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
}

impl Coturn {
    async fn start() -> Result<Coturn> {
        let bin = turnserver_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("giaoban-coturn-")
            .tempdir()?;
        let pki = make_pki()?;
        let d = dir.path();
        std::fs::write(
            d.join("cert.pem"),
            format!("{}{}", pki.cert_pem, pki.ca_pem),
        )?;
        std::fs::write(d.join("key.pem"), &pki.key_pem)?;
        let plain_port = free_port()?;
        let tls_port = loop {
            let p = free_port()?;
            if p != plain_port {
                break p;
            }
        };
        let log_path = d.join("turnserver.log");
        let conf = format!(
            "listening-ip=127.0.0.1\n\
             relay-ip=127.0.0.1\n\
             listening-port={plain_port}\n\
             tls-listening-port={tls_port}\n\
             min-port={min}\n\
             max-port={max}\n\
             use-auth-secret\n\
             static-auth-secret={SECRET}\n\
             realm={REALM}\n\
             cert={dir}/cert.pem\n\
             pkey={dir}/key.pem\n\
             no-tlsv1\n\
             no-tlsv1_1\n\
             no-dtls\n\
             no-rfc5780\n\
             no-stun\n\
             no-tcp-relay\n\
             fingerprint\n\
             stale-nonce=600\n\
             no-software-attribute\n\
             user-quota=12\n\
             total-quota=1200\n\
             no-cli\n\
             no-multicast-peers\n\
             denied-peer-ip=0.0.0.0-255.255.255.255\n\
             denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\n\
             allowed-peer-ip=127.0.0.1\n\
             allow-loopback-peers\n\
             simple-log\n\
             log-file={log}\n\
             pidfile={dir}/turnserver.pid\n\
             userdb={dir}/turndb\n",
            min = RELAY_PORTS.0,
            max = RELAY_PORTS.1,
            dir = d.display(),
            log = log_path.display(),
        );
        let conf_path = d.join("turnserver.conf");
        std::fs::write(&conf_path, conf)?;
        let stdio = std::fs::File::create(d.join("turnserver.out"))?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdio.try_clone()?))
            .stderr(Stdio::from(stdio))
            .kill_on_drop(true)
            .spawn()
            .context("starting turnserver")?;
        let plain = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), plain_port);
        let tls = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), tls_port);
        let mut coturn = Coturn {
            plain,
            tls,
            pki,
            log_path,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let up = tokio::net::TcpStream::connect(plain).await.is_ok()
                && tokio::net::TcpStream::connect(tls).await.is_ok();
            if up {
                return Ok(coturn);
            }
            if let Ok(Some(status)) = coturn.child.try_wait() {
                bail!("turnserver exited ({status}):\n{}", coturn.log());
            }
            if Instant::now() > deadline {
                bail!("turnserver did not listen in 15 s:\n{}", coturn.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// coturn's log and output (last lines).
    fn log(&self) -> String {
        let mut s = String::new();
        for f in [
            self.log_path.clone(),
            self.dir.path().join("turnserver.out"),
        ] {
            s.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
        tail(&s, 60)
    }

    /// A TLS client configuration trusting only the test CA.
    fn tls_client(&self) -> Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from(
            self.pki.ca_der.clone(),
        ))?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// An Allocate with these credentials over plain TCP.
    async fn allocate_tcp(&self, username: &str, password: &str) -> Result<Allocation> {
        let mut tcp = tokio::net::TcpStream::connect(self.plain).await?;
        Ok(stun::allocate(&mut tcp, username, password, &[], None)
            .await?
            .0)
    }

    /// An Allocate over plain TCP, then (if granted) a CreatePermission for
    /// each of `peers`: the allocation and each permission's outcome.
    async fn allocate_tcp_permit(
        &self,
        username: &str,
        password: &str,
        peers: &[SocketAddr],
    ) -> Result<(Allocation, Vec<Result<(), u16>>)> {
        let mut tcp = tokio::net::TcpStream::connect(self.plain).await?;
        let (a, p, _) = stun::allocate(&mut tcp, username, password, peers, None).await?;
        Ok((a, p))
    }

    /// An Allocate over plain TCP, then, `wait` later, a Refresh of it.
    async fn allocate_tcp_refresh(
        &self,
        username: &str,
        password: &str,
        wait: Duration,
    ) -> Result<(Allocation, Option<Result<(), u16>>)> {
        let mut tcp = tokio::net::TcpStream::connect(self.plain).await?;
        let (a, _, r) = stun::allocate(&mut tcp, username, password, &[], Some(wait)).await?;
        Ok((a, r))
    }

    /// An Allocate with these credentials over TLS (certificate checked for
    /// `localhost` against the test CA).
    async fn allocate_tls(&self, username: &str, password: &str) -> Result<Allocation> {
        let tcp = tokio::net::TcpStream::connect(self.tls).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?;
        let mut tls = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_rustls::TlsConnector::from(self.tls_client()?).connect(name, tcp),
        )
        .await
        .context("TLS handshake with coturn timed out")??;
        Ok(stun::allocate(&mut tls, username, password, &[], None)
            .await?
            .0)
    }
}

/// What coturn answered an authenticated Allocate.
#[derive(Debug, PartialEq)]
enum Allocation {
    /// Success: the relayed address.
    Granted(SocketAddr),
    /// An error response with this code.
    Refused(u16),
}

/// Just enough STUN/TURN (RFC 5389, RFC 5766) to ask for an allocation with
/// long-term credentials over a stream.
mod stun {
    use super::*;
    use hmac::Mac as _;
    use md5::Digest as _;

    const MAGIC: u32 = 0x2112_a442;
    const ALLOCATE_REQUEST: u16 = 0x0003;
    const ALLOCATE_SUCCESS: u16 = 0x0103;
    const ALLOCATE_ERROR: u16 = 0x0113;
    const ATTR_USERNAME: u16 = 0x0006;
    const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
    const ATTR_ERROR_CODE: u16 = 0x0009;
    const ATTR_REALM: u16 = 0x0014;
    const ATTR_NONCE: u16 = 0x0015;
    const ATTR_XOR_RELAYED_ADDRESS: u16 = 0x0016;
    const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;
    const CREATE_PERMISSION_REQUEST: u16 = 0x0008;
    const CREATE_PERMISSION_SUCCESS: u16 = 0x0108;
    const REFRESH_REQUEST: u16 = 0x0004;
    const REFRESH_SUCCESS: u16 = 0x0104;
    const ATTR_LIFETIME: u16 = 0x000d;

    /// An allocation's outcome, each permission's (Ok or the error code) and
    /// the later refresh's, if one was asked for.
    pub type Permitted = (Allocation, Vec<Result<(), u16>>, Option<Result<(), u16>>);
    const ATTR_REQUESTED_TRANSPORT: u16 = 0x0019;

    fn push_attr(buf: &mut Vec<u8>, typ: u16, value: &[u8]) {
        buf.extend_from_slice(&typ.to_be_bytes());
        buf.extend_from_slice(&(value.len() as u16).to_be_bytes());
        buf.extend_from_slice(value);
        while !buf.len().is_multiple_of(4) {
            buf.push(0);
        }
    }

    /// A request of `typ` with `attrs`; with `key`, MESSAGE-INTEGRITY last.
    fn encode(typ: u16, attrs: &[(u16, &[u8])], key: Option<&[u8]>) -> Vec<u8> {
        let tid: [u8; 12] = rand::random();
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&typ.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC.to_be_bytes());
        buf.extend_from_slice(&tid);
        for (t, v) in attrs {
            push_attr(&mut buf, *t, v);
        }
        if let Some(key) = key {
            // The length covers MESSAGE-INTEGRITY (24 bytes) when it is computed.
            let len = (buf.len() - 20 + 24) as u16;
            buf[2..4].copy_from_slice(&len.to_be_bytes());
            let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key).expect("any key length");
            mac.update(&buf);
            let tag = mac.finalize().into_bytes();
            push_attr(&mut buf, ATTR_MESSAGE_INTEGRITY, &tag);
        }
        let len = (buf.len() - 20) as u16;
        buf[2..4].copy_from_slice(&len.to_be_bytes());
        buf
    }

    struct Msg {
        typ: u16,
        attrs: Vec<(u16, Vec<u8>)>,
    }

    impl Msg {
        fn attr(&self, typ: u16) -> Option<&[u8]> {
            self.attrs
                .iter()
                .find(|(t, _)| *t == typ)
                .map(|(_, v)| v.as_slice())
        }

        fn error_code(&self) -> Option<u16> {
            let v = self.attr(ATTR_ERROR_CODE)?;
            (v.len() >= 4).then(|| u16::from(v[2] & 7) * 100 + u16::from(v[3]))
        }
    }

    async fn read_msg<S: AsyncRead + Unpin>(s: &mut S) -> Result<Msg> {
        let mut head = [0u8; 20];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head))
            .await
            .context("no STUN answer from coturn in 5 s")??;
        ensure!(
            u32::from_be_bytes([head[4], head[5], head[6], head[7]]) == MAGIC,
            "not a STUN message"
        );
        let typ = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await?;
        let mut attrs = Vec::new();
        let mut i = 0;
        while i + 4 <= body.len() {
            let t = u16::from_be_bytes([body[i], body[i + 1]]);
            let l = usize::from(u16::from_be_bytes([body[i + 2], body[i + 3]]));
            let v = body
                .get(i + 4..i + 4 + l)
                .context("truncated STUN attribute")?;
            attrs.push((t, v.to_vec()));
            i += 4 + l.div_ceil(4) * 4;
        }
        Ok(Msg { typ, attrs })
    }

    fn encode_xor_address(a: SocketAddr) -> Result<Vec<u8>> {
        let IpAddr::V4(ip) = a.ip() else {
            bail!("IPv4 only")
        };
        let mut v = vec![0, 1];
        v.extend_from_slice(&(a.port() ^ (MAGIC >> 16) as u16).to_be_bytes());
        v.extend_from_slice(&(u32::from(ip) ^ MAGIC).to_be_bytes());
        Ok(v)
    }

    fn xor_address(v: &[u8]) -> Result<SocketAddr> {
        ensure!(v.len() >= 8 && v[1] == 1, "not an IPv4 XOR address");
        let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC >> 16) as u16;
        let ip = u32::from_be_bytes([v[4], v[5], v[6], v[7]]) ^ MAGIC;
        Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
    }

    /// Allocate (UDP relay): the unauthenticated request gets 401 with the
    /// realm and a nonce, then the request with USERNAME, REALM, NONCE and
    /// MESSAGE-INTEGRITY (key MD5(username:realm:password)) gets the answer.
    /// If granted, asks a permission for each of `peers` on the allocation,
    /// then, after `refresh_after`, refreshes it (all on this connection).
    pub async fn allocate<S: AsyncRead + AsyncWrite + Unpin>(
        s: &mut S,
        username: &str,
        password: &str,
        peers: &[SocketAddr],
        refresh_after: Option<Duration>,
    ) -> Result<Permitted> {
        let udp = [17u8, 0, 0, 0];
        s.write_all(&encode(
            ALLOCATE_REQUEST,
            &[(ATTR_REQUESTED_TRANSPORT, &udp)],
            None,
        ))
        .await?;
        let challenge = read_msg(s).await?;
        ensure!(
            challenge.typ == ALLOCATE_ERROR && challenge.error_code() == Some(401),
            "coturn answered an anonymous Allocate with type {:#06x} code {:?}",
            challenge.typ,
            challenge.error_code()
        );
        let realm = challenge.attr(ATTR_REALM).context("no REALM")?.to_vec();
        let nonce = challenge.attr(ATTR_NONCE).context("no NONCE")?.to_vec();
        let mut md5 = md5::Md5::new();
        md5.update(username.as_bytes());
        md5.update(b":");
        md5.update(&realm);
        md5.update(b":");
        md5.update(password.as_bytes());
        let key = md5.finalize();
        s.write_all(&encode(
            ALLOCATE_REQUEST,
            &[
                (ATTR_REQUESTED_TRANSPORT, &udp),
                (ATTR_USERNAME, username.as_bytes()),
                (ATTR_REALM, &realm),
                (ATTR_NONCE, &nonce),
            ],
            Some(&key),
        ))
        .await?;
        let answer = read_msg(s).await?;
        let allocation = match answer.typ {
            ALLOCATE_SUCCESS => Allocation::Granted(xor_address(
                answer
                    .attr(ATTR_XOR_RELAYED_ADDRESS)
                    .context("success without XOR-RELAYED-ADDRESS")?,
            )?),
            ALLOCATE_ERROR => {
                let code = answer.error_code().context("error without ERROR-CODE")?;
                return Ok((Allocation::Refused(code), Vec::new(), None));
            }
            other => bail!("unexpected answer type {other:#06x}"),
        };
        let mut permissions = Vec::new();
        for peer in peers {
            let addr = encode_xor_address(*peer)?;
            s.write_all(&encode(
                CREATE_PERMISSION_REQUEST,
                &[
                    (ATTR_XOR_PEER_ADDRESS, &addr),
                    (ATTR_USERNAME, username.as_bytes()),
                    (ATTR_REALM, &realm),
                    (ATTR_NONCE, &nonce),
                ],
                Some(&key),
            ))
            .await?;
            let answer = read_msg(s).await?;
            permissions.push(if answer.typ == CREATE_PERMISSION_SUCCESS {
                Ok(())
            } else {
                Err(answer.error_code().unwrap_or(0))
            });
        }
        let mut refreshed = None;
        if let Some(wait) = refresh_after {
            tokio::time::sleep(wait).await;
            let lifetime = 600u32.to_be_bytes();
            s.write_all(&encode(
                REFRESH_REQUEST,
                &[
                    (ATTR_LIFETIME, &lifetime),
                    (ATTR_USERNAME, username.as_bytes()),
                    (ATTR_REALM, &realm),
                    (ATTR_NONCE, &nonce),
                ],
                Some(&key),
            ))
            .await?;
            let answer = read_msg(s).await?;
            refreshed = Some(if answer.typ == REFRESH_SUCCESS {
                Ok(())
            } else {
                Err(answer.error_code().unwrap_or(0))
            });
        }
        Ok((allocation, permissions, refreshed))
    }
}

/// base64(HMAC-SHA1(secret, username)), computed here independently of the
/// server (RustCrypto here, ring there).
fn rest_credential(secret: &str, username: &str) -> String {
    use hmac::Mac as _;
    let mut mac =
        hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `[turn]` section of a test server.
fn turn_toml(urls: &[String], ttl: u64, force_relay: bool) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    format!(
        "[turn]\nenabled = true\nurls = [{}]\nsecret = {SECRET:?}\n\
         credential_ttl_seconds = {ttl}\nforce_relay = {force_relay}\n",
        urls.join(", ")
    )
}

/// The one ICE server of a `joined` / `ice_servers` message: (urls, username, credential).
fn ice_server(msg: &Value) -> Result<(Vec<String>, String, String)> {
    let servers = msg["ice_servers"]
        .as_array()
        .with_context(|| format!("no ice_servers in {}", msg["type"]))?;
    ensure!(servers.len() == 1, "expected one ICE server: {servers:?}");
    let s = &servers[0];
    let urls = s["urls"]
        .as_array()
        .context("urls is not a list")?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let username = s["username"].as_str().context("no username")?.to_owned();
    let credential = s["credential"]
        .as_str()
        .context("no credential")?
        .to_owned();
    Ok((urls, username, credential))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_accepts_the_credentials_giaoban_hands_out() -> Result<()> {
    let coturn = Coturn::start().await?;
    let urls = vec![
        format!("turns:localhost:{}?transport=tcp", coturn.tls.port()),
        format!("turn:127.0.0.1:{}?transport=tcp", coturn.plain.port()),
    ];
    let ttl = 3600;
    let server = TestServer::start_with_config(&turn_toml(&urls, ttl, true)).await?;
    let (_meeting, token) = server.meeting_with_token("Xã Đắk Wil", "bridge").await?;
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    let joined = ws.hello_and_join(&token).await?;
    let pid = joined["participant"]["id"]
        .as_str()
        .context("no participant id")?;
    ensure!(
        joined["ice_transport_policy"] == "relay",
        "force_relay must give ice_transport_policy relay: {}",
        joined["ice_transport_policy"]
    );
    let (got_urls, username, credential) = ice_server(&joined)?;
    ensure!(got_urls == urls, "urls {got_urls:?}, configured {urls:?}");

    // username = "<expiry>:<participant id>", expiry = now + ttl.
    let (expiry, who) = username
        .split_once(':')
        .with_context(|| format!("username {username:?} is not <expiry>:<id>"))?;
    let expiry: u64 = expiry.parse().context("expiry is not a number")?;
    let now = unix_now();
    ensure!(who == pid, "username names {who}, participant is {pid}");
    ensure!(
        expiry + 60 >= now + ttl && expiry <= now + ttl + 5,
        "expiry {expiry} is not now ({now}) + {ttl} s"
    );
    ensure!(
        credential == rest_credential(SECRET, &username),
        "the credential is not base64(HMAC-SHA1(secret, username))"
    );

    // coturn itself accepts them, over TCP and over TLS.
    // The peer rules of the deploy config: only the SFU's address may be
    // reached through the relay (here 127.0.0.1; any other is refused: 403).
    let t0 = Instant::now();
    let (granted, permissions) = coturn
        .allocate_tcp_permit(
            &username,
            &credential,
            &[server.media_udp, "10.20.30.40:7882".parse()?],
        )
        .await?;
    let tcp_ms = t0.elapsed().as_millis();
    ensure!(
        matches!(granted, Allocation::Granted(a) if (RELAY_PORTS.0..=RELAY_PORTS.1).contains(&a.port())),
        "coturn refused giaoban's credentials over TCP: {granted:?}\n{}",
        coturn.log()
    );
    ensure!(
        permissions == [Ok(()), Err(403)],
        "permissions for the SFU and for another address: {permissions:?}"
    );
    let t0 = Instant::now();
    let granted_tls = coturn.allocate_tls(&username, &credential).await?;
    let tls_ms = t0.elapsed().as_millis();
    ensure!(
        matches!(granted_tls, Allocation::Granted(_)),
        "coturn refused giaoban's credentials over TLS: {granted_tls:?}\n{}",
        coturn.log()
    );

    // A tampered credential, a username changed after signing, an expired one.
    let mut tampered = credential.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered)?;
    let refused = coturn.allocate_tcp(&username, &tampered).await?;
    ensure!(
        refused == Allocation::Refused(401),
        "tampered credential: {refused:?}"
    );
    let other_user = format!("{}:{pid}", expiry + 86_400);
    let refused = coturn.allocate_tcp(&other_user, &credential).await?;
    ensure!(
        refused == Allocation::Refused(401),
        "a longer expiry with the old credential: {refused:?}"
    );
    let expired = format!("{}:{pid}", now - 10);
    let refused = coturn
        .allocate_tcp(&expired, &rest_credential(SECRET, &expired))
        .await?;
    ensure!(
        refused == Allocation::Refused(401),
        "expired credential: {refused:?}"
    );
    // The same computation with a future expiry is accepted: the refusal
    // above was the expiry, not the computation.
    let fresh = format!("{}:{pid}", now + 120);
    let granted = coturn
        .allocate_tls(&fresh, &rest_credential(SECRET, &fresh))
        .await?;
    ensure!(
        matches!(granted, Allocation::Granted(_)),
        "fresh self-made credential: {granted:?}"
    );
    // Expiry limits opening allocations, not keeping them: an allocation
    // opened just before the expiry is still refreshed after it, while a new
    // one with the same credential is refused.
    let short = format!("{}:{pid}", unix_now() + 3);
    let short_cred = rest_credential(SECRET, &short);
    let (granted, refreshed) = coturn
        .allocate_tcp_refresh(&short, &short_cred, Duration::from_secs(5))
        .await?;
    ensure!(
        matches!(granted, Allocation::Granted(_)) && refreshed == Some(Ok(())),
        "allocation before the expiry, refresh after it: {granted:?}, {refreshed:?}"
    );
    let refused = coturn.allocate_tcp(&short, &short_cred).await?;
    ensure!(
        refused == Allocation::Refused(401),
        "a new allocation after the expiry: {refused:?}"
    );

    // Neither the secret nor a credential reaches the server's log.
    ws.close().await;
    let log = server.log();
    ensure!(
        !log.contains(SECRET),
        "the TURN secret is in the server log"
    );
    ensure!(
        !log.contains(&credential),
        "a TURN credential is in the server log"
    );
    eprintln!(
        "coturn granted giaoban's credentials: TCP {tcp_ms} ms (with 2 permissions), \
         TLS {tls_ms} ms (with handshake); refused tampered, re-dated and expired ones \
         with 401, a peer other than the SFU with 403; refreshed an allocation past \
         its credential's expiry"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_get_fresh_credentials_every_half_lifetime() -> Result<()> {
    let coturn = Coturn::start().await?;
    let urls = vec![format!(
        "turn:127.0.0.1:{}?transport=tcp",
        coturn.plain.port()
    )];
    // The shortest lifetime: fresh credentials after 30 s.
    let server = TestServer::start_with_config(&turn_toml(&urls, 60, false)).await?;
    let (_meeting, token) = server.meeting_with_token("Sở Nội vụ", "member").await?;
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    let joined = ws.hello_and_join(&token).await?;
    ensure!(joined["ice_transport_policy"] == "all", "{joined}");
    let (_, first_user, first_cred) = ice_server(&joined)?;
    let t0 = Instant::now();
    let refresh = loop {
        // The socket must stay alive meanwhile (idle timeout 40 s).
        let msg = ws.request(serde_json::json!({"type": "ping"})).await?;
        ensure!(msg["type"] == "pong", "{msg}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found = None;
        while Instant::now() < deadline {
            match ws.recv_within(Duration::from_secs(1)).await {
                Ok(m) if m["type"] == "ice_servers" => {
                    found = Some(m);
                    break;
                }
                _ => continue,
            }
        }
        if let Some(m) = found {
            break m;
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(45),
            "no ice_servers message 45 s after joining with a 60 s lifetime"
        );
    };
    let after = t0.elapsed();
    ensure!(
        after >= Duration::from_secs(25),
        "fresh credentials came after {after:?}, before half the lifetime"
    );
    ensure!(refresh["ice_transport_policy"] == "all", "{refresh}");
    let (_, user, cred) = ice_server(&refresh)?;
    let exp = |u: &str| -> u64 {
        u.split_once(':')
            .and_then(|(e, _)| e.parse().ok())
            .unwrap_or(0)
    };
    ensure!(
        exp(&user) > exp(&first_user) && cred != first_cred,
        "the refreshed credentials are not newer: {user} vs {first_user}"
    );
    let granted = coturn.allocate_tcp(&user, &cred).await?;
    ensure!(
        matches!(granted, Allocation::Granted(_)),
        "coturn refused the refreshed credentials: {granted:?}"
    );
    eprintln!("fresh TURN credentials after {after:?} (lifetime 60 s); coturn granted them");
    ws.close().await;
    Ok(())
}

#[tokio::test]
async fn without_turn_joined_has_no_ice_servers() -> Result<()> {
    let server = TestServer::start().await?;
    let (_meeting, token) = server
        .meeting_with_token("Huyện Krông Nô", "bridge")
        .await?;
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    let joined = ws.hello_and_join(&token).await?;
    ensure!(
        joined["ice_servers"] == serde_json::json!([]),
        "{}",
        joined["ice_servers"]
    );
    ensure!(joined["ice_transport_policy"] == "all", "{joined}");
    ws.close().await;
    Ok(())
}

// ---- Chromium through coturn, UDP blocked ------------------------------------

/// nftables: drop every UDP datagram sent in this namespace except between
/// coturn's relay ports and the SFU's media port (coturn and the SFU sit
/// beside each other on the server; the client side has only TCP).
fn nft_rules(sfu_port: u16) -> String {
    let (lo, hi) = RELAY_PORTS;
    format!(
        "table inet giaoban_turn {{\n\
           chain out {{\n\
             type filter hook output priority 0;\n\
             udp sport {lo}-{hi} udp dport {sfu_port} accept\n\
             udp sport {sfu_port} udp dport {lo}-{hi} accept\n\
             meta l4proto udp drop\n\
           }}\n\
         }}\n"
    )
}

async fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    ensure!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A HOME for Chromium whose NSS database (`~/.pki/nssdb`) trusts `ca_pem`
/// for TLS servers.
async fn home_trusting(ca_pem: &str) -> Result<tempfile::TempDir> {
    let home = tempfile::Builder::new().prefix("giaoban-home-").tempdir()?;
    let db = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&db)?;
    let ca = home.path().join("turn-ca.pem");
    std::fs::write(&ca, ca_pem)?;
    let db_arg = format!("sql:{}", db.display());
    run_checked(
        Command::new("certutil").args(["-N", "-d", &db_arg, "--empty-password"]),
        "certutil -N (Debian libnss3-tools)",
    )
    .await?;
    run_checked(
        Command::new("certutil")
            .args([
                "-A",
                "-d",
                &db_arg,
                "-n",
                "giaoban-test-turn-ca",
                "-t",
                "C,,",
                "-i",
            ])
            .arg(&ca),
        "certutil -A",
    )
    .await?;
    Ok(home)
}

/// Proves UDP is dropped here: a datagram between two local sockets never arrives.
async fn udp_is_dropped() -> Result<bool> {
    let rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let tx = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    if tx.send_to(b"ping", rx.local_addr()?).await.is_err() {
        return Ok(true);
    }
    let mut buf = [0u8; 16];
    let got = tokio::time::timeout(Duration::from_millis(300), rx.recv_from(&mut buf)).await;
    Ok(got.is_err())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_relay_only_through_turn_over_tls_with_udp_blocked() -> Result<()> {
    if std::env::var_os(UDP_BLOCKED_ENV).is_some() {
        return relay_only_inside_namespace().await;
    }
    // A network namespace of its own for the nftables rule, so it cannot
    // touch the other tests: this test binary runs again in it, this test only.
    let exe = std::env::current_exe().context("current_exe")?;
    let script = "set -e; PATH=\"$PATH:/usr/sbin:/sbin\"; \
         command -v nft >/dev/null || { echo 'nft not found: apt-get install nftables' >&2; exit 3; }; \
         ip link set lo up; \
         exec \"$0\" chromium_relay_only_through_turn_over_tls_with_udp_blocked --exact --nocapture --test-threads=1";
    let child = Command::new("unshare")
        .arg("-n")
        .arg("sh")
        .arg("-c")
        .arg(script)
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
    .context("the TURN browser check did not finish in time")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- TURN browser check in its own namespace ---\n{stderr}\n{stdout}");
    ensure!(
        out.status.success(),
        "the TURN browser check failed ({}); see its output above",
        out.status
    );
    ensure!(
        stdout.contains("1 passed"),
        "the TURN browser check did not run: {stdout}"
    );
    Ok(())
}

async fn relay_only_inside_namespace() -> Result<()> {
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let coturn = Coturn::start().await?;
    let home = home_trusting(&coturn.pki.ca_pem).await?;
    let urls = vec![format!(
        "turns:localhost:{}?transport=tcp",
        coturn.tls.port()
    )];
    let server =
        TestServer::start_with_config(&turn_toml(&urls, BROWSER_TTL_SECONDS, true)).await?;
    let sfu_port = server.media_udp.port();
    ensure!(
        !(RELAY_PORTS.0..=RELAY_PORTS.1).contains(&sfu_port),
        "the SFU took port {sfu_port}, inside coturn's relay range"
    );
    let mut nft = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("nft")?;
    nft.stdin
        .take()
        .context("nft stdin")?
        .write_all(nft_rules(sfu_port).as_bytes())
        .await?;
    let out = nft.wait_with_output().await?;
    ensure!(
        out.status.success(),
        "nft -f failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        udp_is_dropped().await?,
        "UDP still flows in this namespace: the nftables rule is not in effect"
    );

    let meeting = server.create_meeting("Giao ban qua TURN").await?;
    let url1 = server
        .invite(&meeting, "UBND xã Quảng Sơn", "bridge")
        .await?;
    let url2 = server
        .invite(&meeting, "Văn phòng UBND tỉnh", "chair")
        .await?;
    let run = run_script(
        "turn.mjs",
        &[url1.as_ref(), url2.as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", MEDIA_TIMEOUT_MS.to_string()),
            ("E2E_REFRESH_WAIT_MS", REFRESH_WAIT_MS.to_string()),
            ("HOME", home.path().display().to_string()),
        ],
        SCRIPT_TIMEOUT,
    )
    .await?;
    eprintln!("--- turn.mjs stderr ---\n{}", run.stderr);
    let ok = run.summary.as_ref().map(|s| &s["ok"]) == Some(&Value::Bool(true));
    if !run.status.success() || !ok {
        bail!(
            "the TURN browser check failed ({}): {}\n--- stdout ---\n{}\n--- coturn log ---\n{}\n\
             --- server log (tail) ---\n{}",
            run.status,
            run.summary
                .as_ref()
                .map(|s| s["reason"].to_string())
                .unwrap_or_default(),
            run.stdout,
            coturn.log(),
            tail(&server.log(), 40)
        );
    }
    let s = run.summary.context("no summary")?;
    // The script checked relay/tls on every connection; check the remote end
    // is the SFU's UDP port (reached from coturn's relay).
    for (i, page) in s["facts"]
        .as_array()
        .context("no facts")?
        .iter()
        .enumerate()
    {
        for pc in ["publisher", "subscriber"] {
            let pair = &page[pc]["pair"];
            ensure!(
                pair["local"]["candidateType"] == "relay"
                    && pair["local"]["relayProtocol"] == "tls",
                "page {}: {pc} local candidate {}",
                i + 1,
                pair["local"]
            );
            ensure!(
                pair["remote"]["protocol"] == "udp"
                    && pair["remote"]["port"].as_u64() == Some(u64::from(sfu_port)),
                "page {}: {pc} remote candidate {} is not the SFU's UDP port {sfu_port}",
                i + 1,
                pair["remote"]
            );
        }
    }
    let refresh = &s["refresh"];
    ensure!(
        refresh["seen_after_ms"].is_number(),
        "no credential refresh reported: {s}"
    );
    eprintln!(
        "TURN/TLS relay only, UDP blocked: first video after {} ms; video {}; \
         fresh credentials on every connection {} ms after the check began, video after it {}; pairs {}",
        s["first_video_ms"],
        s["video"],
        refresh["seen_after_ms"],
        refresh["video"],
        s["facts"]
            .as_array()
            .map(|a| a
                .iter()
                .map(|p| format!(
                    "[pub {} -> {}; sub {} -> {}]",
                    p["publisher"]["pair"]["local"],
                    p["publisher"]["pair"]["remote"],
                    p["subscriber"]["pair"]["local"],
                    p["subscriber"]["pair"]["remote"]
                ))
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default()
    );
    Ok(())
}
