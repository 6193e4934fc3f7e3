//! Janus (Debian's `janus` package, VideoRoom plugin) as the peer reference
//! of the load benchmark (issue 7): the same webrtc-rs test clients, the same
//! synthetic media and the same subscriptions as against giaoban, through
//! Janus's HTTP API instead of our WebSocket protocol.
//!
//! # Layout
//! - [`Janus`]: the process. [`Janus::start`] writes its configuration into
//!   a temp folder (only the VideoRoom plugin and the HTTP transport, HTTP
//!   on 127.0.0.1, ICE-lite, no STUN, candidates only on one interface, one
//!   room sized for the run) and waits until the API answers; dropping it
//!   kills the process.
//! - [`join`]: one participant: a [`TestClient`] whose signaling is a
//!   [`Signal::Channel`] to an adapter task. The adapter owns a Janus
//!   session and translates: `publish` becomes a publisher handle's
//!   `joinandconfigure` with the offer (its answer comes back as
//!   `publish_answer`), a subscription ([`JanusLink::subscribe`]) becomes one
//!   subscriber handle's multistream `join` with every feed (Janus's offer
//!   comes back as `subscriber_offer`, the client's `subscriber_answer` goes
//!   to Janus as `start`), `candidate` becomes `trickle`, `ping` a
//!   keep-alive, `leave` the session's `destroy`. Janus's events are read by
//!   long polls (`GET /janus/<session>`).
//!
//! Janus names its subscriber tracks `a=msid:janus janus<mid>`; the adapter
//! rewrites each m-section's msid to the publishing participant (from the
//! `streams` Janus lists with the offer) so the client attributes what it
//! receives exactly as it does with giaoban.
//!
//! libnice does not gather loopback candidates, so Janus needs a real
//! interface: the benchmark runs in a network namespace with a veth pair
//! (`scripts/bench`); the clients bind their sockets on Janus's address
//! there (Janus answers no connectivity checks from 127.0.0.1).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::client::{MediaOptions, Signal, TestClient};

/// The one room every participant joins.
pub const ROOM: u64 = 1234;
/// Keep-alive period of a session (Janus drops sessions after 60 s idle).
const KEEPALIVE: Duration = Duration::from_secs(20);
/// Timeout of one API request (long polls last up to 30 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(40);

/// How to start Janus.
#[derive(Debug, Clone)]
pub struct JanusOptions {
    /// The executable (`janus` from the `janus` Debian package).
    pub bin: PathBuf,
    /// The only interface Janus gathers candidates on (`nat.ice_enforce_list`).
    pub iface: String,
    /// Publishers the room admits.
    pub publishers: usize,
    /// Janus's `debug_level` (3: warnings, 4: info).
    pub debug_level: u8,
}

impl Default for JanusOptions {
    fn default() -> Self {
        JanusOptions {
            bin: PathBuf::from("janus"),
            iface: "v0".to_owned(),
            publishers: 100,
            debug_level: 3,
        }
    }
}

/// A running Janus with its own configuration.
pub struct Janus {
    child: Child,
    /// Holds the configuration and the log.
    dir: tempfile::TempDir,
    /// The API's base URL, `http://127.0.0.1:<port>/janus`.
    pub base: String,
    /// The address Janus offers as its candidate.
    pub address: String,
    http: reqwest::Client,
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The folder holding Janus's `plugins/` and `transports/`.
fn janus_lib_dir() -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/usr/lib") {
        for e in rd.flatten() {
            candidates.push(e.path().join("janus"));
        }
    }
    candidates.push(PathBuf::from("/usr/lib/janus"));
    candidates.push(PathBuf::from("/usr/local/lib/janus"));
    candidates.sort();
    candidates
        .into_iter()
        .find(|d| d.join("plugins/libjanus_videoroom.so").is_file())
        .ok_or_else(|| anyhow!("Janus's VideoRoom plugin not found: apt-get install janus"))
}

/// The IPv4 address of `iface` (from `ip -4 -o addr show dev IFACE`).
fn iface_address(iface: &str) -> anyhow::Result<String> {
    // Not /sys/class/net: sysfs shows the namespace it was mounted in.
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", iface])
        .output()
        .context("run ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "no network interface {iface}: Janus (libnice) gathers no loopback candidates; \
             run the benchmark with scripts/bench, which makes a network namespace with a \
             veth pair (see docs/performance.md)"
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{iface} has no IPv4 address"))
}

fn free_tcp_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Janus {
    /// Writes the configuration, starts Janus and waits until its API answers.
    pub async fn start(o: &JanusOptions) -> anyhow::Result<Janus> {
        let address = iface_address(&o.iface)?;
        let lib = janus_lib_dir()?;
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        // Only the VideoRoom plugin and the HTTP transport are loaded: the
        // folders Janus scans hold nothing else.
        for (sub, file) in [
            ("plugins", "libjanus_videoroom.so"),
            ("transports", "libjanus_http.so"),
        ] {
            std::fs::create_dir_all(root.join(sub))?;
            std::os::unix::fs::symlink(lib.join(sub).join(file), root.join(sub).join(file))
                .with_context(|| format!("link {sub}/{file}"))?;
        }
        for sub in ["events", "loggers"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        let port = free_tcp_port()?;
        let r = root.display();
        std::fs::write(
            root.join("janus.jcfg"),
            format!(
                "general: {{\n\tconfigs_folder = \"{r}\"\n\tplugins_folder = \"{r}/plugins\"\n\
                 \ttransports_folder = \"{r}/transports\"\n\tevents_folder = \"{r}/events\"\n\
                 \tloggers_folder = \"{r}/loggers\"\n\tdebug_level = {}\n}}\n\
                 media: {{\n\trtp_port_range = \"20000-60000\"\n}}\n\
                 nat: {{\n\tice_lite = true\n\tice_enforce_list = \"{}\"\n}}\n\
                 events: {{\n\tbroadcast = false\n}}\n",
                o.debug_level, o.iface
            ),
        )?;
        std::fs::write(
            root.join("janus.plugin.videoroom.jcfg"),
            format!(
                "general: {{\n}}\nroom-{ROOM}: {{\n\tdescription = \"giaoban bench\"\n\
                 \tpublishers = {}\n\tbitrate = 0\n\tfir_freq = 0\n\taudiocodec = \"opus\"\n\
                 \tvideocodec = \"vp8\"\n}}\n",
                o.publishers.max(1)
            ),
        )?;
        std::fs::write(
            root.join("janus.transport.http.jcfg"),
            format!(
                "general: {{\n\tjson = \"compact\"\n\tbase_path = \"/janus\"\n\thttp = true\n\
                 \tport = {port}\n\tip = \"127.0.0.1\"\n\thttps = false\n}}\n\
                 admin: {{\n\tadmin_http = false\n}}\n"
            ),
        )?;
        let log = std::fs::File::create(root.join("janus.log"))?;
        let child = Command::new(&o.bin)
            .arg("-C")
            .arg(root.join("janus.jcfg"))
            .arg("-F")
            .arg(root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {} (apt-get install janus)", o.bin.display()))?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let mut janus = Janus {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}/janus"),
            address,
            http,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = janus.child.try_wait()? {
                bail!("janus exited at once ({status}): {}", janus.log_tail(20));
            }
            let info = janus.http.get(format!("{}/info", janus.base)).send().await;
            if let Ok(r) = info {
                if r.status().is_success() {
                    return Ok(janus);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("janus's API did not answer: {}", janus.log_tail(20));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Janus's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `n` lines of Janus's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("janus.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn api(&self) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
        }
    }
}

/// Janus's HTTP API.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

fn transaction() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Api {
    /// POSTs `body` (with a fresh transaction) to `<base><path>`; fails on
    /// an HTTP error or a `janus: error` answer.
    async fn post(&self, path: &str, mut body: Value) -> anyhow::Result<Value> {
        body["transaction"] = json!(transaction());
        let url = format!("{}{path}", self.base);
        let answer: Value = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?
            .error_for_status()?
            .json()
            .await
            .context("janus answered bad JSON")?;
        if answer["janus"] == "error" {
            bail!("janus refused {}: {}", body["janus"], answer["error"]);
        }
        Ok(answer)
    }

    async fn create_session(&self) -> anyhow::Result<u64> {
        let a = self.post("", json!({"janus": "create"})).await?;
        a["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("create without data.id: {a}"))
    }

    async fn attach(&self, session: u64) -> anyhow::Result<u64> {
        let a = self
            .post(
                &format!("/{session}"),
                json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
            )
            .await?;
        a["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("attach without data.id: {a}"))
    }
}

/// The load generator's handle on one participant's adapter.
pub struct JanusLink {
    cmd: mpsc::UnboundedSender<AdapterCmd>,
    /// The participant's feed (publisher) id in the room.
    pub feed: u64,
}

enum AdapterCmd {
    Subscribe(Vec<(u64, String)>, oneshot::Sender<anyhow::Result<()>>),
}

impl JanusLink {
    /// Subscribes the participant to `feeds` (feed id, participant id), all
    /// on one subscriber connection; Janus's offer reaches the client as a
    /// `subscriber_offer`. Returns once Janus acknowledged the request.
    pub async fn subscribe(&self, feeds: Vec<(u64, String)>) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(AdapterCmd::Subscribe(feeds, tx))
            .map_err(|_| anyhow!("the adapter has ended"))?;
        tokio::time::timeout(REQUEST_TIMEOUT, rx)
            .await
            .map_err(|_| anyhow!("subscribe timed out"))?
            .map_err(|_| anyhow!("the adapter ended during subscribe"))?
    }
}

/// Joins one participant to Janus's room: a session, an adapter task, and a
/// client that (if `media.publish`) publishes as feed `feed`.
pub async fn join(
    janus: &Janus,
    feed: u64,
    participant_id: &str,
    media: MediaOptions,
) -> anyhow::Result<(TestClient, JanusLink)> {
    let api = janus.api();
    let session = api.create_session().await?;
    let (to_adapter, from_client) = mpsc::unbounded_channel();
    let (to_client, from_adapter) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let adapter = Adapter {
        api,
        session,
        feed,
        participant_id: participant_id.to_owned(),
        to_client,
        publisher: None,
        subscriber: None,
        publish_id: None,
        feeds: HashMap::new(),
    };
    tokio::spawn(adapter.run(from_client, cmd_rx));
    // Janus answers no checks from 127.0.0.1: the clients bind its address.
    let bind_ip: IpAddr = janus
        .address
        .parse()
        .with_context(|| format!("Janus's address {}", janus.address))?;
    let client = TestClient::join_signal(
        Signal::Channel {
            tx: to_adapter,
            rx: from_adapter,
        },
        participant_id,
        bind_ip,
        media,
    )
    .await?;
    Ok((client, JanusLink { cmd: cmd_tx, feed }))
}

/// Translates one client's protocol messages to Janus's API and back.
struct Adapter {
    api: Api,
    session: u64,
    feed: u64,
    participant_id: String,
    /// Messages to the client (as the server would send them).
    to_client: mpsc::UnboundedSender<String>,
    /// The publisher handle, once the client published.
    publisher: Option<u64>,
    /// The subscriber handle, once subscribed.
    subscriber: Option<u64>,
    /// The `id` of the client's `publish` awaiting Janus's answer.
    publish_id: Option<u64>,
    /// Subscribed feeds: feed id -> participant id.
    feeds: HashMap<u64, String>,
}

/// Reads the session's events with long polls and hands them on.
async fn long_poll(api: Api, session: u64, tx: mpsc::UnboundedSender<Value>) {
    let url = format!("{}/{session}?maxev=16", api.base);
    loop {
        let r = async {
            api.http
                .get(&url)
                .send()
                .await?
                .error_for_status()?
                .json::<Value>()
                .await
        }
        .await;
        let events = match r {
            Ok(Value::Array(a)) => a,
            Ok(v) => vec![v],
            Err(e) => {
                let _ = tx.send(json!({"janus": "poll_failed", "error": e.to_string()}));
                return;
            }
        };
        for ev in events {
            if tx.send(ev).is_err() {
                return;
            }
        }
    }
}

impl Adapter {
    fn send(&self, v: Value) {
        let _ = self.to_client.send(v.to_string());
    }

    async fn run(
        mut self,
        mut from_client: mpsc::UnboundedReceiver<String>,
        mut cmds: mpsc::UnboundedReceiver<AdapterCmd>,
    ) {
        let (ev_tx, mut events) = mpsc::unbounded_channel();
        let poller = tokio::spawn(long_poll(self.api.clone(), self.session, ev_tx));
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        let mut cmds_open = true;
        loop {
            tokio::select! {
                m = from_client.recv() => {
                    let Some(text) = m else { break };
                    let v: Value = match serde_json::from_str(&text) {
                        Ok(v) => v,
                        Err(_) => continue,
                    };
                    match self.on_client(&v).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => self.send(json!({
                            "type": "error",
                            "id": v.get("id"),
                            "code": "janus_request_failed",
                            "message": format!("{e:#}"),
                        })),
                    }
                }
                c = cmds.recv(), if cmds_open => match c {
                    Some(AdapterCmd::Subscribe(feeds, reply)) => {
                        let _ = reply.send(self.subscribe(feeds).await);
                    }
                    None => cmds_open = false,
                },
                ev = events.recv() => match ev {
                    Some(ev) => self.on_event(ev),
                    None => break,
                },
                _ = keepalive.tick() => {
                    let _ = self
                        .api
                        .post(&format!("/{}", self.session), json!({"janus": "keepalive"}))
                        .await;
                }
            }
        }
        let _ = self
            .api
            .post(&format!("/{}", self.session), json!({"janus": "destroy"}))
            .await;
        poller.abort();
    }

    /// One message of the client; false once it left.
    async fn on_client(&mut self, v: &Value) -> anyhow::Result<bool> {
        let id = v.get("id").and_then(Value::as_u64);
        let session = self.session;
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "publish" => {
                let sdp = v["sdp"]
                    .as_str()
                    .ok_or_else(|| anyhow!("publish without sdp"))?;
                let handle = match self.publisher {
                    Some(h) => h,
                    None => {
                        let h = self.api.attach(session).await?;
                        self.publisher = Some(h);
                        h
                    }
                };
                self.publish_id = id;
                self.api
                    .post(
                        &format!("/{session}/{handle}"),
                        json!({
                            "janus": "message",
                            "body": {
                                "request": "joinandconfigure",
                                "room": ROOM,
                                "ptype": "publisher",
                                "id": self.feed,
                                "display": self.participant_id,
                                "audio": true,
                                "video": true,
                            },
                            "jsep": {"type": "offer", "sdp": sdp},
                        }),
                    )
                    .await?;
            }
            "subscriber_answer" => {
                let sdp = v["sdp"]
                    .as_str()
                    .ok_or_else(|| anyhow!("subscriber_answer without sdp"))?;
                let handle = self
                    .subscriber
                    .ok_or_else(|| anyhow!("subscriber_answer before any offer"))?;
                self.api
                    .post(
                        &format!("/{session}/{handle}"),
                        json!({
                            "janus": "message",
                            "body": {"request": "start"},
                            "jsep": {"type": "answer", "sdp": sdp},
                        }),
                    )
                    .await?;
            }
            "candidate" => {
                let handle = match v["pc"].as_str() {
                    Some("subscriber") => self.subscriber,
                    _ => self.publisher,
                }
                .ok_or_else(|| anyhow!("candidate before its connection"))?;
                let c = &v["candidate"];
                let path = format!("/{session}/{handle}");
                self.api
                    .post(
                        &path,
                        json!({
                            "janus": "trickle",
                            "candidate": {
                                "candidate": c["candidate"],
                                "sdpMid": c["sdpMid"],
                                "sdpMLineIndex": c["sdpMLineIndex"],
                            },
                        }),
                    )
                    .await?;
                self.api
                    .post(
                        &path,
                        json!({"janus": "trickle", "candidate": {"completed": true}}),
                    )
                    .await?;
            }
            "ping" => {
                self.api
                    .post(&format!("/{session}"), json!({"janus": "keepalive"}))
                    .await?;
                self.send(json!({"type": "pong", "id": id, "ts": v.get("ts")}));
            }
            "leave" => {
                self.send(json!({"type": "bye"}));
                return Ok(false);
            }
            other => bail!("not translated to Janus: {other}"),
        }
        Ok(true)
    }

    async fn subscribe(&mut self, feeds: Vec<(u64, String)>) -> anyhow::Result<()> {
        if self.subscriber.is_some() {
            bail!("already subscribed");
        }
        let session = self.session;
        let handle = self.api.attach(session).await?;
        self.subscriber = Some(handle);
        let streams: Vec<Value> = feeds.iter().map(|(f, _)| json!({"feed": f})).collect();
        self.feeds = feeds.into_iter().collect();
        self.api
            .post(
                &format!("/{session}/{handle}"),
                json!({
                    "janus": "message",
                    "body": {
                        "request": "join",
                        "room": ROOM,
                        "ptype": "subscriber",
                        "streams": streams,
                    },
                }),
            )
            .await?;
        Ok(())
    }

    fn on_event(&mut self, ev: Value) {
        let sender = ev.get("sender").and_then(Value::as_u64);
        let which = if sender.is_some() && sender == self.subscriber {
            "subscriber"
        } else {
            "publisher"
        };
        match ev.get("janus").and_then(Value::as_str).unwrap_or("") {
            "event" => {
                let data = &ev["plugindata"]["data"];
                if let Some(code) = data.get("error_code").and_then(Value::as_u64) {
                    let id = if which == "publisher" {
                        self.publish_id.take()
                    } else {
                        None
                    };
                    self.send(json!({
                        "type": "error",
                        "id": id,
                        "code": format!("janus_{code}"),
                        "message": data["error"],
                    }));
                    return;
                }
                let Some(jsep) = ev.get("jsep") else { return };
                let Some(sdp) = jsep.get("sdp").and_then(Value::as_str) else {
                    return;
                };
                match (which, jsep.get("type").and_then(Value::as_str)) {
                    ("publisher", Some("answer")) => {
                        let id = self.publish_id.take();
                        self.send(json!({"type": "publish_answer", "id": id, "sdp": sdp}));
                    }
                    ("subscriber", Some("offer")) => {
                        let sdp = attribute_tracks(sdp, &data["streams"], &self.feeds);
                        self.send(json!({"type": "subscriber_offer", "sdp": sdp}));
                    }
                    _ => {}
                }
            }
            // Recorded by the client as events (diagnosis).
            "webrtcup" | "hangup" => {
                let ty = format!("janus_{}", ev["janus"].as_str().unwrap_or(""));
                self.send(json!({"type": ty, "pc": which, "reason": ev.get("reason")}));
            }
            "poll_failed" => {
                self.send(json!({
                    "type": "error",
                    "code": "janus_poll_failed",
                    "message": ev["error"],
                }));
            }
            _ => {}
        }
    }
}

/// Rewrites every m-section's `a=msid` of a Janus subscriber offer to
/// `<participant> <participant>-<kind>`, from Janus's `streams` list (mid ->
/// feed id) and the subscribed feeds (feed id -> participant id). Sections
/// it cannot attribute are left as they are.
pub fn attribute_tracks(sdp: &str, streams: &Value, feeds: &HashMap<u64, String>) -> String {
    let mut owner_of_mid: HashMap<String, (String, String)> = HashMap::new();
    for s in streams.as_array().into_iter().flatten() {
        let (Some(mid), Some(feed), Some(kind)) = (
            s.get("mid").and_then(Value::as_str),
            s.get("feed_id").and_then(Value::as_u64),
            s.get("type").and_then(Value::as_str),
        ) else {
            continue;
        };
        if let Some(pid) = feeds.get(&feed) {
            owner_of_mid.insert(mid.to_owned(), (pid.clone(), kind.to_owned()));
        }
    }
    let mut sections: Vec<Vec<&str>> = vec![Vec::new()];
    for line in sdp.lines() {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let Some(last) = sections.last_mut() {
            last.push(line);
        }
    }
    let mut out = String::with_capacity(sdp.len() + 256);
    for (i, section) in sections.iter().enumerate() {
        let owner = section
            .iter()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .and_then(|mid| owner_of_mid.get(mid.trim()));
        for line in section {
            match owner {
                Some(_) if i > 0 && line.starts_with("a=msid:") => continue,
                Some((pid, kind)) if i > 0 && line.starts_with("a=mid:") => {
                    out.push_str(line);
                    out.push_str("\r\n");
                    out.push_str(&format!("a=msid:{pid} {pid}-{kind}\r\n"));
                }
                _ => {
                    out.push_str(line);
                    out.push_str("\r\n");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriber_tracks_are_attributed_to_their_feeds() {
        let sdp = "v=0\r\na=ice-lite\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                   a=msid:janus janus0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n\
                   a=msid:janus janus1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\n\
                   a=msid:janus janus2\r\n";
        let streams = json!([
            {"mid": "0", "feed_id": 7, "type": "audio"},
            {"mid": "1", "feed_id": 7, "type": "video"},
            {"mid": "2", "feed_id": 9, "type": "video"},
        ]);
        let feeds: HashMap<u64, String> = [(7, "p7".to_owned())].into_iter().collect();
        let out = attribute_tracks(sdp, &streams, &feeds);
        let tracks = crate::client::msid_tracks(&out);
        assert_eq!(
            tracks,
            vec![
                (
                    "p7-audio".to_owned(),
                    ("p7".to_owned(), crate::client::Kind::Audio)
                ),
                (
                    "p7-video".to_owned(),
                    ("p7".to_owned(), crate::client::Kind::Video)
                ),
                // Feed 9 was not subscribed: left as Janus named it.
                (
                    "janus2".to_owned(),
                    ("janus".to_owned(), crate::client::Kind::Video)
                ),
            ]
        );
        assert!(out.starts_with("v=0\r\na=ice-lite\r\n"));
    }
}
