//! The notice of conclusions (thông báo kết luận) and the documents'
//! deadline through a real server process, with a configured calendar (a
//! holiday and a compensating Saturday): the notice as HTML and PDF (its
//! text, extracted with poppler's `pdftotext`, reads in Vietnamese and lists
//! the conclusions), its due date counted in working days across a
//! weekend, the holiday and the Saturday, marking it issued (who, when, the
//! number; audited), who may do what, bad inputs; the documents' deadline
//! of a regular and of a thematic meeting, and a document sent after it.

use anyhow::{ensure, Context, Result};
use giaoban_tests::{token_of, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

const TITLE: &str = "Giao ban kinh tế - xã hội tháng 1 <b>&</b>";
/// 2026-01-09 (a Friday) 08:30 in Vietnam.
const FRIDAY_2026_01_09: i64 = 1_767_922_200;
/// 2027-01-08 (a Friday) 08:30 in Vietnam.
const FRIDAY_2027_01_08: i64 = 1_799_371_800;
const DAY: i64 = 86_400;

/// Thursday 15 January 2026 off; Saturday 17 January worked.
const CALENDAR: &str =
    "[calendar]\nholidays = [\"2026-01-15\"]\nextra_working_days = [\"2026-01-17\"]\n";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Text of a PDF by `pdftotext` (UTF-8).
fn pdf_text(bytes: &[u8]) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("notice.pdf");
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

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut q = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            q = q.bearer_auth(t);
        }
        if let Some(b) = body {
            q = q.json(&b);
        }
        let r = q.send().await?;
        let status = r.status();
        let text = r.text().await?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }

    async fn get(&self, path: &str, token: &str) -> Result<Value> {
        let (s, v) = self
            .send(reqwest::Method::GET, path, Some(token), None)
            .await?;
        ensure!(s == StatusCode::OK, "GET {path}: {s} {v}");
        Ok(v)
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Result<(StatusCode, Value)> {
        self.send(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    async fn meeting(&self, token: &str, body: Value) -> Result<String> {
        let (s, v) = self.post("/api/meetings", token, body).await?;
        ensure!(s == StatusCode::CREATED || s == StatusCode::OK, "{s} {v}");
        Ok(v["id"].as_str().context("meeting id")?.to_owned())
    }

    async fn item(&self, token: &str, meeting: &str, title: &str) -> Result<String> {
        let (s, v) = self
            .post(
                &format!("/api/meetings/{meeting}/agenda"),
                token,
                json!({"title": title, "presenter": "Sở Tài chính"}),
            )
            .await?;
        ensure!(s.is_success(), "{s} {v}");
        Ok(v["id"].as_str().context("item id")?.to_owned())
    }

    async fn upload(&self, token: &str, item: &str, title: &str) -> Result<String> {
        let pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
            2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n\
            trailer\n<< /Root 1 0 R >>\n%%EOF\n";
        let part = reqwest::multipart::Part::bytes(pdf.to_vec())
            .file_name("to-trinh.pdf")
            .mime_str("application/pdf")?;
        let r = self
            .http
            .post(format!("{}/api/agenda/{item}/documents", self.base))
            .bearer_auth(token)
            .multipart(
                reqwest::multipart::Form::new()
                    .text("title", title.to_owned())
                    .part("file", part),
            )
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        ensure!(status == StatusCode::CREATED, "upload: {status} {v}");
        Ok(v["id"].as_str().context("document id")?.to_owned())
    }
}

#[tokio::test]
async fn notice_of_conclusions_and_deadlines() -> Result<()> {
    let server = TestServer::start_with_config(CALENDAR).await?;
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base_url(),
    };
    let admin = server.staff_token("quantri", "admin").await?;
    let secretary = server.staff_token("thuky", "secretary").await?;
    let operator = server.staff_token("vanhanh", "operator").await?;

    // A regular meeting on Friday 9 January 2026, its agenda, conclusions.
    let m = api
        .meeting(
            &admin,
            json!({"title": TITLE, "kind": "regular", "starts_at": FRIDAY_2026_01_09,
                   "location": "Hội trường UBND tỉnh"}),
        )
        .await?;
    let first = api
        .item(&admin, &m, "Báo cáo tình hình kinh tế - xã hội")
        .await?;
    let second = api.item(&admin, &m, "Kế hoạch đầu tư công").await?;
    let (s, v) = api
        .send(
            reqwest::Method::PUT,
            &format!("/api/agenda/{first}/conclusion"),
            Some(&admin),
            Some(json!({"text": "Thống nhất thông qua báo cáo.\nGiao Sở Tài chính hoàn thiện <hồ sơ> trước ngày 20/01."})),
        )
        .await?;
    ensure!(s == StatusCode::OK, "conclusion: {s} {v}");
    let chair_url = server
        .invite(&m, "Chủ tịch Trần Quốc Việt", "chair")
        .await?;
    let chair = token_of(&chair_url)?.to_owned();
    let bridge_url = server.invite(&m, "Xã Đông Hòa", "bridge").await?;
    let bridge = token_of(&bridge_url)?.to_owned();

    // The due date: 5 working days after Friday 9: Mon 12, Tue 13, Wed 14,
    // (Thursday 15 a holiday) Fri 16, and the compensating Saturday 17.
    let st = api
        .get(&format!("/api/meetings/{m}/notice/status"), &admin)
        .await?;
    ensure!(st["meeting_date"] == "2026-01-09", "{st}");
    ensure!(st["due_working_days"] == 5, "{st}");
    ensure!(st["due_date"] == "2026-01-17", "{st}");
    ensure!(st["overdue"] == true, "past and not issued: {st}");
    ensure!(
        st["working_days_left"].as_i64().is_some_and(|n| n < 0),
        "{st}"
    );
    ensure!(st["issued"].is_null(), "{st}");

    // Across a weekend: Friday 8 January 2027 is due Friday 15.
    let later = api
        .meeting(
            &admin,
            json!({"title": "Giao ban tháng 1 năm 2027", "starts_at": FRIDAY_2027_01_08}),
        )
        .await?;
    let st = api
        .get(&format!("/api/meetings/{later}/notice/status"), &secretary)
        .await?;
    ensure!(st["due_date"] == "2027-01-15", "{st}");
    // A meeting in 60 days: not overdue, working days left.
    let soon = api
        .meeting(
            &admin,
            json!({"title": "Họp chuyên đề", "kind": "thematic", "starts_at": now() + 60 * DAY}),
        )
        .await?;
    let st = api
        .get(&format!("/api/meetings/{soon}/notice/status"), &operator)
        .await?;
    ensure!(st["overdue"] == false, "{st}");
    ensure!(
        st["working_days_left"].as_i64().is_some_and(|n| n >= 40),
        "{st}"
    );

    // The documents' deadline: 3 working days before the regular meeting
    // (Thu 8, Wed 7, Tue 6); a document sent now is late.
    let dl = api
        .get(&format!("/api/meetings/{m}/documents-deadline"), &admin)
        .await?;
    ensure!(dl["deadline"] == "2026-01-06", "{dl}");
    ensure!(dl["working_days_before"] == 3, "{dl}");
    ensure!(dl["missed"] == false, "no documents yet: {dl}");
    let doc = api.upload(&admin, &second, "Tờ trình kế hoạch").await?;
    let dl = api
        .get(&format!("/api/meetings/{m}/documents-deadline"), &chair)
        .await?;
    ensure!(dl["missed"] == true, "{dl}");
    ensure!(dl["late"][0]["document_id"] == doc.as_str(), "{dl}");
    ensure!(dl["late"][0]["title"] == "Tờ trình kế hoạch", "{dl}");
    // The thematic meeting in 60 days: 1 working day before, on time.
    let item = api.item(&admin, &soon, "Chuyên đề chuyển đổi số").await?;
    api.upload(&admin, &item, "Báo cáo chuyên đề").await?;
    let dl = api
        .get(&format!("/api/meetings/{soon}/documents-deadline"), &admin)
        .await?;
    ensure!(dl["working_days_before"] == 1, "{dl}");
    ensure!(dl["kind"] == "thematic", "{dl}");
    ensure!(dl["missed"] == false, "{dl}");
    ensure!(
        dl["working_days_left"].as_i64().is_some_and(|n| n > 30),
        "{dl}"
    );

    // The notice as HTML: sandboxed, escaped, the conclusions listed.
    let r = api
        .http
        .get(format!("{}/api/meetings/{m}/notice", api.base))
        .bearer_auth(&admin)
        .send()
        .await?;
    ensure!(r.status() == StatusCode::OK, "notice: {}", r.status());
    ensure!(r.headers()["content-type"] == "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"].to_str()?.to_owned();
    ensure!(
        csp.starts_with("default-src 'none'; style-src 'sha256-") && csp.ends_with("sandbox"),
        "{csp}"
    );
    let html = r.text().await?;
    for want in [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "<h1>THÔNG BÁO</h1>",
        "Số:       /TB-UBND",
        "Giao ban kinh tế - xã hội tháng 1 &lt;b&gt;&amp;&lt;/b&gt;",
        "Chủ tịch Trần Quốc Việt",
        "Vào lúc 08 giờ 30 phút ngày 09/01/2026, tại Hội trường UBND tỉnh",
        "1. Báo cáo tình hình kinh tế - xã hội",
        "Giao Sở Tài chính hoàn thiện &lt;hồ sơ&gt; trước ngày 20/01.",
        "2. Kế hoạch đầu tư công",
        "(Chưa có kết luận.)",
        "Nơi nhận:",
        "TL. CHỦ TỊCH",
    ] {
        ensure!(html.contains(want), "missing {want:?} in\n{html}");
    }
    ensure!(!html.contains("<b>&</b>"), "unescaped title in\n{html}");

    // The PDF: the Vietnamese survives extraction; the same bytes twice.
    let pdf_of = |token: String| {
        let http = api.http.clone();
        let url = format!("{}/api/meetings/{m}/notice.pdf", api.base);
        async move {
            let r = http.get(url).bearer_auth(token).send().await?;
            ensure!(r.status() == StatusCode::OK, "notice.pdf: {}", r.status());
            ensure!(r.headers()["content-type"] == "application/pdf");
            let d = r.headers()["content-disposition"].to_str()?.to_owned();
            ensure!(
                d.starts_with("attachment; filename=\"thong-bao-ket-luan-"),
                "{d}"
            );
            Ok::<_, anyhow::Error>(r.bytes().await?.to_vec())
        }
    };
    let pdf = pdf_of(admin.clone()).await?;
    ensure!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let text = pdf_text(&pdf)?;
    for want in [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "THÔNG BÁO",
        "TB-UBND",
        "Trần Quốc Việt",
        "Báo cáo tình hình kinh tế - xã hội",
        "Thống nhất thông qua báo cáo.",
        "Giao Sở Tài chính hoàn thiện <hồ sơ>",
        "Nơi nhận:",
        "CHÁNH VĂN PHÒNG",
    ] {
        ensure!(
            text.contains(want),
            "missing {want:?} in the PDF's text\n{text}"
        );
    }
    ensure!(
        pdf_of(chair.clone()).await? == pdf,
        "the same record gave other bytes"
    );

    // Who may read: staff, the chair's invitation; not a bridge point, not
    // anonymous.
    for path in [
        "notice",
        "notice.pdf",
        "notice/status",
        "documents-deadline",
    ] {
        for (token, want) in [
            (Some(operator.as_str()), StatusCode::OK),
            (Some(chair.as_str()), StatusCode::OK),
            (Some(bridge.as_str()), StatusCode::FORBIDDEN),
            (None, StatusCode::UNAUTHORIZED),
        ] {
            let (got, v) = api
                .send(
                    reqwest::Method::GET,
                    &format!("/api/meetings/{m}/{path}"),
                    token,
                    None,
                )
                .await?;
            ensure!(got == want, "GET {path}: {got} {v}, expected {want}");
        }
    }
    // Who may mark it issued: not a bridge point, not the chair's
    // invitation, not an operator.
    let status_path = format!("/api/meetings/{m}/notice/status");
    for token in [&bridge, &chair, &operator] {
        let (s, v) = api
            .post(&status_path, token, json!({"issued": true}))
            .await?;
        ensure!(s == StatusCode::FORBIDDEN, "{s} {v}");
        ensure!(v["code"] == "forbidden", "{v}");
    }
    // Before the meeting has ended: 409.
    let (s, v) = api
        .post(&status_path, &secretary, json!({"issued": true}))
        .await?;
    ensure!(s == StatusCode::CONFLICT, "{s} {v}");
    ensure!(v["code"] == "conflict", "{v}");

    // Bad inputs.
    for (body, code) in [
        (json!({"issued": "yes"}), "invalid_json"),
        (json!({}), "invalid_json"),
        (json!({"issued": true, "extra": 1}), "invalid_json"),
        (
            json!({"issued": true, "number": "1".repeat(31)}),
            "invalid_input",
        ),
        (json!({"issued": true, "number": "1\u{0}"}), "invalid_input"),
    ] {
        let (s, v) = api.post(&status_path, &secretary, body.clone()).await?;
        ensure!(s == StatusCode::BAD_REQUEST, "{body}: {s} {v}");
        ensure!(v["code"] == code, "{body}: {v}");
    }
    let (s, v) = api
        .post(
            "/api/meetings/no-such-meeting/notice/status",
            &secretary,
            json!({"issued": true}),
        )
        .await?;
    ensure!(s == StatusCode::NOT_FOUND, "{s} {v}");
    ensure!(v["code"] == "meeting_not_found", "{v}");
    let (s, _) = api
        .send(
            reqwest::Method::GET,
            "/api/meetings/no-such-meeting/notice.pdf",
            Some(&admin),
            None,
        )
        .await?;
    ensure!(s == StatusCode::NOT_FOUND, "{s}");

    // The meeting ends (called off from draft); the secretary marks the
    // notice issued with its number.
    let (s, v) = api
        .post(
            &format!("/api/meetings/{m}/status"),
            &admin,
            json!({"status": "ended"}),
        )
        .await?;
    ensure!(s.is_success(), "end: {s} {v}");
    let before = now();
    let (s, st) = api
        .post(
            &status_path,
            &secretary,
            json!({"issued": true, "number": " 12 "}),
        )
        .await?;
    ensure!(s == StatusCode::OK, "{s} {st}");
    ensure!(st["overdue"] == false, "{st}");
    ensure!(st["issued"]["number"] == "12", "{st}");
    let by = st["issued"]["issued_by"].as_str().unwrap_or_default();
    ensure!(by.starts_with("user:"), "{st}");
    ensure!(
        st["issued"]["issued_at"]
            .as_i64()
            .is_some_and(|t| t >= before - 1 && t <= now() + 1),
        "{st}"
    );
    // Again by the admin: the first who and when stay.
    let (s, again) = api
        .post(
            &status_path,
            &admin,
            json!({"issued": true, "number": "12"}),
        )
        .await?;
    ensure!(
        s == StatusCode::OK && again["issued"] == st["issued"],
        "{again}"
    );
    let st2 = api.get(&status_path, &operator).await?;
    ensure!(st2["issued"] == st["issued"], "{st2}");

    // The PDF now carries the number.
    let text = pdf_text(&pdf_of(admin.clone()).await?)?;
    ensure!(text.contains("Số: 12/TB-UBND"), "{text}");

    // The audit log has it.
    let log = api
        .get("/api/audit?action=notice.*&target_type=meeting", &admin)
        .await?;
    let entries = log["entries"].as_array().context("entries")?;
    ensure!(
        entries
            .iter()
            .any(|e| e["action"] == "notice.issued" && e["target_id"] == m.as_str()),
        "{log}"
    );
    // Undone, then it is overdue again.
    let (s, st) = api
        .post(&status_path, &secretary, json!({"issued": false}))
        .await?;
    ensure!(s == StatusCode::OK, "{s} {st}");
    ensure!(st["issued"].is_null() && st["overdue"] == true, "{st}");
    Ok(())
}

/// The meeting's page in real Chromium (`tests/e2e/notice_page.mjs`): the
/// overdue notice in red, the documents' deadline missed with the late
/// document, the notice in its sandboxed frame (styled), the PDF download,
/// "Đã ban hành" with a number; under the server's CSP.
#[tokio::test]
async fn notice_on_the_meeting_page_in_chromium() -> Result<()> {
    use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
    use std::time::Duration;
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let server = TestServer::start_with_config(CALENDAR).await?;
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base_url(),
    };
    let password = "Thư-ký e2e 2026!";
    server.add_user("thuky.e2e", "secretary", password).await?;
    let secretary = server.login("thuky.e2e", password).await?;
    let m = api
        .meeting(
            &secretary,
            json!({"title": "Giao ban tháng 1", "starts_at": FRIDAY_2026_01_09}),
        )
        .await?;
    let item = api.item(&secretary, &m, "Chuyển đổi số").await?;
    let conclusion = "Giao Sở Khoa học và Công nghệ triển khai nền tảng số.";
    let (s, v) = api
        .send(
            reqwest::Method::PUT,
            &format!("/api/agenda/{item}/conclusion"),
            Some(&secretary),
            Some(json!({ "text": conclusion })),
        )
        .await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    api.upload(&secretary, &item, "Đề án chuyển đổi số").await?;
    let (s, v) = api
        .post(
            &format!("/api/meetings/{m}/status"),
            &secretary,
            json!({"status": "ended"}),
        )
        .await?;
    ensure!(s.is_success(), "end: {s} {v}");

    let dir = tempfile::tempdir()?;
    let out = dir.path().join("notice.pdf");
    let run = run_script(
        "notice_page.mjs",
        &[server.base_url().as_ref(), m.as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", "20000".to_owned()),
            ("E2E_USERNAME", "thuky.e2e".to_owned()),
            ("E2E_PASSWORD", password.to_owned()),
            ("E2E_EXPECT", conclusion.to_owned()),
            ("E2E_LATE", "Đề án chuyển đổi số".to_owned()),
            ("E2E_OUT", out.display().to_string()),
        ],
        Duration::from_secs(240),
    )
    .await?;
    ensure!(
        run.status.success(),
        "notice_page.mjs failed: {:?}\n{}",
        run.summary,
        tail(&run.stderr, 40)
    );
    let summary = run.summary.context("no summary")?;
    ensure!(summary["ok"] == true, "{summary}");
    // The downloaded PDF is the notice; the mark reached the server.
    let text = pdf_text(&std::fs::read(&out)?)?;
    ensure!(
        text.contains("THÔNG BÁO") && text.contains("Khoa học và Công nghệ"),
        "{text}"
    );
    let st = api
        .get(&format!("/api/meetings/{m}/notice/status"), &secretary)
        .await?;
    ensure!(st["issued"]["number"] == "12", "{st}");
    Ok(())
}
