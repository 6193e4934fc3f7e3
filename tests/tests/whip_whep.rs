//! WHIP ingest and WHEP egress through the real server, checked with aiortc
//! (an independent WebRTC implementation, Python) and our webrtc-rs client.
//!
//! `tests/whip/whip_whep.py` publishes a synthetic camera and a tone with WHIP
//! as the meeting's chair, trickles a candidate (PATCH), then plays the main
//! view with WHEP and counts the frames and samples it decodes. A second
//! aiortc publisher sends H.264 only (as an encoder would); when the chair
//! leaves, the player's main view moves to it, and the same outgoing video
//! track carries H.264. The player also checks our RTCP: sender reports for
//! both tracks (NTP time, the RTP timestamp of the rewritten stream it
//! receives, packet and octet counts, and aiortc's `remote-outbound-rtp`
//! statistics built from them), and NACK repair: it drops every 25th video
//! packet on arrival and must get each one back, over RTX (which the answer
//! negotiates) naming the codec of the packet, VP8 or H.264. A webrtc-rs
//! participant in the meeting must see the WHIP publisher join, receive its
//! media, and see it leave when the script DELETEs its session. The HTTP
//! errors (tokens, media types, sizes, unknown sessions) are checked directly.
//!
//! Needs python3 with aiortc (scripts/test installs the pinned version), and
//! runs inside the private network namespace like the other media tests.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::client::{JoinOptions, Kind, MediaOptions, TestClient};
use giaoban_tests::{token_of, TestServer};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("whip/whip_whep.py")
}

/// Runs the aiortc script; returns its JSON events (and fails with its
/// output when it fails).
async fn run_script(args: &[&str]) -> Result<Vec<Value>> {
    let mut child = tokio::process::Command::new("python3")
        .arg(script())
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("run python3 (the WHIP/WHEP test needs aiortc: scripts/test installs it)")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let err_task = tokio::spawn(async move {
        let mut out = String::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            out.push_str(&l);
            out.push('\n');
        }
        out
    });
    let mut events = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    let status = tokio::time::timeout(SCRIPT_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => events.push(v),
                Err(_) => events.push(Value::String(line)),
            }
        }
        child.wait().await.context("wait for python3")
    })
    .await
    .context("the aiortc script did not finish in time")??;
    let stderr = err_task.await.unwrap_or_default();
    if !status.success() {
        bail!("the aiortc script failed ({status}); events: {events:?}; stderr:\n{stderr}");
    }
    Ok(events)
}

fn event<'a>(events: &'a [Value], name: &str) -> Result<&'a Value> {
    events
        .iter()
        .find(|e| e["event"] == name)
        .with_context(|| format!("no {name} event in {events:?}"))
}

#[tokio::test]
async fn aiortc_publishes_with_whip_and_plays_the_main_view_with_whep() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("Giao ban WHIP").await?;
    let mixer_url = server
        .invite(&meeting, "Bàn trộn hội trường", "chair")
        .await?;
    let player_url = server.invite(&meeting, "Màn hình tỉnh", "observer").await?;
    let camera_url = server.invite(&meeting, "Camera huyện", "bridge").await?;
    let bridge_url = server.invite(&meeting, "Xã Tân Phú", "bridge").await?;

    // A participant that only receives.
    let bridge = TestClient::join_media(
        &server.ws_url(),
        token_of(&bridge_url)?,
        JoinOptions::default(),
        MediaOptions {
            publish: false,
            ..MediaOptions::default()
        },
    )
    .await?;

    let base = server.base_url();
    let events = run_script(&[
        "--base",
        &base,
        "--meeting",
        &meeting,
        "--whip-token",
        token_of(&mixer_url)?,
        "--whep-token",
        token_of(&player_url)?,
        "--play-seconds",
        "4",
        "--drop-every",
        "25",
        "--h264-whip-token",
        token_of(&camera_url)?,
        "--switch-seconds",
        "3",
    ])
    .await
    .with_context(|| format!("server log:\n{}", server.log()))?;

    // WHIP: created, connected, trickle accepted, deleted.
    let created = event(&events, "whip_created")?;
    let location = created["location"].as_str().unwrap_or_default();
    ensure!(
        location.starts_with(&format!("/whip/{meeting}/")),
        "Location {location}"
    );
    ensure!(created["etag"].as_str().is_some_and(|e| e.starts_with('"')));
    event(&events, "whip_connected")?;
    ensure!(event(&events, "whip_patched")?["status"] == 204);
    ensure!(event(&events, "whip_deleted")?["status"] == 200);

    // WHEP: the player decoded the chair's (the WHIP publisher's) media.
    let played = event(&events, "whep_result")?;
    let frames = played["video_frames"].as_u64().unwrap_or(0);
    let samples = played["audio_samples"].as_u64().unwrap_or(0);
    println!(
        "WHEP player decoded {frames} video frames and {samples} audio samples in 4 s: {played}"
    );
    ensure!(frames >= 40, "too few video frames decoded: {played}");
    ensure!(
        played["width"] == 320 && played["height"] == 240,
        "frame size: {played}"
    );
    ensure!(samples >= 48_000, "too few audio samples decoded: {played}");
    ensure!(
        played["video_codecs"]["VP8"].as_u64().unwrap_or(0) > 0
            && played["video_codecs"]["H264"].is_null(),
        "the chair's video is VP8: {played}"
    );
    // The chair left: the main view moved to the H.264 camera, on the same
    // outgoing tracks (a codec switch without renegotiation).
    let switched = event(&events, "whep_switched")?;
    println!("after the switch to the H.264 camera, in 3 s: {switched}");
    ensure!(
        switched["video_codecs"]["H264"].as_u64().unwrap_or(0) >= 30,
        "too few H.264 packets after the switch: {switched}"
    );
    // Few when the machine is loaded (aiortc decodes H.264 in software
    // beside two encoders): 13 to 90 seen.
    ensure!(
        switched["video_frames"].as_u64().unwrap_or(0) >= 5,
        "too few video frames decoded after the switch: {switched}"
    );
    ensure!(
        switched["audio_samples"].as_u64().unwrap_or(0) >= 48_000,
        "too few audio samples after the switch: {switched}"
    );
    check_whep_rtcp(event(&events, "whep_rtcp")?)?;
    ensure!(event(&events, "whep_deleted")?["status"] == 200);
    ensure!(event(&events, "whip_h264_deleted")?["status"] == 200);

    // The webrtc-rs participant saw the WHIP publisher as a participant,
    // received its media, and saw it leave on DELETE.
    let joined = {
        let st = bridge.state();
        st.events
            .iter()
            .find(|e| {
                e["type"] == "participant_joined"
                    && e["participant"]["name"] == "Bàn trộn hội trường"
            })
            .cloned()
            .with_context(|| format!("no participant_joined of the mixer: {}", bridge.summary()))?
    };
    ensure!(joined["participant"]["role"] == "chair", "{joined}");
    let pid = joined["participant"]["id"]
        .as_str()
        .context("participant id")?
        .to_owned();
    let video = bridge.received(&pid, Kind::Video);
    let audio = bridge.received(&pid, Kind::Audio);
    println!(
        "webrtc-rs participant received {} video and {} audio packets from the WHIP publisher",
        video.packets, audio.packets
    );
    ensure!(
        video.packets >= 60 && audio.packets >= 100,
        "media from the WHIP publisher: video {video:?}, audio {audio:?}"
    );
    ensure!(
        bridge
            .state()
            .has_event("track_published", |e| e["track"]["participant_id"] == pid),
        "no track_published of the WHIP publisher"
    );
    bridge
        .wait_until(
            EVENT_TIMEOUT,
            "participant_left of the WHIP publisher",
            |st| {
                st.has_event("participant_left", |e| {
                    e["participant_id"] == pid.as_str() && e["reason"] == "left"
                })
            },
        )
        .await?;
    Ok(())
}

/// What the aiortc player saw of our RTCP (the script's `whep_rtcp` event).
fn check_whep_rtcp(rtcp: &Value) -> Result<()> {
    println!("WHEP player's view of our RTCP: {rtcp}");
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    for kind in ["audio", "video"] {
        let sr = &rtcp[kind];
        // A report a second (the stack's interval) over 4 s of playing.
        ensure!(
            sr["reports"].as_u64().unwrap_or(0) >= 2,
            "{kind}: too few sender reports: {rtcp}"
        );
        // The same machine's clock: the NTP time is now (give or take the
        // player's own delay on a loaded machine).
        ensure!(
            num(&sr["ntp_vs_clock_ms"]) < 500.0,
            "{kind}: NTP time off the clock: {rtcp}"
        );
        // The RTP timestamp is the one of the stream the player receives
        // (rewritten by the SFU, across the switch of sources), at the
        // report's NTP time: off by the delivery delay (and the player's
        // own lag on a loaded machine: up to ~100 ms seen), where the
        // publishers' own timestamps would be off by anything.
        ensure!(
            num(&sr["rtp_vs_arrivals_ms"]) < 500.0,
            "{kind}: RTP timestamp off the received stream: {rtcp}"
        );
        // Counts of what was sent match what arrived by then (the player
        // counts its deliberately dropped packets as arrived).
        let last = &sr["last"];
        let (sent, got) = (num(&last["packets"]), num(&last["received_packets"]));
        ensure!(
            sent > 0.0 && (sent - got).abs() <= 3.0 + got * 0.02,
            "{kind}: packet count {sent} against {got} received: {rtcp}"
        );
        let (sent, got) = (num(&last["octets"]), num(&last["received_octets"]));
        ensure!(
            sent > 0.0 && (sent - got).abs() <= 3000.0 + got * 0.02,
            "{kind}: octet count {sent} against {got} received: {rtcp}"
        );
        // aiortc's own statistics of the reports, for the stream it receives.
        let remote = &rtcp["stats"][kind]["remote_outbound"];
        ensure!(
            remote["ssrc"].is_u64() && remote["ssrc"] == sr["ssrc"],
            "{kind}: no remote-outbound-rtp stats of the received stream: {rtcp}"
        );
        ensure!(
            num(&remote["packets_sent"]) > 0.0 && num(&remote["bytes_sent"]) > 0.0,
            "{kind}: remote-outbound-rtp counts: {rtcp}"
        );
    }
    // Every dropped video packet came back after the player's NACK.
    let repair = &rtcp["repair"];
    let dropped = repair["dropped"].as_u64().unwrap_or(0);
    let repaired = repair["repaired"].as_u64().unwrap_or(0);
    ensure!(dropped >= 3, "too few video packets dropped: {rtcp}");
    // The last drop may be too close to the end to be NACKed in time.
    ensure!(
        repaired + 1 >= dropped,
        "{repaired} of {dropped} dropped video packets repaired: {rtcp}"
    );
    // Over RTX (negotiated), each naming the codec of the packet it repairs:
    // VP8 before the main view moved, H.264 after.
    ensure!(
        repair["rtx"].as_u64() == Some(repaired) && repair["rtx_codec_mismatch"] == 0,
        "retransmissions not over RTX of the right codec: {rtcp}"
    );
    ensure!(
        repair["dropped_codecs"] == serde_json::json!(["H264", "VP8"]),
        "dropped packets of both codecs: {rtcp}"
    );
    Ok(())
}

#[tokio::test]
async fn whip_and_whep_refuse_bad_requests() -> Result<()> {
    let server = TestServer::start().await?;
    let (meeting, token) = server.meeting_with_token("Bàn trộn", "bridge").await?;
    let (_, other_token) = server.meeting_with_token("Khác", "bridge").await?;
    let base = server.base_url();
    let http = reqwest::Client::new();
    let offer =
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";

    let post = |path: String, token: Option<&str>, ctype: &str, body: String| {
        let mut r = http
            .post(format!("{base}{path}"))
            .header("content-type", ctype.to_owned())
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let code = |v: &Value| v["code"].as_str().unwrap_or_default().to_owned();

    for kind in ["whip", "whep"] {
        let path = format!("/{kind}/{meeting}");
        // No token, a bad one: 401 with the API's error shape.
        let r = post(path.clone(), None, "application/sdp", offer.into()).await?;
        ensure!(r.status() == 401, "{kind} without token: {}", r.status());
        ensure!(code(&r.json().await?) == "unauthorized");
        let r = post(path.clone(), Some("nope"), "application/sdp", offer.into()).await?;
        ensure!(r.status() == 401);
        ensure!(code(&r.json().await?) == "token_invalid");
        // Another meeting's token: 403.
        let r = post(
            path.clone(),
            Some(&other_token),
            "application/sdp",
            offer.into(),
        )
        .await?;
        ensure!(r.status() == 403, "{kind} wrong meeting: {}", r.status());
        ensure!(code(&r.json().await?) == "token_wrong_meeting");
        // Not SDP, bad SDP, too big.
        let r = post(path.clone(), Some(&token), "application/json", "{}".into()).await?;
        ensure!(r.status() == 415, "{kind} json: {}", r.status());
        let r = post(
            path.clone(),
            Some(&token),
            "application/sdp",
            "hello".into(),
        )
        .await?;
        ensure!(r.status() == 400, "{kind} bad sdp: {}", r.status());
        ensure!(code(&r.json().await?) == "bad_sdp");
        let big = format!("{offer}{}", "a=x\r\n".repeat(20_000));
        let r = post(path.clone(), Some(&token), "application/sdp", big).await?;
        ensure!(r.status() == 413, "{kind} big: {}", r.status());
        ensure!(code(&r.json().await?) == "body_too_large");
        // An unknown meeting: the token is for another one (403).
        let r = post(
            format!("/{kind}/nope"),
            Some(&token),
            "application/sdp",
            offer.into(),
        )
        .await?;
        ensure!(r.status() == 403, "{kind} unknown meeting: {}", r.status());
        // Unknown sessions.
        let r = http
            .delete(format!("{base}/{kind}/{meeting}/0123"))
            .send()
            .await?;
        ensure!(r.status() == 404, "{kind} delete unknown: {}", r.status());
        ensure!(code(&r.json().await?) == "session_not_found");
        let r = http
            .patch(format!("{base}/{kind}/{meeting}/0123"))
            .header("content-type", "application/trickle-ice-sdpfrag")
            .body("a=mid:0\r\n")
            .send()
            .await?;
        ensure!(r.status() == 404, "{kind} patch unknown: {}", r.status());
        // OPTIONS says what POST takes.
        let r = http
            .request(reqwest::Method::OPTIONS, format!("{base}{path}"))
            .send()
            .await?;
        ensure!(r.status() == 204, "{kind} options: {}", r.status());
        ensure!(
            r.headers()
                .get("accept-post")
                .is_some_and(|v| v == "application/sdp"),
            "{kind} options headers: {:?}",
            r.headers()
        );
    }
    Ok(())
}
