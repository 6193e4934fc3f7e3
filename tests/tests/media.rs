//! Media through the real server: three webrtc-rs participants publish Opus
//! and VP8 through the SFU and must each receive the other two's media intact,
//! only from the server's one media UDP port; one leaves and the others carry
//! on; a participant that vanishes mid-negotiation does not disturb the rest.
//!
//! Run inside a private network namespace (the test runner does this):
//! `unshare -n sh -c 'ip link set lo up; cargo test -p giaoban-tests --test media'`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use giaoban_tests::client::{
    ClientState, JoinOptions, Kind, MediaStats, Pc, TestClient, Transport,
};
use giaoban_tests::TestServer;

/// Packets each client must receive from each other participant.
const MIN_AUDIO: u64 = 50;
const MIN_VIDEO: u64 = 30;
/// Time allowed for connecting and the first packets to flow.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
/// Time allowed for signaling events to arrive.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

async fn join(server: &TestServer, meeting: &str, name: &str) -> Result<TestClient> {
    let url = server.invite(meeting, name, "bridge").await?;
    let token = giaoban_tests::token_of(&url)?;
    TestClient::join(&server.ws_url(), token)
        .await
        .with_context(|| format!("{name} joins"))
}

/// Whether `c` received at least `audio`/`video` packets from `from`.
fn got(st: &ClientState, from: &str, audio: u64, video: u64) -> bool {
    st.received(from, Kind::Audio).intact >= audio && st.received(from, Kind::Video).intact >= video
}

/// Waits until `c` received `MIN_*` more packets from every one of `from`
/// than `base` (the counts at some earlier moment).
async fn wait_media_from(
    c: &TestClient,
    from: &[&str],
    base: &[(u64, u64)],
    timeout: Duration,
) -> Result<()> {
    let from: Vec<(String, u64, u64)> = from
        .iter()
        .zip(base)
        .map(|(p, (a, v))| (p.to_string(), a + MIN_AUDIO, v + MIN_VIDEO))
        .collect();
    c.wait_until(timeout, "media from the others", |st| {
        from.iter().all(|(p, a, v)| got(st, p, *a, *v))
    })
    .await
}

fn counts(c: &TestClient, from: &str) -> (u64, u64) {
    (
        c.received(from, Kind::Audio).intact,
        c.received(from, Kind::Video).intact,
    )
}

/// No error answer from the server and no client fault; every packet intact and attributed to the right publisher; nothing
/// unattributed; nothing of the client's own media echoed back.
fn check_integrity(c: &TestClient) -> Result<()> {
    let st = c.state();
    ensure!(
        st.errors.is_empty(),
        "{}: errors: {:?}",
        c.participant_id(),
        st.errors
    );
    for ((p, k), m) in &st.media {
        ensure!(
            m.corrupted == 0,
            "{}: {} corrupted {k:?} packets from {p}: {}",
            c.participant_id(),
            m.corrupted,
            c_summary(m)
        );
        ensure!(
            m.misattributed == 0,
            "{}: {} {k:?} packets from {p} carried another sender's payload",
            c.participant_id(),
            m.misattributed
        );
        // Loopback loses nothing; allow a little for a loaded machine.
        ensure!(
            m.lost() <= (m.intact as i64) / 50,
            "{}: {} {k:?} packets from {p} lost of {}",
            c.participant_id(),
            m.lost(),
            m.intact
        );
        ensure!(
            p != "?",
            "{}: {} {k:?} packets on a track the SDP did not attribute",
            c.participant_id(),
            m.packets
        );
        ensure!(
            p != c.participant_id(),
            "{}: received its own {k:?} media back",
            c.participant_id()
        );
    }
    Ok(())
}

fn c_summary(m: &MediaStats) -> String {
    format!(
        "{} packets, {} intact, first after {:?}",
        m.packets, m.intact, m.first_after
    )
}

/// Every datagram came over UDP from the server's one media port.
fn check_sources(c: &TestClient, media_udp: SocketAddr) -> Result<()> {
    let addrs = c.remote_addrs();
    ensure!(
        !addrs.is_empty(),
        "{}: no datagram at all",
        c.participant_id()
    );
    for a in &addrs {
        ensure!(
            a.transport == Transport::Udp && a.addr == media_udp,
            "{}: a datagram came from {:?} {} ({:?}), not the media port {media_udp}",
            c.participant_id(),
            a.transport,
            a.addr,
            a.pc
        );
    }
    Ok(())
}

/// Runs a test body; on failure, adds the end of the server's log.
async fn with_log(
    server: &TestServer,
    body: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    let result = body.await;
    if let Err(e) = result {
        let log = server.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        anyhow::bail!("{e:#}\n--- end of the server log ---\n{tail}");
    }
    let log = server.log();
    if std::env::var_os("MEDIA_SERVER_LOG").is_some() {
        println!("--- server log ---\n{log}");
    }
    ensure!(!log.contains("panicked"), "the server panicked:\n{log}");
    Ok(())
}

fn report(c: &TestClient) {
    let st = c.state();
    println!(
        "{}: publisher connected after {:?}, subscriber after {:?}, {} subscriber offers, sent {:?}, {} key frame requests",
        c.participant_id(),
        st.connected_after.get(&Pc::Publisher),
        st.connected_after.get(&Pc::Subscriber),
        st.subscriber_offers,
        st.sent,
        st.keyframe_requests
    );
    if std::env::var_os("MEDIA_TIMELINE").is_some() {
        for (t, what) in &st.timeline {
            println!("  {t:>12.3?} {what}");
        }
    }
    for ((p, k), m) in &st.media {
        println!(
            "  from {p} {k:?}: {} packets ({} intact, {} corrupted, {} lost), {} keyframes, {} before the first, ssrcs {:?}, first after {:?}",
            m.packets, m.intact, m.corrupted, m.lost(), m.keyframes, m.before_keyframe, m.ssrcs, m.first_after
        );
    }
}

fn has_left(st: &ClientState, who: &str) -> bool {
    left_reason(st, who).is_some()
}

/// The `reason` of the `participant_left` event about `who`, if one came.
fn left_reason(st: &ClientState, who: &str) -> Option<String> {
    st.events.iter().find_map(|e| {
        (e.get("type").and_then(|v| v.as_str()) == Some("participant_left")
            && e.get("participant_id").and_then(|v| v.as_str()) == Some(who))
        .then(|| {
            e.get("reason")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        })
    })
}

fn unpublished_count(st: &ClientState, who: &str) -> usize {
    st.events
        .iter()
        .filter(|e| {
            e.get("type").and_then(|v| v.as_str()) == Some("track_unpublished")
                && e.get("participant_id").and_then(|v| v.as_str()) == Some(who)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_participants_exchange_media_and_one_leaves() -> Result<()> {
    let server = TestServer::start().await?;
    with_log(&server, three_participants(&server)).await
}

async fn three_participants(server: &TestServer) -> Result<()> {
    let meeting = server.create_meeting("Giao ban: ba điểm cầu").await?;
    let a = join(server, &meeting, "UBND huyện Cư Jút").await?;
    let b = join(server, &meeting, "UBND huyện Krông Nô").await?;
    let c = join(server, &meeting, "Sở Tài chính").await?;
    let clients = [&a, &b, &c];
    let ids: Vec<String> = clients
        .iter()
        .map(|c| c.participant_id().to_owned())
        .collect();

    for (i, me) in clients.iter().enumerate() {
        let others: Vec<&str> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p.as_str())
            .collect();
        wait_media_from(me, &others, &[(0, 0), (0, 0)], MEDIA_TIMEOUT).await?;
    }
    for me in clients {
        report(me);
        check_integrity(me)?;
        check_sources(me, server.media_udp)?;
        // Every client learned of all six tracks (its own included).
        let ids = ids.clone();
        me.wait_until(EVENT_TIMEOUT, "all six tracks announced", move |st| {
            ids.iter().all(|p| {
                [Kind::Audio, Kind::Video].iter().all(|k| {
                    st.published_tracks
                        .values()
                        .any(|(pp, kk)| pp == p && kk == k)
                })
            })
        })
        .await?;
    }

    // c leaves: a and b are told, and keep receiving from each other.
    let (cid, aid, bid) = (ids[2].as_str(), ids[0].as_str(), ids[1].as_str());
    c.leave().await?;
    for me in [&a, &b] {
        me.wait_until(
            EVENT_TIMEOUT,
            "participant_left and track_unpublished",
            |st| has_left(st, cid) && unpublished_count(st, cid) >= 2,
        )
        .await?;
    }
    for me in [&a, &b] {
        let reason = left_reason(&me.state(), cid);
        ensure!(
            reason.as_deref() == Some("left"),
            "{}: {cid} left with reason {reason:?}, expected \"left\"",
            me.participant_id()
        );
    }
    let a_base = counts(&a, bid);
    let b_base = counts(&b, aid);
    wait_media_from(&a, &[bid], &[a_base], MEDIA_TIMEOUT).await?;
    wait_media_from(&b, &[aid], &[b_base], MEDIA_TIMEOUT).await?;
    // Nothing of c is forwarded any more.
    let from_c = (counts(&a, cid), counts(&b, cid));
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        from_c == (counts(&a, cid), counts(&b, cid)),
        "media of {cid} still forwarded after it left: {from_c:?} then {:?}",
        (counts(&a, cid), counts(&b, cid))
    );
    for me in [&a, &b] {
        report(me);
        check_integrity(me)?;
        check_sources(me, server.media_udp)?;
    }
    a.leave().await?;
    b.leave().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vanishing_mid_negotiation_disturbs_nobody() -> Result<()> {
    // A vanished participant is kept for the resume grace: keep it short.
    let server = TestServer::start_with_config("[signaling]\nresume_grace_secs = 1\n").await?;
    with_log(&server, vanishing(&server)).await
}

async fn vanishing(server: &TestServer) -> Result<()> {
    let meeting = server
        .create_meeting("Giao ban: một điểm cầu mất kết nối")
        .await?;
    let a = join(server, &meeting, "UBND xã Đắk Wil").await?;
    let b = join(server, &meeting, "UBND xã Ea Pô").await?;
    let (aid, bid) = (a.participant_id().to_owned(), b.participant_id().to_owned());

    // A third one sends its publish offer and its candidate, then drops its
    // WebSocket and its UDP socket without waiting for the answer.
    let url = server
        .invite(&meeting, "Điểm cầu chập chờn", "bridge")
        .await?;
    let token = giaoban_tests::token_of(&url)?;
    let gone = TestClient::publish_and_vanish(&server.ws_url(), token).await?;

    // The others are told it left, and media between them keeps flowing.
    for me in [&a, &b] {
        me.wait_until(
            EVENT_TIMEOUT,
            "participant_left of the vanished one",
            |st| has_left(st, &gone),
        )
        .await?;
    }
    let a_base = counts(&a, &bid);
    let b_base = counts(&b, &aid);
    wait_media_from(&a, &[&bid], &[a_base], MEDIA_TIMEOUT).await?;
    wait_media_from(&b, &[&aid], &[b_base], MEDIA_TIMEOUT).await?;

    // The server still works: one more joins and gets everybody's media.
    let d = join(server, &meeting, "UBND xã Nam Dong").await?;
    wait_media_from(&d, &[&aid, &bid], &[(0, 0), (0, 0)], MEDIA_TIMEOUT).await?;
    for me in [&a, &b, &d] {
        report(me);
        check_integrity(me)?;
        check_sources(me, server.media_udp)?;
        ensure!(
            me.received(&gone, Kind::Audio).packets == 0,
            "{}: media of the vanished participant arrived",
            me.participant_id()
        );
    }

    // d vanishes while sending media (no leave, sockets dropped): a and b
    // are told it was disconnected, its tracks go away, their media goes on.
    let did = d.participant_id().to_owned();
    d.vanish();
    for me in [&a, &b] {
        me.wait_until(
            EVENT_TIMEOUT,
            "participant_left and track_unpublished of the vanished sender",
            |st| has_left(st, &did) && unpublished_count(st, &did) >= 2,
        )
        .await?;
        let reason = left_reason(&me.state(), &did);
        ensure!(
            reason.as_deref() == Some("disconnected"),
            "{}: {did} vanished with reason {reason:?}, expected \"disconnected\"",
            me.participant_id()
        );
    }
    let a_base = counts(&a, &bid);
    let b_base = counts(&b, &aid);
    wait_media_from(&a, &[&bid], &[a_base], MEDIA_TIMEOUT).await?;
    wait_media_from(&b, &[&aid], &[b_base], MEDIA_TIMEOUT).await?;
    for me in [&a, &b] {
        check_integrity(me)?;
        check_sources(me, server.media_udp)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ice_tcp_participant_exchanges_media_with_a_udp_one() -> Result<()> {
    let server = TestServer::start().await?;
    with_log(&server, ice_tcp(&server)).await
}

async fn ice_tcp(server: &TestServer) -> Result<()> {
    let meeting = server
        .create_meeting("Giao ban: điểm cầu chỉ mở TCP")
        .await?;
    let u = join(server, &meeting, "UBND tỉnh Đắk Nông").await?;
    let url = server
        .invite(&meeting, "UBND xã Quảng Sơn", "bridge")
        .await?;
    let token = giaoban_tests::token_of(&url)?;
    let t = TestClient::join_with(
        &server.ws_url(),
        token,
        JoinOptions {
            transport: Transport::Tcp,
            ..JoinOptions::default()
        },
    )
    .await
    .context("the TCP participant joins")?;
    let (uid, tid) = (u.participant_id().to_owned(), t.participant_id().to_owned());
    wait_media_from(&u, &[&tid], &[(0, 0)], MEDIA_TIMEOUT).await?;
    wait_media_from(&t, &[&uid], &[(0, 0)], MEDIA_TIMEOUT).await?;
    for me in [&u, &t] {
        report(me);
        check_integrity(me)?;
    }
    check_sources(&u, server.media_udp)?;
    let addrs = t.remote_addrs();
    ensure!(
        addrs
            .iter()
            .all(|a| a.transport == Transport::Tcp && a.addr == server.media_tcp),
        "the TCP participant got data from elsewhere than {}: {addrs:?}",
        server.media_tcp
    );
    ensure!(
        addrs.iter().any(|a| a.pc == Pc::Publisher) && addrs.iter().any(|a| a.pc == Pc::Subscriber),
        "both connections of the TCP participant should run over TCP: {addrs:?}"
    );
    u.leave().await?;
    t.leave().await?;
    Ok(())
}
