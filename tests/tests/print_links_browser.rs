//! The clerk's saved group and printed links in real browsers (issue 22),
//! on a real server:
//!
//! - Chromium (`tests/e2e/print_links.mjs`): the clerk saves "Khối kinh
//!   tế" on the bridge points page, invites it in one click, opens the
//!   printable page; the QR code of every card, as Chromium drew it (PNG),
//!   is read back here by `rqrr` (a decoder independent of the server's
//!   encoder) and must be the link the invitation list gives for that unit;
//!   the page prints two cards a row, six an A4 page (the PDF is counted).
//! - The join page without a link (`tests/e2e/join_code.mjs`), in Chromium
//!   and in Firefox ESR: a commune types its short code as heard on the
//!   phone and reaches its invitation, which shows the meeting's time,
//!   place and status; a wrong code is refused; whom to call is shown.

use std::collections::HashMap;

use anyhow::{ensure, Context as _};
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, firefox, run_script, tail};
use giaoban_tests::TestServer;
use serde_json::{json, Value};

const CONTACT: &str = "Văn phòng UBND tỉnh: 0203 3825 111";
const PLACE: &str = "Hội trường UBND tỉnh";

/// Reads the QR code in a PNG file: its text.
fn decode_qr(path: &str) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("open {path}"))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("image size")?];
    let info = reader.next_frame(&mut buf)?;
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let luma = |x: usize, y: usize| -> u8 {
        let i = (y * w + x) * channels;
        match channels {
            1 | 2 => buf[i],
            _ => {
                let (r, g, b) = (
                    u32::from(buf[i]),
                    u32::from(buf[i + 1]),
                    u32::from(buf[i + 2]),
                );
                u8::try_from((r * 299 + g * 587 + b * 114) / 1000).unwrap_or(255)
            }
        }
    };
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, luma);
    let grids = img.detect_grids();
    ensure!(grids.len() == 1, "{path}: {} QR codes found", grids.len());
    let (_, text) = grids[0]
        .decode()
        .map_err(|e| anyhow::anyhow!("{path}: {e:?}"))?;
    Ok(text)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

#[tokio::test]
async fn saved_group_printed_links_and_short_codes_in_browsers() -> anyhow::Result<()> {
    let chromium = chromium()?;
    let firefox = firefox()?;
    ensure_node_modules(&e2e_dir()).await?;
    let server = TestServer::start_with_config(&format!(
        "[server]\ncontact = {}\n",
        giaoban_tests::toml_quote(CONTACT)
    ))
    .await?;
    let password = "Thư-ký e2e 2026!";
    server.add_user("thuky.in", "secretary", password).await?;
    let token = server.login("thuky.in", password).await?;
    let http = reqwest::Client::new();
    let base = server.base_url();
    let post = |path: String, body: Value| {
        let req = http
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let r = req.send().await?;
            let status = r.status();
            let v: Value = r.json().await?;
            ensure!(status.is_success(), "{status}: {v}");
            anyhow::Ok(v)
        }
    };
    // Ten units: seven communes already invited by level, three departments
    // for the saved group.
    for i in 0..7 {
        post(
            "/api/bridge-points".into(),
            json!({"name": format!("Xã Thử Nghiệm {i}"), "level": "commune",
                   "operator_phone": format!("09000000{i:02}")}),
        )
        .await?;
    }
    let depts = ["Sở Tài chính", "Sở Công Thương", "Sở Xây dựng"];
    for d in depts {
        post(
            "/api/bridge-points".into(),
            json!({"name": d, "level": "department"}),
        )
        .await?;
    }
    let m = post(
        "/api/meetings".into(),
        json!({"title": "Giao ban kinh tế tháng 12", "location": PLACE,
               "starts_at": now() + 2 * 86_400, "ends_at": now() + 2 * 86_400 + 3 * 3600}),
    )
    .await?;
    let mid = m["id"].as_str().context("id")?.to_owned();
    post(
        format!("/api/meetings/{mid}/status"),
        json!({"status": "scheduled"}),
    )
    .await?;
    let made = post(
        format!("/api/meetings/{mid}/invitations/group"),
        json!({"levels": ["commune"]}),
    )
    .await?;
    ensure!(made.as_array().map(Vec::len) == Some(7), "{made}");

    let out = tempfile::tempdir()?;
    let run = run_script(
        "print_links.mjs",
        &[base.as_ref(), mid.as_ref(), out.path().as_os_str()],
        &[
            ("CHROMIUM_PATH", chromium.clone()),
            ("E2E_TIMEOUT_MS", "20000".to_owned()),
            ("E2E_USERNAME", "thuky.in".to_owned()),
            ("E2E_PASSWORD", password.to_owned()),
            ("E2E_GROUP_UNITS", depts.join("|")),
        ],
        std::time::Duration::from_secs(240),
    )
    .await?;
    ensure!(
        run.status.success(),
        "print_links.mjs failed: {:?}\n{}",
        run.summary,
        tail(&run.stderr, 40)
    );
    let summary = run.summary.context("no summary")?;
    ensure!(summary["ok"] == true, "{summary}");
    eprintln!(
        "clicks for saving a group of 3 units, inviting it and opening the printed links: {}",
        summary["clicks"]
    );

    // The links as the invitation list gives them (not the print endpoint).
    let list: Value = http
        .get(format!("{base}/api/meetings/{mid}/invitations"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let links: HashMap<String, String> = list
        .as_array()
        .context("list")?
        .iter()
        .filter_map(|i| {
            Some((
                i["name"].as_str()?.to_owned(),
                i["url"].as_str()?.to_owned(),
            ))
        })
        .collect();
    ensure!(links.len() == 10, "{} links", links.len());
    let cards = summary["cards"].as_array().context("cards")?;
    ensure!(cards.len() == 10, "{} cards", cards.len());
    let mut codes = HashMap::new();
    for card in cards {
        let name = card["name"].as_str().context("name")?;
        let png = card["png"].as_str().context("png")?;
        let text = decode_qr(png)?;
        ensure!(
            Some(&text) == links.get(name),
            "{name}: the QR code reads {text:?}, the link is {:?}",
            links.get(name)
        );
        codes.insert(
            name.to_owned(),
            card["short_code"].as_str().context("code")?.to_owned(),
        );
    }
    for d in depts {
        ensure!(codes.contains_key(d), "{d} has no card");
    }
    // Ten cards, six a page: two A4 pages.
    // (poppler's pdfinfo: scripts/test installs poppler-utils.)
    let info = std::process::Command::new("pdfinfo")
        .arg(summary["pdf"].as_str().context("pdf")?)
        .output()
        .context("pdfinfo (apt-get install poppler-utils)")?;
    let info = String::from_utf8_lossy(&info.stdout);
    let pages = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .map(str::trim)
        .context("no page count")?;
    ensure!(pages == "2", "{pages} pages printed for 10 cards:\n{info}");
    ensure!(info.contains("(A4)"), "not A4:\n{info}");

    // A commune types its code as heard on the phone, in both browsers.
    let name = "Xã Thử Nghiệm 3";
    let code = codes.get(name).context("code")?;
    let heard = code.replace('-', " ").to_lowercase();
    for (browser, path) in [("chromium", &chromium), ("firefox", &firefox)] {
        let run = run_script(
            "join_code.mjs",
            &[base.as_ref(), heard.as_ref()],
            &[
                ("E2E_BROWSER", browser.to_owned()),
                ("CHROMIUM_PATH", chromium.clone()),
                ("FIREFOX_PATH", path.clone()),
                ("E2E_TIMEOUT_MS", "20000".to_owned()),
                ("E2E_EXPECT_NAME", name.to_owned()),
                ("E2E_EXPECT_PLACE", PLACE.to_owned()),
                ("E2E_EXPECT_CONTACT", CONTACT.to_owned()),
            ],
            std::time::Duration::from_secs(180),
        )
        .await?;
        ensure!(
            run.status.success(),
            "join_code.mjs in {browser} failed: {:?}\n{}",
            run.summary,
            tail(&run.stderr, 40)
        );
        let s = run.summary.context("no summary")?;
        ensure!(s["ok"] == true && s["name"] == name, "{browser}: {s}");
        eprintln!("{browser}: {}", s["steps"]);
    }
    Ok(())
}
