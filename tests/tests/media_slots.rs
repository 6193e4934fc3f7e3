//! Receiving in slots (`join` with `"receive": "slots"`): the subscriber
//! connection negotiates only as many tracks of a kind as it is forwarded
//! at once, and the server's `slots` messages say whose track each carries.
//! webrtc-rs clients through the real server; the publishers stamp the RFC
//! 6464 audio level, so the allocation (last-N, loudest audio) decides.
//! Received media is attributed by the `slots` messages and checked against
//! the sender each payload names, so a track sent on the wrong slot, or
//! announced for the wrong slot, counts as misattributed.
//!
//! Run inside a private network namespace (the test runner does this).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use giaoban_tests::client::{
    received_during, ClientState, JoinOptions, Kind, MediaOptions, TestClient,
};
use giaoban_tests::TestServer;

const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);

/// The `m=` sections of the latest subscriber offer: (kind, msid stream id).
fn offered(st: &ClientState) -> Vec<(String, String)> {
    let Some(sdp) = st
        .events
        .iter()
        .rev()
        .find(|e| e["type"] == "subscriber_offer")
        .and_then(|e| e["sdp"].as_str())
    else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for line in sdp.lines() {
        if let Some(rest) = line.strip_prefix("m=") {
            out.push((
                rest.split(' ').next().unwrap_or("").to_owned(),
                String::new(),
            ));
        } else if let (Some(rest), Some(last)) = (line.strip_prefix("a=msid:"), out.last_mut()) {
            last.1 = rest.split(' ').next().unwrap_or("").to_owned();
        }
    }
    out
}

/// The participants the latest `slots` message says the slots of `kind` carry.
fn carried(st: &ClientState, kind: &str) -> BTreeSet<String> {
    st.events
        .iter()
        .rev()
        .find(|e| e["type"] == "slots")
        .and_then(|e| e["slots"].as_array())
        .into_iter()
        .flatten()
        .filter(|s| s["kind"] == kind)
        .filter_map(|s| s["participant_id"].as_str().map(str::to_owned))
        .collect()
}

fn ids(clients: &[&TestClient]) -> BTreeSet<String> {
    clients
        .iter()
        .map(|c| c.participant_id().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_in_slots_gets_the_allocated_tracks_on_few_slots() -> Result<()> {
    let server = TestServer::start_with_config("[media]\nlast_n = 2\naudio_loudest = 1\n").await?;
    let meeting = server.create_meeting("Khe").await?;
    let mut pubs = Vec::new();
    for name in ["Xã 1", "Xã 2", "Xã 3", "Xã 4"] {
        let url = server.invite(&meeting, name, "bridge").await?;
        let t = giaoban_tests::token_of(&url)?;
        let p = TestClient::join(&server.ws_url(), t)
            .await
            .with_context(|| format!("{name} joins"))?;
        // 1 speaks; the others are silent.
        p.set_audio_level(Some(if pubs.is_empty() { 10 } else { 127 }));
        pubs.push(p);
    }
    let refs: Vec<&TestClient> = pubs.iter().collect();
    let url = server.invite(&meeting, "Tỉnh", "chair").await?;
    let sub = TestClient::join_media(
        &server.ws_url(),
        giaoban_tests::token_of(&url)?,
        JoinOptions {
            slots: true,
            ..JoinOptions::default()
        },
        MediaOptions {
            publish: false,
            ..MediaOptions::default()
        },
    )
    .await
    .context("the subscriber in slots joins")?;
    ensure!(
        sub.state()
            .events
            .iter()
            .any(|e| e["type"] == "joined" && e["receive"] == "slots"),
        "joined must confirm receiving in slots"
    );

    // 1 (the speaker) and 2 (the first to join of the others) are shown,
    // 1 is heard.
    sub.wait_until(MEDIA_TIMEOUT, "video of 1 and 2, audio of 1", |st| {
        st.received(refs[0].participant_id(), Kind::Video).intact >= 30
            && st.received(refs[1].participant_id(), Kind::Video).intact >= 30
            && st.received(refs[0].participant_id(), Kind::Audio).intact >= 30
    })
    .await
    .with_context(|| sub.summary())?;
    {
        let st = sub.state();
        let sections = offered(&st);
        let expect: Vec<(String, String)> = [
            ("video", "slot-v0"),
            ("video", "slot-v1"),
            ("audio", "slot-a0"),
        ]
        .iter()
        .map(|(k, s)| ((*k).to_owned(), (*s).to_owned()))
        .collect();
        let mut got = sections.clone();
        got.sort();
        let mut want = expect.clone();
        want.sort();
        ensure!(
            got == want,
            "one audio and two video slots, nothing else: {sections:?}"
        );
        ensure!(
            carried(&st, "video") == ids(&refs[..2]),
            "video slots carry 1 and 2"
        );
        ensure!(
            carried(&st, "audio") == ids(&refs[..1]),
            "the audio slot carries 1"
        );
    }
    let video = received_during(&sub, &refs, Kind::Video, Duration::from_secs(2)).await;
    ensure!(
        video[0] >= 30 && video[1] >= 30 && video[2] == 0 && video[3] == 0,
        "video of 1 and 2 only: {video:?}"
    );
    let audio = received_during(&sub, &refs, Kind::Audio, Duration::from_secs(2)).await;
    ensure!(
        audio[0] >= 60 && audio[1..].iter().all(|a| *a == 0),
        "audio of 1 only: {audio:?}"
    );

    // 4 speaks and 1 falls silent: 4 takes the audio slot and a video slot
    // (that of 2, who never spoke), on the same two SSRCs as before.
    pubs[3].set_audio_level(Some(5));
    pubs[0].set_audio_level(Some(127));
    sub.wait_until(MEDIA_TIMEOUT, "4 in the slots", |st| {
        let four = refs[3].participant_id().to_owned();
        carried(st, "audio").contains(&four) && carried(st, "video").contains(&four)
    })
    .await
    .with_context(|| sub.summary())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let video = received_during(&sub, &refs, Kind::Video, Duration::from_secs(2)).await;
    ensure!(
        video[0] >= 30 && video[3] >= 30 && video[1] == 0 && video[2] == 0,
        "video of 1 and 4 only: {video:?}; {}",
        sub.summary()
    );
    let audio = received_during(&sub, &refs, Kind::Audio, Duration::from_secs(2)).await;
    ensure!(
        audio[3] >= 60 && audio[..3].iter().all(|a| *a == 0),
        "audio of 4 only: {audio:?}"
    );
    let st = sub.state();
    ensure!(
        offered(&st).len() == 3,
        "no slot added for a switch: {:?}",
        offered(&st)
    );
    let mut video_ssrcs = BTreeSet::new();
    let mut audio_ssrcs = BTreeSet::new();
    for p in &refs {
        let v = st.received(p.participant_id(), Kind::Video);
        let a = st.received(p.participant_id(), Kind::Audio);
        ensure!(
            v.misattributed == 0 && a.misattributed == 0,
            "{}: media on a slot announced for somebody else",
            p.participant_id()
        );
        ensure!(
            v.before_keyframe == 0,
            "{}: video before its keyframe on a slot: {v:?}",
            p.participant_id()
        );
        video_ssrcs.extend(v.ssrcs);
        audio_ssrcs.extend(a.ssrcs);
    }
    ensure!(
        video_ssrcs.len() == 2 && audio_ssrcs.len() == 1,
        "video on two SSRCs and audio on one: {video_ssrcs:?} {audio_ssrcs:?}"
    );
    let v4 = st.received(refs[3].participant_id(), Kind::Video);
    ensure!(v4.keyframes >= 1, "4's video starts at a keyframe: {v4:?}");
    ensure!(st.errors.is_empty(), "errors: {:?}", st.errors);
    ensure!(st.corrupted_total() == 0, "corrupted packets");
    Ok(())
}
