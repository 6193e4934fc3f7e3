//! Loss repair through the real server, with webrtc-rs clients that lose
//! packets on purpose (see `giaoban_tests::repair`): the client drops every
//! tenth video datagram outside its stack, where the RTP header of SRTP is
//! readable, and records when; a repair is matched to its drop by SSRC and
//! sequence number once the stack delivers it.
//!
//! - [`subscriber_losses_are_repaired_with_rtx`]: a subscriber drops 10 % of
//!   the video the server forwards; its stack NACKs them; the server answers
//!   from its packet cache on the RTX SSRC of its offer (RFC 4588), and the
//!   subscriber's stack unwraps them to the original SSRC and sequence number.
//! - [`publisher_losses_are_nacked_by_the_server`]: two publishers drop 10 %
//!   of their video on the way out, one with RTX negotiated, one without; the
//!   server NACKs what it missed, the publishers resend (on their RTX SSRC, or
//!   plainly), and a subscriber receives the video nearly whole.
//! - [`red_is_passed_through_or_reduced`]: a publisher sends audio as RED
//!   with Opus FEC and DTX in its fmtp; a subscriber that accepts RED gets RED
//!   (redundant blocks intact), one that does not gets plain Opus; the fmtp
//!   survives in the answer.
//! - [`new_subscriber_gets_a_keyframe_fast`]: a publisher whose encoder makes
//!   a key frame only every 20 s unless asked; a newcomer's first picture
//!   comes within a second of its connection (the server's PLI).
//!
//! Figures are printed (`-- --nocapture`); docs/media.md quotes them. Run
//! inside a private network namespace like the other media tests.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use giaoban_tests::client::{JoinOptions, Kind, MediaOptions, Pc, TestClient};
use giaoban_tests::repair::RepairOptions;
use giaoban_tests::TestServer;

/// Time allowed for connecting and the first packets to flow.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
/// How long loss runs before the figures are taken.
const LOSSY_RUN: Duration = Duration::from_secs(6);

async fn join(
    server: &TestServer,
    meeting: &str,
    name: &str,
    media: MediaOptions,
    repair: RepairOptions,
) -> Result<TestClient> {
    let url = server.invite(meeting, name, "bridge").await?;
    let token = giaoban_tests::token_of(&url)?;
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
        anyhow::bail!("{e:#}\n--- end of the server log ---\n{tail}");
    }
    ensure!(!log.contains("panicked"), "the server panicked:\n{log}");
    Ok(())
}

fn no_errors(c: &TestClient) -> Result<()> {
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
    Ok(())
}

/// Median, 95th percentile and maximum, in milliseconds.
fn spread(times: &[Duration]) -> (f64, f64, f64) {
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (at(0.5), at(0.95), ms.last().copied().unwrap_or(0.0))
}

#[tokio::test]
async fn subscriber_losses_are_repaired_with_rtx() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("RTX to subscribers").await?;
    with_log(&server, async {
        let publisher = join(
            &server,
            &meeting,
            "Tỉnh",
            MediaOptions::default(),
            RepairOptions::default(),
        )
        .await?;
        let lossy = join(
            &server,
            &meeting,
            "Xã mạng yếu",
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
        let p = publisher.participant_id().to_owned();
        lossy
            .wait_until(MEDIA_TIMEOUT, "video from the publisher", |st| {
                st.received(&p, Kind::Video).intact >= 30
            })
            .await?;
        tokio::time::sleep(LOSSY_RUN).await;
        // Drops in the last second may still be in repair.
        let until = Instant::now() - Duration::from_secs(1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let st = lossy.state();
        let r = &st.repair;
        let (repaired, dropped) = r.repaired_share(until);
        let (median, p95, max) = spread(&r.repair_times);
        let video = st.received(&p, Kind::Video);
        println!(
            "subscriber loss: {dropped} video packets dropped of ~{}, {repaired} repaired; \
             repair time median {median:.1} ms, p95 {p95:.1} ms, max {max:.1} ms; \
             {} RTX datagrams on {:?} (offered FID {:?}, RTX apt {:?}); {} resent plainly; \
             video lost after repair: {} of {}",
            video.packets + dropped as u64,
            r.rtx_in,
            r.rtx_in_streams,
            r.offered_fid,
            r.offered_rtx_apt,
            r.plain_resent_in,
            video.lost(),
            video.intact
        );
        ensure!(dropped >= 15, "too few drops to judge: {dropped}");
        ensure!(
            !r.offered_fid.is_empty()
                && r.offered_rtx_apt
                    .values()
                    .all(|apt| r.video_pts.contains(apt)),
            "the server's offer declares no RTX for the video: FID {:?}, apt {:?}",
            r.offered_fid,
            r.offered_rtx_apt
        );
        ensure!(r.rtx_in > 0, "no retransmission came on an RTX SSRC");
        for (ssrc, pt) in &r.rtx_in_streams {
            ensure!(
                r.offered_fid.values().any(|rtx| rtx == ssrc) && r.offered_rtx_apt.contains_key(pt),
                "RTX datagram on SSRC {ssrc} PT {pt}, not the offer's RTX stream"
            );
        }
        ensure!(
            r.plain_resent_in == 0,
            "{} retransmissions came on the media SSRC although RTX was negotiated",
            r.plain_resent_in
        );
        // Every drop is repaired on loopback; the OSN put it back in place.
        ensure!(
            repaired * 100 >= dropped * 95,
            "only {repaired} of {dropped} dropped packets were repaired"
        );
        ensure!(
            video.lost() <= (video.intact as i64) / 50,
            "video lost after repair: {} of {}",
            video.lost(),
            video.intact
        );
        drop(st);
        no_errors(&lossy)?;
        no_errors(&publisher)
    })
    .await
}

#[tokio::test]
async fn publisher_losses_are_nacked_by_the_server() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("NACK to publishers").await?;
    with_log(&server, async {
        let drop_out = RepairOptions {
            drop_out_every: 10,
            ..RepairOptions::default()
        };
        let with_rtx = join(
            &server,
            &meeting,
            "Huyện có RTX",
            MediaOptions::default(),
            RepairOptions {
                publisher_rtx: true,
                ..drop_out.clone()
            },
        )
        .await?;
        let plain = join(
            &server,
            &meeting,
            "Huyện không RTX",
            MediaOptions::default(),
            drop_out,
        )
        .await?;
        let viewer = join(
            &server,
            &meeting,
            "Tỉnh xem",
            MediaOptions {
                publish: false,
                ..MediaOptions::default()
            },
            RepairOptions::default(),
        )
        .await?;
        let (a, b) = (
            with_rtx.participant_id().to_owned(),
            plain.participant_id().to_owned(),
        );
        viewer
            .wait_until(MEDIA_TIMEOUT, "video from both publishers", |st| {
                st.received(&a, Kind::Video).intact >= 30 && st.received(&b, Kind::Video).intact >= 30
            })
            .await?;
        tokio::time::sleep(LOSSY_RUN).await;
        for (c, rtx) in [(&with_rtx, true), (&plain, false)] {
            let st = c.state();
            let r = &st.repair;
            let sent = st.sent.get(&Kind::Video).copied().unwrap_or(0);
            let got = viewer.received(c.participant_id(), Kind::Video);
            println!(
                "publisher loss ({}): {} of {sent} video packets dropped on the way out; \
                 resent {} on the RTX SSRC, {} plainly; the viewer lost {} of {} after repair",
                if rtx { "RTX" } else { "no RTX" },
                r.dropped_out.len(),
                r.rtx_out,
                r.plain_resent_out,
                got.lost(),
                got.intact
            );
            ensure!(r.dropped_out.len() >= 15, "too few drops to judge");
            if rtx {
                ensure!(
                    r.rtx_out as usize * 10 >= r.dropped_out.len() * 9,
                    "the server did not NACK (or the publisher did not resend on RTX): {} resent for {} dropped",
                    r.rtx_out,
                    r.dropped_out.len()
                );
                ensure!(r.plain_resent_out == 0, "resent on the media SSRC despite RTX");
            } else {
                ensure!(
                    r.plain_resent_out as usize * 10 >= r.dropped_out.len() * 9,
                    "the server did not NACK: {} resent for {} dropped",
                    r.plain_resent_out,
                    r.dropped_out.len()
                );
                ensure!(r.rtx_out == 0, "RTX sent although not negotiated");
            }
            // 10 % dropped; the viewer misses at most what is still in repair.
            ensure!(
                got.lost() <= (got.intact as i64) / 50,
                "the viewer lost {} of {} video packets",
                got.lost(),
                got.intact
            );
        }
        no_errors(&viewer)?;
        no_errors(&with_rtx)?;
        no_errors(&plain)
    })
    .await
}

#[tokio::test]
async fn red_is_passed_through_or_reduced() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("RED").await?;
    with_log(&server, async {
        let fmtp = "minptime=10;useinbandfec=1;usedtx=1";
        let publisher = join(
            &server,
            &meeting,
            "Tỉnh RED",
            MediaOptions::default(),
            RepairOptions {
                publisher_red: true,
                opus_fmtp: Some(fmtp.to_owned()),
                ..RepairOptions::default()
            },
        )
        .await?;
        let receive_only = MediaOptions {
            publish: false,
            ..MediaOptions::default()
        };
        let red = join(
            &server,
            &meeting,
            "Xã có RED",
            receive_only.clone(),
            RepairOptions {
                subscriber_red: true,
                ..RepairOptions::default()
            },
        )
        .await?;
        let opus = join(
            &server,
            &meeting,
            "Xã không RED",
            receive_only,
            RepairOptions::default(),
        )
        .await?;
        let p = publisher.participant_id().to_owned();
        for c in [&red, &opus] {
            c.wait_until(MEDIA_TIMEOUT, "audio from the publisher", |st| {
                st.received(&p, Kind::Audio).intact >= 100
            })
            .await?;
        }
        // The answer keeps Opus FEC and DTX as the publisher offered them.
        let answer = publisher
            .state()
            .events
            .iter()
            .find(|e| e["type"] == "publish_answer")
            .and_then(|e| e["sdp"].as_str().map(str::to_owned))
            .context("no publish_answer")?;
        let opus_fmtp = answer
            .lines()
            .find(|l| l.starts_with("a=fmtp:111 "))
            .unwrap_or_default()
            .to_owned();
        println!("publish answer: {opus_fmtp}");
        ensure!(
            opus_fmtp.contains("useinbandfec=1") && opus_fmtp.contains("usedtx=1"),
            "the answer dropped Opus FEC or DTX: {opus_fmtp:?}"
        );
        ensure!(answer.contains("red/48000/2"), "the answer refused RED");

        let st = red.state();
        let r = &st.repair;
        let audio = st.received(&p, Kind::Audio);
        println!(
            "RED subscriber: payload types {:?} (RED is {:?}), {} RED packets, {} redundant blocks intact, {} bad; audio {} intact, {} lost",
            r.audio_pts, r.offered_red_pt, r.red_in, r.red_redundant_intact, r.red_bad, audio.intact, audio.lost()
        );
        let red_pt = r.offered_red_pt.context("the server offered no RED")?;
        ensure!(r.audio_pts == [red_pt].into(), "audio payload types {:?}", r.audio_pts);
        ensure!(r.red_in >= 100 && r.red_bad == 0, "RED: {} packets, {} bad", r.red_in, r.red_bad);
        ensure!(
            r.red_redundant_intact * 10 >= r.red_in * 9,
            "redundant blocks intact: {} of {}",
            r.red_redundant_intact,
            r.red_in
        );
        drop(st);

        let st = opus.state();
        let audio = st.received(&p, Kind::Audio);
        println!(
            "Opus-only subscriber: payload types {:?}, {} RED packets; audio {} intact, {} lost",
            st.repair.audio_pts, st.repair.red_in, audio.intact, audio.lost()
        );
        ensure!(
            st.repair.audio_pts == [111].into() && st.repair.red_in == 0,
            "the Opus-only subscriber got payload types {:?}",
            st.repair.audio_pts
        );
        ensure!(audio.lost() <= 2, "audio lost: {}", audio.lost());
        drop(st);
        for c in [&publisher, &red, &opus] {
            no_errors(c)?;
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn new_subscriber_gets_a_keyframe_fast() -> Result<()> {
    let server = TestServer::start().await?;
    let meeting = server.create_meeting("Key frames").await?;
    with_log(&server, async {
        let publisher = join(
            &server,
            &meeting,
            "Tỉnh",
            MediaOptions {
                // About 20 s between key frames unless one is asked for.
                keyframe_every: 600,
                ..MediaOptions::default()
            },
            RepairOptions {
                answer_keyframe_requests: true,
                ..RepairOptions::default()
            },
        )
        .await?;
        let p = publisher.participant_id().to_owned();
        let mut waits = Vec::new();
        for i in 0..3 {
            // Well past the encoder's first key frame and any earlier request.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let c = join(
                &server,
                &meeting,
                &format!("Xã {i}"),
                MediaOptions {
                    publish: false,
                    ..MediaOptions::default()
                },
                RepairOptions::default(),
            )
            .await?;
            c.wait_until(MEDIA_TIMEOUT, "a picture", |st| {
                st.received(&p, Kind::Video).keyframes >= 1
            })
            .await?;
            let st = c.state();
            let video = st.received(&p, Kind::Video);
            let connected = st
                .connected_after
                .get(&Pc::Subscriber)
                .copied()
                .context("subscriber connection never connected")?;
            // The server forwards nothing before a key frame, so the first
            // packet is the key frame.
            let first = video.first_after.context("no video")?;
            ensure!(video.before_keyframe == 0, "delta frames before the key frame");
            waits.push(first.saturating_sub(connected));
            drop(st);
            no_errors(&c)?;
        }
        let asked = publisher.state().keyframe_requests;
        println!(
            "newcomer's first key frame after its subscriber connection: {:?} (publisher asked {asked} times)",
            waits
        );
        ensure!(asked >= 3, "the publisher was asked for {asked} key frames");
        for w in &waits {
            ensure!(
                *w < Duration::from_secs(1),
                "a newcomer waited {w:?} for a key frame"
            );
        }
        no_errors(&publisher)
    })
    .await
}
