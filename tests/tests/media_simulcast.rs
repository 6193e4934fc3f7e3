//! The webrtc-rs test client as a simulcast publisher
//! ([`MediaOptions::simulcast`]: three rid layers q/h/f on undeclared SSRCs,
//! `mid`/`rtp-stream-id` header extensions, as Chromium sends them) through
//! the real server: a subscriber receives the layer it asks for with
//! `set_quality`, and the publisher stops sending the layers nobody
//! receives (`layers_wanted`) and resumes them at a key frame. The load
//! benchmark's `giaoban100` clients publish this way
//! (`tests/src/bin/loadgen.rs`), so this guards the client it relies on.
//!
//! Run inside a private network namespace (the test runner does this).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use giaoban_tests::client::{ClientState, JoinOptions, Kind, MediaOptions, TestClient};
use giaoban_tests::repair::RepairOptions;
use giaoban_tests::{token_of, TestServer};

const MEDIA_TIMEOUT: Duration = Duration::from_secs(15);

/// Packets of each layer (q, h, f) `st` received of `pid`'s video.
fn layers(st: &ClientState, pid: &str) -> [u64; 3] {
    let m = st.received(pid, Kind::Video);
    [1u8, 2, 3].map(|l| m.layers.get(&l).map_or(0, |x| x.0))
}

/// Packets of each layer received during `window`.
async fn layers_during(c: &TestClient, pid: &str, window: Duration) -> [u64; 3] {
    let before = layers(&c.state(), pid);
    tokio::time::sleep(window).await;
    let after = layers(&c.state(), pid);
    [0, 1, 2].map(|i| after[i] - before[i])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulcast_test_client_is_received_on_the_layer_asked_for() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("Simulcast").await?;
    let token = |name: &'static str| {
        let (server, meeting) = (&server, &meeting);
        async move {
            let url = server.invite(meeting, name, "bridge").await?;
            anyhow::Ok(token_of(&url)?.to_owned())
        }
    };
    let publisher = TestClient::join_repair(
        &server.ws_url(),
        &token("Điểm cầu phát").await?,
        JoinOptions::default(),
        MediaOptions {
            simulcast: true,
            // 2 400 bytes a frame at f: 600 at q, 1 200 at h.
            video_frame_bytes: Some(2400),
            ..MediaOptions::default()
        },
        RepairOptions {
            answer_keyframe_requests: true,
            ..RepairOptions::default()
        },
    )
    .await
    .context("the publisher joins")?;
    let viewer = TestClient::join_media(
        &server.ws_url(),
        &token("Điểm cầu xem").await?,
        JoinOptions::default(),
        MediaOptions {
            publish: false,
            ..MediaOptions::default()
        },
    )
    .await
    .context("the viewer joins")?;
    let pid = publisher.participant_id().to_owned();
    viewer
        .wait_until(MEDIA_TIMEOUT, "the publisher's video track", |st| {
            st.published_tracks
                .values()
                .any(|(p, k)| *p == pid && *k == Kind::Video)
        })
        .await?;
    let track = viewer
        .state()
        .published_tracks
        .iter()
        .find(|(_, (p, k))| *p == pid && *k == Kind::Video)
        .map(|(t, _)| t.clone())
        .context("video track")?;

    // No set_quality yet: the server sends the best layer, f.
    viewer
        .wait_until(MEDIA_TIMEOUT, "the f layer (high by default)", |st| {
            layers(st, &pid)[2] > 0
        })
        .await?;
    let high = layers_during(&viewer, &pid, Duration::from_secs(1)).await;

    // low: the q layer, from one of its key frames on. Asked in the list
    // form, with a track that does not exist beside it: that one is named
    // in the answer, the real one is set.
    viewer.set_qualities(&[&track, "t-gone"], "low")?;
    viewer
        .wait_until(MEDIA_TIMEOUT, "ok naming t-gone unknown", |st| {
            st.events.iter().any(|e| {
                e["type"] == "ok" && e["unknown_track_ids"] == serde_json::json!(["t-gone"])
            })
        })
        .await?;
    viewer
        .wait_until(MEDIA_TIMEOUT, "the q layer after set_quality low", |st| {
            layers(st, &pid)[0] > 0
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let low = layers_during(&viewer, &pid, Duration::from_secs(1)).await;
    // Nobody receives h and f any more: the server asks the publisher to
    // pause them (after 3 s).
    publisher
        .wait_until(MEDIA_TIMEOUT, "layers_wanted: q only", |st| {
            st.layers_active == ["q"]
        })
        .await?;
    let sent_low = publisher.state().sent.get(&Kind::Video).copied();

    // high again: f resumes (with a key frame) and reaches the viewer.
    viewer.set_quality(&track, "high")?;
    publisher
        .wait_until(MEDIA_TIMEOUT, "layers_wanted: f again", |st| {
            st.layers_active.iter().any(|l| l == "f")
        })
        .await?;
    let f_before = layers(&viewer.state(), &pid)[2];
    viewer
        .wait_until(MEDIA_TIMEOUT, "the f layer after set_quality high", |st| {
            layers(st, &pid)[2] > f_before
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let high_again = layers_during(&viewer, &pid, Duration::from_secs(1)).await;

    let vst = viewer.state();
    let m = vst.received(&pid, Kind::Video);
    let pst = publisher.state();
    println!(
        "layers q/h/f received in 1 s: high {high:?}, low {low:?}, high again {high_again:?}; \
         layers active at the publisher {:?}; video sent {:?} (when paused: {sent_low:?}); \
         key frames on request {}; gaps {}; corrupted {}; misattributed {}",
        pst.layers_active,
        pst.sent.get(&Kind::Video),
        pst.keyframes_on_request,
        m.gaps,
        m.corrupted,
        m.misattributed
    );
    ensure!(
        high[2] > 0 && high[0] == 0 && high[1] == 0,
        "high: {high:?}"
    );
    ensure!(low[0] > 0 && low[1] == 0 && low[2] == 0, "low: {low:?}");
    ensure!(
        high_again[2] > 0 && high_again[0] == 0 && high_again[1] == 0,
        "high again: {high_again:?}"
    );
    ensure!(
        m.corrupted == 0 && m.misattributed == 0,
        "corrupted {} misattributed {}",
        m.corrupted,
        m.misattributed
    );
    ensure!(
        vst.errors.is_empty() && pst.errors.is_empty(),
        "errors: viewer {:?}, publisher {:?}",
        vst.errors,
        pst.errors
    );
    Ok(())
}
