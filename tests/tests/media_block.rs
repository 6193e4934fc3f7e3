//! The chair's mute is enforced by the SFU, and the floor opens it again
//! (issue 20): webrtc-rs clients through the real server. A chair and two
//! bridge points; bridge point A speaks (Opus with a loud RFC 6464 level,
//! and VP8) and keeps sending while blocked; B receives in slots, the chair
//! with a track per published track. Packet counts at the receivers decide,
//! not a flag:
//! - `mute_participant` (audio): after the `ok` and a short grace for
//!   packets in flight, B and the chair receive (nearly) none of A's audio
//!   while A keeps sending it, and A's video still arrives; no
//!   `active_speaker` names A meanwhile;
//! - `give_floor` to A: A's audio arrives again at B and at the chair within
//!   a bound; the time from the request to the first packet is printed.
//!
//! Run inside a private network namespace (the test runner does this):
//! `GIAOBAN_TEST_QUICK=1 scripts/test --test media_block -- --nocapture`.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::client::{ClientState, JoinOptions, Kind, MediaOptions, TestClient};
use giaoban_tests::TestServer;
use serde_json::{json, Value};

/// Time allowed for connecting and the first packets to flow.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
/// Time allowed for a request's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Packets already on their way when the block took effect: not counted.
const GRACE: Duration = Duration::from_millis(300);
/// How long after the mute request its effect is watched closely (the
/// last packet of A's audio to arrive), before the window below.
const WATCH: Duration = Duration::from_millis(600);
/// How long the block is watched at the receivers.
const BLOCKED_WINDOW: Duration = Duration::from_secs(2);
/// A's audio packets a receiver may still get in that window (none are
/// expected; one stray packet reordered across the grace is tolerated).
const BLOCKED_MAX: u64 = 1;
/// The bound on the time from `give_floor` to A's first audio packet at a
/// receiver (loopback; 12-21 ms measured on the 2-core development machine,
/// docs/performance.md, "The floor: from `give_floor` to the first audio").
const FLOOR_BOUND: Duration = Duration::from_millis(1500);

async fn join(
    server: &TestServer,
    meeting: &str,
    name: &str,
    role: &str,
    options: JoinOptions,
) -> Result<TestClient> {
    let url = server.invite(meeting, name, role).await?;
    let token = giaoban_tests::token_of(&url)?;
    TestClient::join_media(&server.ws_url(), token, options, MediaOptions::default())
        .await
        .with_context(|| format!("{name} joins"))
}

/// Audio packets `c` received from `from`. A receiver in slots attributes
/// a slot's packets by the server's latest `slots` message, which may come
/// just after a slot's first packets: those count as `"?"`, and no other
/// audio than A's can be unattributed here (every other publisher's slot
/// keeps its owner), so they count for A.
fn audio_from(st: &ClientState, from: &str) -> u64 {
    st.received(from, Kind::Audio).packets + st.received("?", Kind::Audio).packets
}

/// Answers (`ok` or `error`) among the events.
fn answers(st: &ClientState) -> usize {
    st.events
        .iter()
        .filter(|e| e["type"] == "ok" || e["type"] == "error")
        .count()
}

/// Sends a request as `c` and waits for its answer; fails on an `error`.
/// Returns when the `ok` was seen. (Requests are sent one at a time, while
/// nothing else awaits an answer: the media is negotiated and steady.)
async fn request(c: &TestClient, body: Value) -> Result<Instant> {
    let before = answers(&c.state());
    c.send(body.clone())?;
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    loop {
        {
            let st = c.state();
            let new: Vec<&Value> = st
                .events
                .iter()
                .filter(|e| e["type"] == "ok" || e["type"] == "error")
                .skip(before)
                .collect();
            if let Some(e) = new.iter().find(|e| e["type"] == "error") {
                bail!("{body} was answered {e}");
            }
            if !new.is_empty() {
                return Ok(Instant::now());
            }
        }
        if Instant::now() >= deadline {
            bail!("no answer to {body} within {ANSWER_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Polls every 2 ms until `cond` holds; returns when it did.
async fn poll_until(
    c: &TestClient,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&ClientState) -> bool,
) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if cond(&c.state()) {
            return Ok(Instant::now());
        }
        if Instant::now() >= deadline {
            bail!(
                "{}: no {what} within {timeout:?}; {}",
                c.participant_id(),
                c.summary()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `active_speaker` messages naming `who` among `c`'s events.
fn speaker_events(c: &TestClient, who: &str) -> usize {
    c.state()
        .events
        .iter()
        .filter(|e| e["type"] == "active_speaker" && e["participant_id"] == who)
        .count()
}

/// Runs a test body; on failure, adds the end of the server's log.
async fn with_log(
    server: &TestServer,
    body: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    let result = body.await;
    let log = server.log();
    if let Err(e) = result {
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        bail!("{e:#}\n--- end of the server log ---\n{tail}");
    }
    ensure!(!log.contains("panicked"), "the server panicked:\n{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_bridge_point_is_heard_by_nobody_until_given_the_floor() -> Result<()> {
    let server = TestServer::start().await?;
    with_log(&server, async {
        let meeting = server.create_meeting("Giao ban: quyền nói").await?;
        let chair = join(
            &server,
            &meeting,
            "Chủ tọa",
            "chair",
            JoinOptions::default(),
        )
        .await?;
        // Bridge points wait until the meeting starts.
        request(&chair, json!({"type": "start_meeting"})).await?;
        let a = join(&server, &meeting, "Xã A", "bridge", JoinOptions::default()).await?;
        let b = join(
            &server,
            &meeting,
            "Xã B",
            "bridge",
            JoinOptions {
                slots: true,
                ..JoinOptions::default()
            },
        )
        .await?;
        // A speaks loudly: the allocation and the active speaker judge it.
        a.set_audio_level(Some(10));
        let aid = a.participant_id().to_owned();
        let receivers = [&chair, &b];

        // Before: A's audio and video reach both, and A is the speaker.
        for r in receivers {
            let id = aid.clone();
            r.wait_until(MEDIA_TIMEOUT, "A's audio and video", move |st| {
                audio_from(st, &id) >= 50 && st.received(&id, Kind::Video).intact >= 30
            })
            .await?;
        }
        b.wait_until(MEDIA_TIMEOUT, "A as the active speaker", |st| {
            st.has_event("active_speaker", |e| e["participant_id"] == aid.as_str())
        })
        .await?;

        // A's audio flows right up to the block (so that none after it
        // means the block, not a stream that stopped).
        let before: Vec<u64> = receivers
            .iter()
            .map(|r| audio_from(&r.state(), &aid))
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (r, n) in receivers.iter().zip(before) {
            let got = audio_from(&r.state(), &aid) - n;
            ensure!(
                got >= 15,
                "{} received only {got} of A's audio packets in 500 ms before the block",
                r.participant_id()
            );
        }

        // The chair blocks A's audio.
        let sent_before = a.state().sent.get(&Kind::Audio).copied().unwrap_or(0);
        // While the request is answered and for the grace after, note when
        // A's audio last arrived at each receiver.
        let asked = Instant::now();
        let watch = async {
            let mut last_at = [None; 2];
            let mut seen: Vec<u64> = receivers
                .iter()
                .map(|r| audio_from(&r.state(), &aid))
                .collect();
            while asked.elapsed() < WATCH {
                for (i, r) in receivers.iter().enumerate() {
                    let n = audio_from(&r.state(), &aid);
                    if n != seen[i] {
                        seen[i] = n;
                        last_at[i] = Some(asked.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            last_at
        };
        let (ok, last_at) = tokio::join!(
            request(
                &chair,
                json!({"type": "mute_participant", "participant_id": aid, "kind": "audio", "muted": true}),
            ),
            watch
        );
        let ok = ok?;
        println!(
            "mute_participant answered after {} ms",
            (ok - asked).as_millis()
        );
        for (r, last) in receivers.iter().zip(last_at) {
            println!(
                "mute -> A's last audio at {}: {}",
                r.participant_id(),
                match last {
                    Some(t) => format!("{} ms after the request", t.as_millis()),
                    None => "before the request".to_owned(),
                }
            );
        }
        // The window starts after the grace, whenever the ok came.
        if let Some(rest) = (ok + GRACE).checked_duration_since(Instant::now()) {
            tokio::time::sleep(rest).await;
        }
        let base: Vec<(u64, u64)> = receivers
            .iter()
            .map(|r| {
                let st = r.state();
                (audio_from(&st, &aid), st.received(&aid, Kind::Video).intact)
            })
            .collect();
        let speaker_base = [speaker_events(&b, &aid), speaker_events(&chair, &aid)];
        tokio::time::sleep(BLOCKED_WINDOW).await;
        let sent_after = a.state().sent.get(&Kind::Audio).copied().unwrap_or(0);
        let sent = sent_after - sent_before;
        ensure!(
            sent >= 50,
            "A sent only {sent} audio packets while blocked: it must keep sending"
        );
        for (r, (audio0, video0)) in receivers.iter().zip(&base) {
            let st = r.state();
            let audio = audio_from(&st, &aid) - audio0;
            let video = st.received(&aid, Kind::Video).intact - video0;
            println!(
                "blocked {:?}: {} got {audio} of A's audio packets (A sent {sent}) and {video} video packets",
                BLOCKED_WINDOW,
                r.participant_id()
            );
            ensure!(
                audio <= BLOCKED_MAX,
                "{} received {audio} of A's audio packets while A was blocked",
                r.participant_id()
            );
            ensure!(
                video >= 20,
                "{} received only {video} of A's video packets: only audio was blocked",
                r.participant_id()
            );
        }
        ensure!(
            [speaker_events(&b, &aid), speaker_events(&chair, &aid)] == speaker_base,
            "a blocked participant was announced as the active speaker"
        );
        ensure!(
            b.state()
                .has_event("media_blocked", |e| e["participant_id"] == aid.as_str()
                    && e["audio_blocked"] == true),
            "B was not told of A's block"
        );

        // The floor to A: its audio is heard again.
        let base: Vec<u64> = receivers
            .iter()
            .map(|r| audio_from(&r.state(), &aid))
            .collect();
        let asked = Instant::now();
        let firsts = futures_util::future::try_join_all(receivers.iter().zip(&base).map(
            |(r, n)| {
                let id = aid.clone();
                async move {
                    let at = poll_until(r, FLOOR_BOUND, "audio of A after the floor", move |st| {
                        audio_from(st, &id) > *n
                    })
                    .await?;
                    anyhow::Ok((r.participant_id().to_owned(), at - asked))
                }
            },
        ));
        let (ok, waits) = tokio::join!(
            request(&chair, json!({"type": "give_floor", "participant_id": aid})),
            firsts
        );
        let (ok, waits) = (ok?, waits?);
        println!("give_floor answered after {} ms", (ok - asked).as_millis());
        for (who, after) in &waits {
            println!("floor -> first packet at {who}: {} ms", after.as_millis());
        }
        // And it keeps coming, at the rate A sends (50 a second).
        for (r, n) in receivers.iter().zip(&base) {
            let id = aid.clone();
            let n = *n;
            r.wait_until(Duration::from_secs(3), "A's audio flowing again", move |st| {
                audio_from(st, &id) >= n + 50
            })
            .await?;
        }
        // It speaks: the active speaker again (its loudness was kept).
        b.wait_until(Duration::from_secs(5), "A as the speaker again", |st| {
            st.events
                .iter()
                .filter(|e| e["type"] == "active_speaker" && e["participant_id"] == aid.as_str())
                .count()
                > speaker_base[0]
        })
        .await?;
        for c in [&chair, &a, &b] {
            let st = c.state();
            ensure!(
                st.errors.is_empty(),
                "{}: errors: {:?}",
                c.participant_id(),
                st.errors
            );
            ensure!(
                st.corrupted_total() == 0,
                "{}: corrupted packets: {}",
                c.participant_id(),
                c.summary()
            );
        }
        Ok(())
    })
    .await
}
