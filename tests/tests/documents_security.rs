//! Documents never run in the app's origin, and the secretariat can
//! withdraw or replace them (issue 19, "Documents must never run in the
//! app's origin"; issue 22, defect 3), on the real server:
//!
//! - the stored type comes from the bytes: HTML named `bao-cao.pdf` sent as
//!   `application/pdf`, SVG, a Windows executable, a plain ZIP and a
//!   macro-enabled Word file are refused (415 `unsupported_document_type`,
//!   nothing stored); a PDF sent as `text/html`, a DOCX, an XLS and an ODT
//!   are stored as what their bytes are;
//! - every download carries `nosniff`, a `sandbox` CSP, `private, no-store`
//!   and an RFC 6266 `Content-Disposition` that a hostile file name cannot
//!   break out of;
//! - a version stored before types were verified is served as what its
//!   bytes are, else `application/octet-stream`;
//! - withdraw and replace: who may, what the list shows, downloads refused
//!   to invitees (410), the audit rows, a frozen meeting.

use anyhow::Context;
use giaoban_tests::TestServer;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};

mod doc_fixtures;
use doc_fixtures::{docx, ole2, pdf, zip, CONTENT_TYPES};

/// What a call answered.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn expect(self, status: u16, what: &str) -> anyhow::Result<Value> {
        anyhow::ensure!(
            self.status.as_u16() == status,
            "{what}: expected {status}, got {} {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        Ok(self.json())
    }

    fn expect_error(self, status: u16, code: &str, what: &str) -> anyhow::Result<Value> {
        let v = self.expect(status, what)?;
        anyhow::ensure!(v["code"] == code, "{what}: expected code {code}, got {v}");
        Ok(v)
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(server: &TestServer) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: server.base_url(),
        }
    }

    async fn answer(r: reqwest::RequestBuilder, token: &str) -> anyhow::Result<Answer> {
        let r = r.bearer_auth(token).send().await?;
        Ok(Answer {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.bytes().await?.to_vec(),
        })
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<Answer> {
        Api::answer(self.http.get(format!("{}{path}", self.base)), token).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> anyhow::Result<Answer> {
        Api::answer(
            self.http.post(format!("{}{path}", self.base)).json(&body),
            token,
        )
        .await
    }

    async fn upload(&self, path: &str, token: &str, form: Form) -> anyhow::Result<Answer> {
        Api::answer(
            self.http
                .post(format!("{}{path}", self.base))
                .multipart(form),
            token,
        )
        .await
    }
}

fn form(bytes: Vec<u8>, filename: &str, ctype: &str, fields: &[(&str, &str)]) -> Form {
    let part = Part::bytes(bytes)
        .file_name(filename.to_owned())
        .mime_str(ctype)
        .unwrap_or_else(|_| Part::bytes(Vec::new()));
    let mut f = Form::new().part("file", part);
    for (k, v) in fields {
        f = f.text(k.to_string(), v.to_string());
    }
    f
}

/// Files in the server's content store (not counting temp files).
fn stored_files(server: &TestServer) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(server.data_dir.join("documents")) {
        for d in dirs.flatten() {
            if d.file_name() == "tmp" {
                continue;
            }
            if let Ok(files) = std::fs::read_dir(d.path()) {
                out.extend(files.flatten().map(|f| f.path()));
            }
        }
    }
    out
}

/// A meeting with one agenda item, a secretary, an operator and a bridge
/// point's invitation token.
struct Setup {
    server: TestServer,
    api: Api,
    sec: String,
    operator: String,
    bridge: String,
    meeting: String,
    item: String,
}

async fn setup() -> anyhow::Result<Setup> {
    let server = TestServer::start().await?;
    let api = Api::new(&server);
    let sec = server.staff_token("thu-ky", "secretary").await?;
    let operator = server.staff_token("ky-thuat", "operator").await?;
    let meeting = api
        .post("/api/meetings", &sec, json!({"title": "Giao ban tháng 12"}))
        .await?
        .expect(201, "meeting")?["id"]
        .as_str()
        .context("meeting id")?
        .to_owned();
    let item = api
        .post(
            &format!("/api/meetings/{meeting}/agenda"),
            &sec,
            json!({"title": "Báo cáo kinh tế - xã hội"}),
        )
        .await?
        .expect(201, "item")?["id"]
        .as_str()
        .context("item id")?
        .to_owned();
    let inv = api
        .post(
            &format!("/api/meetings/{meeting}/invitations"),
            &sec,
            json!({"name": "UBND xã Tân Lập", "role": "bridge"}),
        )
        .await?
        .expect(201, "invitation")?;
    let bridge = inv["token"].as_str().context("token")?.to_owned();
    Ok(Setup {
        server,
        api,
        sec,
        operator,
        bridge,
        meeting,
        item,
    })
}

/// The audit rows of a target, read from the server's SQLite database.
async fn audit_actions(
    server: &TestServer,
    target_id: &str,
) -> anyhow::Result<Vec<(String, Value)>> {
    use sqlx::Row;
    let url = format!(
        "sqlite://{}?mode=ro",
        server.data_dir.join("giaoban.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await?;
    let rows =
        sqlx::query("SELECT action, detail FROM audit_log WHERE target_id = $1 ORDER BY seq")
            .bind(target_id)
            .fetch_all(&pool)
            .await?;
    pool.close().await;
    rows.iter()
        .map(|r| {
            let detail: String = r.try_get("detail")?;
            Ok((r.try_get("action")?, serde_json::from_str(&detail)?))
        })
        .collect()
}

/// The headers every download must carry.
fn assert_safe_download(r: &Answer, what: &str) {
    assert_eq!(r.header("x-content-type-options"), "nosniff", "{what}");
    let csp = r.header("content-security-policy");
    assert!(
        csp.split(';').any(|d| d.trim() == "sandbox") && csp.contains("default-src 'none'"),
        "{what}: CSP {csp:?}"
    );
    assert_eq!(r.header("cache-control"), "private, no-store", "{what}");
    let cd = r.header("content-disposition");
    assert!(cd.starts_with("attachment; filename=\""), "{what}: {cd}");
    let ct = r.header("content-type");
    assert!(
        !(ct.starts_with("text/")
            || ct.contains("html")
            || ct.contains("svg")
            || ct.contains("javascript")
            || ct.ends_with("xml")),
        "{what}: served as {ct}"
    );
}

// ------------------------------------------------------------- refusals ----

/// HTML named `bao-cao.pdf` and sent as `application/pdf`, SVG, an
/// executable, a plain ZIP, a macro-enabled Word file, an installer (OLE2
/// without a document stream): each is refused with 415 and a clear code,
/// and nothing is stored or listed. (Before: each was stored as what the
/// uploader said, and `.exe` showed as a PDF.)
#[tokio::test]
async fn files_that_are_not_documents_are_refused() -> anyhow::Result<()> {
    let s = setup().await?;
    let path = format!("/api/agenda/{}/documents", s.item);
    let html = b"<!doctype html><html><body><script>fetch('/api/auth/me',{headers:{Authorization:'Bearer '+sessionStorage.getItem('giaoban.staff')}})</script></body></html>".to_vec();
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
    exe.extend_from_slice(&[0u8; 64]);
    exe.extend_from_slice(b"This program cannot be run in DOS mode.");
    let docm = zip(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        ("word/document.xml", b"<w:document/>"),
        ("word/vbaProject.bin", b"Attribute VB_Name"),
    ]);
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (html.clone(), "bao-cao.pdf", "application/pdf"),
        (html, "bao-cao.html", "text/html"),
        (
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec(),
            "so-do.svg",
            "image/svg+xml",
        ),
        (exe, "virus.exe", "application/octet-stream"),
        (exe_like_pdf_name(), "virus.pdf", "application/pdf"),
        (
            zip(&[("index.html", b"<script>1</script>")]),
            "tai-lieu.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            docm,
            "bao-cao.docm",
            "application/vnd.ms-word.document.macroEnabled.12",
        ),
        (
            ole2(&["\u{4840}SummaryInformation"]),
            "setup.msi",
            "application/x-msi",
        ),
        (b"%PD".to_vec(), "cut.pdf", "application/pdf"),
    ];
    for (bytes, name, ctype) in cases {
        let v = s
            .api
            .upload(&path, &s.sec, form(bytes, name, ctype, &[]))
            .await?
            .expect_error(415, "unsupported_document_type", name)?;
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(msg.contains("PDF") && msg.contains("DOCX"), "{name}: {msg}");
    }
    // Nor as a new version of an existing document.
    let doc = s
        .api
        .upload(
            &path,
            &s.sec,
            form(pdf("ok"), "ok.pdf", "application/pdf", &[]),
        )
        .await?
        .expect(201, "a real PDF")?;
    let id = doc["id"].as_str().context("id")?;
    s.api
        .upload(
            &format!("/api/documents/{id}/versions"),
            &s.sec,
            form(b"<html>".to_vec(), "v2.pdf", "application/pdf", &[]),
        )
        .await?
        .expect_error(415, "unsupported_document_type", "html as a version")?;
    let listed = s.api.get(&path, &s.sec).await?.expect(200, "list")?;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(stored_files(&s.server).len(), 1, "refusals store nothing");
    Ok(())
}

fn exe_like_pdf_name() -> Vec<u8> {
    let mut v = b"MZ".to_vec();
    v.extend_from_slice(&[0u8; 200]);
    v
}

// ------------------------------------------------ accepted and downloaded ----

/// Accepted formats are stored as what their bytes are, whatever the
/// uploader said, named with their real extension, labelled by
/// `file_type`, and downloaded with the safe headers.
#[tokio::test]
async fn documents_are_typed_by_their_bytes_and_served_safely() -> anyhow::Result<()> {
    let s = setup().await?;
    let path = format!("/api/agenda/{}/documents", s.item);
    let odt = zip(&[
        ("mimetype", b"application/vnd.oasis.opendocument.text"),
        ("META-INF/manifest.xml", b"<manifest/>"),
        ("content.xml", b"<office:document-content/>"),
    ]);
    // bytes, name sent, type sent, file_type, stored type, stored name
    type Case = (
        Vec<u8>,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            pdf("to-trinh"),
            "to-trinh.pdf",
            "text/html",
            "pdf",
            "application/pdf",
            "to-trinh.pdf",
        ),
        (
            pdf("no-ext"),
            "bao-cao",
            "image/svg+xml",
            "pdf",
            "application/pdf",
            "bao-cao.pdf",
        ),
        (
            docx("Báo cáo"),
            "bao-cao.pdf",
            "application/pdf",
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "bao-cao.pdf.docx",
        ),
        (
            ole2(&["Workbook"]),
            "so-lieu.xls",
            "text/html",
            "xls",
            "application/vnd.ms-excel",
            "so-lieu.xls",
        ),
        (
            ole2(&["WordDocument", "1Table"]),
            "cong-van.DOC",
            "application/octet-stream",
            "doc",
            "application/msword",
            "cong-van.DOC",
        ),
        (
            odt,
            "ke-hoach.odt",
            "application/octet-stream",
            "odt",
            "application/vnd.oasis.opendocument.text",
            "ke-hoach.odt",
        ),
    ];
    for (bytes, name, sent, file_type, stored, stored_name) in cases {
        let d = s
            .api
            .upload(&path, &s.sec, form(bytes.clone(), name, sent, &[]))
            .await?
            .expect(201, name)?;
        let v = &d["versions"][0];
        assert_eq!(v["file_type"], file_type, "{name}: {v}");
        assert_eq!(v["content_type"], stored, "{name}: {v}");
        assert_eq!(v["filename"], stored_name, "{name}: {v}");
        let report = &v["signature_report"];
        if file_type == "pdf" {
            assert_eq!(report["status"], "no_signature", "{name}: {report}");
        } else {
            assert_eq!(
                report,
                &json!({"status": "not_checked", "reason": "not_pdf"})
            );
        }
        let id = d["id"].as_str().context("id")?;
        for token in [&s.sec, &s.bridge] {
            let r = s
                .api
                .get(&format!("/api/documents/{id}/content"), token)
                .await?;
            assert_eq!(r.status, 200, "{name}");
            assert_eq!(r.body, bytes, "{name}");
            assert_eq!(r.header("content-type"), stored, "{name}");
            assert_safe_download(&r, name);
        }
    }
    Ok(())
}

/// A hostile file name cannot add parameters, headers or path components to
/// the download's `Content-Disposition`; the Unicode name survives in
/// `filename*`.
#[tokio::test]
async fn hostile_file_names_get_a_safe_disposition() -> anyhow::Result<()> {
    let s = setup().await?;
    let path = format!("/api/agenda/{}/documents", s.item);
    let names = [
        "Tờ trình \"số 1\"; filename=evil.html.pdf",
        // What a browser sends for a name with CR LF in it.
        "a%0D%0ASet-Cookie: x=y%0D%0A.pdf",
        "..\\..\\Windows\\system32\\evil.pdf",
        "bao-cao;.pdf",
        "<script>alert(1)</script>.pdf",
        "100% chắc chắn.pdf",
    ];
    for (i, name) in names.iter().enumerate() {
        let d = s
            .api
            .upload(
                &path,
                &s.sec,
                form(pdf(&format!("name {i}")), name, "application/pdf", &[]),
            )
            .await?
            .expect(201, name)?;
        let id = d["id"].as_str().context("id")?;
        let r = s
            .api
            .get(&format!("/api/documents/{id}/content"), &s.bridge)
            .await?;
        assert_eq!(r.status, 200, "{name}");
        assert_safe_download(&r, name);
        let cd = r.header("content-disposition");
        assert!(!cd.contains('\r') && !cd.contains('\n'), "{name}: {cd}");
        assert!(r.header("set-cookie").is_empty(), "{name}");
        // attachment; filename="…"; filename*=UTF-8''…: two parameters only.
        assert_eq!(cd.matches(';').count(), 2, "{name}: {cd}");
        assert_eq!(cd.matches('"').count(), 2, "{name}: {cd}");
        let fallback = cd.split('"').nth(1).context("quoted fallback")?;
        assert!(
            fallback
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " -_.()+,[]".contains(c)),
            "{name}: {fallback}"
        );
        assert!(fallback.ends_with(".pdf"), "{name}: {fallback}");
        let star = cd.split("filename*=UTF-8''").nth(1).context("filename*")?;
        assert!(
            star.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~%".contains(&b)),
            "{name}: {star}"
        );
        assert!(
            !star.contains("%2F") && !star.contains("%5C"),
            "{name}: no path in {star}"
        );
    }
    // The Unicode name round-trips (percent-decoded by the client).
    let d = s
        .api
        .upload(
            &path,
            &s.sec,
            form(pdf("vi"), "Tờ trình số 12.pdf", "application/pdf", &[]),
        )
        .await?
        .expect(201, "vi")?;
    let id = d["id"].as_str().context("id")?;
    let r = s
        .api
        .get(&format!("/api/documents/{id}/content"), &s.sec)
        .await?;
    assert!(
        r.header("content-disposition")
            .ends_with("filename*=UTF-8''T%E1%BB%9D%20tr%C3%ACnh%20s%E1%BB%91%2012.pdf"),
        "{}",
        r.header("content-disposition")
    );
    Ok(())
}

/// A version stored before types were verified (its type what the uploader
/// said) is served as what its bytes are: a PDF as a PDF, anything else as
/// `application/octet-stream`, never as the stored `text/html`.
#[tokio::test]
async fn versions_from_before_verification_are_served_by_their_bytes() -> anyhow::Result<()> {
    let s = setup().await?;
    let path = format!("/api/agenda/{}/documents", s.item);
    let mut ids = Vec::new();
    for tag in ["real pdf", "really html"] {
        let d = s
            .api
            .upload(
                &path,
                &s.sec,
                form(pdf(tag), "old.pdf", "application/pdf", &[]),
            )
            .await?
            .expect(201, tag)?;
        ids.push((
            d["id"].as_str().context("id")?.to_owned(),
            d["versions"][0]["sha256"]
                .as_str()
                .context("sha")?
                .to_owned(),
        ));
    }
    // What an upload from before looks like: no verified type, the type the
    // uploader claimed; the second one's bytes are HTML.
    let url = format!(
        "sqlite://{}?mode=rw",
        s.server.data_dir.join("giaoban.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await?;
    sqlx::query("UPDATE document_versions SET file_type = NULL, content_type = 'text/html'")
        .execute(&pool)
        .await?;
    pool.close().await;
    let (sha, html) = (
        &ids[1].1,
        b"<html><script>alert(document.domain)</script></html>",
    );
    let blob = s
        .server
        .data_dir
        .join("documents")
        .join(&sha[..2])
        .join(&sha[2..]);
    // Same length as the stored size (the download's Content-Length).
    let mut bytes = html.to_vec();
    bytes.resize(pdf("really html").len(), b' ');
    std::fs::write(&blob, bytes)?;

    let d = s
        .api
        .get(&format!("/api/documents/{}", ids[0].0), &s.sec)
        .await?
        .expect(200, "old")?;
    assert_eq!(d["versions"][0]["file_type"], Value::Null, "{d}");
    let r = s
        .api
        .get(&format!("/api/documents/{}/content", ids[0].0), &s.bridge)
        .await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "application/pdf");
    assert_safe_download(&r, "old pdf");
    let r = s
        .api
        .get(&format!("/api/documents/{}/content", ids[1].0), &s.bridge)
        .await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "application/octet-stream");
    assert_safe_download(&r, "old html");
    Ok(())
}

// ----------------------------------------------------- withdraw, replace ----

/// The secretariat withdraws a document (kept, marked with who, when and
/// why; invitees can no longer download it) and replaces another (the new
/// one takes its access; the old one is withdrawn, `replaced_by` the new
/// one). Both are in the audit log; others may not; a frozen meeting
/// refuses.
#[tokio::test]
async fn documents_are_withdrawn_and_replaced_in_the_record() -> anyhow::Result<()> {
    let s = setup().await?;
    let path = format!("/api/agenda/{}/documents", s.item);
    let mut ids = Vec::new();
    for (name, access) in [("nham.pdf", "everyone"), ("du-thao.pdf", "committee")] {
        let d = s
            .api
            .upload(
                &path,
                &s.sec,
                form(pdf(name), name, "application/pdf", &[("access", access)]),
            )
            .await?
            .expect(201, name)?;
        assert_eq!(d["withdrawn_at"], Value::Null);
        ids.push(d["id"].as_str().context("id")?.to_owned());
    }
    let (wrong, draft) = (&ids[0], &ids[1]);
    s.api
        .get(&format!("/api/documents/{wrong}/content"), &s.bridge)
        .await?
        .expect(200, "before the withdrawal")?;

    // Who may not; a reason is required.
    for (token, who) in [(&s.operator, "operator"), (&s.bridge, "bridge point")] {
        s.api
            .post(
                &format!("/api/documents/{wrong}/withdraw"),
                token,
                json!({"reason": "x"}),
            )
            .await?
            .expect_error(403, "forbidden", who)?;
    }
    s.api
        .post(
            &format!("/api/documents/{wrong}/withdraw"),
            &s.sec,
            json!({"reason": "  "}),
        )
        .await?
        .expect_error(400, "invalid_input", "empty reason")?;
    s.api
        .post(
            "/api/documents/nope/withdraw",
            &s.sec,
            json!({"reason": "x"}),
        )
        .await?
        .expect_error(404, "document_not_found", "unknown")?;

    // Withdraw.
    let w = s
        .api
        .post(
            &format!("/api/documents/{wrong}/withdraw"),
            &s.sec,
            json!({"reason": "Tải nhầm tệp"}),
        )
        .await?
        .expect(200, "withdraw")?;
    assert!(w["withdrawn_at"].as_i64().is_some_and(|t| t > 0), "{w}");
    assert_eq!(w["withdrawn_reason"], "Tải nhầm tệp");
    assert!(
        w["withdrawn_by"]
            .as_str()
            .is_some_and(|a| a.starts_with("user:")),
        "{w}"
    );
    assert_eq!(w["replaced_by"], Value::Null);
    s.api
        .post(
            &format!("/api/documents/{wrong}/withdraw"),
            &s.sec,
            json!({"reason": "again"}),
        )
        .await?
        .expect_error(409, "document_withdrawn", "twice")?;
    s.api
        .upload(
            &format!("/api/documents/{wrong}/versions"),
            &s.sec,
            form(pdf("v2"), "v2.pdf", "application/pdf", &[]),
        )
        .await?
        .expect_error(
            409,
            "document_withdrawn",
            "a version of a withdrawn document",
        )?;
    // Listed as withdrawn to everyone; downloadable by the secretariat only.
    let listed = s
        .api
        .get(&path, &s.bridge)
        .await?
        .expect(200, "bridge list")?;
    let it = listed
        .as_array()
        .and_then(|a| a.iter().find(|d| d["id"] == wrong.as_str()))
        .context("still listed")?;
    assert_eq!(it["withdrawn_reason"], "Tải nhầm tệp");
    s.api
        .get(&format!("/api/documents/{wrong}/content"), &s.bridge)
        .await?
        .expect_error(410, "document_withdrawn", "bridge download")?;
    let r = s
        .api
        .get(&format!("/api/documents/{wrong}/content"), &s.sec)
        .await?;
    assert_eq!(r.status, 200, "the secretariat keeps it for the record");
    assert_eq!(r.body, pdf("nham.pdf"));

    // Replace.
    s.api
        .upload(
            &format!("/api/documents/{draft}/replace"),
            &s.sec,
            form(b"<html>".to_vec(), "moi.pdf", "application/pdf", &[]),
        )
        .await?
        .expect_error(415, "unsupported_document_type", "replaced by HTML")?;
    s.api
        .upload(
            &format!("/api/documents/{draft}/replace"),
            &s.operator,
            form(docx("x"), "moi.docx", "application/octet-stream", &[]),
        )
        .await?
        .expect_error(403, "forbidden", "operator replaces")?;
    let new = s
        .api
        .upload(
            &format!("/api/documents/{draft}/replace"),
            &s.sec,
            form(
                docx("Dự thảo đã sửa"),
                "du-thao-sua.docx",
                "application/octet-stream",
                &[("title", "Dự thảo (sửa)"), ("reason", "Sửa số liệu quý IV")],
            ),
        )
        .await?
        .expect(201, "replace")?;
    let new_id = new["id"].as_str().context("new id")?.to_owned();
    assert_eq!(new["replaces"], draft.as_str());
    assert_eq!(new["title"], "Dự thảo (sửa)");
    assert_eq!(new["access"], "committee", "the access is kept");
    assert_eq!(new["agenda_item_id"], s.item.as_str());
    assert_eq!(new["versions"][0]["file_type"], "docx");
    let old = s
        .api
        .get(&format!("/api/documents/{draft}"), &s.sec)
        .await?
        .expect(200, "old")?;
    assert_eq!(old["replaced_by"], new_id.as_str());
    assert_eq!(old["withdrawn_reason"], "Sửa số liệu quý IV");
    assert!(old["withdrawn_at"].as_i64().is_some());
    s.api
        .upload(
            &format!("/api/documents/{draft}/replace"),
            &s.sec,
            form(docx("again"), "x.docx", "application/octet-stream", &[]),
        )
        .await?
        .expect_error(409, "document_withdrawn", "replace twice")?;
    let listed = s.api.get(&path, &s.sec).await?.expect(200, "list")?;
    let mut states: Vec<(String, bool)> = listed
        .as_array()
        .context("array")?
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap_or_default().to_owned(),
                d["withdrawn_at"].is_i64(),
            )
        })
        .collect();
    // Listed by creation time (the same second here: order by id).
    states.sort();
    let mut want = vec![
        (wrong.clone(), true),
        (draft.clone(), true),
        (new_id.clone(), false),
    ];
    want.sort();
    assert_eq!(states, want);

    // The audit log.
    let a = audit_actions(&s.server, wrong).await?;
    let w = a
        .iter()
        .find(|(action, _)| action == "document.withdraw")
        .context("document.withdraw row")?;
    assert_eq!(w.1["reason"], "Tải nhầm tệp", "{a:?}");
    let a = audit_actions(&s.server, draft).await?;
    let r = a
        .iter()
        .find(|(action, _)| action == "document.replace")
        .context("document.replace row")?;
    assert_eq!(r.1["replaced_by"], new_id.as_str(), "{a:?}");
    assert_eq!(r.1["reason"], "Sửa số liệu quý IV");
    let a = audit_actions(&s.server, &new_id).await?;
    let c = a
        .iter()
        .find(|(action, _)| action == "document.create")
        .context("document.create row")?;
    assert_eq!(c.1["replaces"], draft.as_str(), "{a:?}");
    assert_eq!(c.1["file_type"], "docx");

    // A frozen meeting refuses both.
    s.api
        .post(
            &format!("/api/meetings/{}/status", s.meeting),
            &s.sec,
            json!({"status": "ended"}),
        )
        .await?
        .expect(200, "end")?;
    s.api
        .post(
            &format!("/api/documents/{new_id}/withdraw"),
            &s.sec,
            json!({"reason": "x"}),
        )
        .await?
        .expect_error(409, "meeting_frozen", "withdraw after the end")?;
    s.api
        .upload(
            &format!("/api/documents/{new_id}/replace"),
            &s.sec,
            form(pdf("late"), "late.pdf", "application/pdf", &[]),
        )
        .await?
        .expect_error(409, "meeting_frozen", "replace after the end")?;
    Ok(())
}
