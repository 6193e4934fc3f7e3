//! `viewerbench`: how fast the meeting page's document viewer (pdf.js,
//! `web/assets/presentation.js`) shows a scanned report (issue 23: "fast on
//! a 50-page scanned report"). A benchmark, not a test: it prints figures
//! and fails only when the viewer could not show a page.
//!
//! It writes a scanned report with `tests/pdf/scanned_report.py` (Pillow:
//! every page an image, JPEG at 200 dpi; one page JPEG 2000 and one JBIG2,
//! which pdf.js decodes with the JavaScript fallbacks of
//! `web/vendor/pdfjs/wasm`), starts the real `giaoban` binary with its own
//! temp config, uploads the report to a started meeting's agenda, and runs
//! `tests/e2e/viewer_bench.mjs` in headless Chromium: a member opens the
//! document and turns every page. It prints the time to the first page and
//! per page turn (median, p90, max), and for the JPEG 2000 and JBIG2 pages
//! whether they were drawn (not blank, no error).
//!
//! ```sh
//! cargo build -p giaoban-signaling --bin giaoban
//! cargo run -p giaoban-tests --bin viewerbench -- --json viewer.json
//! ```
//!
//! Needs python3 with Pillow (`pip install pillow==13.0.0`), node and
//! Chromium (what `tests/tests/browser.rs` needs). The meeting page joins
//! with WebRTC on loopback: in a private network namespace like the tests
//! (`unshare -n sh -c 'ip link set lo up; …'`) or on a machine where
//! loopback UDP is free.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _, Result};
use clap::Parser;
use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
use giaoban_tests::{ServerOptions, TestServer};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(
    name = "viewerbench",
    about = "The document viewer's time to first page and per page turn on a scanned report"
)]
struct Args {
    /// The giaoban binary (default: GIAOBAN_BIN, else `giaoban` next to
    /// this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Pages of the report.
    #[arg(long, default_value_t = 50)]
    pages: usize,
    /// Scan resolution (200: 1654 x 2339 pixels a page).
    #[arg(long, default_value_t = 200)]
    dpi: u32,
    /// The page in JPEG 2000 (0: none).
    #[arg(long, default_value_t = 25)]
    jpx: usize,
    /// The page in JBIG2 (0: none).
    #[arg(long, default_value_t = 26)]
    jbig2: usize,
    /// The browser window, WIDTHxHEIGHT (768x1024: a tablet).
    #[arg(long, default_value = "1280x800")]
    viewport: String,
    /// Use this PDF instead of writing one.
    #[arg(long)]
    pdf: Option<PathBuf>,
    /// Also write the whole summary here (JSON).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The report: the PDF's bytes and what the generator said.
fn report(args: &Args, dir: &std::path::Path) -> Result<(Vec<u8>, Value)> {
    if let Some(p) = &args.pdf {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        return Ok((bytes, json!({"pdf": p.display().to_string()})));
    }
    let out = dir.join("scanned-report.pdf");
    let script = e2e_dir().join("../pdf/scanned_report.py");
    let run = std::process::Command::new("python3")
        .arg(&script)
        .arg(&out)
        .args(["--pages", &args.pages.to_string()])
        .args(["--dpi", &args.dpi.to_string()])
        .args(["--jpx", &args.jpx.to_string()])
        .args(["--jbig2", &args.jbig2.to_string()])
        .output()
        .context("running python3 tests/pdf/scanned_report.py")?;
    ensure!(
        run.status.success(),
        "scanned_report.py failed ({}): {}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let said: Value = serde_json::from_slice(&run.stdout).unwrap_or(Value::Null);
    Ok((std::fs::read(&out)?, said))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let dir = tempfile::tempdir()?;
    let (pdf, made) = report(&args, dir.path())?;
    let server = TestServer::start_with(ServerOptions {
        bin: args.server_bin.clone(),
        log_level: Some("warn".into()),
        ..ServerOptions::default()
    })
    .await?;
    let base = server.base_url();
    let secretary = server.staff_token("thuky", "secretary").await?;
    let meeting = server.create_meeting("Giao ban: báo cáo scan").await?;
    let http = reqwest::Client::new();
    let item: Value = http
        .post(format!("{base}/api/meetings/{meeting}/agenda"))
        .bearer_auth(&secretary)
        .json(&json!({"title": "Báo cáo kinh tế - xã hội"}))
        .send()
        .await?
        .json()
        .await?;
    let item = item["id"].as_str().context("item id")?.to_owned();
    let size = pdf.len();
    let part = Part::bytes(pdf)
        .file_name("bao-cao-scan.pdf")
        .mime_str("application/pdf")?;
    let r = http
        .post(format!("{base}/api/agenda/{item}/documents"))
        .bearer_auth(&secretary)
        .multipart(
            Form::new()
                .part("file", part)
                .text("title", "Báo cáo (bản scan)"),
        )
        .send()
        .await?;
    ensure!(r.status() == 201, "upload: {}", r.text().await?);
    let doc: Value = r.json().await?;
    let doc = doc["id"].as_str().context("doc id")?.to_owned();
    let url = server
        .invite(&meeting, "Ông Nguyễn Văn A", "member")
        .await?;
    let run = run_script(
        "viewer_bench.mjs",
        &[url.as_ref(), doc.as_ref()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_VIEWPORT", args.viewport.clone()),
        ],
        Duration::from_secs(1200),
    )
    .await?;
    let s = match (run.status.success(), run.summary) {
        (true, Some(s)) if s["ok"] == json!(true) => s,
        (_, s) => bail!(
            "viewer_bench.mjs failed ({}): {s:?}\n--- stderr ---\n{}\n--- server log ---\n{}",
            run.status,
            tail(&run.stderr, 40),
            tail(&server.log(), 20)
        ),
    };
    let pages = s["pages"].as_array().context("pages")?;
    let page = |n: usize| pages.iter().find(|p| p["page"] == json!(n));
    println!(
        "viewerbench: {} pages, {:.1} MB, {} dpi, viewport {} (canvas {}x{})",
        s["page_count"],
        size as f64 / 1e6,
        args.dpi,
        s["viewport"],
        s["canvas"]["width"],
        s["canvas"]["height"]
    );
    println!(
        "  first page: {} ms after the click (PDF downloaded at {} ms)",
        s["first_page_ms"], s["downloaded_ms"]
    );
    println!(
        "  page turn: median {} ms, p90 {} ms, max {} ms, mean {} ms ({} turns)",
        s["turn_ms"]["median"],
        s["turn_ms"]["p90"],
        s["turn_ms"]["max"],
        s["turn_ms"]["mean"],
        s["turn_ms"]["n"]
    );
    let mut problems = Vec::new();
    for (what, n) in [("JPEG 2000", args.jpx), ("JBIG2", args.jbig2)] {
        if n == 0 || args.pdf.is_some() {
            continue;
        }
        let Some(p) = page(n) else {
            problems.push(format!("{what} page {n} not reached"));
            continue;
        };
        // A drawn page has ink: a blank one is all paper (dark share 0).
        let drawn = p["error"].is_null() && p["dark"].as_f64().unwrap_or(0.0) > 0.005;
        println!(
            "  {what} page {n}: {} ms, {} (mean grey {}, dark share {}, error {})",
            p["ms"],
            if drawn { "drawn" } else { "NOT DRAWN" },
            p["mean"],
            p["dark"],
            p["error"]
        );
        if !drawn {
            problems.push(format!("{what} page {n} was not drawn: {p}"));
        }
    }
    for p in pages {
        if !p["error"].is_null() {
            problems.push(format!("page {}: {}", p["page"], p["error"]));
        }
    }
    if let Some(path) = &args.json {
        let all = json!({"generator": made, "bytes": size, "dpi": args.dpi, "summary": s});
        std::fs::write(path, serde_json::to_vec_pretty(&all)?)?;
    }
    if !problems.is_empty() {
        bail!(
            "the viewer did not show every page: {}",
            problems.join("; ")
        );
    }
    Ok(())
}
