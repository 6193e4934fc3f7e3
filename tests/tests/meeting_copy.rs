//! Copying a meeting (the monthly giao ban, issue 22) through a real
//! server: `POST /api/meetings/{id}/copy` makes a new draft with the agenda
//! in order, the participants and the chair, the time moved keeping the
//! duration, no documents and no invitations, and names the levels of the
//! bridge points invited to the old meeting; 404 for an unknown meeting,
//! 403 for an operator.

use anyhow::{bail, ensure, Context as _};
use giaoban_tests::TestServer;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        if status != want {
            bail!("{method} {path}: expected {want}, got {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, token, None, 200)
            .await
    }

    async fn post(&self, path: &str, token: &str, body: Value, want: u16) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, token, Some(body), want)
            .await
    }
}

fn id(v: &Value) -> anyhow::Result<String> {
    Ok(v["id"].as_str().context("id")?.to_owned())
}

#[tokio::test]
async fn copying_a_meeting() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let c = Client {
        http: reqwest::Client::new(),
        base: server.base_url(),
    };
    let sec = server.staff_token("thuky", "secretary").await?;
    let operator = server.staff_token("vanhanh", "operator").await?;

    let old = c
        .post(
            "/api/meetings",
            &sec,
            json!({"title": "Giao ban tháng 11", "kind": "regular",
                   "starts_at": 1_900_000_000i64, "ends_at": 1_900_007_200i64,
                   "location": "Hội trường UBND tỉnh"}),
            201,
        )
        .await?;
    let mid = id(&old)?;
    let mut items = Vec::new();
    for (title, minutes) in [
        ("Khai mạc", json!(5)),
        ("Kinh tế - xã hội", json!(null)),
        ("Kết luận", json!(15)),
    ] {
        let item = c
            .post(
                &format!("/api/meetings/{mid}/agenda"),
                &sec,
                json!({"title": title, "presenter": format!("Trình bày {title}"),
                       "duration_minutes": minutes}),
                201,
            )
            .await?;
        items.push(id(&item)?);
    }
    // The copy follows the current order, not the creation order.
    let order = json!({"item_ids": [items[1], items[2], items[0]]});
    c.call(
        reqwest::Method::PUT,
        &format!("/api/meetings/{mid}/agenda/order"),
        &sec,
        Some(order),
        200,
    )
    .await?;
    let pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
                2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n\
                trailer\n<< /Root 1 0 R >>\n%%EOF\n"
        .to_vec();
    let r = c
        .http
        .post(format!("{}/api/agenda/{}/documents", c.base, items[0]))
        .bearer_auth(&sec)
        .multipart(
            Form::new().part(
                "file",
                Part::bytes(pdf)
                    .file_name("to-trinh.pdf")
                    .mime_str("application/pdf")?,
            ),
        )
        .send()
        .await?;
    ensure!(r.status().as_u16() == 201, "document: {}", r.text().await?);

    let unit = c
        .post(
            "/api/bridge-points",
            &sec,
            json!({"name": "UBND xã Đắk Wil", "level": "commune"}),
            201,
        )
        .await?;
    let unit_id = id(&unit)?;
    for (name, role, bridge) in [
        ("Nguyễn Văn Thành", "member", json!(null)),
        ("Trần Thị Chủ", "chair", json!(null)),
        ("Kỹ thuật viên xã", "bridge_operator", json!(unit_id)),
    ] {
        c.post(
            &format!("/api/meetings/{mid}/participants"),
            &sec,
            json!({"name": name, "position": format!("Chức vụ {name}"), "role": role,
                   "bridge_point_id": bridge}),
            201,
        )
        .await?;
    }
    c.post(
        &format!("/api/meetings/{mid}/invitations/group"),
        &sec,
        json!({"levels": ["commune"]}),
        201,
    )
    .await?;
    c.post(
        &format!("/api/meetings/{mid}/status"),
        &sec,
        json!({"status": "scheduled"}),
        200,
    )
    .await?;

    // An operator may not copy; an unknown meeting is not found; unknown
    // fields are refused.
    c.post(
        &format!("/api/meetings/{mid}/copy"),
        &operator,
        json!({}),
        403,
    )
    .await?;
    let nf = c
        .post("/api/meetings/khong-co/copy", &sec, json!({}), 404)
        .await?;
    ensure!(nf["code"] == "meeting_not_found", "{nf}");
    c.post(
        &format!("/api/meetings/{mid}/copy"),
        &sec,
        json!({"agenda": false}),
        400,
    )
    .await?;
    ensure!(
        c.get("/api/meetings", &sec)
            .await?
            .as_array()
            .context("list")?
            .len()
            == 1,
        "a refused copy made a meeting"
    );

    let copy = c
        .post(
            &format!("/api/meetings/{mid}/copy"),
            &sec,
            json!({"title": "Giao ban tháng 12", "starts_at": 1_902_600_000i64}),
            201,
        )
        .await?;
    let cid = id(&copy)?;
    ensure!(cid != mid, "same id");
    ensure!(copy["invited_levels"] == json!(["commune"]), "{copy}");
    let got = c.get(&format!("/api/meetings/{cid}"), &sec).await?;
    ensure!(got["title"] == "Giao ban tháng 12", "{got}");
    ensure!(got["status"] == "draft", "{got}");
    ensure!(got["kind"] == "regular", "{got}");
    ensure!(got["location"] == "Hội trường UBND tỉnh", "{got}");
    ensure!(got["starts_at"] == json!(1_902_600_000i64), "{got}");
    ensure!(got["ends_at"] == json!(1_902_607_200i64), "{got}");

    let agenda = c.get(&format!("/api/meetings/{cid}/agenda"), &sec).await?;
    let shape: Vec<(Value, Value, Value)> = agenda
        .as_array()
        .context("agenda")?
        .iter()
        .map(|i| {
            (
                i["title"].clone(),
                i["presenter"].clone(),
                i["duration_minutes"].clone(),
            )
        })
        .collect();
    ensure!(
        shape
            == vec![
                (
                    json!("Kinh tế - xã hội"),
                    json!("Trình bày Kinh tế - xã hội"),
                    json!(null)
                ),
                (json!("Kết luận"), json!("Trình bày Kết luận"), json!(15)),
                (json!("Khai mạc"), json!("Trình bày Khai mạc"), json!(5)),
            ],
        "{agenda}"
    );
    for item in agenda.as_array().context("agenda")? {
        let docs = c
            .get(&format!("/api/agenda/{}/documents", id(item)?), &sec)
            .await?;
        ensure!(
            docs.as_array().is_some_and(Vec::is_empty),
            "documents copied: {docs}"
        );
        ensure!(
            !items.contains(&id(item)?),
            "item shared with the old meeting"
        );
    }

    let people = |m: String| {
        let c = &c;
        let sec = &sec;
        async move {
            let v = c
                .get(&format!("/api/meetings/{m}/participants"), sec)
                .await?;
            anyhow::Ok(v.as_array().context("participants")?.clone())
        }
    };
    let old_people = people(mid.clone()).await?;
    let new_people = people(cid.clone()).await?;
    let fields = |ps: &[Value]| -> Vec<Value> {
        ps.iter()
            .map(|p| {
                json!([
                    p["name"],
                    p["position"],
                    p["role"],
                    p["voting"],
                    p["bridge_point_id"]
                ])
            })
            .collect()
    };
    ensure!(
        fields(&new_people) == fields(&old_people),
        "{new_people:?} vs {old_people:?}"
    );
    let chair = new_people
        .iter()
        .find(|p| p["role"] == "chair")
        .context("chair copied")?;
    ensure!(got["chair_participant_id"] == chair["id"], "{got} {chair}");
    ensure!(
        old_people.iter().all(|p| p["id"] != chair["id"]),
        "the chair is the old participant"
    );

    let invs = c
        .get(&format!("/api/meetings/{cid}/invitations"), &sec)
        .await?;
    ensure!(
        invs.as_array().is_some_and(Vec::is_empty),
        "invitations copied: {invs}"
    );
    // The old meeting is unchanged.
    let old_now = c.get(&format!("/api/meetings/{mid}"), &sec).await?;
    ensure!(
        old_now["status"] == "scheduled" && old_now["title"] == "Giao ban tháng 11",
        "{old_now}"
    );

    // The same groups can be invited again with the group endpoint.
    let again = c
        .post(
            &format!("/api/meetings/{cid}/invitations/group"),
            &sec,
            json!({"levels": copy["invited_levels"]}),
            201,
        )
        .await?;
    ensure!(again.as_array().map(Vec::len) == Some(1), "{again}");

    // Audited, naming the source.
    let audit = c
        .get(
            &format!("/api/audit?action=meeting.copy&target_id={cid}"),
            &server.staff_token("quantri", "admin").await?,
        )
        .await?;
    ensure!(audit.to_string().contains(&mid), "{audit}");
    Ok(())
}
