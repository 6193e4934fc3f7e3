//! Today's administrative units and invitations at province scale, through
//! a real server (issue 22): the levels after 1 July 2025 (`district` kept
//! for old data, refused for new units), importing a province's list of
//! units from CSV (preview with per-row errors and duplicates, then all rows
//! in one transaction), inviting a whole group in one step, and exporting
//! the links as CSV. On SQLite, and the import and the group on PostgreSQL.

use anyhow::{bail, ensure, Context as _};
use giaoban_tests::{toml_quote, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A list of `n` units as a province exports it from a spreadsheet: BOM,
/// semicolons, Vietnamese level names and headers in English. `n - 10`
/// communes, 5 wards, 1 special zone, 4 departments.
fn units_csv(n: usize, extra_rows: &str) -> Vec<u8> {
    let mut s = String::from("\u{feff}name;level;code;contact;operator_phone\r\n");
    for i in 0..n {
        let (name, level) = match i {
            0..=3 => (format!("Sở Ban ngành số {i}"), "Sở"),
            4..=8 => (format!("Phường  Số {i}"), "Phường"),
            9 => ("Đặc khu Côn Đảo".to_owned(), "Đặc khu"),
            _ => (format!("Xã Thử Nghiệm {i}"), "Xã"),
        };
        s.push_str(&format!(
            "{name};{level};{code:05};\"Văn phòng; UBND\";09{i:08}\r\n",
            code = 10000 + i
        ));
    }
    s.push_str(extra_rows);
    s.into_bytes()
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>)> {
        let r = req.bearer_auth(&self.token).send().await?;
        let status = r.status();
        let headers = r.headers().clone();
        Ok((status, headers, r.bytes().await?.to_vec()))
    }

    async fn json(&self, req: reqwest::RequestBuilder, want: u16) -> anyhow::Result<Value> {
        let (status, _, body) = self.send(req).await?;
        if status.as_u16() != want {
            bail!(
                "expected {want}, got {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(serde_json::from_slice(&body)?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn import(&self, csv: Vec<u8>, query: &str, want: u16) -> anyhow::Result<Value> {
        self.json(
            self.http
                .post(self.url(&format!("/api/bridge-points/import{query}")))
                .header("content-type", "text/csv")
                .body(csv),
            want,
        )
        .await
    }

    async fn units(&self) -> anyhow::Result<Vec<Value>> {
        let v = self
            .json(self.http.get(self.url("/api/bridge-points")), 200)
            .await?;
        Ok(v.as_array().context("list")?.clone())
    }

    async fn group(&self, meeting: &str, levels: Value, want: u16) -> anyhow::Result<Value> {
        self.json(
            self.http
                .post(self.url(&format!("/api/meetings/{meeting}/invitations/group")))
                .json(&json!({ "levels": levels })),
            want,
        )
        .await
    }
}

async fn client(server: &TestServer) -> anyhow::Result<Client> {
    Ok(Client {
        http: reqwest::Client::new(),
        base: server.base_url(),
        token: server.staff_token("thuky", "secretary").await?,
    })
}

/// Imports 150 units (with a preview that finds a duplicate and a bad level
/// first), invites the communes in one step, exports the links.
async fn province_flow(server: &TestServer, check_export: bool) -> anyhow::Result<()> {
    let c = client(server).await?;
    // One unit already registered, under a name the file repeats.
    c.json(
        c.http.post(c.url("/api/bridge-points")).json(&json!({
            "name": "Xã Thử Nghiệm 10", "level": "commune", "code": "99999",
            "operator_phone": "0900000999"
        })),
        201,
    )
    .await?;

    // Preview of a file with a bad level, a retired level and a name twice
    // (once with other spacing): reported, nothing written.
    let bad = units_csv(
        150,
        "Xã Sai Cấp;Thôn;99998;;\r\nHuyện Cũ;Huyện;;;\r\nSở   Ban ngành số 1;sở;;;\r\n",
    );
    let preview = c.import(bad.clone(), "?dry_run=true", 200).await?;
    ensure!(preview["rows"] == 153, "{preview}");
    ensure!(preview["imported"] == false, "{preview}");
    let errors = preview["errors"].as_array().context("errors")?;
    let lines: Vec<i64> = errors.iter().filter_map(|e| e["line"].as_i64()).collect();
    ensure!(
        lines == vec![152, 153],
        "errors at lines {lines:?}: {preview}"
    );
    ensure!(errors.iter().all(|e| e["field"] == "level"), "{preview}");
    ensure!(
        errors[1]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1 July 2025"),
        "{preview}"
    );
    let dups = preview["duplicates"].as_array().context("duplicates")?;
    ensure!(
        dups.iter()
            .any(|d| d["line"] == 154 && d["field"] == "name" && d["same_as_line"] == 3),
        "the name repeated in the file (other spacing): {preview}"
    );
    ensure!(
        dups.iter()
            .any(|d| d["value"] == "Xã Thử Nghiệm 10" && d["same_as_bridge_point_id"].is_string()),
        "the name already registered: {preview}"
    );
    ensure!(c.units().await?.len() == 1, "a preview wrote nothing");
    // The real import of that file: refused whole.
    let refused = c.import(bad, "", 422).await?;
    ensure!(refused["code"] == "import_invalid", "{refused}");
    ensure!(c.units().await?.len() == 1, "nothing written on errors");
    // A clean file whose only problem is the registered name: 409 unless allowed.
    let good = units_csv(150, "");
    let dup = c.import(good.clone(), "", 409).await?;
    ensure!(dup["code"] == "import_duplicates", "{dup}");
    ensure!(c.units().await?.len() == 1, "nothing written on duplicates");
    let done = c.import(good, "?allow_duplicates=true", 201).await?;
    ensure!(done["imported"] == true, "{done}");
    ensure!(
        done["created"].as_array().map(Vec::len) == Some(150),
        "{done}"
    );
    let units = c.units().await?;
    ensure!(units.len() == 151, "{} units", units.len());
    let ward = units
        .iter()
        .find(|u| u["name"] == "Phường Số 4")
        .context("the ward, whitespace-normalized")?;
    ensure!(ward["level"] == "ward", "{ward}");
    ensure!(ward["code"] == "10004", "{ward}");
    ensure!(ward["operator_phone"] == "0900000004", "{ward}");
    ensure!(ward["contact"] == "Văn phòng; UBND", "{ward}");
    ensure!(
        units
            .iter()
            .any(|u| u["name"] == "Đặc khu Côn Đảo" && u["level"] == "special_zone"),
        "special zone"
    );

    // A new district is refused with a clear code.
    let (status, _, body) = c
        .send(c.http.post(c.url("/api/bridge-points")).json(&json!({
            "name": "UBND huyện Mới", "level": "district"
        })))
        .await?;
    let v: Value = serde_json::from_slice(&body)?;
    ensure!(
        status == 400 && v["code"] == "level_retired",
        "{status} {v}"
    );

    // Invite all communes in one step; a second time invites nobody.
    let m = c
        .json(
            c.http
                .post(c.url("/api/meetings"))
                .json(&json!({"title": "Giao ban tháng 12"})),
            201,
        )
        .await?;
    let mid = m["id"].as_str().context("id")?.to_owned();
    // One commune is already invited by hand: not again.
    let first_commune = units
        .iter()
        .find(|u| u["name"] == "Xã Thử Nghiệm 100")
        .context("commune")?;
    c.json(
        c.http
            .post(c.url(&format!("/api/meetings/{mid}/invitations")))
            .json(&json!({"name": "Xã Thử Nghiệm 100", "role": "bridge",
                          "bridge_point_id": first_commune["id"]})),
        201,
    )
    .await?;
    let communes = units.iter().filter(|u| u["level"] == "commune").count();
    ensure!(communes == 141, "{communes} communes");
    let made = c.group(&mid, json!(["commune"]), 201).await?;
    let made = made.as_array().context("list")?;
    ensure!(made.len() == communes - 1, "{} invitations", made.len());
    ensure!(
        made.iter()
            .all(|i| i["role"] == "bridge" && i["url"].is_string() && i["state"] == "active"),
        "{:?}",
        made.first()
    );
    let again = c.group(&mid, json!(["commune"]), 201).await?;
    ensure!(again.as_array().map(Vec::len) == Some(0), "{again}");
    let depts = c
        .group(&mid, json!(["department", "ward", "special_zone"]), 201)
        .await?;
    ensure!(depts.as_array().map(Vec::len) == Some(10), "{depts}");
    let (status, _, _) = c
        .send(
            c.http
                .post(c.url(&format!("/api/meetings/{mid}/invitations/group")))
                .json(&json!({"levels": ["county"]})),
        )
        .await?;
    ensure!(status == 400, "unknown level: {status}");

    if check_export {
        export_links(server, &c, &mid, made).await?;
    }
    Ok(())
}

/// The CSV export lists every active link, built on the same base as the
/// invitation list, and each link opens its invitation.
async fn export_links(
    server: &TestServer,
    c: &Client,
    mid: &str,
    made: &[Value],
) -> anyhow::Result<()> {
    let list = c
        .json(
            c.http
                .get(c.url(&format!("/api/meetings/{mid}/invitations"))),
            200,
        )
        .await?;
    let list = list.as_array().context("list")?;
    let (status, headers, body) = c
        .send(
            c.http
                .get(c.url(&format!("/api/meetings/{mid}/invitations/export"))),
        )
        .await?;
    ensure!(status == 200, "export: {status}");
    ensure!(
        headers["content-type"].to_str()?.starts_with("text/csv"),
        "{headers:?}"
    );
    let text = String::from_utf8(body)?;
    let text = text
        .strip_prefix('\u{feff}')
        .context("a BOM for spreadsheets")?;
    let mut lines = text.lines();
    ensure!(
        lines.next() == Some("name,level,code,operator_phone,link,expires,short_code"),
        "header"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    ensure!(
        rows.len() == list.len() && rows.len() == 151,
        "{} rows",
        rows.len()
    );
    for i in made {
        let url = i["url"].as_str().context("url")?;
        let row = rows
            .iter()
            .find(|r| r[4] == url)
            .with_context(|| format!("{url} is not in the export"))?;
        ensure!(row[0] == i["name"], "{row:?}");
        ensure!(row[1] == "commune", "{row:?}");
        ensure!(row[3].starts_with("09"), "{row:?}");
        ensure!(row[5].ends_with("(UTC+7)"), "{row:?}");
        // The short code as printed: ABCD-EFGH.
        ensure!(
            row[6].len() == 9
                && row[6].as_bytes()[4] == b'-'
                && row[6]
                    .chars()
                    .all(|ch| ch == '-' || ch.is_ascii_uppercase() || ch.is_ascii_digit()),
            "{row:?}"
        );
    }
    let mut codes: Vec<&str> = rows.iter().map(|r| r[6]).collect();
    codes.sort_unstable();
    codes.dedup();
    ensure!(codes.len() == rows.len(), "short codes are not unique");
    for i in list {
        let url = i["url"].as_str().context("url in the list")?;
        ensure!(rows.iter().any(|r| r[4] == url), "{url} missing");
    }
    // Every exported link works: its token opens the invitation.
    for r in rows.iter().step_by(25) {
        let token = giaoban_tests::token_of(r[4])?;
        let v = c
            .http
            .get(format!("{}/api/invitation", server.base_url()))
            .bearer_auth(token)
            .send()
            .await?;
        ensure!(v.status() == 200, "{} -> {}", r[0], v.status());
        let v: Value = v.json().await?;
        ensure!(v.to_string().contains(r[0]), "{v}");
        // Its short code, typed on /join, gives the same link.
        let v = c
            .json(
                c.http
                    .post(c.url("/api/invitation/code"))
                    .json(&json!({"code": r[6]})),
                200,
            )
            .await?;
        ensure!(v["token"] == token, "{} code {} -> {v}", r[0], r[6]);
    }
    Ok(())
}

#[tokio::test]
async fn province_units_sqlite() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    province_flow(&server, true).await
}

#[tokio::test]
async fn province_units_postgres() -> anyhow::Result<()> {
    let url = match std::env::var("GIAOBAN_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ if std::env::var("GIAOBAN_SKIP_PG").as_deref() == Ok("1") => return Ok(()),
        _ => bail!("GIAOBAN_TEST_PG_URL is not set (GIAOBAN_SKIP_PG=1 skips)"),
    };
    let schema = format!("units_{}", std::process::id());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await?;
    pool.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let db = format!("{url}{sep}options[search_path]={schema}");
    let server =
        TestServer::start_with_config(&format!("[database]\nurl = {}\n", toml_quote(&db))).await?;
    province_flow(&server, false).await
}

/// Files that cannot be read are refused whole, with the right status.
#[tokio::test]
async fn import_refusals() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let c = client(&server).await?;
    let (status, _, _) = c
        .send(
            c.http
                .post(c.url("/api/bridge-points/import"))
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await?;
    ensure!(status == 415, "{status}");
    let v = c
        .import(b"ten,cap\nX,commune\n".to_vec(), "?dry_run=true", 400)
        .await?;
    ensure!(v["code"] == "invalid_input", "no name column: {v}");
    let v = c
        .import(vec![0xff, 0xfe, b'a'], "?dry_run=true", 400)
        .await?;
    ensure!(v["code"] == "invalid_input", "not UTF-8: {v}");
    let big = units_csv(30_000, "");
    ensure!(big.len() > 1024 * 1024);
    let (status, _, _) = c
        .send(
            c.http
                .post(c.url("/api/bridge-points/import?dry_run=true"))
                .header("content-type", "text/csv")
                .body(big),
        )
        .await?;
    ensure!(status == 413, "{status}");
    // Comma-separated, Vietnamese headers, no BOM, quoted commas.
    let v = c
        .import(
            "Tên,Cấp,Mã,Liên hệ,SĐT\n\"Sở Tài chính, tỉnh\",department,,,\nPhường A,phường,1,,\n"
                .as_bytes()
                .to_vec(),
            "",
            201,
        )
        .await?;
    ensure!(v["created"].as_array().map(Vec::len) == Some(2), "{v}");
    ensure!(v["created"][0]["name"] == "Sở Tài chính, tỉnh", "{v}");
    Ok(())
}

/// The clerk's flow in real Chromium (`tests/e2e/province_units.mjs`):
/// import 150 units from CSV with a preview, invite every commune, ward and
/// special zone in one click, download the links; prints the clicks.
#[tokio::test]
async fn province_units_in_chromium() -> anyhow::Result<()> {
    use giaoban_tests::e2e::{chromium, e2e_dir, ensure_node_modules, run_script, tail};
    let chromium = chromium()?;
    ensure_node_modules(&e2e_dir()).await?;
    let server = TestServer::start().await?;
    let password = "Thư-ký e2e 2026!";
    server.add_user("thuky.e2e", "secretary", password).await?;
    let c = Client {
        http: reqwest::Client::new(),
        base: server.base_url(),
        token: server.login("thuky.e2e", password).await?,
    };
    c.json(
        c.http.post(c.url("/api/bridge-points")).json(&json!({
            "name": "Xã Thử Nghiệm 10", "level": "commune"
        })),
        201,
    )
    .await?;
    let m = c
        .json(
            c.http
                .post(c.url("/api/meetings"))
                .json(&json!({"title": "Giao ban toàn tỉnh"})),
            201,
        )
        .await?;
    let mid = m["id"].as_str().context("id")?.to_owned();
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("don-vi.csv");
    std::fs::write(&csv, units_csv(150, ""))?;
    let run = run_script(
        "province_units.mjs",
        &[server.base_url().as_ref(), mid.as_ref(), csv.as_os_str()],
        &[
            ("CHROMIUM_PATH", chromium),
            ("E2E_TIMEOUT_MS", "20000".to_owned()),
            ("E2E_USERNAME", "thuky.e2e".to_owned()),
            ("E2E_PASSWORD", password.to_owned()),
        ],
        std::time::Duration::from_secs(240),
    )
    .await?;
    ensure!(
        run.status.success(),
        "province_units.mjs failed: {:?}\n{}",
        run.summary,
        tail(&run.stderr, 40)
    );
    let summary = run.summary.context("no summary")?;
    ensure!(summary["ok"] == true, "{summary}");
    // 140 communes of the file and the one registered before, 5 wards, 1 special zone.
    ensure!(summary["invited"] == 147, "{summary}");
    ensure!(summary["exported_rows"] == 147, "{summary}");
    eprintln!(
        "clicks for 150 units imported, 147 invited and the links exported: {}",
        summary["clicks"]
    );
    let units = c.units().await?;
    ensure!(units.len() == 151, "{} units", units.len());
    Ok(())
}
