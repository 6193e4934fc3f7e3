//! Notes and comments on documents in real Chromium (issue 23), on the
//! real server:
//!
//! - the secretariat's page (`/admin`, the agenda tab, tablet-sized) lists
//!   each document's committee comments with page, author and time, counts
//!   them and saves them as CSV; a private note is never among them
//!   (`tests/e2e/comments_admin.mjs`);
//! - in the meeting page's document viewer a member edits and deletes its
//!   own notes (`tests/e2e/notes.mjs`); what is stored afterwards is read
//!   back over REST.
//!
//! Needs what `browser.rs` needs (node, npm, Chromium).

mod doc_fixtures;

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
use giaoban_tests::{token_of, TestServer};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

use doc_fixtures::pdf_pages;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

const USERNAME: &str = "thuky";
const PASSWORD: &str = "Mật khẩu thư ký 2026!";

/// A started meeting with one agenda item and two PDFs; the secretary's
/// account (and its token).
struct Prepared {
    server: TestServer,
    meeting: String,
    /// The documents, in upload order.
    docs: Vec<String>,
    secretary: String,
}

async fn prepared() -> Result<Prepared> {
    let server = TestServer::start().await?;
    let base = server.base_url();
    server.add_user(USERNAME, "secretary", PASSWORD).await?;
    let secretary = server.login(USERNAME, PASSWORD).await?;
    let meeting = server.create_meeting("Giao ban tháng 12").await?;
    let http = reqwest::Client::new();
    let it: Value = http
        .post(format!("{base}/api/meetings/{meeting}/agenda"))
        .bearer_auth(&secretary)
        .json(&json!({"title": "Báo cáo kinh tế - xã hội"}))
        .send()
        .await?
        .json()
        .await?;
    let item = it["id"].as_str().context("item id")?.to_owned();
    let mut docs = Vec::new();
    for (title, pages) in [("Báo cáo quý IV", 4), ("Kế hoạch năm 2027", 2)] {
        let part = Part::bytes(pdf_pages(pages))
            .file_name("bao-cao.pdf")
            .mime_str("application/pdf")?;
        let r = http
            .post(format!("{base}/api/agenda/{item}/documents"))
            .bearer_auth(&secretary)
            .multipart(Form::new().part("file", part).text("title", title))
            .send()
            .await?;
        ensure!(r.status() == 201, "upload: {}", r.text().await?);
        let d: Value = r.json().await?;
        docs.push(d["id"].as_str().context("doc id")?.to_owned());
    }
    Ok(Prepared {
        server,
        meeting,
        docs,
        secretary,
    })
}

/// An invitation's link and token.
async fn invite(p: &Prepared, name: &str, role: &str) -> Result<(String, String)> {
    let url = p.server.invite(&p.meeting, name, role).await?;
    let token = token_of(&url)?.to_owned();
    Ok((url, token))
}

/// Writes a note or comment over REST; returns its id.
async fn write(p: &Prepared, token: &str, doc: &str, body: Value) -> Result<String> {
    let r = reqwest::Client::new()
        .post(format!("{}/api/documents/{doc}/notes", p.server.base_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    ensure!(r.status() == 201, "{body}: {}", r.text().await?);
    let v: Value = r.json().await?;
    Ok(v["id"].as_str().context("note id")?.to_owned())
}

/// What `token` reads on `doc`: (id, text, kind) sorted by text.
async fn read(p: &Prepared, token: &str, doc: &str) -> Result<Vec<(String, String, String)>> {
    let r = reqwest::Client::new()
        .get(format!("{}/api/documents/{doc}/notes", p.server.base_url()))
        .bearer_auth(token)
        .send()
        .await?;
    ensure!(r.status() == 200, "list: {}", r.text().await?);
    let v: Value = r.json().await?;
    let mut out: Vec<(String, String, String)> = v["notes"]
        .as_array()
        .context("notes")?
        .iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().unwrap_or_default().to_owned();
            (s("id"), s("text"), s("kind"))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

#[tokio::test]
async fn the_secretariat_reads_the_committee_comments_per_document() -> Result<()> {
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let p = prepared().await?;
    let (_, a) = invite(&p, "Ông Nguyễn Văn A", "member").await?;
    let (_, b) = invite(&p, "Bà Trần Thị B", "chair").await?;
    let doc = &p.docs[0];
    write(
        &p,
        &a,
        doc,
        json!({"page": 3, "kind": "comment", "text": "Đề nghị bổ sung số liệu quý III"}),
    )
    .await?;
    write(
        &p,
        &b,
        doc,
        json!({"page": 1, "kind": "comment", "text": "=SUM(A1) \"trích dẫn\", dòng 2\nhết"}),
    )
    .await?;
    write(
        &p,
        &a,
        doc,
        json!({"page": 2, "text": "Ghi chú riêng, không ai khác đọc"}),
    )
    .await?;
    let run = run_script(
        "comments_admin.mjs",
        &[p.server.base_url().as_ref(), p.meeting.as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_USERNAME", USERNAME.to_owned()),
            ("E2E_PASSWORD", PASSWORD.to_owned()),
        ],
        SCRIPT_TIMEOUT,
    )
    .await?;
    let s = match (run.status.success(), run.summary) {
        (true, Some(s)) if s["ok"] == json!(true) => s,
        (_, s) => bail!(
            "comments_admin.mjs failed ({}): {s:?}\n--- stderr ---\n{}\n--- server log ---\n{}",
            run.status,
            tail(&run.stderr, 60),
            tail(&p.server.log(), 40)
        ),
    };
    // The page shows what the REST API gives the secretariat.
    let over_rest = read(&p, &p.secretary, doc).await?;
    ensure!(
        over_rest.len() == 2 && over_rest.iter().all(|n| n.2 == "comment"),
        "{over_rest:?}"
    );
    let docs = s["documents"].as_array().context("documents")?;
    let first = docs
        .iter()
        .find(|d| d["id"] == json!(doc))
        .context("the first document")?;
    let other = docs
        .iter()
        .find(|d| d["id"] == json!(p.docs[1]))
        .context("the second document")?;
    ensure!(
        first["heading"] == "Góp ý của thành viên (2)"
            && other["heading"] == "Góp ý của thành viên (0)",
        "{docs:?}"
    );
    ensure!(other["comments"] == json!([]), "{other}");
    let comments = first["comments"].as_array().context("comments")?;
    // By page: the chair's on page 1, the member's on page 3; the private
    // note (page 2) is not there.
    let got: Vec<(i64, &str, &str, &str)> = comments
        .iter()
        .map(|c| {
            (
                c["page"].as_i64().unwrap_or_default(),
                c["page_text"].as_str().unwrap_or_default(),
                c["author"].as_str().unwrap_or_default(),
                c["text"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    ensure!(
        got == [
            (
                1,
                "Trang 1",
                "Bà Trần Thị B",
                "=SUM(A1) \"trích dẫn\", dòng 2\nhết"
            ),
            (
                3,
                "Trang 3",
                "Ông Nguyễn Văn A",
                "Đề nghị bổ sung số liệu quý III"
            ),
        ],
        "{got:?}"
    );
    ensure!(
        comments.iter().all(|c| {
            c["time"].as_str().is_some_and(|t| t.contains(':'))
                && c["datetime"].as_str().is_some_and(|t| t.ends_with('Z'))
        }),
        "each comment shows its time: {comments:?}"
    );
    ensure!(
        s["summary_text"] == "2 góp ý của thành viên trên 1 tài liệu.",
        "{}",
        s["summary_text"]
    );
    let layout = &s["layout"];
    ensure!(
        layout["comments_overflowing"] == json!(0)
            && layout["csv_button_visible"] == json!(true)
            && layout["page_scroll_width"].as_i64() <= layout["viewport"].as_i64(),
        "at tablet width: {layout}"
    );
    // The CSV: a header and one line per comment; the formula is defused,
    // quotes and the line break are quoted; no private note.
    let csv = s["csv"].as_str().context("csv")?;
    ensure!(
        s["csv_head"] == json!([0xef, 0xbb, 0xbf]),
        "no byte order mark (for spreadsheets): {}",
        s["csv_head"]
    );
    ensure!(
        csv.contains("agenda_item,document,document_id,version,page,author,text,created_at,updated_at,document_changed\r\n"),
        "{csv:?}"
    );
    ensure!(
        csv.contains(&format!(
            "Báo cáo kinh tế - xã hội,Báo cáo quý IV,{doc},1,1,Bà Trần Thị B,\"'=SUM(A1) \"\"trích dẫn\"\", dòng 2\nhết\","
        )),
        "{csv:?}"
    );
    ensure!(
        csv.contains(&format!(
            "Báo cáo kinh tế - xã hội,Báo cáo quý IV,{doc},1,3,Ông Nguyễn Văn A,Đề nghị bổ sung số liệu quý III,"
        )),
        "{csv:?}"
    );
    ensure!(
        !csv.contains("Ghi chú riêng") && csv.matches("\r\n").count() == 3,
        "{csv:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_member_edits_and_deletes_its_own_notes_in_the_viewer() -> Result<()> {
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let p = prepared().await?;
    let (url, a) = invite(&p, "Ông Nguyễn Văn A", "member").await?;
    let (_, b) = invite(&p, "Bà Trần Thị B", "member").await?;
    let doc = &p.docs[0];
    let note = write(
        &p,
        &a,
        doc,
        json!({"page": 2, "text": "Số liệu cần đối chiếu"}),
    )
    .await?;
    let comment = write(
        &p,
        &a,
        doc,
        json!({"page": 2, "kind": "comment", "text": "Góp ý gửi nhầm"}),
    )
    .await?;
    let others = write(
        &p,
        &b,
        doc,
        json!({"page": 2, "kind": "comment", "text": "Góp ý của bà B"}),
    )
    .await?;
    let run = run_script(
        "notes.mjs",
        &[
            url.as_ref(),
            doc.as_ref(),
            note.as_ref(),
            comment.as_ref(),
            others.as_ref(),
        ],
        &[("CHROMIUM_PATH", chromium)],
        SCRIPT_TIMEOUT,
    )
    .await?;
    let s = match (run.status.success(), run.summary) {
        (true, Some(s)) if s["ok"] == json!(true) => s,
        (_, s) => bail!(
            "notes.mjs failed ({}): {s:?}\n--- stderr ---\n{}\n--- server log ---\n{}",
            run.status,
            tail(&run.stderr, 60),
            tail(&p.server.log(), 40)
        ),
    };
    // Before: "Sửa" and "Xóa" on one's own only.
    let before = s["listed_before"].as_array().context("listed")?;
    let buttons = |id: &str| {
        before
            .iter()
            .find(|n| n["id"] == json!(id))
            .map(|n| n["buttons"].clone())
    };
    ensure!(
        buttons(&note) == Some(json!(["note-edit", "note-delete"]))
            && buttons(&comment) == Some(json!(["note-edit", "note-delete"]))
            && buttons(&others) == Some(json!([])),
        "{before:?}"
    );
    ensure!(
        s["draft_after_turn"] == "Đã đối chiếu với Cục Thống kê",
        "the draft after a page turn: {}",
        s["draft_after_turn"]
    );
    ensure!(
        s["edited_shown"] == "Đã đối chiếu với Cục Thống kê" && s["error"].is_null(),
        "{s}"
    );
    ensure!(
        s["kept_after_cancel"] == json!(true),
        "{}",
        s["kept_after_cancel"]
    );
    // Stored: the note changed, the comment gone, B's untouched.
    let mine = read(&p, &a, doc).await?;
    let mut want = vec![
        (
            note.clone(),
            "Đã đối chiếu với Cục Thống kê".to_owned(),
            "note".to_owned(),
        ),
        (
            others.clone(),
            "Góp ý của bà B".to_owned(),
            "comment".to_owned(),
        ),
    ];
    want.sort_by(|a, b| a.1.cmp(&b.1));
    ensure!(mine == want, "{mine:?}");
    let seen_by_secretariat = read(&p, &p.secretary, doc).await?;
    ensure!(
        seen_by_secretariat == [(others, "Góp ý của bà B".to_owned(), "comment".to_owned())],
        "{seen_by_secretariat:?}"
    );
    Ok(())
}
