//! Observability and built-in HTTPS through a real server process:
//! `/metrics` (format, counters that move, its options), `/readyz`, JSON
//! logs (and no token in them), and HTTPS/WSS with a self-signed certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::{SinkExt as _, StreamExt as _};
use giaoban_tests::{giaoban_bin, token_of, toml_quote, TestServer, WsClient};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio_rustls::rustls;

/// `GET url` with plain HTTP: status and body.
async fn get(url: &str, bearer: Option<&str>) -> anyhow::Result<(u16, String, String)> {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.with_context(|| format!("GET {url}"))?;
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, ctype, r.text().await?))
}

/// The value of one sample (`name` or `name{labels}`) in an exposition text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Checks the text exposition format 0.0.4: every sample is `name{labels}
/// value`, belongs to a family announced by `# HELP` and `# TYPE` before it,
/// and every family has a known type.
fn check_format(text: &str) -> anyhow::Result<()> {
    let mut typed: Vec<String> = Vec::new();
    let mut helped: Vec<String> = Vec::new();
    // Whether the current family is a histogram: its samples are named
    // `<family>_bucket` (with `le`), `<family>_sum` and `<family>_count`.
    let mut histogram = false;
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').context("HELP without text")?;
            anyhow::ensure!(valid_name(name) && !help.is_empty(), "bad HELP: {line}");
            helped.push(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').context("TYPE without type")?;
            anyhow::ensure!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad TYPE: {line}"
            );
            anyhow::ensure!(!typed.iter().any(|t| t == name), "TYPE twice: {name}");
            typed.push(name.to_owned());
            histogram = kind == "histogram";
            continue;
        }
        anyhow::ensure!(!line.starts_with('#'), "stray comment: {line}");
        let (series, value) = line.rsplit_once(' ').context("sample without value")?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("bad value: {line}"))?;
        anyhow::ensure!(value.is_finite(), "value not finite: {line}");
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').context("unclosed labels")?;
                for pair in labels.split(',') {
                    let (k, v) = pair.split_once('=').context("label without =")?;
                    anyhow::ensure!(valid_name(k), "bad label name: {line}");
                    anyhow::ensure!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "label value not quoted: {line}"
                    );
                }
                name
            }
            None => series,
        };
        anyhow::ensure!(valid_name(name), "bad metric name: {line}");
        let family = if histogram {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name)
        } else {
            name
        };
        if histogram && name.ends_with("_bucket") {
            anyhow::ensure!(series.contains("le=\""), "bucket without le: {line}");
        }
        anyhow::ensure!(
            typed.last().is_some_and(|t| t == family) && helped.iter().any(|h| h == family),
            "sample outside its family: {line}"
        );
        if typed.last().is_some_and(|t| t.ends_with("_total")) {
            anyhow::ensure!(value >= 0.0, "negative counter: {line}");
        }
    }
    anyhow::ensure!(!typed.is_empty(), "no metrics at all");
    Ok(())
}

/// Scrapes until `pred` holds (the gauges follow the sessions a moment later).
async fn scrape_until(
    url: &str,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, text) = get(url, None).await?;
        anyhow::ensure!(status == 200, "/metrics answered {status}");
        if pred(&text) {
            return Ok(text);
        }
        if Instant::now() > deadline {
            bail!("{what} never held; last scrape:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_format_and_counters_move() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let url = format!("{}/metrics", server.base_url());

    let (status, ctype, text) = get(&url, None).await?;
    anyhow::ensure!(status == 200, "/metrics answered {status}");
    anyhow::ensure!(
        ctype.starts_with("text/plain") && ctype.contains("version=0.0.4"),
        "content type {ctype}"
    );
    check_format(&text)?;
    for series in [
        "giaoban_meetings_active",
        "giaoban_participants",
        "giaoban_tracks_published",
        "giaoban_ws_sessions_open",
        "giaoban_ws_sessions_total",
        "giaoban_ws_messages_total{type=\"join\"}",
        "giaoban_ws_errors_total{code=\"token_invalid\"}",
        "giaoban_http_responses_total{area=\"api\",class=\"4xx\"}",
        "giaoban_sfu_up",
        "giaoban_sfu_peers",
        "giaoban_sfu_rooms",
        "giaoban_sfu_udp_datagrams_in_total",
        "giaoban_sfu_tcp_frames_in_total",
        "giaoban_sfu_datagrams_unrouted_total",
        "giaoban_sfu_tcp_refused_total",
        "giaoban_sfu_rtp_packets_in_total",
        "giaoban_sfu_rtp_packets_forwarded_total",
        "giaoban_sfu_keyframe_requests_sent_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        anyhow::ensure!(sample(&text, series).is_some(), "no {series} in:\n{text}");
    }
    anyhow::ensure!(sample(&text, "giaoban_participants") == Some(0.0));
    anyhow::ensure!(sample(&text, "giaoban_sfu_up") == Some(1.0));
    anyhow::ensure!(sample(&text, "process_resident_memory_bytes").is_some_and(|v| v > 1e6));
    let api_4xx = "giaoban_http_responses_total{area=\"api\",class=\"4xx\"}";
    let api_4xx_before = sample(&text, api_4xx).unwrap_or(-1.0);

    // One participant joins; a bad message and a bad request are answered.
    let (meeting, token) = server.meeting_with_token("Sở Y tế", "bridge").await?;
    let mut c = WsClient::connect(&server.ws_url()).await?;
    c.hello_and_join(&token).await?;
    c.send_raw("{not json").await?;
    let e = c.recv_type("error").await?;
    anyhow::ensure!(e["code"] == "bad_json", "expected bad_json, got {e}");
    let r = reqwest::Client::new()
        .get(format!("{}/api/invitation", server.base_url()))
        .send()
        .await?;
    anyhow::ensure!(
        r.status() == 401,
        "invitation without token: {}",
        r.status()
    );

    let text = scrape_until(&url, "participants = 1", |t| {
        sample(t, "giaoban_participants") == Some(1.0)
    })
    .await?;
    check_format(&text)?;
    let at_least = |series: &str, min: f64| -> anyhow::Result<()> {
        let v = sample(&text, series).with_context(|| format!("no {series}"))?;
        anyhow::ensure!(v >= min, "{series} = {v}, expected at least {min}");
        Ok(())
    };
    at_least("giaoban_meetings_active", 1.0)?;
    at_least("giaoban_ws_sessions_open", 1.0)?;
    at_least("giaoban_ws_sessions_total", 1.0)?;
    at_least("giaoban_ws_messages_total{type=\"hello\"}", 1.0)?;
    at_least("giaoban_ws_messages_total{type=\"join\"}", 1.0)?;
    at_least("giaoban_ws_messages_total{type=\"invalid\"}", 1.0)?;
    at_least("giaoban_ws_errors_total{code=\"bad_json\"}", 1.0)?;
    at_least("giaoban_sfu_participants", 1.0)?;
    at_least(api_4xx, api_4xx_before + 1.0)?;
    anyhow::ensure!(!meeting.is_empty());

    // It leaves: the gauges go back to zero, the totals stay.
    c.close().await;
    let text = scrape_until(&url, "participants = 0 after leaving", |t| {
        sample(t, "giaoban_participants") == Some(0.0)
            && sample(t, "giaoban_ws_sessions_open") == Some(0.0)
    })
    .await?;
    anyhow::ensure!(sample(&text, "giaoban_meetings_active") == Some(0.0));
    anyhow::ensure!(sample(&text, "giaoban_ws_sessions_total").is_some_and(|v| v >= 1.0));
    Ok(())
}

/// The media plane's counters move under real media: a publisher that
/// loses every 10th video packet on its first transmission (the server sees
/// sequence gaps) and a subscriber that drops every 10th video datagram it
/// receives (it NACKs them).
#[tokio::test]
async fn metrics_count_media_bytes_loss_and_nacks() -> anyhow::Result<()> {
    use giaoban_tests::client::{JoinOptions, MediaOptions, TestClient};
    use giaoban_tests::repair::RepairOptions;

    let server = TestServer::start().await?;
    let url = format!("{}/metrics", server.base_url());
    let meeting = server.create_meeting("Đo lường media").await?;
    let join = |name: &'static str, media: MediaOptions, repair: RepairOptions| {
        let server = &server;
        let meeting = &meeting;
        async move {
            let invite = server.invite(meeting, name, "bridge").await?;
            let token = token_of(&invite)?;
            TestClient::join_repair(
                &server.ws_url(),
                token,
                JoinOptions::default(),
                media,
                repair,
            )
            .await
            .with_context(|| format!("{name} joins"))
        }
    };
    let publisher = join(
        "Huyện phát",
        MediaOptions::default(),
        RepairOptions {
            drop_out_every: 10,
            ..RepairOptions::default()
        },
    )
    .await?;
    let subscriber = join(
        "Tỉnh xem",
        MediaOptions {
            publish: false,
            ..MediaOptions::default()
        },
        RepairOptions {
            drop_in_every: 10,
            ..RepairOptions::default()
        },
    )
    .await?;
    let from = publisher.participant_id().to_owned();
    subscriber
        .wait_until(Duration::from_secs(15), "video from the publisher", |st| {
            st.received(&from, giaoban_tests::client::Kind::Video)
                .intact
                >= 60
        })
        .await?;
    let counters = [
        "giaoban_sfu_bytes_in_total",
        "giaoban_sfu_bytes_out_total",
        "giaoban_sfu_datagrams_out_total",
        "giaoban_sfu_udp_send_calls_total",
        "giaoban_sfu_rtp_payload_bytes_in_total",
        "giaoban_sfu_rtp_payload_bytes_forwarded_total",
        "giaoban_sfu_rtp_packets_lost_total",
        "giaoban_sfu_nacks_received_total",
        "giaoban_sfu_nack_packets_requested_total",
    ];
    let text = scrape_until(&url, "every media counter above zero", |t| {
        counters
            .iter()
            .all(|c| sample(t, c).is_some_and(|v| v > 0.0))
    })
    .await?;
    check_format(&text)?;
    let v = |series: &str| sample(&text, series).unwrap_or(-1.0);
    anyhow::ensure!(sample(&text, "giaoban_sfu_layer_switches_total").is_some());
    anyhow::ensure!(sample(&text, "giaoban_sfu_rtp_duplicates_dropped_total").is_some());
    // Payload is part of what arrived and left; every forwarded packet and
    // more (RTCP, STUN, DTLS) left as a datagram, many per system call.
    anyhow::ensure!(v("giaoban_sfu_rtp_payload_bytes_in_total") < v("giaoban_sfu_bytes_in_total"));
    anyhow::ensure!(
        v("giaoban_sfu_rtp_payload_bytes_forwarded_total") < v("giaoban_sfu_bytes_out_total")
    );
    anyhow::ensure!(
        v("giaoban_sfu_datagrams_out_total") >= v("giaoban_sfu_rtp_packets_forwarded_total")
    );
    anyhow::ensure!(
        v("giaoban_sfu_udp_send_calls_total") <= v("giaoban_sfu_datagrams_out_total"),
        "more send calls than datagrams:\n{text}"
    );
    // About a tenth of the publisher's video is missing at first; less than
    // everything it sent.
    anyhow::ensure!(
        v("giaoban_sfu_rtp_packets_lost_total") < v("giaoban_sfu_rtp_packets_in_total"),
        "loss above packets in:\n{text}"
    );
    anyhow::ensure!(
        v("giaoban_sfu_nack_packets_requested_total") >= v("giaoban_sfu_nacks_received_total")
    );

    // The media server's own figures per meeting (issue 23): what it
    // received from the points and sent to them, the publisher's loss as
    // it measured it (sequence gaps, about a tenth of its video), the
    // subscriber's round-trip time; labelled by meeting and direction only.
    let m = |name: &str, labels: &str| format!("{name}{{meeting=\"{meeting}\"{labels}}}");
    let kbps_in = m("giaoban_link_server_kbps", ",direction=\"received\"");
    let kbps_out = m("giaoban_link_server_kbps", ",direction=\"sent\"");
    let loss_n = m(
        "giaoban_link_server_loss_percent_count",
        ",direction=\"received\"",
    );
    let loss_sum = m(
        "giaoban_link_server_loss_percent_sum",
        ",direction=\"received\"",
    );
    let rtt_n = m("giaoban_link_server_rtt_ms_count", "");
    let flowing = m("giaoban_link_server_media_flowing_points", "");
    let points = m("giaoban_link_points", ",state=\"no_media\"");
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let (status, _, text) = get(&url, None).await?;
        anyhow::ensure!(status == 200, "/metrics answered {status}");
        let v = |series: &str| sample(&text, series).unwrap_or(-1.0);
        if v(&kbps_in) > 0.0
            && v(&kbps_out) > 0.0
            && v(&loss_n) >= 1.0
            && v(&loss_sum) > 0.0
            && v(&rtt_n) >= 1.0
            && v(&flowing) >= 1.0
        {
            break text;
        }
        if Instant::now() > deadline {
            bail!("the server's figures of the meeting never came; last scrape:\n{text}");
        }
        // Rates need two readings at least a second apart.
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    check_format(&text)?;
    let v = |series: &str| sample(&text, series).unwrap_or(-1.0);
    anyhow::ensure!(
        (1.0..=40_000.0).contains(&v(&kbps_in)) && (1.0..=40_000.0).contains(&v(&kbps_out)),
        "server kbit/s: {} in, {} out",
        v(&kbps_in),
        v(&kbps_out)
    );
    // The publisher drops a tenth of its video (audio is whole): its
    // measured loss is some, not all.
    let mean_loss = v(&loss_sum) / v(&loss_n);
    anyhow::ensure!(
        mean_loss > 0.0 && mean_loss < 50.0,
        "mean received loss {mean_loss}"
    );
    anyhow::ensure!(
        v(&rtt_n) <= 2.0 && v(&m("giaoban_link_server_rtt_ms_sum", "")) < 2_000.0 * v(&rtt_n),
        "server round-trip times:\n{text}"
    );
    anyhow::ensure!(v(&points) == 0.0, "no point without media:\n{text}");
    anyhow::ensure!(
        !text.contains(publisher.participant_id()) && !text.contains(subscriber.participant_id()),
        "a participant in /metrics"
    );
    eprintln!(
        "server figures in /metrics: {} kbit/s in, {} out, mean loss in {mean_loss} %",
        v(&kbps_in),
        v(&kbps_out)
    );
    subscriber.leave().await?;
    publisher.leave().await?;
    Ok(())
}

#[tokio::test]
async fn metrics_token_allow_and_disabled() -> anyhow::Result<()> {
    let server = TestServer::start_with_config("[metrics]\ntoken = \"scrape-secret-1\"\n").await?;
    let url = format!("{}/metrics", server.base_url());
    let (status, _, _) = get(&url, None).await?;
    anyhow::ensure!(status == 401, "no token: {status}");
    let (status, _, _) = get(&url, Some("wrong")).await?;
    anyhow::ensure!(status == 401, "wrong token: {status}");
    let (status, _, text) = get(&url, Some("scrape-secret-1")).await?;
    anyhow::ensure!(status == 200, "right token: {status}");
    check_format(&text)?;
    drop(server);

    // Only a network the test client is not in may scrape.
    let server = TestServer::start_with_config("[metrics]\nallow = [\"10.0.0.0/8\"]\n").await?;
    let (status, _, _) = get(&format!("{}/metrics", server.base_url()), None).await?;
    anyhow::ensure!(status == 403, "outside metrics.allow: {status}");
    drop(server);
    let server =
        TestServer::start_with_config("[metrics]\nallow = [\"10.0.0.0/8\", \"127.0.0.1\"]\n")
            .await?;
    let (status, _, _) = get(&format!("{}/metrics", server.base_url()), None).await?;
    anyhow::ensure!(status == 200, "inside metrics.allow: {status}");
    drop(server);

    let server = TestServer::start_with_config("[metrics]\nenabled = false\n").await?;
    let (status, _, _) = get(&format!("{}/metrics", server.base_url()), None).await?;
    anyhow::ensure!(status == 404, "disabled metrics: {status}");
    Ok(())
}

#[tokio::test]
async fn readyz_reports_database_and_media() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (status, _, body) = get(&format!("{}/readyz", server.base_url()), None).await?;
    anyhow::ensure!(status == 200, "/readyz answered {status}: {body}");
    let v: Value = serde_json::from_str(&body)?;
    anyhow::ensure!(v["status"] == "ready", "{v}");
    let (status, _, _) = get(&format!("{}/healthz", server.base_url()), None).await?;
    anyhow::ensure!(status == 200);

    // The database file is overwritten under the running server: the
    // database no longer answers, so the server is not ready (but alive).
    let db = server.data_dir.join("giaoban.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::write(&p, vec![0x5a; 8192])?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, ctype, body) = get(&format!("{}/readyz", server.base_url()), None).await?;
        if status == 503 {
            anyhow::ensure!(ctype.starts_with("application/json"), "{ctype}");
            let v: Value = serde_json::from_str(&body)?;
            anyhow::ensure!(v["status"] == "not_ready", "{v}");
            anyhow::ensure!(
                v["reason"].as_str().is_some_and(|r| r.contains("database")),
                "{v}"
            );
            break;
        }
        anyhow::ensure!(status == 200, "/readyz answered {status}: {body}");
        if Instant::now() > deadline {
            bail!("/readyz stayed 200 with a destroyed database");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, _) = get(&format!("{}/healthz", server.base_url()), None).await?;
    anyhow::ensure!(status == 200, "liveness must not depend on the database");
    Ok(())
}

/// A server started from a config of our own (the harness's config has
/// fixed `[server]` and `[log]` sections).
struct OwnServer {
    child: Child,
    http: SocketAddr,
    config: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl OwnServer {
    /// Starts `giaoban serve` with `[server]` extra lines and extra sections.
    async fn start(server_lines: &str, sections: &str) -> anyhow::Result<OwnServer> {
        let dir = tempfile::Builder::new().prefix("giaoban-obs-").tempdir()?;
        let config = dir.path().join("giaoban.toml");
        let log = dir.path().join("server.log");
        let data = dir.path().join("data");
        std::fs::write(
            &config,
            format!(
                "[server]\nhttp_addr = \"127.0.0.1:0\"\ndata_dir = {}\n{server_lines}\n\n\
                 [media]\nport = 0\nbind_ip = \"127.0.0.1\"\ninclude_loopback = true\n\n{sections}\n",
                toml_quote(&data.display().to_string())
            ),
        )?;
        let mut cmd = command(&config);
        cmd.arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawn giaoban")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["event"] == "ready" {
                        return Ok(v);
                    }
                }
            }
            Err(anyhow::anyhow!("exited before ready"))
        })
        .await;
        let ready = match ready {
            Ok(Ok(v)) => v,
            other => bail!(
                "no ready line ({:?}); log:\n{}",
                other.err(),
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let http = ready["http"].as_str().context("no http")?.parse()?;
        Ok(OwnServer {
            child,
            http,
            config,
            log,
            dir,
        })
    }

    /// Runs the CLI on this server's config; its trimmed stdout.
    async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = command(&self.config).args(args).output().await?;
        if !out.status.success() {
            bail!(
                "giaoban {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// A started meeting and an invitation link (the CLI's default base URL).
    async fn invitation(&self) -> anyhow::Result<String> {
        let meeting = self
            .cli(&["meeting", "create", "--title", "Giao ban", "--start"])
            .await?;
        self.cli(&[
            "invite",
            "--meeting",
            &meeting,
            "--name",
            "UBND xã",
            "--role",
            "bridge",
        ])
        .await
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server (SIGTERM, then kill) so its log is complete.
    async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// `giaoban --config <config>` with none of the caller's `GIAOBAN_*` settings.
fn command(config: &Path) -> Command {
    let mut cmd = Command::new(giaoban_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("GIAOBAN_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd.arg("--config").arg(config).stdin(Stdio::null());
    cmd
}

#[tokio::test]
async fn json_logs_parse_and_hold_no_token() -> anyhow::Result<()> {
    let mut server = OwnServer::start(
        "",
        "[log]\nformat = \"json\"\nlevel = \"debug,rtc=warn,sqlx=warn\"\n",
    )
    .await?;
    let link = server.invitation().await?;
    let token = token_of(&link)?.to_owned();
    let mut c = WsClient::connect(&format!("ws://{}/ws", server.http)).await?;
    c.hello_and_join(&token).await?;
    // A token that does not verify is refused, and not logged either.
    let mut bad = WsClient::connect(&format!("ws://{}/ws", server.http)).await?;
    bad.request(json!({"type": "hello", "version": 1})).await?;
    let forged = format!("{token}x");
    let r = bad
        .request(json!({"type": "join", "token": forged}))
        .await?;
    anyhow::ensure!(r["code"] == "token_invalid", "{r}");
    let r = reqwest::Client::new()
        .get(format!("http://{}/api/invitation", server.http))
        .bearer_auth(&token)
        .send()
        .await?;
    anyhow::ensure!(r.status() == 200, "invitation check: {}", r.status());
    c.close().await;
    server.stop().await;

    let log = server.log();
    let mut lines = 0;
    let mut joined = false;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("a log line is not JSON: {line}"))?;
        anyhow::ensure!(
            v["timestamp"].is_string() && v["level"].is_string() && v["fields"].is_object(),
            "a log line without timestamp/level/fields: {line}"
        );
        joined |= v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("joined"));
        lines += 1;
    }
    anyhow::ensure!(lines >= 3, "too few log lines:\n{log}");
    anyhow::ensure!(joined, "no join logged:\n{log}");
    // Neither the token nor its signature appears anywhere.
    let signature = token.rsplit('.').next().unwrap_or(&token);
    anyhow::ensure!(
        !log.contains(&token) && !log.contains(signature),
        "the log holds a token:\n{log}"
    );
    Ok(())
}

/// A TLS client config trusting exactly `ca_der`, with the ring provider.
fn client_config(ca_der: &[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS connection to `addr`, verifying the certificate for its IP.
async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .context("TLS handshake timed out")??;
    Ok(tls)
}

/// `GET path` over HTTPS (HTTP/1.1, connection close): the raw response.
async fn https_get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> anyhow::Result<String> {
    let mut tls = tls_connect(addr, config).await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response))
        .await
        .context("reading the HTTPS response timed out")??;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// Sends a request with an `id` over a WebSocket; its answer.
async fn wss_request<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    v: Value,
) -> anyhow::Result<Value>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio_tungstenite::tungstenite::Message;
    let id = v["id"].clone();
    ws.send(Message::text(v.to_string())).await?;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .context("no answer over WSS")?
            .context("WSS closed")??;
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["id"] == id {
                return Ok(v);
            }
        }
    }
}

#[tokio::test]
async fn https_and_wss_with_a_self_signed_certificate() -> anyhow::Result<()> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let certs = tempfile::tempdir()?;
    let cert_path = certs.path().join("server.crt");
    let key_path = certs.path().join("server.key");
    std::fs::write(&cert_path, certified.cert.pem())?;
    std::fs::write(&key_path, certified.signing_key.serialize_pem())?;

    let server = OwnServer::start(
        &format!(
            "tls_cert_file = {}\ntls_key_file = {}\n",
            toml_quote(&cert_path.display().to_string()),
            toml_quote(&key_path.display().to_string())
        ),
        "[metrics]\nallow = [\"127.0.0.1\"]\n",
    )
    .await?;
    let config = client_config(certified.cert.der())?;

    // GET /healthz over HTTPS.
    let response = https_get(server.http, config.clone(), "/healthz").await?;
    anyhow::ensure!(
        response.starts_with("HTTP/1.1 200"),
        "HTTPS answered: {response}"
    );
    anyhow::ensure!(response.contains("\"ok\""), "HTTPS body: {response}");
    // /metrics is limited to 127.0.0.1 here: allowed only if the peer
    // address reaches the handlers through the TLS listener.
    let response = https_get(server.http, config.clone(), "/metrics").await?;
    anyhow::ensure!(
        response.starts_with("HTTP/1.1 200") && response.contains("giaoban_participants 0"),
        "metrics over HTTPS: {response}"
    );

    // Plain HTTP on the same port gets no page.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", server.http))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    anyhow::ensure!(
        plain.map(|r| r.status() != 200).unwrap_or(true),
        "plain HTTP must not be served on the HTTPS port"
    );

    // A client that does not trust the certificate is refused.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
    anyhow::ensure!(
        tls_connect(server.http, client_config(other.cert.der())?)
            .await
            .is_err(),
        "a client trusting another certificate completed the handshake"
    );

    // Invitation links are https by default.
    let link = server.invitation().await?;
    anyhow::ensure!(link.starts_with("https://"), "invitation link {link}");
    let token = token_of(&link)?.to_owned();

    // WSS: hello and join.
    let tls = tls_connect(server.http, config).await?;
    let url = format!("wss://{}/ws", server.http);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(url.as_str(), tls),
    )
    .await
    .context("WSS handshake timed out")??;
    let hello = wss_request(&mut ws, json!({"type": "hello", "id": 1, "version": 1})).await?;
    anyhow::ensure!(hello["type"] == "hello", "hello over WSS: {hello}");
    let joined = wss_request(&mut ws, json!({"type": "join", "id": 2, "token": token})).await?;
    anyhow::ensure!(joined["type"] == "joined", "join over WSS: {joined}");
    drop(server.dir);
    Ok(())
}

#[tokio::test]
async fn tls_settings_are_checked_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("c.toml");
    let data = toml_quote(&dir.path().join("data").display().to_string());
    let key = dir.path().join("k.pem");
    let cert = dir.path().join("c.pem");
    // Only one of the two.
    std::fs::write(
        &config,
        format!(
            "[server]\nhttp_addr = \"127.0.0.1:0\"\ndata_dir = {data}\ntls_cert_file = {}\n",
            toml_quote(&cert.display().to_string())
        ),
    )?;
    let out = command(&config).arg("serve").output().await?;
    let err = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(!out.status.success(), "started with only a certificate");
    anyhow::ensure!(
        err.contains("tls_cert_file") && err.contains("tls_key_file"),
        "unclear error: {err}"
    );
    // Both, but the certificate is not PEM.
    std::fs::write(&cert, "not a certificate")?;
    std::fs::write(&key, "not a key")?;
    std::fs::write(
        &config,
        format!(
            "[server]\nhttp_addr = \"127.0.0.1:0\"\ndata_dir = {data}\ntls_cert_file = {}\n\
             tls_key_file = {}\n[media]\nport = 0\nbind_ip = \"127.0.0.1\"\n",
            toml_quote(&cert.display().to_string()),
            toml_quote(&key.display().to_string())
        ),
    )?;
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        command(&config).arg("serve").stdout(Stdio::null()).output(),
    )
    .await
    .context("the server started with a bad certificate")??;
    let err = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(!out.status.success(), "started with a bad certificate");
    anyhow::ensure!(
        err.contains("HTTPS") && err.contains("c.pem"),
        "unclear error: {err}"
    );
    Ok(())
}
