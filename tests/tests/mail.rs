//! E-mail over SMTP (`[mail]`, docs/operations.md "E-mail") through a real
//! server and a real SMTP server started here: aiosmtpd
//! (`tests/mail/smtp_sink.py`, Python's email package decodes what it
//! receives). Scheduling a meeting sends each unit with an address its
//! invitation with its own link, then the reminder; a document added after
//! that sends the notice; with the SMTP server down the message stays
//! pending with the error, survives a SIGKILL of the server and goes out
//! once the SMTP server is back, once; a member invited with an address
//! gets its own invitation, reminder and notice; the documents notice names
//! the documents that changed, and the invitation's in-app notices
//! (`GET /api/invitation/notices`) say the same; a written opinion request
//! and its reminder reach the member with its own link, and the member
//! downloads the request's document with that link. SMTPS (`tls`) and
//! STARTTLS with SMTP login are checked against aiosmtpd with TLS and AUTH.
//!
//! Needs `python3` with aiosmtpd (scripts/test installs it, pinned).

mod doc_fixtures;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context as _, Result};
use giaoban_tests::{token_of, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// The SMTP server of the test.
struct Sink {
    child: tokio::process::Child,
}

impl Sink {
    async fn start(dir: &Path, port: u16) -> Result<Sink> {
        Self::start_with(dir, port, &[]).await
    }

    /// With `args` after the folder and port: [certificate, key] files
    /// (STARTTLS required), `--implicit-tls` (TLS from the first byte),
    /// `--auth USER PASSWORD` (login required); see smtp_sink.py.
    async fn start_with(dir: &Path, port: u16, args: &[&std::ffi::OsStr]) -> Result<Sink> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("mail/smtp_sink.py");
        let python = std::env::var("GIAOBAN_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let mut child = tokio::process::Command::new(python)
            .arg(&script)
            .arg(dir)
            .arg(port.to_string())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start the SMTP server (python3 with aiosmtpd)")?;
        let out = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(out).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .context("the SMTP server did not start (is aiosmtpd installed?)")??;
        ensure!(
            ready.as_deref() == Some("ready"),
            "SMTP server said {ready:?}"
        );
        Ok(Sink { child })
    }

    async fn stop(mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The messages received so far, decoded, oldest first.
fn received(dir: &Path) -> Result<Vec<Value>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    files
        .iter()
        .map(|p| Ok(serde_json::from_str(&std::fs::read_to_string(p)?)?))
        .collect()
}

/// Waits until `want` messages whose subject starts with `prefix` went to
/// `to`; returns them.
async fn wait_mail(dir: &Path, to: &str, prefix: &str, want: usize) -> Result<Vec<Value>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<Value> = received(dir)?
            .into_iter()
            .filter(|m| {
                m["rcpt_tos"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|a| a == to))
                    && m["subject"].as_str().is_some_and(|s| s.starts_with(prefix))
            })
            .collect();
        if got.len() >= want {
            return Ok(got);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "no {prefix:?} to {to} after 60 s; received: {:#}",
                Value::Array(received(dir)?)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut rq = self.http.request(method, format!("{}{path}", self.base));
        if !token.is_empty() {
            rq = rq.bearer_auth(token);
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await?;
        let status = r.status();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn ok(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: u16,
    ) -> Result<Value> {
        let (s, v) = self.call(method.clone(), path, token, body).await?;
        ensure!(
            s.as_u16() == want,
            "{method} {path}: expected {want}, got {s} {v}"
        );
        Ok(v)
    }

    async fn upload(
        &self,
        path: &str,
        token: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<(StatusCode, Value)> {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
}

/// `GET /api/meetings/{id}/mail` once `ok` holds (within 20 s).
async fn mail_view_when(
    api: &Api,
    t: &str,
    mid: &str,
    ok: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = api
            .ok(
                Method::GET,
                &format!("/api/meetings/{mid}/mail"),
                t,
                None,
                200,
            )
            .await?;
        if ok(&v) {
            return Ok(v);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the outbox never got there: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `08:00, thứ Hai, ngày 14/12/2026`-style date part of `at`, as the
/// server writes it (UTC+7): `dd/mm/yyyy`.
fn vn_date(at: i64) -> String {
    let days = (at + 7 * 3600).div_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{d:02}/{m:02}/{y:04}")
}

fn body(m: &Value) -> &str {
    m["body"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn invitations_reminders_notices_and_opinions_by_smtp() -> Result<()> {
    let mail_dir = tempfile::tempdir()?;
    let port = free_port()?;
    let sink = Sink::start(mail_dir.path(), port).await?;
    let mut server = TestServer::start_with_config(&format!(
        "[server]\ncontact = \"Văn phòng UBND tỉnh, 0221 3 123 456\"\n\n\
         [mail]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
         from = \"Văn phòng UBND tỉnh <hop@hungyen.gov.vn>\"\n\
         reply_to = \"vanphong@hungyen.gov.vn\"\nretry_base_secs = 1\nretry_max_secs = 2\n\
         poll_secs = 1\ntimeout_secs = 5\nmeeting_reminder_hours = 3\nopinion_reminder_hours = 0\n\
         documents_notice_delay_secs = 1\n"
    ))
    .await?;
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base_url(),
    };
    let token = server.staff_token("thuky", "secretary").await?;
    let t = token.as_str();

    // Units, two with an address; a bad address is refused.
    api.ok(
        Method::POST,
        "/api/bridge-points",
        t,
        Some(json!({"name": "UBND xã X", "level": "commune", "email": "không phải thư"})),
        400,
    )
    .await?;
    let mut units = Vec::new();
    for (name, level, email) in [
        ("UBND xã Ea Tiêu", "commune", "eatieu@daklak.gov.vn"),
        ("UBND phường Tân Lập", "ward", "tanlap@daklak.gov.vn"),
        ("Sở Tài chính", "department", ""),
    ] {
        let bp = api
            .ok(
                Method::POST,
                "/api/bridge-points",
                t,
                Some(json!({"name": name, "level": level, "email": email})),
                201,
            )
            .await?;
        ensure!(bp["email"] == email, "{bp}");
        units.push(bp);
    }

    let starts = now() + 2 * 3600;
    let title = "Giao ban tháng 12: kinh tế – xã hội, quốc phòng – an ninh";
    let meeting = api
        .ok(
            Method::POST,
            "/api/meetings",
            t,
            Some(
                json!({"title": title, "starts_at": starts, "ends_at": starts + 3 * 3600,
                        "location": "Hội trường tầng 3, UBND tỉnh"}),
            ),
            201,
        )
        .await?;
    let mid = meeting["id"].as_str().context("meeting id")?.to_owned();
    let mut links = Vec::new();
    for bp in &units {
        let inv = api
            .ok(
                Method::POST,
                &format!("/api/meetings/{mid}/invitations"),
                t,
                Some(json!({"name": bp["name"], "role": "bridge", "bridge_point_id": bp["id"]})),
                201,
            )
            .await?;
        links.push(inv["url"].as_str().context("url")?.to_owned());
    }
    // A member (no unit) with an e-mail address; a bad one is refused.
    api.ok(
        Method::POST,
        &format!("/api/meetings/{mid}/invitations"),
        t,
        Some(json!({"name": "Đồng chí Ủy viên", "role": "member", "email": "uyvien@"})),
        400,
    )
    .await?;
    let member = api
        .ok(
            Method::POST,
            &format!("/api/meetings/{mid}/invitations"),
            t,
            Some(json!({"name": "Đồng chí Lê Văn Ủy viên", "role": "member",
                        "email": " uyvien@hungyen.gov.vn "})),
            201,
        )
        .await?;
    ensure!(member["email"] == "uyvien@hungyen.gov.vn", "{member}");
    let member_link = member["url"].as_str().context("member url")?.to_owned();
    // A draft sends nothing.
    let v = api
        .ok(
            Method::GET,
            &format!("/api/meetings/{mid}/mail"),
            t,
            None,
            200,
        )
        .await?;
    ensure!(v["enabled"] == true && v["messages"] == json!([]), "{v}");
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/api/meetings/{mid}/mail/invitations"),
            t,
            None,
        )
        .await?;
    ensure!(s == 409, "sending invitations of a draft: {s}");

    // "Lên lịch": the invitations go out, then the reminder (the meeting
    // starts within mail.meeting_reminder_hours).
    api.ok(
        Method::POST,
        &format!("/api/meetings/{mid}/status"),
        t,
        Some(json!({"status": "scheduled"})),
        200,
    )
    .await?;
    for (i, (addr, name)) in [
        ("eatieu@daklak.gov.vn", "UBND xã Ea Tiêu"),
        ("tanlap@daklak.gov.vn", "UBND phường Tân Lập"),
    ]
    .iter()
    .enumerate()
    {
        let inv = wait_mail(mail_dir.path(), addr, "Giấy mời họp:", 1).await?;
        let m = &inv[0];
        ensure!(m["subject"] == format!("Giấy mời họp: {title}"), "{m}");
        ensure!(
            m["charset"] == "utf-8" && m["content_type"] == "text/plain",
            "{m}"
        );
        ensure!(
            m["from"].as_str().is_some_and(
                |f| f.contains("Văn phòng UBND tỉnh") && f.contains("hop@hungyen.gov.vn")
            ),
            "{m}"
        );
        ensure!(m["reply_to"] == "vanphong@hungyen.gov.vn", "{m}");
        ensure!(m["to"].as_str().is_some_and(|to| to.contains(name)), "{m}");
        let b = body(m);
        ensure!(b.contains(&format!("Kính gửi: {name}")), "{b}");
        ensure!(b.contains("Hội trường tầng 3, UBND tỉnh"), "{b}");
        ensure!(b.contains(&format!("ngày {}", vn_date(starts))), "{b}");
        ensure!(b.contains("Văn phòng UBND tỉnh, 0221 3 123 456"), "{b}");
        // The unit's own link, and it opens its own invitation.
        ensure!(b.contains(&links[i]), "{b}\nwithout {}", links[i]);
        ensure!(!b.contains(&links[1 - i]), "another unit's link in {b}");
        let own = api
            .ok(
                Method::GET,
                "/api/invitation",
                token_of(&links[i])?,
                None,
                200,
            )
            .await?;
        ensure!(own.to_string().contains(name), "{own}");
        let rem = wait_mail(mail_dir.path(), addr, "Nhắc lịch họp:", 1).await?;
        ensure!(body(&rem[0]).contains(&links[i]), "{}", rem[0]);
        ensure!(
            rem[0]["subject"]
                .as_str()
                .is_some_and(|s| s.contains(title)),
            "{}",
            rem[0]
        );
    }
    // The member: its own invitation with its own link, as a person.
    let m = &wait_mail(mail_dir.path(), "uyvien@hungyen.gov.vn", "Giấy mời họp:", 1).await?[0];
    let b = body(m);
    ensure!(
        b.contains("Kính gửi: Đồng chí Lê Văn Ủy viên")
            && b.contains("kính mời đồng chí tham dự")
            && b.contains(&member_link),
        "{b}"
    );
    ensure!(!links.iter().any(|l| b.contains(l.as_str())), "{b}");
    let own = api
        .ok(
            Method::GET,
            "/api/invitation",
            token_of(&member_link)?,
            None,
            200,
        )
        .await?;
    ensure!(own["name"] == "Đồng chí Lê Văn Ủy viên", "{own}");
    let rem = wait_mail(
        mail_dir.path(),
        "uyvien@hungyen.gov.vn",
        "Nhắc lịch họp:",
        1,
    )
    .await?;
    ensure!(body(&rem[0]).contains(&member_link), "{}", rem[0]);
    // (The SMTP server has the message before the server records it sent.)
    let v = mail_view_when(&api, t, &mid, |v| v["counts"]["sent"] == 6).await?;
    ensure!(v["without_email"][0]["name"] == "Sở Tài chính", "{v}");
    ensure!(
        !v.to_string().contains(token_of(&links[0])?),
        "the outbox view shows a link: {v}"
    );

    // A document after the invitations (a second later at least: times
    // are whole seconds): the notice.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let item = api
        .ok(
            Method::POST,
            &format!("/api/meetings/{mid}/agenda"),
            t,
            Some(json!({"title": "Báo cáo kinh tế – xã hội"})),
            201,
        )
        .await?;
    let item_id = item["id"].as_str().context("item")?;
    let (s, v) = api
        .upload(
            &format!("/api/agenda/{item_id}/documents"),
            t,
            "bao-cao.pdf",
            doc_fixtures::pdf("mail"),
        )
        .await?;
    ensure!(s == 201, "{s} {v}");
    for addr in [
        "eatieu@daklak.gov.vn",
        "tanlap@daklak.gov.vn",
        "uyvien@hungyen.gov.vn",
    ] {
        let n = wait_mail(mail_dir.path(), addr, "Tài liệu họp đã được cập nhật:", 1).await?;
        let b = body(&n[0]);
        ensure!(b.contains("/join#"), "{}", n[0]);
        // It names the document and the change.
        ensure!(
            b.contains("Tài liệu đã thay đổi:") && b.contains("  - bao-cao.pdf (bổ sung, lúc "),
            "{b}"
        );
    }
    // In the app: the invitation, the reminder and the new document, each
    // with its time; staff tokens are not invitations.
    let notices = api
        .ok(
            Method::GET,
            "/api/invitation/notices",
            token_of(&links[0])?,
            None,
            200,
        )
        .await?;
    let kinds: Vec<&str> = notices["notices"]
        .as_array()
        .context("notices")?
        .iter()
        .filter_map(|n| n["kind"].as_str())
        .collect();
    ensure!(
        kinds == ["documents_changed", "reminder", "invitation"],
        "{notices:#}"
    );
    let n = &notices["notices"];
    ensure!(
        n[0]["title"] == "bao-cao.pdf" && n[0]["change"] == "added",
        "{notices:#}"
    );
    ensure!(
        n[1]["email"] == "sent" && n[2]["email"] == "sent",
        "{notices:#}"
    );
    ensure!(
        n[2]["at"] == notices["invited_at"] && n[2]["at"].as_i64() <= n[0]["at"].as_i64(),
        "{notices:#}"
    );
    let (s, _) = api
        .call(Method::GET, "/api/invitation/notices", t, None)
        .await?;
    ensure!(s == 403, "staff reading an invitation's notices: {s}");

    // The SMTP server down: the new unit's invitation waits, with the error.
    sink.stop().await?;
    let bp = api
        .ok(
            Method::POST,
            "/api/bridge-points",
            t,
            Some(json!({"name": "UBND xã Krông Nô", "level": "commune", "email": "krongno@daknong.gov.vn"})),
            201,
        )
        .await?;
    let inv = api
        .ok(
            Method::POST,
            &format!("/api/meetings/{mid}/invitations"),
            t,
            Some(
                json!({"name": "UBND xã Krông Nô", "role": "bridge", "bridge_point_id": bp["id"]}),
            ),
            201,
        )
        .await?;
    let krong_link = inv["url"].as_str().context("url")?.to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = api
            .ok(
                Method::GET,
                &format!("/api/meetings/{mid}/mail"),
                t,
                None,
                200,
            )
            .await?;
        let waiting = v["messages"].as_array().into_iter().flatten().find(|m| {
            m["to_addr"] == "krongno@daknong.gov.vn"
                && m["kind"] == "invitation"
                && m["status"] == "pending"
                && m["attempts"].as_u64().unwrap_or(0) >= 1
                && m["last_error"].as_str().is_some_and(|e| !e.is_empty())
        });
        if waiting.is_some() {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no failed attempt recorded: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The server dies (SIGKILL) and comes back; then the SMTP server does.
    server.kill_hard().await?;
    server.restart().await?;
    let sink = Sink::start(mail_dir.path(), port).await?;
    let m = wait_mail(
        mail_dir.path(),
        "krongno@daknong.gov.vn",
        "Giấy mời họp:",
        1,
    )
    .await?;
    ensure!(body(&m[0]).contains(&krong_link), "{}", m[0]);
    wait_mail(
        mail_dir.path(),
        "krongno@daknong.gov.vn",
        "Nhắc lịch họp:",
        1,
    )
    .await?;

    // Nothing twice: each message once, also after the restart.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let all = received(mail_dir.path())?;
    let mut seen = std::collections::HashSet::new();
    for m in &all {
        let key = (m["rcpt_tos"].to_string(), m["subject"].to_string());
        ensure!(seen.insert(key), "sent twice: {m}");
        ensure!(seen.len() <= all.len());
    }
    ensure!(
        all.len() == 11,
        "expected 11 messages, got {}: {all:#?}",
        all.len()
    );
    mail_view_when(&api, t, &mid, |v| {
        v["counts"] == json!({"pending": 0, "sent": 11, "failed": 0})
    })
    .await?;

    // A saved group invited after "Lên lịch": its units' invitations go at
    // once, like those of a group of levels.
    let late = api
        .ok(
            Method::POST,
            "/api/bridge-points",
            t,
            Some(json!({"name": "UBND xã Cư Suê", "level": "commune", "email": "cusue@daklak.gov.vn"})),
            201,
        )
        .await?;
    let group = api
        .ok(
            Method::POST,
            "/api/unit-groups",
            t,
            Some(json!({"name": "Khối xã vùng cao", "bridge_point_ids": [late["id"]]})),
            201,
        )
        .await?;
    let made = api
        .ok(
            Method::POST,
            &format!("/api/meetings/{mid}/invitations/unit-group"),
            t,
            Some(json!({"group_id": group["id"]})),
            201,
        )
        .await?;
    let late_link = made[0]["url"].as_str().context("group invitation url")?;
    let got = wait_mail(mail_dir.path(), "cusue@daklak.gov.vn", "Giấy mời họp:", 1).await?;
    ensure!(body(&got[0]).contains(late_link), "{}", got[0]);
    // Its reminder too (the meeting is within the reminder's hours).
    wait_mail(mail_dir.path(), "cusue@daklak.gov.vn", "Nhắc lịch họp:", 1).await?;

    // A written opinion request with a document, by e-mail.
    let req = api
        .ok(
            Method::POST,
            "/api/opinions",
            t,
            Some(json!({
                "title": "Phiếu lấy ý kiến về đề án chuyển đổi số",
                "question": "Đồng chí có đồng ý thông qua đề án không?",
                "deadline": now() + 2 * 86_400,
                "recipients": [
                    {"name": "Đồng chí Chủ tịch", "chair": true, "email": "chutich@hungyen.gov.vn"},
                    {"name": "Đồng chí Phó Chủ tịch"},
                ],
            })),
            201,
        )
        .await?;
    let rid = req["request"]["id"]
        .as_str()
        .context("request id")?
        .to_owned();
    let olink = req["recipients"][0]["url"]
        .as_str()
        .context("url")?
        .to_owned();
    let otoken = req["recipients"][0]["token"]
        .as_str()
        .context("token")?
        .to_owned();
    let m = wait_mail(
        mail_dir.path(),
        "chutich@hungyen.gov.vn",
        "Phiếu lấy ý kiến:",
        1,
    )
    .await?;
    ensure!(
        body(&m[0]).contains(&olink) && body(&m[0]).contains("/opinion#"),
        "{}",
        m[0]
    );
    ensure!(
        body(&m[0]).contains("Đồng chí có đồng ý thông qua đề án không?"),
        "{}",
        m[0]
    );
    api.ok(
        Method::POST,
        &format!("/api/opinions/{rid}/remind"),
        t,
        Some(json!({"message": "Xin trả lời trước thứ Sáu"})),
        200,
    )
    .await?;
    let m = wait_mail(
        mail_dir.path(),
        "chutich@hungyen.gov.vn",
        "Nhắc trả lời phiếu lấy ý kiến:",
        1,
    )
    .await?;
    ensure!(
        body(&m[0]).contains("Xin trả lời trước thứ Sáu") && body(&m[0]).contains(&olink),
        "{}",
        m[0]
    );
    let v = api
        .ok(
            Method::GET,
            &format!("/api/opinions/{rid}/mail"),
            t,
            None,
            200,
        )
        .await?;
    ensure!(
        v["without_email"][0]["name"] == "Đồng chí Phó Chủ tịch",
        "{v}"
    );

    // Its document: attached by the secretariat, downloaded with the
    // member's own link; anything but a document format is refused.
    let pdf = doc_fixtures::pdf("opinion");
    let (s, doc) = api
        .upload(
            &format!("/api/opinions/{rid}/documents"),
            t,
            "de-an.pdf",
            pdf.clone(),
        )
        .await?;
    ensure!(s == 201 && doc["file_type"] == "pdf", "{s} {doc}");
    let (s, v) = api
        .upload(
            &format!("/api/opinions/{rid}/documents"),
            t,
            "virus.exe",
            b"MZ\x90\x00 not a document".to_vec(),
        )
        .await?;
    ensure!(
        s == 415 && v["code"] == "unsupported_document_type",
        "{s} {v}"
    );
    let view = api
        .ok(Method::GET, "/api/opinion", &otoken, None, 200)
        .await?;
    ensure!(view["documents"][0]["id"] == doc["id"], "{view}");
    let doc_id = doc["id"].as_str().context("doc id")?;
    let r = api
        .http
        .get(format!("{}/api/opinion/documents/{doc_id}", api.base))
        .bearer_auth(&otoken)
        .send()
        .await?;
    ensure!(r.status() == 200, "download: {}", r.status());
    ensure!(r.headers()["content-type"] == "application/pdf");
    ensure!(r.bytes().await?.as_ref() == pdf.as_slice(), "other bytes");
    // A staff token is not an opinion link.
    let (s, _) = api
        .call(
            Method::GET,
            &format!("/api/opinion/documents/{doc_id}"),
            t,
            None,
        )
        .await?;
    ensure!(s == 401, "staff token on the recipient's endpoint: {s}");
    let r = api
        .http
        .get(format!(
            "{}/api/opinions/{rid}/documents/{doc_id}",
            api.base
        ))
        .bearer_auth(t)
        .send()
        .await?;
    ensure!(r.status() == 200, "staff download: {}", r.status());

    sink.stop().await?;
    Ok(())
}

/// Without `[mail]`, scheduling works and nothing is queued.
#[tokio::test]
async fn without_mail_nothing_is_queued() -> Result<()> {
    let server = TestServer::start().await?;
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base_url(),
    };
    let token = server.staff_token("thuky", "secretary").await?;
    let t = token.as_str();
    let bp = api
        .ok(
            Method::POST,
            "/api/bridge-points",
            t,
            Some(json!({"name": "UBND xã Ea Tiêu", "level": "commune", "email": "eatieu@daklak.gov.vn"})),
            201,
        )
        .await?;
    let m = api
        .ok(
            Method::POST,
            "/api/meetings",
            t,
            Some(json!({"title": "Họp thử", "starts_at": now() + 3600})),
            201,
        )
        .await?;
    let mid = m["id"].as_str().context("id")?;
    api.ok(
        Method::POST,
        &format!("/api/meetings/{mid}/invitations"),
        t,
        Some(json!({"name": "UBND xã Ea Tiêu", "role": "bridge", "bridge_point_id": bp["id"]})),
        201,
    )
    .await?;
    api.ok(
        Method::POST,
        &format!("/api/meetings/{mid}/status"),
        t,
        Some(json!({"status": "scheduled"})),
        200,
    )
    .await?;
    let v = api
        .ok(
            Method::GET,
            &format!("/api/meetings/{mid}/mail"),
            t,
            None,
            200,
        )
        .await?;
    ensure!(v["enabled"] == false && v["messages"] == json!([]), "{v}");
    Ok(())
}

/// A CA and a certificate for `localhost` signed by it, as PEM.
fn province_pki() -> Result<(String, String, String)> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "CA UBND tỉnh (thử nghiệm)");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    Ok((ca.pem(), cert.pem(), key.serialize_pem()))
}

/// STARTTLS with rustls: the SMTP server's certificate is checked against
/// `mail.ca_file` (the province's CA): delivered. Without it (the system's
/// roots, which do not know that CA) the message waits with the error.
#[tokio::test]
async fn starttls_checks_the_province_ca() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (ca, cert, key) = province_pki()?;
    let (ca_path, cert_path, key_path) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    std::fs::write(&ca_path, ca)?;
    std::fs::write(&cert_path, cert)?;
    std::fs::write(&key_path, key)?;
    let mail_dir = dir.path().join("mail");
    std::fs::create_dir_all(&mail_dir)?;
    let port = free_port()?;
    let sink = Sink::start_with(
        &mail_dir,
        port,
        &[cert_path.as_os_str(), key_path.as_os_str()],
    )
    .await?;
    for (ca_file, delivered) in [(Some(&ca_path), true), (None, false)] {
        let ca_line = ca_file
            .map(|p| {
                format!(
                    "ca_file = {}\n",
                    giaoban_tests::toml_quote(&p.display().to_string())
                )
            })
            .unwrap_or_default();
        let server = TestServer::start_with_config(&format!(
            "[mail]\nhost = \"localhost\"\nport = {port}\nsecurity = \"starttls\"\n{ca_line}\
             from = \"Văn phòng UBND tỉnh <hop@hungyen.gov.vn>\"\nretry_base_secs = 1\n\
             retry_max_secs = 2\npoll_secs = 1\ntimeout_secs = 5\nmeeting_reminder_hours = 0\n"
        ))
        .await?;
        let api = Api {
            http: reqwest::Client::new(),
            base: server.base_url(),
        };
        let token = server.staff_token("thuky", "secretary").await?;
        let t = token.as_str();
        let addr = if delivered {
            "tls@daklak.gov.vn"
        } else {
            "notls@daklak.gov.vn"
        };
        let bp = api
            .ok(
                Method::POST,
                "/api/bridge-points",
                t,
                Some(json!({"name": "UBND xã Ea Tiêu", "level": "commune", "email": addr})),
                201,
            )
            .await?;
        let m = api
            .ok(
                Method::POST,
                "/api/meetings",
                t,
                Some(json!({"title": "Họp thử TLS", "starts_at": now() + 86_400})),
                201,
            )
            .await?;
        let mid = m["id"].as_str().context("id")?.to_owned();
        api.ok(
            Method::POST,
            &format!("/api/meetings/{mid}/invitations"),
            t,
            Some(json!({"name": "UBND xã Ea Tiêu", "role": "bridge", "bridge_point_id": bp["id"]})),
            201,
        )
        .await?;
        api.ok(
            Method::POST,
            &format!("/api/meetings/{mid}/status"),
            t,
            Some(json!({"status": "scheduled"})),
            200,
        )
        .await?;
        if delivered {
            let got = wait_mail(&mail_dir, addr, "Giấy mời họp:", 1).await?;
            ensure!(body(&got[0]).contains("/join#"), "{}", got[0]);
            mail_view_when(&api, t, &mid, |v| v["counts"]["sent"] == 1).await?;
        } else {
            let v = mail_view_when(&api, t, &mid, |v| {
                v["messages"][0]["attempts"].as_u64().unwrap_or(0) >= 1
            })
            .await?;
            ensure!(v["messages"][0]["status"] == "pending", "{v}");
            ensure!(
                v["messages"][0]["last_error"]
                    .as_str()
                    .is_some_and(|e| !e.is_empty()),
                "{v}"
            );
            ensure!(
                received(&mail_dir)?
                    .iter()
                    .all(|m| m["rcpt_tos"][0] != addr),
                "delivered to a server whose certificate is not trusted"
            );
        }
    }
    sink.stop().await?;
    Ok(())
}

impl Api {
    /// A document upload with form fields besides the file.
    async fn upload_with(
        &self,
        path: &str,
        token: &str,
        name: &str,
        bytes: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> Result<Value> {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .multipart(form.part("file", part))
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        ensure!(status == 201, "{path}: {status} {v}");
        Ok(v)
    }
}

/// The documents notice names what changed after the invitation (withdrawn,
/// replaced, added; not a document the unit may not read), and the
/// invitation's in-app notices list the same changes.
#[tokio::test]
async fn the_documents_notice_names_the_changes() -> Result<()> {
    let mail_dir = tempfile::tempdir()?;
    let port = free_port()?;
    let sink = Sink::start(mail_dir.path(), port).await?;
    let server = TestServer::start_with_config(&format!(
        "[mail]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
         from = \"Văn phòng UBND tỉnh <hop@hungyen.gov.vn>\"\nretry_base_secs = 1\n\
         retry_max_secs = 2\npoll_secs = 1\ntimeout_secs = 5\nmeeting_reminder_hours = 0\n\
         documents_notice_delay_secs = 2\n"
    ))
    .await?;
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base_url(),
    };
    let token = server.staff_token("thuky", "secretary").await?;
    let t = token.as_str();
    let addr = "eatieu@daklak.gov.vn";
    let bp = api
        .ok(
            Method::POST,
            "/api/bridge-points",
            t,
            Some(json!({"name": "UBND xã Ea Tiêu", "level": "commune", "email": addr})),
            201,
        )
        .await?;
    let m = api
        .ok(
            Method::POST,
            "/api/meetings",
            t,
            Some(json!({"title": "Giao ban quý III", "starts_at": now() + 86_400})),
            201,
        )
        .await?;
    let mid = m["id"].as_str().context("id")?.to_owned();
    let item = api
        .ok(
            Method::POST,
            &format!("/api/meetings/{mid}/agenda"),
            t,
            Some(json!({"title": "Tình hình kinh tế – xã hội"})),
            201,
        )
        .await?;
    let docs = format!(
        "/api/agenda/{}/documents",
        item["id"].as_str().context("item")?
    );
    // Sent with the invitation: not changes.
    let a = api
        .upload_with(
            &docs,
            t,
            "a.pdf",
            doc_fixtures::pdf("a"),
            &[("title", "Báo cáo quý III")],
        )
        .await?;
    let b = api
        .upload_with(
            &docs,
            t,
            "b.pdf",
            doc_fixtures::pdf("b"),
            &[("title", "Tờ trình số 12")],
        )
        .await?;
    let inv = api
        .ok(
            Method::POST,
            &format!("/api/meetings/{mid}/invitations"),
            t,
            Some(json!({"name": "UBND xã Ea Tiêu", "role": "bridge", "bridge_point_id": bp["id"]})),
            201,
        )
        .await?;
    let link = inv["url"].as_str().context("url")?.to_owned();
    let invitee = token_of(&link)?.to_owned();
    api.ok(
        Method::POST,
        &format!("/api/meetings/{mid}/status"),
        t,
        Some(json!({"status": "scheduled"})),
        200,
    )
    .await?;
    wait_mail(mail_dir.path(), addr, "Giấy mời họp:", 1).await?;
    let v = api
        .ok(Method::GET, "/api/invitation/notices", &invitee, None, 200)
        .await?;
    ensure!(
        v["notices"].as_array().map(Vec::len) == Some(1) && v["notices"][0]["kind"] == "invitation",
        "before any change: {v:#}"
    );
    // A second later (times are whole seconds), the changes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a_id = a["id"].as_str().context("a")?;
    api.ok(
        Method::POST,
        &format!("/api/documents/{a_id}/withdraw"),
        t,
        Some(json!({"reason": "Số liệu chưa chính xác"})),
        200,
    )
    .await?;
    let b_id = b["id"].as_str().context("b")?;
    api.upload_with(
        &format!("/api/documents/{b_id}/replace"),
        t,
        "b2.pdf",
        doc_fixtures::pdf("b2"),
        &[("title", "Tờ trình số 12 (sửa đổi)")],
    )
    .await?;
    api.upload_with(
        &docs,
        t,
        "c.pdf",
        doc_fixtures::pdf("c"),
        &[("title", "Phụ lục số liệu")],
    )
    .await?;
    api.upload_with(
        &docs,
        t,
        "d.pdf",
        doc_fixtures::pdf("d"),
        &[
            ("title", "Dự thảo kết luận (thành viên UBND)"),
            ("access", "committee"),
        ],
    )
    .await?;
    // The notice(s): one usually; whatever their number, together they name
    // each change once, and never the committee's document.
    let want = [
        "  - Báo cáo quý III (đã rút, lúc ",
        "  - Tờ trình số 12 (sửa đổi) (thay thế tài liệu \u{201c}Tờ trình số 12\u{201d}, lúc ",
        "  - Phụ lục số liệu (bổ sung, lúc ",
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let all = loop {
        let got = wait_mail(mail_dir.path(), addr, "Tài liệu họp đã được cập nhật:", 1).await?;
        let all: String = got.iter().map(|m| body(m).to_owned()).collect();
        if want.iter().all(|w| all.contains(w)) {
            break all;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the notices do not name every change: {all}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for w in want {
        ensure!(all.matches(w).count() == 1, "{w:?} not once in {all}");
    }
    ensure!(
        !all.contains("Dự thảo kết luận"),
        "a committee document told to a unit: {all}"
    );
    // In the app, the same changes, newest first, then the invitation.
    let v = api
        .ok(Method::GET, "/api/invitation/notices", &invitee, None, 200)
        .await?;
    let list = v["notices"].as_array().context("notices")?;
    let seen: Vec<(String, String)> = list
        .iter()
        .filter(|n| n["kind"] == "documents_changed")
        .map(|n| {
            (
                n["title"].as_str().unwrap_or_default().to_owned(),
                n["change"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut sorted = seen.clone();
    sorted.sort();
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    ensure!(
        sorted
            == [
                pair("Báo cáo quý III", "withdrawn"),
                pair("Phụ lục số liệu", "added"),
                pair("Tờ trình số 12 (sửa đổi)", "replaced"),
            ],
        "{v:#}"
    );
    let replaced = list
        .iter()
        .find(|n| n["change"] == "replaced")
        .context("replaced")?;
    ensure!(replaced["replaces_title"] == "Tờ trình số 12", "{v:#}");
    ensure!(
        list.last().is_some_and(|n| n["kind"] == "invitation"),
        "{v:#}"
    );
    let ats: Vec<i64> = list.iter().filter_map(|n| n["at"].as_i64()).collect();
    ensure!(
        ats.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {v:#}"
    );
    sink.stop().await?;
    Ok(())
}

/// SMTPS (`security = "tls"`, TLS from the first byte) with SMTP login:
/// delivered with the right password (from `password_file`), refused with
/// a wrong one (kept with the server's error, nothing delivered); STARTTLS
/// with login also delivers. The SMTP server is aiosmtpd with implicit TLS
/// or STARTTLS and AUTH required.
#[tokio::test]
async fn smtps_and_smtp_login() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (ca, cert, key) = province_pki()?;
    let (ca_path, cert_path, key_path, pw_path) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("smtp.password"),
    );
    std::fs::write(&ca_path, ca)?;
    std::fs::write(&cert_path, cert)?;
    std::fs::write(&key_path, key)?;
    std::fs::write(&pw_path, "mật khẩu SMTP\n")?;
    let ca_q = giaoban_tests::toml_quote(&ca_path.display().to_string());
    let pw_q = giaoban_tests::toml_quote(&pw_path.display().to_string());
    for (security, implicit, password, delivered) in [
        ("tls", true, format!("password_file = {pw_q}\n"), true),
        (
            "tls",
            true,
            "password = \"sai mật khẩu\"\n".to_owned(),
            false,
        ),
        ("starttls", false, format!("password_file = {pw_q}\n"), true),
    ] {
        let mail_dir = dir.path().join(format!("mail-{security}-{delivered}"));
        std::fs::create_dir_all(&mail_dir)?;
        let port = free_port()?;
        let mut args = vec![cert_path.as_os_str(), key_path.as_os_str()];
        if implicit {
            args.push("--implicit-tls".as_ref());
        }
        args.extend(["--auth", "hop", "mật khẩu SMTP"].map(std::ffi::OsStr::new));
        let sink = Sink::start_with(&mail_dir, port, &args).await?;
        let server = TestServer::start_with_config(&format!(
            "[mail]\nhost = \"localhost\"\nport = {port}\nsecurity = \"{security}\"\n\
             ca_file = {ca_q}\nuser = \"hop\"\n{password}\
             from = \"Văn phòng UBND tỉnh <hop@hungyen.gov.vn>\"\nretry_base_secs = 1\n\
             retry_max_secs = 2\npoll_secs = 1\ntimeout_secs = 5\nmeeting_reminder_hours = 0\n"
        ))
        .await?;
        let api = Api {
            http: reqwest::Client::new(),
            base: server.base_url(),
        };
        let token = server.staff_token("thuky", "secretary").await?;
        let t = token.as_str();
        let m = api
            .ok(
                Method::POST,
                "/api/meetings",
                t,
                Some(json!({"title": "Họp thử SMTPS", "starts_at": now() + 86_400})),
                201,
            )
            .await?;
        let mid = m["id"].as_str().context("id")?.to_owned();
        let addr = "chutich@hungyen.gov.vn";
        let inv = api
            .ok(
                Method::POST,
                &format!("/api/meetings/{mid}/invitations"),
                t,
                Some(json!({"name": "Đồng chí Chủ tịch", "role": "chair", "email": addr})),
                201,
            )
            .await?;
        api.ok(
            Method::POST,
            &format!("/api/meetings/{mid}/status"),
            t,
            Some(json!({"status": "scheduled"})),
            200,
        )
        .await?;
        if delivered {
            let got = wait_mail(&mail_dir, addr, "Giấy mời họp:", 1).await?;
            let url = inv["url"].as_str().context("url")?;
            ensure!(body(&got[0]).contains(url), "{}", got[0]);
            mail_view_when(&api, t, &mid, |v| v["counts"]["sent"] == 1).await?;
        } else {
            let v = mail_view_when(&api, t, &mid, |v| {
                v["messages"][0]["attempts"].as_u64().unwrap_or(0) >= 1
            })
            .await?;
            let msg = &v["messages"][0];
            ensure!(msg["status"] != "sent", "{v}");
            ensure!(
                msg["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("535")),
                "the login's refusal is not recorded: {v}"
            );
            ensure!(
                received(&mail_dir)?.is_empty(),
                "delivered with a wrong password"
            );
        }
        sink.stop().await?;
    }
    Ok(())
}
