//! What each subscriber receives, decided by the server: the N loudest audio
//! tracks (`media.audio_loudest`), the video of the last N speakers
//! (`media.last_n`) with `video_paused` telling which tracks are held back,
//! and the bandwidth estimate fed by a real subscriber's TWCC feedback.
//! webrtc-rs clients through the real server; the publishers stamp the RFC
//! 6464 audio level on their packets ([`TestClient::set_audio_level`]).
//!
//! Run inside a private network namespace (the test runner does this).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use giaoban_tests::client::{
    received_during, ClientState, JoinOptions, Kind, MediaOptions, TestClient,
};
use giaoban_tests::repair::RepairOptions;
use giaoban_tests::TestServer;
use serde_json::Value;

const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);

async fn start(media: &str) -> Result<(TestServer, String)> {
    let server = TestServer::start_with_config(&format!("[media]\n{media}\n")).await?;
    let meeting = server.create_meeting("Phân bổ").await?;
    Ok((server, meeting))
}

async fn token(server: &TestServer, meeting: &str, name: &str) -> Result<String> {
    let url = server.invite(meeting, name, "bridge").await?;
    Ok(giaoban_tests::token_of(&url)?.to_owned())
}

async fn publisher(server: &TestServer, meeting: &str, name: &str) -> Result<TestClient> {
    let t = token(server, meeting, name).await?;
    TestClient::join(&server.ws_url(), &t)
        .await
        .with_context(|| format!("{name} joins"))
}

async fn receiver(server: &TestServer, meeting: &str, name: &str) -> Result<TestClient> {
    let t = token(server, meeting, name).await?;
    TestClient::join_media(
        &server.ws_url(),
        &t,
        JoinOptions::default(),
        MediaOptions {
            publish: false,
            ..MediaOptions::default()
        },
    )
    .await
    .with_context(|| format!("{name} joins"))
}

/// The latest `video_paused` list a client got, if any.
fn paused(st: &ClientState) -> Option<BTreeSet<String>> {
    st.events
        .iter()
        .rev()
        .find(|e| e.get("type").and_then(Value::as_str) == Some("video_paused"))
        .map(|e| {
            e["track_ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        })
}

/// The video track ids a client knows `p` publishes.
fn video_tracks(st: &ClientState, p: &TestClient) -> BTreeSet<String> {
    st.published_tracks
        .iter()
        .filter(|(_, (owner, kind))| owner == p.participant_id() && *kind == Kind::Video)
        .map(|(id, _)| id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_loudest_audio_is_forwarded_and_the_place_passes_on() -> Result<()> {
    let (server, meeting) = start("audio_loudest = 2\nlast_n = 0").await?;
    let mut pubs = Vec::new();
    for name in ["Xã A", "Xã B", "Xã C", "Xã D"] {
        pubs.push(publisher(&server, &meeting, name).await?);
    }
    let sub = receiver(&server, &meeting, "Huyện").await?;
    let refs: Vec<&TestClient> = pubs.iter().collect();
    // Without audio levels nobody can be judged: everybody is heard.
    sub.wait_until(MEDIA_TIMEOUT, "audio from all four", |st| {
        refs.iter()
            .all(|p| st.received(p.participant_id(), Kind::Audio).intact >= 20)
    })
    .await?;
    // Now they say how loud they are: A loudest, then B, C, D (all audible).
    for (p, level) in pubs.iter().zip([5u8, 15, 30, 45]) {
        p.set_audio_level(Some(level));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = received_during(&sub, &refs, Kind::Audio, Duration::from_secs(3)).await;
    ensure!(
        got[0] >= 100 && got[1] >= 100,
        "the two loudest must be heard: {got:?}"
    );
    ensure!(
        got[2] <= 3 && got[3] <= 3,
        "only the two loudest may be forwarded: {got:?}; {}",
        sub.summary()
    );
    // Video is not affected by the audio selection.
    let video = received_during(&sub, &refs, Kind::Video, Duration::from_secs(1)).await;
    ensure!(video.iter().all(|v| *v >= 10), "video from all: {video:?}");

    // A falls silent: its place is held through a pause, then goes to C
    // (the loudest of those waiting), not to D.
    pubs[0].set_audio_level(Some(127));
    let held = received_during(&sub, &refs, Kind::Audio, Duration::from_millis(400)).await;
    ensure!(
        held[2] <= 3,
        "C must not take A's place during a short pause: {held:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = received_during(&sub, &refs, Kind::Audio, Duration::from_secs(3)).await;
    ensure!(
        got[1] >= 100 && got[2] >= 100,
        "B and C heard after A fell silent: {got:?}"
    );
    ensure!(
        got[0] <= 3 && got[3] <= 3,
        "A (silent) and D not forwarded: {got:?}"
    );

    // The publishers themselves hear the others' loudest too (not themselves).
    let b_hears = received_during(&pubs[1], &refs, Kind::Audio, Duration::from_secs(2)).await;
    ensure!(
        b_hears[2] >= 60 && b_hears[3] >= 60 && b_hears[0] <= 3,
        "B hears C and D, the two loudest others: {b_hears:?}"
    );
    for c in pubs.iter().chain([&sub]) {
        let st = c.state();
        ensure!(
            st.errors.is_empty(),
            "{}: {:?}",
            c.participant_id(),
            st.errors
        );
        ensure!(
            st.corrupted_total() == 0,
            "{}: corrupted packets",
            c.participant_id()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_n_forwards_the_recent_speakers_and_says_what_is_paused() -> Result<()> {
    let (server, meeting) = start("last_n = 2\naudio_loudest = 0").await?;
    let mut pubs = Vec::new();
    for name in ["Xã 1", "Xã 2", "Xã 3", "Xã 4"] {
        pubs.push(publisher(&server, &meeting, name).await?);
    }
    for p in &pubs {
        p.set_audio_level(Some(127));
    }
    let sub = receiver(&server, &meeting, "Tỉnh").await?;
    let refs: Vec<&TestClient> = pubs.iter().collect();
    // Nobody has spoken: the first two to join are shown, the others paused.
    sub.wait_until(MEDIA_TIMEOUT, "video of the first two", |st| {
        refs[..2]
            .iter()
            .all(|p| st.received(p.participant_id(), Kind::Video).intact >= 30)
    })
    .await?;
    let expect: BTreeSet<String> = {
        let st = sub.state();
        video_tracks(&st, &pubs[2])
            .into_iter()
            .chain(video_tracks(&st, &pubs[3]))
            .collect()
    };
    ensure!(expect.len() == 2, "two video tracks of 3 and 4: {expect:?}");
    sub.wait_until(MEDIA_TIMEOUT, "video_paused naming 3 and 4", |st| {
        paused(st).as_ref() == Some(&expect)
    })
    .await?;
    let got = received_during(&sub, &refs, Kind::Video, Duration::from_secs(2)).await;
    ensure!(got[0] >= 30 && got[1] >= 30, "1 and 2 shown: {got:?}");
    ensure!(got[2] <= 2 && got[3] <= 2, "3 and 4 not forwarded: {got:?}");
    // Audio is not limited by last-N.
    let audio = received_during(&sub, &refs, Kind::Audio, Duration::from_secs(1)).await;
    ensure!(audio.iter().all(|a| *a >= 20), "audio from all: {audio:?}");

    // 4 speaks: it becomes the active speaker and takes a place; 2 (the
    // one that joined later of those shown, never spoke) gives it up.
    pubs[3].set_audio_level(Some(10));
    sub.wait_until(MEDIA_TIMEOUT, "4 as the active speaker", |st| {
        st.has_event("active_speaker", |e| {
            e["participant_id"].as_str() == Some(pubs[3].participant_id())
        })
    })
    .await?;
    let expect: BTreeSet<String> = {
        let st = sub.state();
        video_tracks(&st, &pubs[1])
            .into_iter()
            .chain(video_tracks(&st, &pubs[2]))
            .collect()
    };
    sub.wait_until(
        Duration::from_secs(5),
        "video_paused naming 2 and 3",
        |st| paused(st).as_ref() == Some(&expect),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = received_during(&sub, &refs, Kind::Video, Duration::from_secs(2)).await;
    ensure!(
        got[0] >= 30 && got[3] >= 30,
        "1 and 4 shown: {got:?}; {}",
        sub.summary()
    );
    ensure!(got[1] <= 2 && got[2] <= 2, "2 and 3 paused: {got:?}");
    // 4's video restarted at a key frame and its numbering continued.
    let st = sub.state();
    let v4 = st.received(pubs[3].participant_id(), Kind::Video);
    ensure!(
        v4.keyframes >= 1 && v4.ssrcs.len() == 1,
        "4's video: {v4:?}"
    );
    ensure!(st.errors.is_empty(), "errors: {:?}", st.errors);
    ensure!(st.corrupted_total() == 0, "corrupted packets");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twcc_feedback_of_a_lossy_subscriber_constrains_its_estimate() -> Result<()> {
    let (server, meeting) = start("").await?;
    let p = publisher(&server, &meeting, "Xã").await?;
    let clean = receiver(&server, &meeting, "Huyện sạch").await?;
    // Drops every second video datagram on arrival: its TWCC feedback
    // reports them lost (the stack's NACK repairs the picture meanwhile).
    let t = token(&server, &meeting, "Huyện mất gói").await?;
    let lossy = TestClient::join_repair(
        &server.ws_url(),
        &t,
        JoinOptions::default(),
        MediaOptions {
            publish: false,
            ..MediaOptions::default()
        },
        RepairOptions {
            drop_in_every: 2,
            ..RepairOptions::default()
        },
    )
    .await?;
    for c in [&clean, &lossy] {
        c.wait_until(MEDIA_TIMEOUT, "video", |st| {
            st.received(p.participant_id(), Kind::Video).intact >= 60
        })
        .await?;
    }
    let estimate_line = |who: &TestClient| {
        server
            .log()
            .lines()
            .filter(|l| l.contains("bandwidth estimate") && l.contains(who.participant_id()))
            .rfind(|l| l.contains("bps=Some"))
            .map(str::to_owned)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while estimate_line(&lossy).is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let line = estimate_line(&lossy).with_context(|| {
        format!(
            "no constrained estimate for the lossy subscriber; log:\n{}",
            server.log()
        )
    })?;
    println!("lossy subscriber: {line}");
    ensure!(
        estimate_line(&clean).is_none(),
        "the clean subscriber's estimate was constrained: {:?}",
        estimate_line(&clean)
    );
    // Still receiving: the lowest (here the only) layer is never cut.
    let got = received_during(&lossy, &[&p], Kind::Video, Duration::from_secs(2)).await;
    ensure!(
        got[0] >= 20,
        "the lossy subscriber still gets video: {got:?}"
    );
    Ok(())
}

/// The web client in Chromium shows a paused tile (name and a note, no
/// frozen picture) for a participant whose video the server holds back, and
/// follows the server when the list changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_shows_a_paused_tile_for_video_held_back() -> Result<()> {
    use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let (server, meeting) = start("last_n = 1\naudio_loudest = 0").await?;
    let first = publisher(&server, &meeting, "Xã Một").await?;
    let second = publisher(&server, &meeting, "Xã Hai").await?;
    for p in [&first, &second] {
        p.set_audio_level(Some(127));
        p.wait_until(MEDIA_TIMEOUT, "the other's video", |st| {
            st.media
                .iter()
                .any(|((_, k), m)| *k == Kind::Video && m.intact > 10)
        })
        .await?;
    }
    let url = server.invite(&meeting, "Tỉnh", "member").await?;
    let signal = tempfile::tempdir()?;
    let script = {
        let args: Vec<std::ffi::OsString> = vec![
            url.clone().into(),
            first.participant_id().into(),
            second.participant_id().into(),
        ];
        let env = vec![
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", "30000".to_owned()),
            ("E2E_SIGNAL_DIR", signal.path().display().to_string()),
        ];
        tokio::spawn(async move {
            let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
            run_script("paused_tile.mjs", &args, &env, Duration::from_secs(180)).await
        })
    };
    // Once the page shows the later publisher paused, that one speaks.
    let phase1 = signal.path().join("phase1");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !phase1.exists() && !script.is_finished() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.set_audio_level(Some(10));
    let run = script.await??;
    ensure!(
        run.status.success() && run.summary.as_ref().is_some_and(|s| s["ok"] == true),
        "the paused-tile script failed ({}): {:?}\n--- stderr ---\n{}\n--- server log (tail) ---\n{}",
        run.status,
        run.summary,
        run.stderr,
        tail(&server.log(), 40)
    );
    println!("{}", run.stdout.trim());
    Ok(())
}

/// A Chromium publisher sends simulcast (q/h/f). Two webrtc-rs subscribers
/// want its best layer; one drops every second video packet on arrival, so
/// its real TWCC feedback shows heavy loss: its estimate is constrained and
/// it must be moved to a lower layer (a fraction of the clean one's bitrate)
/// while still receiving video, not frozen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_congested_subscriber_gets_a_lower_simulcast_layer() -> Result<()> {
    use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let (server, meeting) = start("").await?;
    let clean = receiver(&server, &meeting, "Huyện sạch").await?;
    let t = token(&server, &meeting, "Huyện mất gói").await?;
    let lossy = TestClient::join_repair(
        &server.ws_url(),
        &t,
        JoinOptions::default(),
        MediaOptions {
            publish: false,
            ..MediaOptions::default()
        },
        RepairOptions {
            drop_in_every: 2,
            ..RepairOptions::default()
        },
    )
    .await?;
    let url = server.invite(&meeting, "Hội trường tỉnh", "member").await?;
    let script = {
        let args: Vec<std::ffi::OsString> = vec![url.clone().into()];
        let env = vec![
            ("CHROMIUM_PATH", chromium),
            ("E2E_HOLD_MS", "30000".to_owned()),
        ];
        tokio::spawn(async move {
            let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
            run_script("publisher_page.mjs", &args, &env, Duration::from_secs(150)).await
        })
    };
    // The page's participant id, from the track it publishes.
    let page_id = || {
        clean
            .state()
            .published_tracks
            .iter()
            .find(|(_, (_, k))| *k == Kind::Video)
            .map(|(t, (p, _))| (p.clone(), format!("track={t}")))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (page, video_track) = loop {
        if let Some(p) = page_id() {
            break p;
        }
        ensure!(
            tokio::time::Instant::now() < deadline && !script.is_finished(),
            "the page published no video; server log:\n{}",
            tail(&server.log(), 40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Let the page's layers start and the allocation settle.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let bytes = |c: &TestClient| c.received(&page, Kind::Video).bytes;
    let (c0, l0) = (bytes(&clean), bytes(&lossy));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let clean_kbps = (bytes(&clean) - c0) * 8 / 5 / 1000;
    let lossy_kbps = (bytes(&lossy) - l0) * 8 / 5 / 1000;
    let estimate = server
        .log()
        .lines()
        .rfind(|l| l.contains("bandwidth estimate") && l.contains(lossy.participant_id()))
        .map(str::to_owned);
    println!(
        "video from the page: clean subscriber {clean_kbps} kbit/s, lossy subscriber {lossy_kbps} kbit/s (payload it got); last estimate: {estimate:?}"
    );
    let log = server.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            (l.contains(lossy.participant_id()) && l.contains("allocation"))
                || l.contains("layers wanted")
                || l.contains("trial")
        })
        .collect();
    println!("allocation log:\n{}", lines.join("\n"));
    let run = script.await??;
    ensure!(
        run.status.success(),
        "the publisher page failed ({}): {}\n{}",
        run.status,
        run.stderr,
        tail(&server.log(), 40)
    );
    ensure!(
        lossy_kbps >= 20,
        "the lossy subscriber still receives video: {lossy_kbps} kbit/s"
    );
    // The server's decision, from the real feedback: the lossy subscriber's
    // video of the page is capped to the lowest layer, the clean one's not
    // (on a busy loopback it may be capped too, but above the lowest).
    // (What that saves depends on the layers Chromium sends on loopback,
    // which vary: the bitrates above are reported, not asserted.)
    let last_cap = |who: &TestClient| {
        log.lines()
            .filter(|l| l.contains("allocation") && l.contains(who.participant_id()))
            .rfind(|l| l.contains(&video_track) && l.contains("cap="))
            .map(str::to_owned)
    };
    // After the cap, the allocator may probe upwards ("trial upgrade", 15 s
    // after the cap): an allocation that follows a trial of this track is
    // that probe, not a decision from the feedback, and does not count.
    let lossy_decisions: Vec<&str> = {
        let mut out = Vec::new();
        let mut after_trial = false;
        for l in log.lines() {
            if !(l.contains(lossy.participant_id()) && l.contains(&video_track)) {
                continue;
            }
            if l.contains("trial upgrade") {
                after_trial = true;
            } else if l.contains("allocation") && l.contains("cap=") {
                if !after_trial {
                    out.push(l);
                }
                after_trial = false;
            }
        }
        out
    };
    let lossy_cap = lossy_decisions.last().copied();
    ensure!(
        lossy_cap.is_some_and(|l| l.contains("cap=Low")),
        "the lossy subscriber's video must be capped to the lowest layer: {lossy_cap:?}"
    );
    let clean_cap = last_cap(&clean);
    ensure!(
        clean_cap.as_deref().is_none_or(|l| !l.contains("cap=Low")),
        "the clean subscriber's video was held to the lowest layer: {clean_cap:?}"
    );
    Ok(())
}
