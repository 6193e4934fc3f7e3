//! The minutes (biên bản) through a real server process: a meeting with an
//! agenda, a bridge point that joined and declared its leader, the floor
//! given to it, a vote closed over the WebSocket and a conclusion; then
//! `GET /api/meetings/{id}/minutes` (HTML, sandboxed, user text escaped) and
//! `minutes.pdf`, whose text, extracted with poppler's `pdftotext`, still
//! reads in Vietnamese; who may read them.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use giaoban_tests::{token_of, TestServer, WsClient};
use reqwest::StatusCode;
use serde_json::{json, Value};

const TITLE: &str = "Giao ban kinh tế - xã hội tháng 12 <b>&</b>";
const QUESTION: &str = "Thông qua Kế hoạch đầu tư công năm 2027";
const LEADER: &str = "Ông Nguyễn Văn Hùng, Chủ tịch UBND xã Đông Hòa";

async fn join(server: &TestServer, meeting: &str, name: &str, role: &str) -> Result<Joined> {
    let url = server.invite(meeting, name, role).await?;
    let token = token_of(&url)?.to_owned();
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    let joined = ws.hello_and_join(&token).await?;
    let pid = joined["participant"]["id"]
        .as_str()
        .context("participant id")?
        .to_owned();
    Ok(Joined { ws, token, pid })
}

struct Joined {
    ws: WsClient,
    token: String,
    pid: String,
}

async fn ok(c: &mut WsClient, msg: Value) -> Result<()> {
    let r = c.request(msg.clone()).await?;
    ensure!(r["type"] == "ok", "{msg} answered {r}");
    Ok(())
}

/// Text of a PDF by `pdftotext` (UTF-8).
fn pdf_text(bytes: &[u8]) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("minutes.pdf");
    std::fs::write(&path, bytes)?;
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .context("pdftotext (poppler-utils; scripts/test installs it)")?;
    ensure!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test]
async fn minutes_of_a_meeting_as_html_and_pdf() -> Result<()> {
    let server = TestServer::start().await?;
    let http = reqwest::Client::new();
    let base = server.base_url();
    let admin = server.staff_token("quantri", "admin").await?;
    let meeting = server.create_meeting(TITLE).await?;

    let r = http
        .patch(format!("{base}/api/meetings/{meeting}"))
        .bearer_auth(&admin)
        .json(&json!({"location": "Hội trường UBND tỉnh"}))
        .send()
        .await?;
    ensure!(
        r.status() == StatusCode::OK,
        "patch meeting: {}",
        r.status()
    );
    let mut items = Vec::new();
    for (title, presenter) in [
        ("Báo cáo tình hình kinh tế - xã hội", "Sở Tài chính"),
        ("Kế hoạch đầu tư công năm 2027", "Sở Kế hoạch"),
    ] {
        let v: Value = http
            .post(format!("{base}/api/meetings/{meeting}/agenda"))
            .bearer_auth(&admin)
            .json(&json!({"title": title, "presenter": presenter}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        items.push(v["id"].as_str().context("item id")?.to_owned());
    }

    let mut chair = join(&server, &meeting, "Chủ tịch Trần Quốc Việt", "chair").await?;
    let mut member = join(&server, &meeting, "Bà Lê Thị Ánh", "member").await?;
    let mut bridge = join(&server, &meeting, "Xã Đông Hòa", "bridge").await?;
    ok(
        &mut bridge.ws,
        json!({"type": "declare_attendance", "leader": LEADER, "attendees": 15}),
    )
    .await?;

    // The floor to the bridge point, and back.
    ok(
        &mut chair.ws,
        json!({"type": "give_floor", "participant_id": bridge.pid}),
    )
    .await?;
    ok(&mut chair.ws, json!({"type": "take_floor"})).await?;

    // A named vote on the second item, closed: 2 for of 2 members.
    ok(
        &mut chair.ws,
        json!({"type": "open_vote", "question": QUESTION, "item_id": items[1]}),
    )
    .await?;
    let poll = bridge.ws.recv_type("vote_opened").await?["poll"].clone();
    let poll_id = poll["id"].as_str().context("poll id")?.to_owned();
    let vote = json!({"type": "cast_vote", "poll_id": poll_id, "choice": "for"});
    ok(&mut chair.ws, vote.clone()).await?;
    ok(&mut member.ws, vote).await?;
    ok(
        &mut chair.ws,
        json!({"type": "close_vote", "poll_id": poll_id}),
    )
    .await?;
    let closed = bridge.ws.recv_type("vote_closed").await?;
    ensure!(closed["poll"]["outcome"]["passed"] == true, "{closed}");

    // The chair concludes the second item (its own token, over REST).
    let r = http
        .put(format!("{base}/api/agenda/{}/conclusion", items[1]))
        .bearer_auth(&chair.token)
        .json(&json!({"text": "Thống nhất thông qua.\nGiao Sở Kế hoạch hoàn thiện <hồ sơ>."}))
        .send()
        .await?;
    ensure!(r.status() == StatusCode::OK, "conclusion: {}", r.status());

    // HTML: the audit of the floor is written in the background: wait for it.
    let started = Instant::now();
    let html = loop {
        let r = http
            .get(format!("{base}/api/meetings/{meeting}/minutes"))
            .bearer_auth(&admin)
            .send()
            .await?;
        ensure!(r.status() == StatusCode::OK, "minutes: {}", r.status());
        let h = r.headers();
        ensure!(
            h["content-type"] == "text/html; charset=utf-8",
            "{:?}",
            h["content-type"]
        );
        let csp = h["content-security-policy"].to_str()?.to_owned();
        ensure!(
            csp.starts_with("default-src 'none'; style-src 'sha256-") && csp.ends_with("sandbox"),
            "{csp}"
        );
        ensure!(h["x-content-type-options"] == "nosniff");
        let body = r.text().await?;
        // The bridge point was invited by name (no registered unit).
        if body.contains(": Xã Đông Hòa.") || started.elapsed() > Duration::from_secs(10) {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for want in [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "BIÊN BẢN",
        "Giao ban kinh tế - xã hội tháng 12 &lt;b&gt;&amp;&lt;/b&gt;",
        "Hội trường UBND tỉnh",
        "Chủ tịch Trần Quốc Việt",
        LEADER,
        "số người dự: 15",
        "Báo cáo tình hình kinh tế - xã hội",
        QUESTION,
        "tán thành 2, không tán thành 0, không biểu quyết 0",
        "THÔNG QUA",
        "Giao Sở Kế hoạch hoàn thiện &lt;hồ sơ&gt;.",
        "(Chưa có kết luận.)",
    ] {
        ensure!(html.contains(want), "missing {want:?} in\n{html}");
    }
    ensure!(!html.contains("<b>&</b>"), "unescaped title in\n{html}");
    ensure!(
        html.contains(": Xã Đông Hòa."),
        "the floor turn is missing in\n{html}"
    );

    // PDF: a download, the fonts embedded, the Vietnamese extractable.
    let started = Instant::now();
    let r = http
        .get(format!("{base}/api/meetings/{meeting}/minutes.pdf"))
        .bearer_auth(&chair.token)
        .send()
        .await?;
    let took = started.elapsed();
    ensure!(r.status() == StatusCode::OK, "minutes.pdf: {}", r.status());
    ensure!(r.headers()["content-type"] == "application/pdf");
    let disposition = r.headers()["content-disposition"].to_str()?.to_owned();
    ensure!(
        disposition.starts_with("attachment; filename=\"bien-ban-"),
        "{disposition}"
    );
    let pdf = r.bytes().await?;
    eprintln!("minutes.pdf: {} bytes in {took:?}", pdf.len());
    ensure!(pdf.starts_with(b"%PDF-"), "not a PDF");
    ensure!(
        pdf.windows(b"/FontFile2".len()).any(|w| w == b"/FontFile2"),
        "no embedded TrueType font"
    );
    let text = pdf_text(&pdf)?;
    for want in [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "BIÊN BẢN",
        "Giao ban kinh tế - xã hội tháng 12 <b>&</b>",
        "Ông Nguyễn Văn Hùng",
        QUESTION,
        "THÔNG QUA",
        "Thống nhất thông qua.",
        "CHỦ TỌA",
    ] {
        ensure!(
            text.contains(want),
            "missing {want:?} in the PDF's text\n{text}"
        );
    }
    // The same record, the same bytes (a seal can be added later).
    let again = http
        .get(format!("{base}/api/meetings/{meeting}/minutes.pdf"))
        .bearer_auth(&admin)
        .send()
        .await?
        .bytes()
        .await?;
    ensure!(
        again == pdf,
        "the PDF changed with nothing in the record changed"
    );

    // Who may read them: the chair's invitation yes, a member's or a bridge
    // point's no, nobody without a token.
    for (token, want) in [
        (Some(&chair.token), StatusCode::OK),
        (Some(&member.token), StatusCode::FORBIDDEN),
        (Some(&bridge.token), StatusCode::FORBIDDEN),
        (None, StatusCode::UNAUTHORIZED),
    ] {
        for path in ["minutes", "minutes.pdf"] {
            let mut q = http.get(format!("{base}/api/meetings/{meeting}/{path}"));
            if let Some(t) = token {
                q = q.bearer_auth(t);
            }
            let got = q.send().await?.status();
            ensure!(got == want, "{path}: {got}, expected {want}");
        }
    }
    let r = http
        .get(format!("{base}/api/meetings/no-such-meeting/minutes.pdf"))
        .bearer_auth(&admin)
        .send()
        .await?;
    ensure!(r.status() == StatusCode::NOT_FOUND, "{}", r.status());
    Ok(())
}
