//! Session resume and ICE restart through the real server (issue 6).
//!
//! - A participant whose WebSocket drops keeps its media flowing and comes
//!   back on a new socket with `resume` within the grace: same participant id
//!   and role, the messages it missed replayed, and the others never see it
//!   leave or join.
//! - Without a resume the participant leaves after the grace; a close frame
//!   or `leave` still ends it at once.
//! - Bad, used, expired or other-meeting resume tokens get `resume_failed`
//!   and the socket can still join.
//! - A client whose address changes restarts ICE on both connections and its
//!   media flows again (the gap is printed); also when it publishes its
//!   video in simulcast and sends the `mid`/`rid` header extensions only at
//!   the start of each layer, as Chromium does (the server must keep the
//!   layers it learnt across the publisher's re-offer).
//!
//! Run inside a private network namespace (the test runner does this):
//! `GIAOBAN_TEST_QUICK=1 scripts/test -p giaoban-tests --test resume`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use base64::Engine as _;
use giaoban_tests::client::{ClientState, JoinOptions, Kind, MediaOptions, TestClient};
use giaoban_tests::{token_of, TestServer, WsClient};
use serde_json::{json, Value};

/// Time allowed for connecting and the first packets to flow.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
/// Time allowed for signaling events to arrive.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

async fn join(server: &TestServer, meeting: &str, name: &str, role: &str) -> Result<TestClient> {
    let url = server.invite(meeting, name, role).await?;
    TestClient::join(&server.ws_url(), token_of(&url)?)
        .await
        .with_context(|| format!("{name} joins"))
}

/// Intact (audio, video) packets `c` received from `from`.
fn counts(c: &TestClient, from: &str) -> (u64, u64) {
    let st = c.state();
    (
        st.received(from, Kind::Audio).intact,
        st.received(from, Kind::Video).intact,
    )
}

/// Waits until `c` got `audio` more audio and `video` more video packets
/// from `from` than `base`.
async fn more_media(
    c: &TestClient,
    from: &str,
    base: (u64, u64),
    audio: u64,
    video: u64,
) -> Result<()> {
    let from = from.to_owned();
    c.wait_until(MEDIA_TIMEOUT, "more media", move |st| {
        st.received(&from, Kind::Audio).intact >= base.0 + audio
            && st.received(&from, Kind::Video).intact >= base.1 + video
    })
    .await
}

/// Whether `st` saw `participant_left` or `participant_joined` about `who`.
fn saw_leave_or_join(st: &ClientState, who: &str) -> bool {
    st.has_event("participant_left", |e| e["participant_id"] == who)
        || st.has_event("participant_joined", |e| e["participant"]["id"] == who)
}

/// The first `a=ice-ufrag` of an SDP.
fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:").map(str::to_owned))
}

fn server_log_on_error<T>(server: &TestServer, r: Result<T>) -> Result<T> {
    if r.is_err() {
        eprintln!("--- server log ---\n{}", server.log());
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_websocket_resumes_the_same_participant_with_media_flowing() -> Result<()> {
    let server = TestServer::start().await?;
    let r = dropped_and_resumed(&server).await;
    server_log_on_error(&server, r)
}

async fn dropped_and_resumed(server: &TestServer) -> Result<()> {
    let meeting = server.create_meeting("Giao ban: mạng chập chờn").await?;
    let a = join(server, &meeting, "UBND xã Đắk Wil", "delegate").await?;
    let b = join(server, &meeting, "UBND huyện Cư Jút", "chair").await?;
    let (aid, bid) = (a.participant_id().to_owned(), b.participant_id().to_owned());
    more_media(&a, &bid, (0, 0), 25, 15).await?;
    more_media(&b, &aid, (0, 0), 25, 15).await?;
    let first_token = a
        .state()
        .resume_token
        .clone()
        .context("joined without resume_token")?;
    ensure!(first_token.len() >= 32, "a short resume token");

    // a's WebSocket drops; its peer connections go on.
    let dropped_at = Instant::now();
    a.drop_ws().await?;
    let (a_from_b, b_from_a) = (counts(&a, &bid), counts(&b, &aid));
    // While a is away, someone joins (a must learn it when it comes back).
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let c_url = server
        .invite(&meeting, "UBND xã Nam Dong", "bridge")
        .await?;
    let c_joined = c.hello_and_join(token_of(&c_url)?).await?;
    let cid = c_joined["participant"]["id"]
        .as_str()
        .context("c's id")?
        .to_owned();
    // Media keeps flowing both ways without a WebSocket.
    more_media(&a, &bid, a_from_b, 50, 30).await?;
    more_media(&b, &aid, b_from_a, 50, 30).await?;
    let detached_media = (
        counts(&a, &bid).0 - a_from_b.0,
        counts(&b, &aid).0 - b_from_a.0,
    );

    // a comes back on a new socket within the grace.
    let resumed = a.resume(&server.ws_url(), Some(&meeting)).await?;
    let away = dropped_at.elapsed();
    ensure!(resumed["type"] == "resumed", "resume refused: {resumed}");
    ensure!(
        resumed["participant"]["id"] == aid.as_str(),
        "resumed as another participant: {resumed}"
    );
    ensure!(
        resumed["participant"]["role"] == "delegate",
        "the role changed: {resumed}"
    );
    ensure!(resumed["meeting"]["id"] == meeting.as_str(), "{resumed}");
    let new_token = resumed["resume_token"].as_str().context("no new token")?;
    ensure!(new_token != first_token, "the resume token was not renewed");
    ensure!(
        resumed["replayed"].as_u64().is_some_and(|n| n >= 1),
        "nothing replayed: {resumed}"
    );
    // What a missed while away arrives, once.
    let cid2 = cid.clone();
    a.wait_until(
        EVENT_TIMEOUT,
        "participant_joined of c, replayed",
        move |st| {
            st.has_event("participant_joined", |e| {
                e["participant"]["id"] == cid2.as_str()
            })
        },
    )
    .await?;
    let joins_of_c = a
        .state()
        .events
        .iter()
        .filter(|e| e["type"] == "participant_joined" && e["participant"]["id"] == cid.as_str())
        .count();
    ensure!(joins_of_c == 1, "c's join arrived {joins_of_c} times");

    // The session works on the new socket: c's mute reaches a.
    let r = c
        .request(json!({"type": "mute", "kind": "audio", "muted": true}))
        .await?;
    ensure!(r["type"] == "ok", "{r}");
    let cid3 = cid.clone();
    a.wait_until(EVENT_TIMEOUT, "mute_changed of c", move |st| {
        st.has_event("mute_changed", |e| e["participant_id"] == cid3.as_str())
    })
    .await?;
    // Media still flows, and b never saw a leave or join again.
    let (a_from_b, b_from_a) = (counts(&a, &bid), counts(&b, &aid));
    more_media(&a, &bid, a_from_b, 25, 15).await?;
    more_media(&b, &aid, b_from_a, 25, 15).await?;
    ensure!(
        !saw_leave_or_join(&b.state(), &aid),
        "b saw a leave or join"
    );
    let pong = c.request(json!({"type": "ping"})).await?;
    ensure!(pong["type"] == "pong", "c: {pong}");

    // The first token was used (and replaced): it no longer resumes.
    let mut d = WsClient::connect(&server.ws_url()).await?;
    d.request(json!({"type": "hello", "version": 1})).await?;
    let r = d
        .request(json!({"type": "resume", "resume_token": first_token}))
        .await?;
    ensure!(r["type"] == "error" && r["code"] == "resume_failed", "{r}");

    eprintln!(
        "resume: away {} ms; media while away: a got {} audio packets of b, b got {} of a; replayed {}",
        away.as_millis(),
        detached_media.0,
        detached_media.1,
        resumed["replayed"]
    );
    // Leaving still works and is seen at once.
    a.leave().await?;
    let aid2 = aid.clone();
    b.wait_until(EVENT_TIMEOUT, "participant_left of a", move |st| {
        st.has_event("participant_left", |e| {
            e["participant_id"] == aid2.as_str() && e["reason"] == "left"
        })
    })
    .await?;
    ensure!(a.state().errors.is_empty(), "a: {:?}", a.state().errors);
    Ok(())
}

/// The next `participant_left` about participant `pid`, and when it came.
async fn wait_left(ws: &mut WsClient, pid: &str, within: Duration) -> Result<(Value, Instant)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = ws
            .recv_within(left)
            .await
            .with_context(|| format!("waiting for participant_left of {pid}"))?;
        if m["type"] == "participant_left" && m["participant_id"] == pid {
            return Ok((m, Instant::now()));
        }
    }
}

#[tokio::test]
async fn without_resume_the_participant_leaves_after_the_grace() -> Result<()> {
    let server = TestServer::start_with_config("[signaling]\nresume_grace_secs = 2\n").await?;
    let m = server.create_meeting("M").await?;
    let ta = token_of(&server.invite(&m, "A", "bridge").await?)?.to_owned();
    let tb = token_of(&server.invite(&m, "B", "chair").await?)?.to_owned();
    let tc = token_of(&server.invite(&m, "C", "bridge").await?)?.to_owned();
    let mut b = WsClient::connect(&server.ws_url()).await?;
    b.hello_and_join(&tb).await?;
    let mut a = WsClient::connect(&server.ws_url()).await?;
    let ja = a.hello_and_join(&ta).await?;
    let aid = ja["participant"]["id"].as_str().context("id")?.to_owned();
    let token = ja["resume_token"]
        .as_str()
        .context("resume_token")?
        .to_owned();
    b.recv_type("participant_joined").await?;

    // Dropped without a close frame: a stays for the 2 s grace, then leaves.
    let dropped = Instant::now();
    drop(a);
    let (left, at) = wait_left(&mut b, &aid, Duration::from_secs(10)).await?;
    let after = at.duration_since(dropped);
    ensure!(left["reason"] == "disconnected", "{left}");
    ensure!(
        after >= Duration::from_millis(1800) && after < Duration::from_secs(6),
        "left after {after:?}, expected about 2 s"
    );
    eprintln!(
        "grace expiry: participant_left {} ms after the drop",
        after.as_millis()
    );
    // Its token died with it.
    let mut again = WsClient::connect(&server.ws_url()).await?;
    again
        .request(json!({"type": "hello", "version": 1}))
        .await?;
    let r = again
        .request(json!({"type": "resume", "resume_token": token}))
        .await?;
    ensure!(r["type"] == "error" && r["code"] == "resume_failed", "{r}");

    // A close frame with code 4000 ("I will resume") keeps the participant
    // like a dropped socket: nobody sees it leave, and it resumes.
    let mut d = WsClient::connect(&server.ws_url()).await?;
    let jd = d.hello_and_join(&tc).await?;
    let did = jd["participant"]["id"].as_str().context("id")?.to_owned();
    let dtoken = jd["resume_token"]
        .as_str()
        .context("resume_token")?
        .to_owned();
    b.recv_type("participant_joined").await?;
    d.close_with(4000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut d2 = hello(&server.ws_url()).await?;
    let r = d2
        .request(json!({"type": "resume", "resume_token": dtoken}))
        .await?;
    ensure!(r["type"] == "resumed", "resume after a 4000 close: {r}");
    ensure!(r["participant"]["id"] == did.as_str(), "{r}");
    if let Ok(v) = b.recv_within(Duration::from_millis(300)).await {
        ensure!(
            v["type"] != "participant_left",
            "a 4000 close was taken as a goodbye: {v}"
        );
    }
    d2.close().await;
    wait_left(&mut b, &did, Duration::from_secs(5)).await?;

    // A close frame is a goodbye: gone at once, no grace.
    let mut c = WsClient::connect(&server.ws_url()).await?;
    let cid = c.hello_and_join(&tc).await?["participant"]["id"]
        .as_str()
        .context("id")?
        .to_owned();
    b.recv_type("participant_joined").await?;
    let closed = Instant::now();
    c.close().await;
    let (left, at) = wait_left(&mut b, &cid, Duration::from_secs(5)).await?;
    ensure!(left["reason"] == "disconnected", "{left}");
    ensure!(
        at.duration_since(closed) < Duration::from_millis(1500),
        "a closed socket left only after {:?}",
        at.duration_since(closed)
    );
    Ok(())
}

fn claims_of(token: &str) -> Result<Value> {
    let payload = token.split('.').nth(1).context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    Ok(serde_json::from_slice(&bytes)?)
}

async fn hello(url: &str) -> Result<WsClient> {
    let mut ws = WsClient::connect(url).await?;
    let h = ws
        .request(json!({"type": "hello", "version": 1, "client": "giaoban-tests"}))
        .await?;
    ensure!(h["type"] == "hello", "{h}");
    Ok(ws)
}

fn is_resume_failed(v: &Value) -> bool {
    v["type"] == "error" && v["code"] == "resume_failed"
}

#[tokio::test]
async fn bad_used_and_foreign_resume_tokens_are_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let m1 = server.create_meeting("M1").await?;
    let m2 = server.create_meeting("M2").await?;
    let ta = token_of(&server.invite(&m1, "A", "bridge").await?)?.to_owned();
    let tb = token_of(&server.invite(&m1, "B", "chair").await?)?.to_owned();
    let url = server.ws_url();

    // Before hello: hello_required.
    let mut raw = WsClient::connect(&url).await?;
    let r = raw
        .request(json!({"type": "resume", "resume_token": "x"}))
        .await?;
    ensure!(r["code"] == "hello_required", "{r}");

    // Unknown token: resume_failed; the socket stays open and can join.
    let mut s = hello(&url).await?;
    let r = s
        .request(json!({"type": "resume", "resume_token": "0123456789abcdef"}))
        .await?;
    ensure!(is_resume_failed(&r), "{r}");
    let r = s.request(json!({"type": "resume"})).await?;
    ensure!(r["code"] == "bad_request", "a resume without token: {r}");
    let mut b = s;
    let jb = b.request(json!({"type": "join", "token": tb})).await?;
    ensure!(jb["type"] == "joined", "join after a failed resume: {jb}");
    // A joined socket cannot resume.
    let r = b
        .request(json!({"type": "resume", "resume_token": "abc"}))
        .await?;
    ensure!(r["code"] == "already_joined", "{r}");

    let mut a = hello(&url).await?;
    let ja = a.request(json!({"type": "join", "token": ta})).await?;
    let aid = ja["participant"]["id"].as_str().context("id")?.to_owned();
    let token = ja["resume_token"].as_str().context("token")?.to_owned();
    b.recv_type("participant_joined").await?;

    // Another meeting: refused, and the token still works for its own.
    let mut s = hello(&url).await?;
    let r = s
        .request(json!({"type": "resume", "resume_token": token, "meeting_id": m2}))
        .await?;
    ensure!(is_resume_failed(&r), "other meeting: {r}");
    // Claiming more messages than were sent: refused (and that socket is closed).
    let r = s
        .request(json!({"type": "resume", "resume_token": token, "received": 1_000_000}))
        .await?;
    ensure!(is_resume_failed(&r), "too many received: {r}");
    // That attempt used the token; a's own socket still works.
    let pong = a.request(json!({"type": "ping", "ts": 1})).await?;
    ensure!(pong["type"] == "pong", "{pong}");

    // A fresh join replaces a; its session's tokens are dead.
    drop(a);
    let mut a2 = hello(&url).await?;
    let j2 = a2.request(json!({"type": "join", "token": ta})).await?;
    ensure!(j2["type"] == "joined", "{j2}");
    let token2 = j2["resume_token"].as_str().context("token")?.to_owned();
    ensure!(token2 != token);
    let (left, _) = wait_left(&mut b, &aid, EVENT_TIMEOUT).await?;
    ensure!(left["reason"] == "replaced", "{left}");

    // Used: a2 drops, resumes with token2 (works), token2 again (refused).
    let a2id = j2["participant"]["id"].as_str().context("id")?.to_owned();
    drop(a2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut s = hello(&url).await?;
    let r = s
        .request(json!({"type": "resume", "resume_token": token2, "meeting_id": m1, "received": 0}))
        .await?;
    ensure!(r["type"] == "resumed", "{r}");
    ensure!(r["participant"]["id"] == a2id.as_str(), "{r}");
    let mut s2 = hello(&url).await?;
    let r = s2
        .request(json!({"type": "resume", "resume_token": token2}))
        .await?;
    ensure!(is_resume_failed(&r), "a used token: {r}");

    // The resumed socket works; then it drops too, and revocation ends the
    // detached session.
    let pong = s.request(json!({"type": "ping", "ts": 2})).await?;
    ensure!(
        pong["type"] == "pong",
        "the resumed socket does not answer: {pong}"
    );
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let inv = claims_of(&ta)?["sub"].as_str().context("sub")?.to_owned();
    server.cli(&["invite", "revoke", &inv]).await?;
    let (left, _) = wait_left(&mut b, &a2id, Duration::from_secs(15)).await?;
    ensure!(left["reason"] == "revoked", "{left}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn media_resumes_after_an_address_change_and_ice_restart() -> Result<()> {
    let server = TestServer::start().await?;
    let r = address_change(&server).await;
    server_log_on_error(&server, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulcast_video_resumes_after_the_publishers_ice_restart() -> Result<()> {
    let server = TestServer::start().await?;
    let r = address_change_with(&server, true).await;
    server_log_on_error(&server, r)
}

async fn address_change(server: &TestServer) -> Result<()> {
    address_change_with(server, false).await
}

/// `a` moves to another address and restarts ICE; with `simulcast` it
/// publishes its video as three rid layers.
async fn address_change_with(server: &TestServer, simulcast: bool) -> Result<()> {
    let meeting = server.create_meeting("Giao ban: đổi mạng").await?;
    let a = if simulcast {
        let url = server.invite(&meeting, "UBND xã Ea Pô", "bridge").await?;
        TestClient::join_media(
            &server.ws_url(),
            token_of(&url)?,
            JoinOptions::default(),
            MediaOptions {
                simulcast: true,
                ..MediaOptions::default()
            },
        )
        .await
        .context("a joins with simulcast")?
    } else {
        join(server, &meeting, "UBND xã Ea Pô", "bridge").await?
    };
    let b = join(server, &meeting, "UBND tỉnh", "chair").await?;
    let (aid, bid) = (a.participant_id().to_owned(), b.participant_id().to_owned());
    more_media(&a, &bid, (0, 0), 25, 15).await?;
    more_media(&b, &aid, (0, 0), 25, 15).await?;

    // a's address changes: 127.0.0.1 -> 127.0.0.2 (its old sockets close).
    let new_ip: IpAddr = "127.0.0.2".parse()?;
    let (a_from_b, b_from_a) = (counts(&a, &bid), counts(&b, &aid));
    let moved = Instant::now();
    a.move_to(new_ip).await?;
    // The first packets after the move, each way (polled every 2 ms).
    let mut up: Option<Duration> = None;
    let mut down: Option<Duration> = None;
    while (up.is_none() || down.is_none()) && moved.elapsed() < MEDIA_TIMEOUT {
        if up.is_none() && counts(&b, &aid).0 > b_from_a.0 + 2 {
            up = Some(moved.elapsed());
        }
        if down.is_none() && counts(&a, &bid).0 > a_from_b.0 + 2 {
            down = Some(moved.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (Some(up), Some(down)) = (up, down) else {
        bail!(
            "media did not resume after the move (a -> b: {up:?}, b -> a: {down:?})\na: {}\nb: {}",
            a.summary(),
            b.summary()
        );
    };
    // And keeps flowing, from the new address only; video too (with
    // simulcast, the layer b receives was learnt before the re-offer and its
    // packets no longer carry mid/rid).
    let (a_from_b, b_from_a) = (counts(&a, &bid), counts(&b, &aid));
    more_media(&a, &bid, a_from_b, 50, 30).await?;
    more_media(&b, &aid, b_from_a, 50, 30).await?;
    ensure!(
        !saw_leave_or_join(&b.state(), &aid),
        "b saw a leave or join"
    );
    // Both connections restarted ICE: the server's credentials changed in
    // its second publish answer and in its last subscriber offer.
    let ufrags = |ty: &str| -> Vec<String> {
        a.state()
            .events
            .iter()
            .filter(|e| e["type"] == ty)
            .filter_map(|e| e["sdp"].as_str().and_then(ice_ufrag))
            .collect()
    };
    let publish = ufrags("publish_answer");
    ensure!(
        publish.len() >= 2 && publish.first() != publish.last(),
        "the publisher's server ufrag did not change: {publish:?}"
    );
    let subscribe = ufrags("subscriber_offer");
    ensure!(
        subscribe.len() >= 2 && subscribe.first() != subscribe.last(),
        "the subscriber's server ufrag did not change: {subscribe:?}"
    );
    for st in [&a.state(), &b.state()] {
        let bad: Vec<&String> = st
            .errors
            .iter()
            .filter(|e| !e.starts_with("write_rtp"))
            .collect();
        ensure!(bad.is_empty(), "errors: {bad:?}");
    }
    eprintln!(
        "ICE restart after an address change (simulcast: {simulcast}): media gap a -> b {} ms, \
         b -> a {} ms",
        up.as_millis(),
        down.as_millis()
    );
    a.leave().await?;
    b.leave().await?;
    Ok(())
}
