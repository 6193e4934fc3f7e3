//! Crash safety: the server SIGKILLed in the middle of acknowledged writes.
//!
//! Several REST clients create agenda items and upload documents at once,
//! each write with its own `Idempotency-Key`, and record which ones got a
//! 2xx answer. The server is killed with SIGKILL (no shutdown at all) while
//! they write, then restarted on the same data folder and database. Every
//! client retries the write that was in flight with the same key until the
//! server answers. Then: every acknowledged write is there exactly once,
//! every retried write is there exactly once (a retry of a write that had
//! committed before the crash is answered from its stored answer), the audit
//! chain verifies, and the content store holds no temp file and no content
//! that no document references. Meanwhile a WebSocket participant that
//! reconnects by itself (backoff, same invitation) and the web client in
//! Chromium come back into the meeting without anyone doing anything, and
//! see each other.
//!
//! The writes here are agenda items and documents; ballots acknowledged
//! before a SIGKILL are checked in votes_live.rs
//! (`an_acknowledged_ballot_survives_sigkill`).
//!
//! SQLite always; PostgreSQL with `GIAOBAN_TEST_PG_URL` (as cabinet_api.rs).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use giaoban_tests::{token_of, toml_quote, Incoming, TestServer, WsClient};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

/// Concurrent writers.
const WRITERS: usize = 4;

/// One write a client makes: an agenda item, or a document of an item.
#[derive(Debug, Clone)]
enum Write {
    Item {
        title: String,
    },
    Doc {
        item_id: String,
        title: String,
        content: Vec<u8>,
    },
}

impl Write {
    fn title(&self) -> &str {
        match self {
            Write::Item { title } | Write::Doc { title, .. } => title,
        }
    }
}

/// What one writer saw.
#[derive(Debug, Default)]
struct Record {
    /// Title -> the id in the 2xx answer (written once, never retried).
    acked: BTreeMap<String, String>,
    /// Writes that failed in flight and were retried with the same key until
    /// answered: title -> (id, whether the answer was a replay).
    retried: BTreeMap<String, (String, bool)>,
    /// The first acknowledged write: (key, write, id), sent again after
    /// the restart.
    first: Option<(String, Write, String)>,
    /// Agenda items, documents written (acknowledged).
    items: usize,
    docs: usize,
}

/// Sends one write with its key; Ok(None) when the server did not answer
/// (connection refused or reset: the write's fate is unknown).
async fn send(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    meeting: &str,
    key: &str,
    w: &Write,
) -> anyhow::Result<Option<(String, bool)>> {
    let req = match w {
        Write::Item { title } => http
            .post(format!("{base}/api/meetings/{meeting}/agenda"))
            .json(&json!({"title": title, "presenter": "Văn phòng"})),
        Write::Doc {
            item_id,
            title,
            content,
        } => {
            let part = Part::bytes(content.clone())
                .file_name(format!("{title}.pdf"))
                .mime_str("application/pdf")?;
            http.post(format!("{base}/api/agenda/{item_id}/documents"))
                .multipart(Form::new().part("file", part).text("title", title.clone()))
        }
    };
    let r = match req
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .timeout(Duration::from_secs(20))
        .send()
        .await
    {
        Ok(r) => r,
        Err(_) => return Ok(None),
    };
    let status = r.status();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let body = match r.bytes().await {
        Ok(b) => b,
        // Cut off while reading the answer: unknown as well.
        Err(_) => return Ok(None),
    };
    if !status.is_success() {
        bail!(
            "{} answered {status}: {}",
            w.title(),
            String::from_utf8_lossy(&body)
        );
    }
    let v: Value = serde_json::from_slice(&body)?;
    let id = v["id"].as_str().context("answer without id")?.to_owned();
    Ok(Some((id, replayed)))
}

/// Writes until `stop`; a write left without an answer (the crash) is
/// retried with the same key until the server answers, then the writer ends.
async fn writer(
    n: usize,
    base: String,
    token: String,
    meeting: String,
    stop: Arc<AtomicBool>,
    acked_total: Arc<AtomicUsize>,
) -> anyhow::Result<Record> {
    let http = reqwest::Client::new();
    let mut rec = Record::default();
    let mut my_items: Vec<String> = Vec::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let title = format!("crash w{n} #{i}");
        let w = match my_items.last() {
            Some(item_id) if i.is_multiple_of(3) => Write::Doc {
                item_id: item_id.clone(),
                title,
                // A PDF header: the server accepts documents only.
                content: format!("%PDF-1.4\n% nội dung {n}-{i}\n")
                    .repeat(200)
                    .into_bytes(),
            },
            _ => Write::Item { title },
        };
        let key = format!("crash-{n}-{i}");
        match send(&http, &base, &token, &meeting, &key, &w).await? {
            Some((id, replayed)) => {
                ensure!(!replayed, "a first try was answered as a replay: {key}");
                if matches!(w, Write::Item { .. }) {
                    my_items.push(id.clone());
                    rec.items += 1;
                } else {
                    rec.docs += 1;
                }
                if rec.first.is_none() {
                    rec.first = Some((key.clone(), w.clone(), id.clone()));
                }
                rec.acked.insert(w.title().to_owned(), id);
                acked_total.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                // The server is gone: retry this very write, same key, with
                // a backoff, until it answers.
                let t0 = Instant::now();
                let mut delay = Duration::from_millis(100);
                loop {
                    ensure!(
                        t0.elapsed() < Duration::from_secs(60),
                        "{key}: no answer for 60 s"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                    if let Some((id, replayed)) =
                        send(&http, &base, &token, &meeting, &key, &w).await?
                    {
                        rec.retried.insert(w.title().to_owned(), (id, replayed));
                        break;
                    }
                }
                return Ok(rec);
            }
        }
    }
    Ok(rec)
}

/// A WebSocket participant that reconnects by itself: connect, hello, join
/// with its invitation; when the socket ends, again after a backoff. Each
/// join's answer goes to `joins`, each other participant's arrival (by
/// name) to `seen`.
async fn ws_participant(
    ws_url: String,
    token: String,
    joins: tokio::sync::mpsc::UnboundedSender<Value>,
    seen: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        if let Ok(mut c) = WsClient::connect(&ws_url).await {
            if let Ok(joined) = c.hello_and_join(&token).await {
                delay = Duration::from_millis(200);
                for p in joined["participants"].as_array().into_iter().flatten() {
                    let _ = seen.send(p["name"].as_str().unwrap_or_default().to_owned());
                }
                if joins.send(joined).is_err() {
                    return;
                }
                // Until the socket ends (a read error or a close).
                loop {
                    match c.next_incoming(Duration::from_secs(5)).await {
                        Ok(Incoming::Json(v)) if v["type"] == "participant_joined" => {
                            let name = v["participant"]["name"].as_str().unwrap_or_default();
                            let _ = seen.send(name.to_owned());
                        }
                        Ok(Incoming::Closed(_)) => break,
                        Ok(_) => {}
                        // Silent for a while: keep the socket warm.
                        Err(_) => {
                            if c.send(json!({"type": "ping", "ts": 1})).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        }
        if joins.is_closed() {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Files in the content store: (temp files, contents by hash).
fn store_files(data_dir: &Path) -> (Vec<String>, HashSet<String>) {
    let root = data_dir.join("documents");
    let mut temps = Vec::new();
    let mut contents = HashSet::new();
    for d in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            let fname = f.file_name().to_string_lossy().into_owned();
            if name == "tmp" {
                temps.push(fname);
            } else {
                contents.insert(format!("{name}{fname}"));
            }
        }
    }
    (temps, contents)
}

async fn crash_run(server: &mut TestServer, with_browser: bool) -> anyhow::Result<()> {
    let token = server.staff_token("thuky", "secretary").await?;
    let meeting = server.create_meeting("Giao ban: thử mất điện").await?;
    let base = server.base_url();

    // Two participants: a WebSocket client and, on SQLite, the web client.
    let ws_url = server.invite(&meeting, "Điểm cầu WS", "bridge").await?;
    let ws_token = token_of(&ws_url)?.to_owned();
    let (joins_tx, mut joins) = tokio::sync::mpsc::unbounded_channel();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let ws_task = tokio::spawn(ws_participant(server.ws_url(), ws_token, joins_tx, seen_tx));
    let first = tokio::time::timeout(Duration::from_secs(10), joins.recv())
        .await
        .context("the WebSocket participant did not join")?
        .context("participant task ended")?;
    let first_pid = first["participant"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let mut browser = None;
    if with_browser {
        let chromium = giaoban_tests::e2e::chromium()?;
        let dir = giaoban_tests::e2e::e2e_dir();
        giaoban_tests::e2e::ensure_node_modules(&dir).await?;
        let url = server
            .invite(&meeting, "Điểm cầu Chromium", "bridge")
            .await?;
        let mut child = tokio::process::Command::new("node")
            .arg("crash_reconnect.mjs")
            .arg(&url)
            .arg("Điểm cầu WS")
            .current_dir(&dir)
            .env("CHROMIUM_PATH", chromium)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start node")?;
        let stdout = child.stdout.take().context("node stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let joined = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(l) = lines.next_line().await? {
                if l.contains("\"event\":\"joined\"") {
                    return Ok::<_, anyhow::Error>(true);
                }
            }
            Ok(false)
        })
        .await;
        if !matches!(joined, Ok(Ok(true))) {
            let out = child.wait_with_output().await?;
            bail!(
                "the page did not join: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        browser = Some((child, lines));
    }

    // Writers at full speed; SIGKILL once enough writes are acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for n in 0..WRITERS {
        writers.push(tokio::spawn(writer(
            n,
            base.clone(),
            token.clone(),
            meeting.clone(),
            stop.clone(),
            acked.clone(),
        )));
    }
    let t0 = Instant::now();
    while acked.load(Ordering::Relaxed) < 40 {
        ensure!(
            t0.elapsed() < Duration::from_secs(60),
            "writes too slow: {} in 60 s",
            acked.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // What the participant saw before the crash does not count after it.
    while seen.try_recv().is_ok() {}
    server.kill_hard().await?;
    let killed_after = acked.load(Ordering::Relaxed);
    // Writers that were between two writes keep going, find the server
    // gone and retry; the others are retrying already. Let them hit the
    // dead server for a moment, as clients would during a restart.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().await?;
    let restarted_at = Instant::now();
    stop.store(true, Ordering::Relaxed);

    let mut acked_all: BTreeMap<String, String> = BTreeMap::new();
    let mut retried_all: BTreeMap<String, (String, bool)> = BTreeMap::new();
    let (mut items, mut docs) = (0, 0);
    let mut firsts = Vec::new();
    for w in writers {
        let rec = w.await??;
        items += rec.items;
        docs += rec.docs;
        firsts.extend(rec.first);
        acked_all.extend(rec.acked);
        retried_all.extend(rec.retried);
    }
    let replays = retried_all.values().filter(|(_, r)| *r).count();
    eprintln!(
        "acknowledged before the kill: {killed_after}; total acknowledged: {} ({items} items, \
         {docs} documents); in flight at the kill and retried: {} (answered from the stored \
         answer: {replays})",
        acked_all.len(),
        retried_all.len()
    );
    ensure!(
        !retried_all.is_empty(),
        "no write was in flight at the kill"
    );

    // Every acknowledged and every retried write exactly once, with the id
    // its answer gave.
    let http = reqwest::Client::new();
    let agenda: Vec<Value> = http
        .get(format!("{base}/api/meetings/{meeting}/agenda"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let mut by_title: HashMap<String, Vec<String>> = HashMap::new();
    let mut referenced = HashSet::new();
    for item in &agenda {
        let id = item["id"].as_str().unwrap_or_default().to_owned();
        by_title
            .entry(item["title"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(id.clone());
        let docs: Vec<Value> = http
            .get(format!("{base}/api/agenda/{id}/documents"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        for d in docs {
            by_title
                .entry(d["title"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .push(d["id"].as_str().unwrap_or_default().to_owned());
            for v in d["versions"].as_array().into_iter().flatten() {
                referenced.insert(v["sha256"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    for (title, id) in acked_all
        .iter()
        .chain(retried_all.iter().map(|(t, (id, _))| (t, id)))
    {
        let found = by_title.get(title).cloned().unwrap_or_default();
        ensure!(
            found == vec![id.clone()],
            "{title}: expected exactly {id}, found {found:?}"
        );
    }
    // Nothing else was created (a write without an answer that was not
    // retried cannot exist: every writer retried its last one).
    let ours = by_title.keys().filter(|t| t.starts_with("crash w")).count();
    ensure!(
        ours == acked_all.len() + retried_all.len(),
        "{ours} writes stored, {} answered",
        acked_all.len() + retried_all.len()
    );

    // A write acknowledged before the crash, sent again with its key after
    // the restart: the stored answer, nothing new.
    let http2 = reqwest::Client::new();
    for (key, w, id) in &firsts {
        let again = send(&http2, &base, &token, &meeting, key, w)
            .await?
            .context("no answer")?;
        ensure!(
            again == (id.clone(), true),
            "{key} sent again: {again:?}, expected a replay of {id}"
        );
    }
    // The same key for another request is refused.
    if let Some((key, _, _)) = firsts.first() {
        let r = http2
            .post(format!("{base}/api/meetings/{meeting}/agenda"))
            .bearer_auth(&token)
            .header("Idempotency-Key", key.as_str())
            .json(&json!({"title": "another request"}))
            .send()
            .await?;
        ensure!(r.status() == 422, "key reused: {}", r.status());
        let v: Value = r.json().await?;
        ensure!(v["code"] == "idempotency_key_reused", "{v}");
    }

    // The audit chain, and a clean content store.
    assert_eq!(server.cli(&["audit", "verify"]).await?, "ok");
    let (temps, contents) = store_files(&server.data_dir);
    ensure!(temps.is_empty(), "temp files left: {temps:?}");
    let orphans: Vec<_> = contents.difference(&referenced).collect();
    ensure!(orphans.is_empty(), "unreferenced contents: {orphans:?}");

    // The WebSocket participant is back by itself (a new join), and sees
    // the web client come back too.
    let again = tokio::time::timeout(Duration::from_secs(30), joins.recv())
        .await
        .context("the WebSocket participant did not rejoin after the restart")?
        .context("participant task ended")?;
    let again_pid = again["participant"]["id"].as_str().unwrap_or_default();
    ensure!(
        again_pid != first_pid,
        "rejoined with the old participant id"
    );
    eprintln!(
        "WebSocket participant rejoined {:?} after the restart",
        restarted_at.elapsed()
    );

    if let Some((child, mut lines)) = browser {
        let mut last = String::new();
        let rest = tokio::time::timeout(Duration::from_secs(120), async {
            while let Ok(Some(l)) = lines.next_line().await {
                last = l;
            }
            last
        })
        .await
        .context("the page script did not finish")?;
        let out = child.wait_with_output().await?;
        let summary: Value = serde_json::from_str(&rest).unwrap_or(Value::Null);
        ensure!(
            out.status.success() && summary["ok"] == true,
            "the web client did not come back: {rest}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "web client states {} ; back {:?} after the restart",
            summary["states"],
            restarted_at.elapsed()
        );
        // ... and the WebSocket participant sees it.
        let t = Instant::now();
        let mut seen_browser = false;
        while t.elapsed() < Duration::from_secs(20) {
            match tokio::time::timeout(Duration::from_secs(1), seen.recv()).await {
                Ok(Some(name)) if name == "Điểm cầu Chromium" => {
                    seen_browser = true;
                    break;
                }
                Ok(None) => break,
                _ => {}
            }
        }
        ensure!(
            seen_browser,
            "the WebSocket participant never saw the web client"
        );
    }
    drop(joins);
    ws_task.abort();
    Ok(())
}

fn uuid_like() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..16)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_writes_sqlite() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let r = crash_run(&mut server, true).await;
    if r.is_err() {
        eprintln!("server log:\n{}", server.log());
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_writes_postgres() -> anyhow::Result<()> {
    let url = match std::env::var("GIAOBAN_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var("GIAOBAN_SKIP_PG").as_deref() == Ok("1") {
                eprintln!("GIAOBAN_SKIP_PG=1: skipping a PostgreSQL test");
                return Ok(());
            }
            bail!("GIAOBAN_TEST_PG_URL is not set; set GIAOBAN_SKIP_PG=1 to skip PostgreSQL tests");
        }
    };
    let schema = format!("crash_{}", uuid_like());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .context("connect to GIAOBAN_TEST_PG_URL")?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await?;
    pool.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let db = format!("{url}{sep}options[search_path]={schema}");
    let mut server =
        TestServer::start_with_config(&format!("[database]\nurl = {}\n", toml_quote(&db))).await?;
    let r = crash_run(&mut server, false).await;
    if r.is_err() {
        eprintln!("server log:\n{}", server.log());
    }
    r
}
