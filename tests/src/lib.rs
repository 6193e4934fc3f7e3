//! The shared harness of giaoban's integration tests: a real `giaoban`
//! server on ephemeral ports, its CLI, and a small WebSocket JSON client.
//!
//! # Layout
//! - [`giaoban_bin`]: where the binary under test is (`GIAOBAN_BIN`, or
//!   `target/<profile>/giaoban` next to the test executable). Build it first:
//!   `cargo build -p giaoban-signaling --bin giaoban`.
//! - [`TestServer`]: a server process with a fresh temp data folder, HTTP on
//!   127.0.0.1:0, media on 127.0.0.1 port 0 with loopback announced; started by
//!   [`TestServer::start`] (waits for the ready line), killed on drop.
//! - [`WsClient`]: one WebSocket speaking JSON text frames, with timeouts.
//! - `client` (when present): a WebRTC test participant built on these.
//! - [`impair`]: a UDP relay that adds loss, a rate cap and delay (the
//!   kernel here has no `netem`), for the weak-link tests.
//! - [`janus`]: Janus (VideoRoom) started with its own config, and an adapter
//!   that drives the same test client through Janus's HTTP API (the load
//!   benchmark's peer reference).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

pub mod client;
pub mod e2e;
pub mod impair;
pub mod janus;
pub mod procstat;
pub mod repair;

/// How long the server may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Default wait of [`WsClient::recv`].
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// The `giaoban` binary under test: `GIAOBAN_BIN` if set, else the
/// `giaoban` found in an ancestor folder of the test executable
/// (`target/<profile>/giaoban`). Panics with instructions if there is none.
pub fn giaoban_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GIAOBAN_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "GIAOBAN_BIN={} is not a file", p.display());
        return p;
    }
    let exe = std::env::current_exe().unwrap_or_default();
    for dir in exe.ancestors().skip(1) {
        let candidate = dir.join("giaoban");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the giaoban binary was not found near {}: build it first with \
         `cargo build -p giaoban-signaling --bin giaoban` (same profile as the tests), \
         or set GIAOBAN_BIN",
        exe.display()
    );
}

/// Removes `GIAOBAN_<SECTION>_*` variables of the caller's environment from a
/// child command, so only the test's config file counts.
fn clean_env(cmd: &mut Command) {
    const SECTIONS: [&str; 8] = [
        "SERVER",
        "DATABASE",
        "MEDIA",
        "AUTH",
        "LIMITS",
        "DOCUMENTS",
        "LOG",
        "TURN",
    ];
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if SECTIONS
            .iter()
            .any(|s| k.starts_with(&format!("GIAOBAN_{s}_")))
        {
            cmd.env_remove(&k);
        }
    }
    cmd.env_remove("RUST_LOG");
}

/// A running `giaoban serve` with its own temp data folder.
pub struct TestServer {
    /// The bound HTTP (and WebSocket) address.
    pub http_addr: SocketAddr,
    /// The bound media UDP address.
    pub media_udp: SocketAddr,
    /// The bound media TCP (ICE-TCP) address.
    pub media_tcp: SocketAddr,
    /// The server's data folder (signing key, SQLite database).
    pub data_dir: PathBuf,
    /// The config file the server and the CLI use.
    pub config_path: PathBuf,
    /// Where the server's stderr (its log) goes.
    pub log_path: PathBuf,
    /// The binary that runs (the server and its CLI).
    bin: PathBuf,
    child: Child,
    /// Keeps the temp folder alive as long as the server.
    _dir: tempfile::TempDir,
}

/// Splits the keys of section `[name]` out of a TOML text: (its keys, the rest).
fn take_section(toml: &str, name: &str) -> (String, String) {
    let header = format!("[{name}]");
    let (mut inside, mut section, mut rest) = (false, String::new(), String::new());
    for line in toml.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = t == header;
            if inside {
                continue;
            }
        }
        let out = if inside { &mut section } else { &mut rest };
        out.push_str(line);
        out.push('\n');
    }
    (section, rest)
}

/// How [`TestServer::start_with`] starts the server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// The binary (default: [`giaoban_bin`]).
    pub bin: Option<PathBuf>,
    /// `[log] level` (default: `info,signaling=debug,sfu=debug`).
    pub log_level: Option<String>,
    /// Appended to the config (extra sections such as `[limits]` or
    /// `[database]`); a `[media]` section's keys are merged into the test's
    /// own `[media]`.
    pub extra_toml: String,
}

impl TestServer {
    /// Starts a server with the default test config.
    pub async fn start() -> anyhow::Result<TestServer> {
        Self::start_with_config("").await
    }

    /// Starts a server; `extra_toml` is appended to the config (extra
    /// sections such as `[limits]` or `[database]`, not ones already present).
    pub async fn start_with_config(extra_toml: &str) -> anyhow::Result<TestServer> {
        Self::start_with(ServerOptions {
            extra_toml: extra_toml.to_owned(),
            ..ServerOptions::default()
        })
        .await
    }

    /// Starts a server as `options` say.
    pub async fn start_with(options: ServerOptions) -> anyhow::Result<TestServer> {
        let bin = options.bin.clone().unwrap_or_else(giaoban_bin);
        let log_level = options
            .log_level
            .as_deref()
            .unwrap_or("info,signaling=debug,sfu=debug");
        // `[media]` and `[server]` sections in the extra config are merged
        // into the test's own (an `http_addr` there replaces the default).
        let (media_extra, extra_toml) = take_section(&options.extra_toml, "media");
        let (server_extra, extra_toml) = take_section(&extra_toml, "server");
        let http_addr = if server_extra
            .lines()
            .any(|l| l.trim_start().starts_with("http_addr"))
        {
            String::new()
        } else {
            "http_addr = \"127.0.0.1:0\"\n".to_owned()
        };
        let dir = tempfile::Builder::new()
            .prefix("giaoban-test-")
            .tempdir()
            .context("temp dir")?;
        let data_dir = dir.path().join("data");
        let config_path = dir.path().join("giaoban.toml");
        let log_path = dir.path().join("server.log");
        let config = format!(
            "[server]\n{http_addr}data_dir = {data}\n{server_extra}\n\
             [media]\nport = 0\nbind_ip = \"127.0.0.1\"\ninclude_loopback = true\n{media_extra}\n\
             [log]\nlevel = {level}\n\n{extra_toml}\n",
            data = toml_string(&data_dir),
            level = toml_quote(log_level),
        );
        std::fs::write(&config_path, config).context("write config")?;
        let (child, ready) = spawn_server(&bin, &config_path, &log_path).await?;
        let addr = |k: &str| -> anyhow::Result<SocketAddr> {
            ready[k]
                .as_str()
                .with_context(|| format!("ready line without {k}: {ready}"))?
                .parse()
                .with_context(|| format!("bad {k} in the ready line: {ready}"))
        };
        Ok(TestServer {
            http_addr: addr("http")?,
            media_udp: addr("media_udp")?,
            media_tcp: addr("media_tcp")?,
            data_dir,
            config_path,
            log_path,
            bin,
            child,
            _dir: dir,
        })
    }

    /// Kills the server with SIGKILL (no shutdown at all, as a crash or a
    /// power cut would) and waits until it is gone.
    pub async fn kill_hard(&mut self) -> anyhow::Result<()> {
        self.child.start_kill().context("SIGKILL the server")?;
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .context("the server did not die after SIGKILL")?
            .context("wait for the server")?;
        Ok(())
    }

    /// Starts the server again after [`TestServer::kill_hard`] or
    /// [`TestServer::terminate`]: same config, data folder and database,
    /// and the same HTTP address (so clients can reconnect to it).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let config = std::fs::read_to_string(&self.config_path).context("read config")?;
        let config = config.replacen(
            "http_addr = \"127.0.0.1:0\"",
            &format!("http_addr = \"{}\"", self.http_addr),
            1,
        );
        std::fs::write(&self.config_path, config).context("write config")?;
        let (child, ready) = spawn_server(&self.bin, &self.config_path, &self.log_path).await?;
        self.child = child;
        if let Some(Ok(a)) = ready["media_udp"].as_str().map(str::parse) {
            self.media_udp = a;
        }
        if let Some(Ok(a)) = ready["media_tcp"].as_str().map(str::parse) {
            self.media_tcp = a;
        }
        Ok(())
    }
}

/// Spawns `giaoban serve` (its log appended to `log_path`) and waits for
/// its ready line.
async fn spawn_server(
    bin: &Path,
    config_path: &Path,
    log_path: &Path,
) -> anyhow::Result<(Child, Value)> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .context("open log file")?;

    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(config_path)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    clean_env(&mut cmd);
    let mut child = cmd.spawn().context("spawn giaoban")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["event"] == "ready" {
                    return Ok(v);
                }
            }
        }
        Err(anyhow!("the server exited before it was ready"))
    })
    .await;
    let ready = match ready {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            bail!("{e}; server log:\n{log}");
        }
        Err(_) => {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            bail!("the server printed no ready line in {START_TIMEOUT:?}; log:\n{log}");
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, ready))
}

impl TestServer {
    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// `ws://127.0.0.1:PORT/ws`
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.http_addr)
    }

    /// The server process's id (None once it has exited).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The server's log so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Runs `giaoban --config <this server's config> ARGS...`; returns its
    /// trimmed stdout, or an error carrying its stderr.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.cli_output(args).await?;
        if !out.status.success() {
            bail!(
                "giaoban {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// As [`TestServer::cli`], returning the whole process output.
    pub async fn cli_output(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        self.cli_output_env(args, &[]).await
    }

    /// As [`TestServer::cli_output`], with extra environment variables.
    pub async fn cli_output_env(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<std::process::Output> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config").arg(&self.config_path).args(args);
        clean_env(&mut cmd);
        cmd.env_remove("GIAOBAN_NEW_PASSWORD");
        for (k, v) in env {
            cmd.env(k, v);
        }
        tokio::time::timeout(Duration::from_secs(30), cmd.output())
            .await
            .context("the CLI took over 30 s")?
            .context("run the CLI")
    }

    /// Creates a secretariat account with `giaoban user add` (password from
    /// `GIAOBAN_NEW_PASSWORD`); returns its id.
    pub async fn add_user(
        &self,
        username: &str,
        role: &str,
        password: &str,
    ) -> anyhow::Result<String> {
        let out = self
            .cli_output_env(
                &[
                    "user",
                    "add",
                    "--username",
                    username,
                    "--display-name",
                    username,
                    "--role",
                    role,
                ],
                &[("GIAOBAN_NEW_PASSWORD", password)],
            )
            .await?;
        if !out.status.success() {
            bail!(
                "giaoban user add failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Logs in through `POST /api/auth/login`; returns the staff token.
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let r = reqwest::Client::new()
            .post(format!("{}/api/auth/login", self.base_url()))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if status != 200 {
            bail!("login {username} answered {status}: {v}");
        }
        Ok(v["token"]
            .as_str()
            .with_context(|| format!("no token in {v}"))?
            .to_owned())
    }

    /// Creates an account with the CLI and logs it in; returns its token.
    pub async fn staff_token(&self, username: &str, role: &str) -> anyhow::Result<String> {
        let password = format!("{username}-mật-khẩu");
        self.add_user(username, role, &password).await?;
        self.login(username, &password).await
    }

    /// Creates a meeting with the CLI and starts it (in progress: every
    /// invitee enters at once); returns its id.
    pub async fn create_meeting(&self, title: &str) -> anyhow::Result<String> {
        self.cli(&["meeting", "create", "--title", title, "--start"])
            .await
    }

    /// Starts a meeting with the CLI (draft or scheduled: in progress).
    pub async fn start_meeting(&self, meeting_id: &str) -> anyhow::Result<()> {
        self.cli(&["meeting", "start", meeting_id]).await.map(drop)
    }

    /// Creates a meeting with the CLI and leaves it a draft (invitees other
    /// than the chair and the secretary wait for the start); returns its id.
    pub async fn create_draft_meeting(&self, title: &str) -> anyhow::Result<String> {
        self.cli(&["meeting", "create", "--title", title]).await
    }

    /// Invites someone with the CLI; returns the invitation URL.
    pub async fn invite(&self, meeting_id: &str, name: &str, role: &str) -> anyhow::Result<String> {
        let base = self.base_url();
        self.cli(&[
            "invite",
            "--meeting",
            meeting_id,
            "--name",
            name,
            "--role",
            role,
            "--base-url",
            &base,
        ])
        .await
    }

    /// Creates a meeting and returns `(meeting_id, token)` for one invitee.
    pub async fn meeting_with_token(
        &self,
        name: &str,
        role: &str,
    ) -> anyhow::Result<(String, String)> {
        let m = self.create_meeting("Giao ban thử nghiệm").await?;
        let url = self.invite(&m, name, role).await?;
        Ok((m, token_of(&url)?.to_owned()))
    }

    /// Sends SIGTERM (graceful shutdown) and waits up to `wait` for the exit.
    pub async fn terminate(&mut self, wait: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().context("the server has already exited")?;
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .context("run kill")?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        tokio::time::timeout(wait, self.child.wait())
            .await
            .context("the server did not exit after SIGTERM")?
            .context("wait for the server")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A path as a TOML basic string.
fn toml_string(p: &Path) -> String {
    toml_quote(&p.to_string_lossy())
}

/// A string as a TOML basic string (quoted, escaped).
pub fn toml_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The token of an invitation URL (`.../join#TOKEN`).
pub fn token_of(url: &str) -> anyhow::Result<&str> {
    match url.split_once('#') {
        Some((_, t)) if !t.is_empty() => Ok(t),
        _ => bail!("not an invitation URL: {url}"),
    }
}

/// An SDP offer that a WebRTC stack accepts but that nothing will ever
/// connect to (a made-up fingerprint and ICE credentials): audio and video,
/// `sendonly` (a WHIP encoder, with SSRCs) or `recvonly` (a WHEP player).
/// For tests of what the server answers before any media.
pub fn webrtc_offer(direction: &str) -> String {
    let fp = (0..32)
        .map(|i| format!("{:02X}", (i * 7 + 3) % 256))
        .collect::<Vec<_>>()
        .join(":");
    let mut s = String::from(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0 1\r\na=msid-semantic: WMS s\r\n",
    );
    for (mid, kind, pt, codec, ssrc) in [
        (0, "audio", 111, "opus/48000/2", 1111u32),
        (1, "video", 96, "VP8/90000", 2222u32),
    ] {
        s.push_str(&format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:Ab1c\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
             a=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\na=mid:{mid}\r\na={direction}\r\n\
             a=rtcp-mux\r\na=rtpmap:{pt} {codec}\r\n"
        ));
        if direction == "sendonly" {
            s.push_str(&format!(
                "a=msid:s t{mid}\r\na=ssrc:{ssrc} cname:whip-test\r\na=ssrc:{ssrc} msid:s t{mid}\r\n"
            ));
        }
    }
    s
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What arrived on a [`WsClient`].
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A JSON text frame.
    Json(Value),
    /// A text frame that is not JSON (the server never sends one).
    Text(String),
    /// A binary frame (the server never sends one).
    Binary(Vec<u8>),
    /// A close frame (its code, if any, and reason), or the stream ended (None).
    Closed(Option<(u16, String)>),
}

/// A WebSocket client speaking JSON text frames, with timeouts everywhere.
pub struct WsClient {
    ws: Ws,
    next_id: u64,
    closed: bool,
}

impl WsClient {
    /// Connects to `url` (`ws://.../ws`).
    pub async fn connect(url: &str) -> anyhow::Result<WsClient> {
        let (ws, _) = tokio::time::timeout(RECV_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .with_context(|| format!("connecting to {url} timed out"))?
            .with_context(|| format!("connect {url}"))?;
        Ok(WsClient {
            ws,
            next_id: 1,
            closed: false,
        })
    }

    /// Sends a JSON value as a text frame.
    pub async fn send(&mut self, v: Value) -> anyhow::Result<()> {
        self.send_raw(&v.to_string()).await
    }

    /// Sends a text frame as it is.
    pub async fn send_raw(&mut self, text: &str) -> anyhow::Result<()> {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .context("websocket send")
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, data: Vec<u8>) -> anyhow::Result<()> {
        self.ws
            .send(Message::binary(data))
            .await
            .context("websocket send")
    }

    /// The next frame (not control frames), waiting at most `wait`.
    pub async fn next_incoming(&mut self, wait: Duration) -> anyhow::Result<Incoming> {
        if self.closed {
            return Ok(Incoming::Closed(None));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| anyhow!("nothing received within {wait:?}"))?;
            match msg {
                None => {
                    self.closed = true;
                    return Ok(Incoming::Closed(None));
                }
                Some(Err(e)) => {
                    self.closed = true;
                    tracing::debug!(error = %e, "websocket ended with an error");
                    return Ok(Incoming::Closed(None));
                }
                Some(Ok(Message::Text(t))) => {
                    return Ok(match serde_json::from_str::<Value>(t.as_str()) {
                        Ok(v) => Incoming::Json(v),
                        Err(_) => Incoming::Text(t.as_str().to_owned()),
                    })
                }
                Some(Ok(Message::Binary(b))) => return Ok(Incoming::Binary(b.to_vec())),
                Some(Ok(Message::Close(frame))) => {
                    self.closed = true;
                    return Ok(Incoming::Closed(
                        frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned())),
                    ));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next JSON message (within [`RECV_TIMEOUT`]); an error if the socket
    /// closes or something else arrives.
    pub async fn recv(&mut self) -> anyhow::Result<Value> {
        self.recv_within(RECV_TIMEOUT).await
    }

    /// As [`WsClient::recv`] with a chosen wait.
    pub async fn recv_within(&mut self, wait: Duration) -> anyhow::Result<Value> {
        match self.next_incoming(wait).await? {
            Incoming::Json(v) => Ok(v),
            other => bail!("expected a JSON message, got {other:?}"),
        }
    }

    /// The next message of type `kind`, skipping all others, errors included
    /// (within [`RECV_TIMEOUT`] overall). For the answer to one request, error
    /// or not, use [`WsClient::recv_reply`].
    pub async fn recv_type(&mut self, kind: &str) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_incoming(left).await {
                Ok(Incoming::Json(v)) if v["type"] == kind => return Ok(v),
                Ok(Incoming::Closed(c)) => bail!("socket closed ({c:?}) while waiting for {kind}"),
                Ok(_) => continue,
                Err(e) => return Err(e.context(format!("waiting for a {kind} message"))),
            }
        }
    }

    /// The message whose `id` is `id` (the answer or error to a request),
    /// skipping events.
    pub async fn recv_reply(&mut self, id: &Value) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_incoming(left).await? {
                Incoming::Json(v) if &v["id"] == id => return Ok(v),
                Incoming::Closed(c) => bail!("socket closed ({c:?}) while waiting for reply {id}"),
                _ => continue,
            }
        }
    }

    /// Sends a request with a fresh numeric `id` and returns its answer
    /// (which may be an `error`).
    pub async fn request(&mut self, mut v: Value) -> anyhow::Result<Value> {
        let id = json!(self.next_id);
        self.next_id += 1;
        v["id"] = id.clone();
        self.send(v).await?;
        self.recv_reply(&id).await
    }

    /// Reads until the socket closes (skipping messages); returns the close
    /// code (None: closed without a close frame).
    pub async fn expect_close(&mut self, wait: Duration) -> anyhow::Result<Option<u16>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_incoming(left).await? {
                Incoming::Closed(c) => return Ok(c.map(|(code, _)| code)),
                _ => continue,
            }
        }
    }

    /// Says hello (version 1) and joins with `token`; returns the `joined`
    /// message, or an error naming the server's error code.
    pub async fn hello_and_join(&mut self, token: &str) -> anyhow::Result<Value> {
        let hello = self
            .request(json!({"type": "hello", "version": 1, "client": "giaoban-tests"}))
            .await?;
        if hello["type"] != "hello" {
            bail!("hello refused: {hello}");
        }
        let joined = self
            .request(json!({"type": "join", "token": token}))
            .await?;
        if joined["type"] != "joined" {
            bail!("join refused: {joined}");
        }
        Ok(joined)
    }

    /// Closes the socket politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Sends a close frame with `code` (4000: "I will resume") and drops
    /// the socket.
    pub async fn close_with(mut self, code: u16) {
        use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        let _ = self.ws.close(Some(frame)).await;
    }
}
