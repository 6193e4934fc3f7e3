//! The operator's desk through a real server (issue 23): clients' link
//! reports over the WebSocket (bounded, bad input refused), the dashboard's
//! list of every expected point (a point that leaves shows disconnected, a
//! lossy one degraded with an alert), the same figures in `/metrics`, the
//! text channel (stored, who reads what), and the pre-meeting check's
//! storage and probes. With real webrtc-rs peers, the media server's own
//! figures of each point (a sending one's and a silent one's), and what
//! they tell apart: reports that stopped while media flows, reports of
//! media the server never gets; a frozen received video's alert.

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use giaoban_tests::client::{JoinOptions, Kind, MediaOptions, TestClient};
use giaoban_tests::{token_of, TestServer, WsClient};
use serde_json::{json, Value};

/// The invitation id of a token (as the pre-meeting check page learns it).
async fn invitation_id(http: &reqwest::Client, base: &str, token: &str) -> Result<String> {
    let v: Value = http
        .get(format!("{base}/api/link-check"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    v["invitation"]["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no invitation id in {v}"))
}

async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Result<(u16, Value)> {
    let r = http.get(url).bearer_auth(token).send().await?;
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> Result<(u16, Value)> {
    let r = http.post(url).bearer_auth(token).json(body).send().await?;
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn point<'a>(dash: &'a Value, inv: &str) -> Result<&'a Value> {
    dash["points"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["invitation_id"] == inv))
        .with_context(|| format!("no point {inv} in {dash}"))
}

#[tokio::test]
async fn reports_dashboard_and_metrics() -> Result<()> {
    // a reports sending media it never sends (a WebSocket client): not
    // `no_media` within this test, however slow the machine.
    let server = TestServer::start_with_config(
        "[signaling]\nresume_grace_secs = 0\nlink_no_media_alert_secs = 3600\n",
    )
    .await?;
    let base = server.base_url();
    let http = reqwest::Client::new();
    let operator = server.staff_token("kythuat", "operator").await?;
    let meeting = server.create_meeting("Giao ban kỹ thuật").await?;
    let url_a = server.invite(&meeting, "UBND xã A", "bridge").await?;
    let url_b = server.invite(&meeting, "UBND xã B", "bridge").await?;
    let url_c = server.invite(&meeting, "UBND xã C", "bridge").await?;
    let (ta, tb) = (token_of(&url_a)?, token_of(&url_b)?);
    let (ia, ib, ic) = (
        invitation_id(&http, &base, ta).await?,
        invitation_id(&http, &base, tb).await?,
        invitation_id(&http, &base, token_of(&url_c)?).await?,
    );

    let mut a = WsClient::connect(&server.ws_url()).await?;
    a.hello_and_join(ta).await?;
    let mut b = WsClient::connect(&server.ws_url()).await?;
    b.hello_and_join(tb).await?;

    // Bad reports are refused with bad_request; nothing is stored.
    for bad in [
        json!({"type": "link_report", "loss_in_percent": 101}),
        json!({"type": "link_report", "rtt_ms": -5}),
        json!({"type": "link_report", "path": "carrier_pigeon"}),
        json!({"type": "link_report", "audio_level": "loud"}),
        json!({"type": "link_report", "browser": "x".repeat(81)}),
    ] {
        let r = a.request(bad.clone()).await?;
        ensure!(
            r["type"] == "error" && r["code"] == "bad_request",
            "{bad} -> {r}"
        );
    }
    // Good ones are answered ok.
    let r = a
        .request(
            json!({"type": "link_report", "path": "udp", "bitrate_in_kbps": 1200,
            "bitrate_out_kbps": 800, "loss_in_percent": 0.5, "rtt_ms": 25, "jitter_ms": 4,
            "audio_level": 0.3, "fps_out": 24, "video_height_out": 720, "browser": "Chrome 131"}),
        )
        .await?;
    ensure!(r["type"] == "ok", "report: {r}");
    let r = b
        .request(
            json!({"type": "link_report", "path": "tcp", "loss_in_percent": 12.5,
            "rtt_ms": 90, "browser": "Firefox 128"}),
        )
        .await?;
    ensure!(r["type"] == "ok", "report: {r}");

    // Only the secretariat's staff read the dashboard.
    let dash_url = format!("{base}/api/meetings/{meeting}/dashboard");
    let (status, _) = get_json(&http, &dash_url, ta).await?;
    ensure!(status == 403, "an invitee reads the dashboard: {status}");
    let (status, _) = get_json(
        &http,
        &format!("{base}/api/meetings/nope/dashboard"),
        &operator,
    )
    .await?;
    ensure!(status == 404, "unknown meeting: {status}");
    let (status, dash) = get_json(&http, &dash_url, &operator).await?;
    ensure!(status == 200, "dashboard: {status} {dash}");
    ensure!(dash["points"].as_array().map(Vec::len) == Some(3), "{dash}");
    let pa = point(&dash, &ia)?;
    ensure!(pa["state"] == "ok" && pa["connected"] == true, "a: {pa}");
    ensure!(
        pa["report"]["path"] == "udp" && pa["report"]["rtt_ms"] == 25,
        "a: {pa}"
    );
    ensure!(pa["report"]["browser"] == "Chrome 131", "a: {pa}");
    let pb = point(&dash, &ib)?;
    ensure!(pb["state"] == "degraded", "b at 12.5 % loss: {pb}");
    let pc = point(&dash, &ic)?;
    ensure!(
        pc["state"] == "absent" && pc["connected"] == false,
        "c: {pc}"
    );
    // Problems first: b before a.
    ensure!(pb["severity"].as_u64() < pa["severity"].as_u64(), "{dash}");
    let alerts = dash["alerts"].as_array().context("alerts")?;
    ensure!(
        alerts.iter().any(|x| x["kind"] == "degraded"
            && x["invitation_id"] == ib
            && x["name"] == "UBND xã B"),
        "alerts: {alerts:?}"
    );
    let (status, hist) = get_json(
        &http,
        &format!("{base}/api/meetings/{meeting}/link-history/{ia}"),
        &operator,
    )
    .await?;
    ensure!(
        status == 200 && hist["samples"].as_array().map(Vec::len) == Some(1),
        "{hist}"
    );

    // /metrics: per meeting, bounded labels (states, kinds, buckets).
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        metrics.contains(&format!(
            "giaoban_link_points{{meeting=\"{meeting}\",state=\"degraded\"}} 1"
        )),
        "metrics:\n{metrics}"
    );
    ensure!(
        metrics.contains(&format!(
            "giaoban_link_loss_percent_count{{meeting=\"{meeting}\"}} 2"
        )),
        "metrics:\n{metrics}"
    );
    ensure!(!metrics.contains(&ia), "a participant label in /metrics");

    // b leaves: disconnected from then, with a `dropped` alert.
    let r = b.request(json!({"type": "leave"})).await?;
    ensure!(r["type"] == "bye", "{r}");
    b.close().await;
    let mut left = Value::Null;
    for _ in 0..50 {
        let (_, dash) = get_json(&http, &dash_url, &operator).await?;
        if point(&dash, &ib)?["state"] == "disconnected" {
            left = dash;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pb = point(&left, &ib)?;
    ensure!(pb["connected"] == false && pb["since"].is_i64(), "b: {pb}");
    ensure!(
        left["alerts"][0]["kind"] == "dropped" && left["alerts"][0]["invitation_id"] == ib,
        "{left}"
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        metrics.contains(&format!(
            "giaoban_link_alerts_total{{meeting=\"{meeting}\",kind=\"dropped\"}} 1"
        )),
        "metrics:\n{metrics}"
    );
    a.close().await;
    Ok(())
}

#[tokio::test]
async fn tech_channel_is_kept_and_private() -> Result<()> {
    let server = TestServer::start().await?;
    let base = server.base_url();
    let http = reqwest::Client::new();
    let operator = server.staff_token("kythuat2", "operator").await?;
    let meeting = server
        .create_draft_meeting("Giao ban kênh kỹ thuật")
        .await?;
    let other = server.create_draft_meeting("Cuộc họp khác").await?;
    let ta = token_of(&server.invite(&meeting, "Xã A", "bridge").await?)?.to_owned();
    let tb = token_of(&server.invite(&meeting, "Xã B", "bridge").await?)?.to_owned();
    let tx = token_of(&server.invite(&other, "Xã X", "bridge").await?)?.to_owned();
    let ia = invitation_id(&http, &base, &ta).await?;
    let msgs = format!("{base}/api/meetings/{meeting}/tech-messages");

    // The operator writes to all, then to a; a and b answer.
    let (s, m1) = post_json(
        &http,
        &msgs,
        &operator,
        &json!({"text": "Các điểm kiểm tra micro"}),
    )
    .await?;
    ensure!(
        s == 201 && m1["seq"] == 1 && m1["invitation_id"].is_null(),
        "{s} {m1}"
    );
    let (s, m2) = post_json(
        &http,
        &msgs,
        &operator,
        &json!({"text": "Xã A bật camera", "invitation_id": ia}),
    )
    .await?;
    ensure!(s == 201 && m2["seq"] == 2, "{s} {m2}");
    let (s, m3) = post_json(&http, &msgs, &ta, &json!({"text": "Đã bật"})).await?;
    ensure!(
        s == 201 && m3["sender"] == "point" && m3["invitation_id"] == ia.as_str(),
        "{s} {m3}"
    );
    let (s, _) = post_json(&http, &msgs, &tb, &json!({"text": "Xã B sẵn sàng"})).await?;
    ensure!(s == 201, "{s}");

    // Who reads what: the operator everything; a its thread and "all".
    let (_, all) = get_json(&http, &msgs, &operator).await?;
    ensure!(all["messages"].as_array().map(Vec::len) == Some(4), "{all}");
    let (_, of_a) = get_json(&http, &msgs, &ta).await?;
    let seqs: Vec<i64> = of_a["messages"]
        .as_array()
        .context("messages")?
        .iter()
        .filter_map(|m| m["seq"].as_i64())
        .collect();
    ensure!(seqs == vec![1, 2, 3], "a reads {of_a}");
    let (_, after) = get_json(&http, &format!("{msgs}?after=2"), &ta).await?;
    ensure!(
        after["messages"].as_array().map(Vec::len) == Some(1),
        "{after}"
    );

    // Refused: another meeting's invitee, a point writing for another,
    // empty and overlong texts, unknown fields, a bad cursor.
    let (s, _) = get_json(&http, &msgs, &tx).await?;
    ensure!(s == 403, "another meeting's point reads: {s}");
    let (s, _) = post_json(&http, &msgs, &tx, &json!({"text": "x"})).await?;
    ensure!(s == 403, "another meeting's point writes: {s}");
    let (s, _) = post_json(
        &http,
        &msgs,
        &tb,
        &json!({"text": "x", "invitation_id": ia}),
    )
    .await?;
    ensure!(s == 403, "b writes in a's thread: {s}");
    for (body, code) in [
        (json!({"text": "   "}), "invalid_input"),
        (json!({"text": "x".repeat(2001)}), "invalid_input"),
        (json!({"text": "x", "extra": 1}), "invalid_json"),
        (json!({}), "invalid_json"),
    ] {
        let (s, e) = post_json(&http, &msgs, &operator, &body).await?;
        ensure!(s == 400 && e["code"] == code, "{body} -> {s} {e}");
    }
    let (s, e) = post_json(
        &http,
        &msgs,
        &operator,
        &json!({"text": "x", "invitation_id": "nope"}),
    )
    .await?;
    ensure!(s == 404, "unknown invitation: {s} {e}");
    let (s, _) = get_json(&http, &format!("{msgs}?after=-1"), &operator).await?;
    ensure!(s == 400, "negative cursor: {s}");

    // Kept: after a restart the channel is still there.
    let mut server = server;
    server.terminate(Duration::from_secs(10)).await?;
    server.restart().await?;
    let base = server.base_url();
    let msgs = format!("{base}/api/meetings/{meeting}/tech-messages");
    let (_, all) = get_json(&http, &msgs, &operator).await?;
    ensure!(
        all["messages"].as_array().map(Vec::len) == Some(4),
        "after restart: {all}"
    );
    Ok(())
}

#[tokio::test]
async fn pre_meeting_check_is_stored_and_shown() -> Result<()> {
    let server = TestServer::start().await?;
    let base = server.base_url();
    let http = reqwest::Client::new();
    let operator = server.staff_token("kythuat3", "operator").await?;
    let meeting = server
        .create_draft_meeting("Giao ban kiểm tra trước")
        .await?;
    let ta = token_of(&server.invite(&meeting, "Xã A", "bridge").await?)?.to_owned();
    let tb = token_of(&server.invite(&meeting, "Xã B", "bridge").await?)?.to_owned();
    let ia = invitation_id(&http, &base, &ta).await?;
    let ib = invitation_id(&http, &base, &tb).await?;

    let (s, info) = get_json(&http, &format!("{base}/api/link-check"), &ta).await?;
    ensure!(
        s == 200 && info["invitation"]["id"] == ia.as_str() && info["latest"].is_null(),
        "{s} {info}"
    );
    let (s, _) = get_json(&http, &format!("{base}/api/link-check"), &operator).await?;
    ensure!(s == 403, "staff has no check: {s}");

    // The probes: a download of the size asked, an upload counted.
    let r = http
        .get(format!("{base}/api/link-check/probe?bytes=300000"))
        .bearer_auth(&ta)
        .send()
        .await?;
    ensure!(r.status() == 200, "probe: {}", r.status());
    ensure!(r.bytes().await?.len() == 300_000);
    let r = http
        .get(format!("{base}/api/link-check/probe?bytes=2000001"))
        .bearer_auth(&ta)
        .send()
        .await?;
    ensure!(r.status() == 400, "too big a probe: {}", r.status());
    let r: Value = http
        .post(format!("{base}/api/link-check/probe"))
        .bearer_auth(&ta)
        .body(vec![7u8; 200_000])
        .send()
        .await?
        .json()
        .await?;
    ensure!(r["received"] == 200_000, "{r}");

    // A good check is ready; a poor one names what is wrong.
    let good = json!({"camera": "ok", "microphone": "ok", "mic_level": 30, "speaker": "ok",
        "path": "udp", "rtt_ms": 20, "down_kbps": 50000, "up_kbps": 20000, "browser": "Chrome 131"});
    let (s, c) = post_json(&http, &format!("{base}/api/link-check"), &ta, &good).await?;
    ensure!(
        s == 201 && c["ready"] == true && c["problems"] == json!([]),
        "{s} {c}"
    );
    let poor = json!({"camera": "absent", "microphone": "silent", "speaker": "unknown",
        "path": "tcp", "rtt_ms": 900, "down_kbps": 300});
    let (s, c) = post_json(&http, &format!("{base}/api/link-check"), &tb, &poor).await?;
    ensure!(s == 201 && c["ready"] == false, "{s} {c}");
    ensure!(
        c["problems"]
            == json!([
                "camera",
                "microphone",
                "speaker",
                "rtt",
                "download",
                "upload"
            ]),
        "{c}"
    );
    for bad in [
        json!({"camera": "ok", "microphone": "ok", "speaker": "ok", "path": "udp", "mic_level": 101}),
        json!({"camera": "unknown", "microphone": "ok", "speaker": "ok", "path": "udp"}),
        json!({"camera": "ok", "microphone": "ok", "speaker": "ok", "path": "pigeon"}),
        json!({"camera": "ok", "microphone": "ok", "speaker": "ok"}),
        json!({"camera": "ok", "microphone": "ok", "speaker": "ok", "path": "udp", "x": 1}),
    ] {
        let (s, _) = post_json(&http, &format!("{base}/api/link-check"), &ta, &bad).await?;
        ensure!(s == 400, "{bad} -> {s}");
    }

    // The dashboard shows each point's latest check before the meeting opens.
    let (s, dash) = get_json(
        &http,
        &format!("{base}/api/meetings/{meeting}/dashboard"),
        &operator,
    )
    .await?;
    ensure!(s == 200, "{s} {dash}");
    let pa = point(&dash, &ia)?;
    ensure!(
        pa["check"]["ready"] == true && pa["check"]["path"] == "udp",
        "{pa}"
    );
    ensure!(pa["state"] == "absent", "{pa}");
    let pb = point(&dash, &ib)?;
    ensure!(
        pb["check"]["ready"] == false && pb["check"]["path"] == "tcp",
        "{pb}"
    );
    Ok(())
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(-1.0)
}

/// The media server's own figures with real peers: a point that sends
/// (webrtc-rs, Opus and VP8) and one that only receives. The sender's
/// received figures are non-zero and agree with what the other point got
/// of it; the silent one's are zero while the server sends it media, with
/// a round-trip time from its receiver reports. Then what they tell apart:
/// the sender never reports (stale) while its media flows; the silent one
/// reports sending 500 kbit/s (no_media, an alert) and frozen received
/// videos (a frozen_in alert).
#[tokio::test]
async fn server_figures_of_real_peers() -> Result<()> {
    let server = TestServer::start_with_config(
        "[signaling]\nlink_stale_secs = 4\nlink_no_media_alert_secs = 2\n\
         link_frozen_in_alert_secs = 1\n",
    )
    .await?;
    let base = server.base_url();
    let http = reqwest::Client::new();
    let operator = server.staff_token("kythuat", "operator").await?;
    let meeting = server.create_meeting("Giao ban số liệu máy chủ").await?;
    let url_a = server.invite(&meeting, "UBND xã Gửi", "bridge").await?;
    let url_b = server.invite(&meeting, "UBND xã Nghe", "bridge").await?;
    let (ta, tb) = (token_of(&url_a)?, token_of(&url_b)?);
    let (ia, ib) = (
        invitation_id(&http, &base, ta).await?,
        invitation_id(&http, &base, tb).await?,
    );
    let a = TestClient::join(&server.ws_url(), ta).await?;
    let b = TestClient::join_media(
        &server.ws_url(),
        tb,
        JoinOptions::default(),
        MediaOptions {
            publish: false,
            ..MediaOptions::default()
        },
    )
    .await?;
    let dash_url = format!("{base}/api/meetings/{meeting}/dashboard");

    // Wait for rates (two readings a second apart) and b's round-trip time.
    let got_of_a = |c: &TestClient| {
        c.received(a.participant_id(), Kind::Audio).packets
            + c.received(a.participant_id(), Kind::Video).packets
    };
    let mut ready = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let b_got = got_of_a(&b);
        let (status, dash) = get_json(&http, &dash_url, &operator).await?;
        ensure!(status == 200, "dashboard: {status} {dash}");
        let (sa, sb) = (&point(&dash, &ia)?["server"], &point(&dash, &ib)?["server"]);
        if num(&sa["received_kbps"]) > 0.0
            && num(&sb["sent_kbps"]) > 0.0
            && sb["rtt_ms"].is_u64()
            && b_got > 50
        {
            ready = Some((dash, b_got));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (dash, b_got) = ready.with_context(|| {
        format!(
            "no server figures within 60 s; a: {}; b: {}",
            a.summary(),
            b.summary()
        )
    })?;
    let (sa, sb) = (&point(&dash, &ia)?["server"], &point(&dash, &ib)?["server"]);
    // The sender: what the server received of it covers what b got of it.
    let a_in = sa["packets_in"].as_u64().unwrap_or(0);
    ensure!(a_in >= b_got, "a sent {a_in} packets, b got {b_got}: {sa}");
    ensure!(
        (1.0..=20_000.0).contains(&num(&sa["received_kbps"])),
        "a: {sa}"
    );
    ensure!(
        sa["media_flowing"] == true && num(&sa["last_media_secs"]) < 5.0,
        "a: {sa}"
    );
    ensure!(sa["path"] == "udp", "a: {sa}");
    // Loopback loses nothing worth the name.
    ensure!(
        sa["loss_in_percent"].is_null() || num(&sa["loss_in_percent"]) < 5.0,
        "a: {sa}"
    );
    // The silent one: nothing received of it; a's media sent to it.
    ensure!(
        sb["packets_in"] == 0
            && sb["received_kbps"] == 0
            && sb["last_media_secs"].is_null()
            && sb["media_flowing"] == false,
        "b: {sb}"
    );
    let b_out = sb["packets_out"].as_u64().unwrap_or(0);
    ensure!(b_out >= b_got, "b was sent {b_out}, got {b_got}: {sb}");
    ensure!((1.0..=20_000.0).contains(&num(&sb["sent_kbps"])), "b: {sb}");
    ensure!(
        (0.0..2_000.0).contains(&num(&sb["rtt_ms"])),
        "b's round-trip time: {sb}"
    );
    ensure!(
        sb["layers"].as_array().is_some_and(|l| l.len() == 1),
        "b receives one video: {sb}"
    );
    ensure!(
        sb["loss_out_percent"].is_null() || num(&sb["loss_out_percent"]) < 5.0,
        "b: {sb}"
    );
    eprintln!("server figures: a {sa}; b {sb}");

    // a never reports: stale, its media still flowing. b reports sending
    // 500 kbit/s the server never gets, and frozen received videos.
    let mut seen = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        b.send(json!({"type": "link_report", "bitrate_out_kbps": 500, "frozen_in": 1}))?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, dash) = get_json(&http, &dash_url, &operator).await?;
        let (pa, pb) = (point(&dash, &ia)?, point(&dash, &ib)?);
        let alerts = dash["alerts"].as_array().cloned().unwrap_or_default();
        let alerted = |kind: &str| {
            alerts
                .iter()
                .any(|x| x["kind"] == kind && x["invitation_id"] == ib)
        };
        if pa["state"] == "stale"
            && pa["server"]["media_flowing"] == true
            && pb["state"] == "no_media"
            && alerted("no_media")
            && alerted("frozen_in")
        {
            seen = Some(dash);
            break;
        }
    }
    let dash = seen.context("stale with media, no_media and frozen_in not all seen in 60 s")?;
    ensure!(
        !dash["alerts"]
            .as_array()
            .is_some_and(|x| x.iter().any(|x| x["invitation_id"] == ia)),
        "no alert for a, whose media flows: {}",
        dash["alerts"]
    );
    ensure!(b.state().errors.is_empty(), "b: {:?}", b.state().errors);
    Ok(())
}

/// The operator's messages are pushed to the points' WebSockets
/// (`tech_message`): one to a point reaches that point only, one to all
/// reaches every point; a point's own message is not pushed to the others.
#[tokio::test]
async fn tech_messages_are_pushed_to_the_points() -> Result<()> {
    let server = TestServer::start().await?;
    let base = server.base_url();
    let http = reqwest::Client::new();
    let operator = server.staff_token("kythuat3", "operator").await?;
    let meeting = server
        .create_meeting("Giao ban kênh kỹ thuật trực tiếp")
        .await?;
    let ta = token_of(&server.invite(&meeting, "Xã A", "bridge").await?)?.to_owned();
    let tb = token_of(&server.invite(&meeting, "Xã B", "bridge").await?)?.to_owned();
    let ia = invitation_id(&http, &base, &ta).await?;
    let msgs = format!("{base}/api/meetings/{meeting}/tech-messages");
    let mut a = WsClient::connect(&server.ws_url()).await?;
    a.hello_and_join(&ta).await?;
    let mut b = WsClient::connect(&server.ws_url()).await?;
    b.hello_and_join(&tb).await?;

    // To a: a gets it, as stored.
    let (s, to_a) = post_json(
        &http,
        &msgs,
        &operator,
        &json!({"text": "Xã A bật camera", "invitation_id": ia}),
    )
    .await?;
    ensure!(s == 201, "{s} {to_a}");
    let got = a.recv_type("tech_message").await?;
    ensure!(got["message"] == to_a, "a got {got}, stored {to_a}");
    // b writes to the operator: pushed to nobody.
    let (s, _) = post_json(&http, &msgs, &tb, &json!({"text": "Xã B nghe rõ"})).await?;
    ensure!(s == 201, "{s}");
    // To all: the first tech_message b gets is this one (not a's, not its own),
    // and a gets it next.
    let (s, to_all) = post_json(
        &http,
        &msgs,
        &operator,
        &json!({"text": "Bắt đầu sau 5 phút"}),
    )
    .await?;
    ensure!(s == 201, "{s} {to_all}");
    let got = b.recv_type("tech_message").await?;
    ensure!(got["message"] == to_all, "b got {got}, expected {to_all}");
    let got = a.recv_type("tech_message").await?;
    ensure!(got["message"] == to_all, "a got {got}, expected {to_all}");
    a.close().await;
    b.close().await;
    Ok(())
}
