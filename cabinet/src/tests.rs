//! The same scenarios on SQLite (a temp file) and on PostgreSQL (a fresh
//! schema per test in the database named by `GIAOBAN_TEST_PG_URL`).

use super::*;

/// A store on a fresh SQLite file; the temp dir lives as long as the guard.
pub(crate) async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let store = Store::connect(&url).await.expect("open sqlite");
    (store, dir)
}

/// A store on a fresh PostgreSQL schema, or `None` when the PG tests are
/// explicitly skipped with `GIAOBAN_SKIP_PG=1`. Panics (fails the test) when
/// `GIAOBAN_TEST_PG_URL` is not set and skipping was not asked for.
/// Invites `name` as `role` to `meeting` for an hour; returns the
/// invitation's id.
pub(crate) async fn invite(s: &Store, meeting: &str, name: &str, role: Role) -> String {
    s.create_invitation(NewInvitation {
        meeting_id: meeting.to_owned(),
        name: name.into(),
        role,
        ttl_seconds: 3600,
        participant_id: None,
        bridge_point_id: None,
        email: String::new(),
    })
    .await
    .expect("invite")
    .id
}

pub(crate) async fn pg_store() -> Option<(Store, PgSchema)> {
    let url = match std::env::var("GIAOBAN_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var("GIAOBAN_SKIP_PG").as_deref() == Ok("1") {
                eprintln!("GIAOBAN_SKIP_PG=1: skipping a PostgreSQL test");
                return None;
            }
            panic!(
                "GIAOBAN_TEST_PG_URL is not set: PostgreSQL tests need it \
                 (e.g. postgres:///test?host=/var/run/postgresql&user=postgres), \
                 or set GIAOBAN_SKIP_PG=1 to skip them explicitly"
            );
        }
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("connect to GIAOBAN_TEST_PG_URL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("create schema");
    admin.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = Store::connect(&format!("{url}{sep}options[search_path]={schema}"))
        .await
        .expect("open postgres");
    Some((store, PgSchema { url, schema }))
}

/// A test's PostgreSQL schema; [`PgSchema::drop_now`] removes it (a failed
/// test leaves it behind for a look).
pub(crate) struct PgSchema {
    url: String,
    schema: String,
}

impl PgSchema {
    /// The URL of a store on this schema.
    fn store_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options[search_path]={}", self.url, self.schema)
    }

    pub(crate) async fn drop_now(self, store: Store) {
        store.close().await;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .expect("connect to GIAOBAN_TEST_PG_URL");
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(&admin)
            .await
            .expect("drop schema");
        admin.close().await;
    }
}

async fn meetings_roundtrip(store: &Store) {
    assert!(store.list_meetings().await.expect("list").is_empty());
    let a = store
        .create_meeting("  Giao ban tháng 11 ")
        .await
        .expect("create");
    assert_eq!(a.title, "Giao ban tháng 11");
    assert_eq!(a.status, MeetingStatus::Draft);
    let b = store.create_meeting("Họp UBND").await.expect("create");
    let got = store
        .get_meeting(&a.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got, a);
    assert!(store.get_meeting("nope").await.expect("get").is_none());
    let ids: Vec<String> = store
        .list_meetings()
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&a.id) && ids.contains(&b.id));
    store
        .set_meeting_status(&a.id, MeetingStatus::Ended)
        .await
        .expect("status");
    let got = store
        .get_meeting(&a.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.status, MeetingStatus::Ended);
    assert!(matches!(
        store.set_meeting_status("nope", MeetingStatus::Ended).await,
        Err(Error::MeetingNotFound(_))
    ));
    assert!(matches!(
        store.create_meeting("   ").await,
        Err(Error::InvalidInput(_))
    ));
}

async fn invitations_roundtrip(store: &Store) {
    let m = store.create_meeting("M").await.expect("create");
    let inv = store
        .create_invitation(NewInvitation {
            meeting_id: m.id.clone(),
            name: "UBND huyện Cư Jút".into(),
            role: Role::Bridge,
            ttl_seconds: 3600,
            participant_id: None,
            bridge_point_id: None,
            email: String::new(),
        })
        .await
        .expect("invite");
    assert_eq!(inv.role, Role::Bridge);
    assert_eq!(inv.expires_at - inv.created_at, 3600);
    assert!(!inv.is_revoked());
    let got = store
        .get_invitation(&inv.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got, inv);

    let other = store
        .create_invitation(NewInvitation {
            meeting_id: m.id.clone(),
            name: "Chủ tịch".into(),
            role: Role::Chair,
            ttl_seconds: 60,
            participant_id: None,
            bridge_point_id: None,
            email: String::new(),
        })
        .await
        .expect("invite");
    let list = store.list_invitations(&m.id).await.expect("list");
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|i| i.id == other.id));

    let revoked = store.revoke_invitation(&inv.id).await.expect("revoke");
    let first = revoked.revoked_at.expect("revoked");
    let again = store
        .revoke_invitation(&inv.id)
        .await
        .expect("revoke again");
    assert_eq!(again.revoked_at, Some(first));
    assert!(store
        .get_invitation(&other.id)
        .await
        .expect("get")
        .expect("exists")
        .revoked_at
        .is_none());

    assert!(matches!(
        store.revoke_invitation("nope").await,
        Err(Error::InvitationNotFound(_))
    ));
    assert!(matches!(
        store
            .create_invitation(NewInvitation {
                meeting_id: "no-such-meeting".into(),
                name: "x".into(),
                role: Role::Member,
                ttl_seconds: 60,
                participant_id: None,
                bridge_point_id: None,
                email: String::new(),
            })
            .await,
        Err(Error::MeetingNotFound(_))
    ));
    assert!(store.get_invitation("nope").await.expect("get").is_none());
    assert!(store
        .list_invitations("nope")
        .await
        .expect("list")
        .is_empty());
}

#[test]
fn role_and_status_parse() {
    for r in Role::ALL {
        assert_eq!(r.as_str().parse::<Role>().expect("parse"), r);
    }
    assert!(matches!(
        "king".parse::<Role>(),
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(
        "in_progress".parse::<MeetingStatus>().expect("parse"),
        MeetingStatus::InProgress
    );
    assert!("x".parse::<MeetingStatus>().is_err());
}

#[test]
fn redacts_passwords() {
    assert_eq!(
        redact_url("postgres://u:secret@h/db"),
        "postgres://***@h/db"
    );
    assert_eq!(redact_url("mysql://h/db"), "mysql://h/db");
}

#[tokio::test]
async fn unsupported_url() {
    assert!(matches!(
        Store::connect("mysql://localhost/x").await,
        Err(Error::UnsupportedUrl(_))
    ));
}

#[tokio::test]
async fn sqlite_meetings() {
    let (s, _dir) = sqlite_store().await;
    assert_eq!(s.backend(), "sqlite");
    meetings_roundtrip(&s).await;
}

#[tokio::test]
async fn sqlite_invitations() {
    let (s, _dir) = sqlite_store().await;
    invitations_roundtrip(&s).await;
}

#[tokio::test]
async fn sqlite_reopen_keeps_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let id = {
        let s = Store::connect(&url).await.expect("open");
        let id = s.create_meeting("x").await.expect("create").id;
        s.close().await;
        id
    };
    let s = Store::connect(&url)
        .await
        .expect("reopen (migrations again)");
    assert!(s.get_meeting(&id).await.expect("get").is_some());
}

#[tokio::test]
async fn sqlite_foreign_keys_enforced() {
    let (s, _dir) = sqlite_store().await;
    let Pool::Sqlite(p) = &s.pool else {
        panic!("sqlite store expected");
    };
    let r = sqlx::query(
        "INSERT INTO invitations (id, meeting_id, name, role, created_at, expires_at) \
         VALUES ('i', 'missing', 'n', 'chair', 0, 0)",
    )
    .execute(p)
    .await;
    assert!(r.is_err(), "foreign key must be enforced");
}

#[tokio::test]
async fn pg_meetings() {
    if let Some((s, schema)) = pg_store().await {
        assert_eq!(s.backend(), "postgres");
        meetings_roundtrip(&s).await;
        schema.drop_now(s).await;
    }
}

#[tokio::test]
async fn pg_invitations() {
    if let Some((s, schema)) = pg_store().await {
        invitations_roundtrip(&s).await;
        schema.drop_now(s).await;
    }
}

// ---------------------------------------------------------------------------
// The eCabinet core (migration 0002): every entity and lifecycle rule, the
// same bodies on both databases.

/// Runs a scenario on SQLite and on PostgreSQL, as two tests.
macro_rules! on_both {
    ($sqlite:ident, $pg:ident, $scenario:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            let dir = tempfile::tempdir().expect("temp dir");
            let (s, _db) = sqlite_store().await;
            $scenario(&s, dir.path()).await;
        }

        #[tokio::test]
        async fn $pg() {
            if let Some((s, schema)) = pg_store().await {
                let dir = tempfile::tempdir().expect("temp dir");
                $scenario(&s, dir.path()).await;
                schema.drop_now(s).await;
            }
        }
    };
}

const ACTOR: &str = "user:test";

async fn upload(blobs: &Blobs, bytes: &[u8]) -> StagedBlob {
    let mut w = blobs.stage().await.expect("stage");
    w.write(bytes).await.expect("write");
    w.finish().await.expect("finish")
}

fn pdf_upload(name: &str) -> Upload {
    Upload {
        filename: name.into(),
        file_type: FileType::Pdf,
        signature_report: serde_json::json!({"status": "not_checked"}),
    }
}

fn invitation(meeting_id: &str) -> NewInvitation {
    NewInvitation {
        meeting_id: meeting_id.into(),
        name: "Điểm cầu".into(),
        role: Role::Bridge,
        ttl_seconds: 3600,
        participant_id: None,
        bridge_point_id: None,
        email: String::new(),
    }
}

async fn lifecycle(store: &Store, data: &std::path::Path) {
    use MeetingStatus::*;
    let blobs = Blobs::new(data.join("documents"));
    let m = store
        .add_meeting(
            ACTOR,
            NewMeeting {
                title: "Họp UBND tỉnh thường kỳ".into(),
                kind: MeetingKind::Thematic,
                starts_at: Some(1_800_000_000),
                ends_at: Some(1_800_007_200),
                location: "Hội trường A".into(),
                join_muted: None,
            },
        )
        .await
        .expect("create");
    assert_eq!(m.status, Draft);
    assert_eq!(m.kind, MeetingKind::Thematic);
    assert_eq!(m.location, "Hội trường A");
    assert_eq!(
        store.get_meeting(&m.id).await.expect("get"),
        Some(m.clone())
    );

    // Bad schedules and titles.
    let bad = NewMeeting {
        starts_at: Some(10),
        ends_at: Some(5),
        ..NewMeeting::titled("x")
    };
    assert!(matches!(
        store.add_meeting(ACTOR, bad).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        store.add_meeting(ACTOR, NewMeeting::titled(" ")).await,
        Err(Error::InvalidInput(_))
    ));

    // Forward, one step back (scheduled -> draft), forward again.
    for to in [Scheduled, Draft, Scheduled, InProgress] {
        let got = store
            .change_meeting_status(ACTOR, &m.id, to)
            .await
            .expect("allowed");
        assert_eq!(got.status, to);
    }
    // Same status: no-op. Going back from in_progress: refused.
    store
        .change_meeting_status(ACTOR, &m.id, InProgress)
        .await
        .expect("same status is fine");
    for to in [Draft, Scheduled, Archived] {
        assert!(
            matches!(
                store.change_meeting_status(ACTOR, &m.id, to).await,
                Err(Error::BadTransition {
                    from: InProgress,
                    ..
                })
            ),
            "in_progress -> {to}"
        );
    }
    // Still editable while in progress.
    let patched = store
        .update_meeting(
            ACTOR,
            &m.id,
            MeetingPatch {
                location: Some("Phòng họp trực tuyến".into()),
                starts_at: Some(None),
                join_muted: Some(Some(false)),
                ..MeetingPatch::default()
            },
        )
        .await
        .expect("patch");
    assert_eq!(patched.location, "Phòng họp trực tuyến");
    assert_eq!(patched.join_muted, Some(false));
    assert_eq!(
        store
            .get_meeting(&m.id)
            .await
            .expect("get")
            .map(|m| m.join_muted),
        Some(Some(false))
    );
    assert_eq!(patched.starts_at, None);
    assert_eq!(patched.ends_at, Some(1_800_007_200));
    let item = store
        .add_agenda_item(
            ACTOR,
            &m.id,
            NewAgendaItem {
                title: "Báo cáo".into(),
                presenter: String::new(),
                duration_minutes: None,
            },
        )
        .await
        .expect("agenda while in progress");
    let part = store
        .add_participant(
            ACTOR,
            &m.id,
            NewParticipant {
                name: "Nguyễn Văn A".into(),
                position: String::new(),
                role: ParticipantRole::Member,
                voting: None,
                bridge_point_id: None,
            },
        )
        .await
        .expect("participant");
    let inv = store
        .add_invitation(ACTOR, invitation(&m.id))
        .await
        .expect("invitation");
    let doc = store
        .add_document(
            ACTOR,
            NewDocument {
                agenda_item_id: item.id.clone(),
                title: "Tờ trình".into(),
                access: DocumentAccess::Everyone,
                participant_ids: vec![],
            },
            pdf_upload("a.pdf"),
            upload(&blobs, b"%PDF-1.7 a").await,
            &blobs,
        )
        .await
        .expect("document");

    // Ended: frozen.
    store
        .change_meeting_status(ACTOR, &m.id, Ended)
        .await
        .expect("end");
    let frozen = |r: Result<()>| matches!(r, Err(Error::Frozen { .. }));
    assert!(frozen(
        store
            .update_meeting(ACTOR, &m.id, MeetingPatch::default())
            .await
            .map(|_| ())
    ));
    assert!(frozen(
        store
            .add_agenda_item(
                ACTOR,
                &m.id,
                NewAgendaItem {
                    title: "x".into(),
                    presenter: String::new(),
                    duration_minutes: None
                }
            )
            .await
            .map(|_| ())
    ));
    assert!(frozen(
        store
            .update_agenda_item(ACTOR, &item.id, AgendaItemPatch::default())
            .await
            .map(|_| ())
    ));
    assert!(frozen(
        store.delete_agenda_item(ACTOR, &item.id).await.map(|_| ())
    ));
    assert!(frozen(
        store
            .reorder_agenda(ACTOR, &m.id, std::slice::from_ref(&item.id))
            .await
            .map(|_| ())
    ));
    assert!(frozen(
        store
            .update_participant(ACTOR, &part.id, ParticipantPatch::default())
            .await
            .map(|_| ())
    ));
    assert!(frozen(
        store.delete_participant(ACTOR, &part.id).await.map(|_| ())
    ));
    assert!(frozen(
        store
            .add_participant(
                ACTOR,
                &m.id,
                NewParticipant {
                    name: "B".into(),
                    position: String::new(),
                    role: ParticipantRole::Observer,
                    voting: None,
                    bridge_point_id: None
                }
            )
            .await
            .map(|_| ())
    ));
    assert!(frozen(
        store
            .add_invitation(ACTOR, invitation(&m.id))
            .await
            .map(|_| ())
    ));
    let staged = upload(&blobs, b"%PDF-1.7 new version").await;
    let sha = staged.sha256.clone();
    assert!(frozen(
        store
            .add_document_version(ACTOR, &doc.id, pdf_upload("b.pdf"), staged, &blobs)
            .await
            .map(|_| ())
    ));
    assert!(
        !blobs.path_of(&sha).expect("path").exists(),
        "a refused version stores nothing"
    );
    assert!(frozen(
        store
            .add_document(
                ACTOR,
                NewDocument {
                    agenda_item_id: item.id.clone(),
                    title: "x".into(),
                    access: DocumentAccess::Everyone,
                    participant_ids: vec![]
                },
                pdf_upload("c.pdf"),
                upload(&blobs, b"%PDF-1.7 c").await,
                &blobs
            )
            .await
            .map(|_| ())
    ));
    // Revoking still works on a frozen meeting.
    assert!(store
        .revoke_invitation_by(ACTOR, &inv.id)
        .await
        .expect("revoke")
        .is_revoked());
    for to in [Draft, Scheduled, InProgress] {
        assert!(matches!(
            store.change_meeting_status(ACTOR, &m.id, to).await,
            Err(Error::BadTransition { from: Ended, .. })
        ));
    }
    store
        .change_meeting_status(ACTOR, &m.id, Archived)
        .await
        .expect("archive");
    for to in [Draft, Scheduled, InProgress, Ended] {
        assert!(matches!(
            store.change_meeting_status(ACTOR, &m.id, to).await,
            Err(Error::BadTransition { from: Archived, .. })
        ));
    }
    assert!(frozen(
        store
            .update_meeting(ACTOR, &m.id, MeetingPatch::default())
            .await
            .map(|_| ())
    ));

    // A draft can be closed without taking place; an unknown meeting is not found.
    let d = store.create_meeting("Hoãn").await.expect("create");
    store
        .change_meeting_status(ACTOR, &d.id, Ended)
        .await
        .expect("draft -> ended");
    assert!(matches!(
        store.change_meeting_status(ACTOR, "nope", Scheduled).await,
        Err(Error::MeetingNotFound(_))
    ));

    // Every write left an audit row.
    let audit = store.audit_of("meeting", &m.id).await.expect("audit");
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions.first(), Some(&"meeting.create"));
    assert_eq!(
        actions.iter().filter(|a| **a == "meeting.status").count(),
        6,
        "{actions:?}"
    );
    assert!(actions.contains(&"meeting.update"));
    assert!(audit.iter().all(|a| a.actor == ACTOR));
    let last = audit.last().expect("rows");
    assert_eq!(last.detail["to"], "archived");
}

async fn registry_and_participants(store: &Store, _data: &std::path::Path) {
    let bp = store
        .add_bridge_point(
            ACTOR,
            NewBridgePoint {
                name: "UBND xã Cư Jút".into(),
                level: BridgeLevel::Commune,
                contact: "0262 3880 123".into(),
                code: "24611".into(),
                operator_phone: " 0912 345 678 ".into(),
                email: String::new(),
            },
        )
        .await
        .expect("bridge point");
    assert!(bp.active);
    assert_eq!(bp.code, "24611");
    assert_eq!(bp.operator_phone, "0912 345 678");
    // Districts were abolished on 1 July 2025: no new one.
    let district = store
        .add_bridge_point(
            ACTOR,
            NewBridgePoint {
                name: "UBND huyện Krông Nô".into(),
                level: BridgeLevel::District,
                contact: String::new(),
                code: String::new(),
                operator_phone: String::new(),
                email: String::new(),
            },
        )
        .await;
    assert!(
        matches!(&district, Err(Error::InvalidInput(m)) if m.contains("district")),
        "{district:?}"
    );
    // A district stored before the reform is still read and kept.
    with_pool!(store, p => sqlx::query(
        "INSERT INTO bridge_points (id, name, level, contact, active, created_at, updated_at) \
         VALUES ('old-district', 'UBND huyện cũ', 'district', '', TRUE, 1, 1)",
    )
    .execute(p)
    .await
    .map(|_| ()))
    .expect("old row");
    let old = store
        .get_bridge_point("old-district")
        .await
        .expect("read")
        .expect("there");
    assert_eq!(old.level, BridgeLevel::District);
    assert_eq!(old.code, "");
    let renamed = store
        .update_bridge_point(
            ACTOR,
            "old-district",
            BridgePointPatch {
                name: Some("UBND huyện cũ (lưu)".into()),
                ..BridgePointPatch::default()
            },
        )
        .await
        .expect("an old district can still be edited");
    assert_eq!(renamed.level, BridgeLevel::District);
    assert!(matches!(
        store
            .update_bridge_point(
                ACTOR,
                &bp.id,
                BridgePointPatch {
                    level: Some(BridgeLevel::District),
                    ..BridgePointPatch::default()
                },
            )
            .await,
        Err(Error::InvalidInput(_))
    ));
    with_pool!(store, p => sqlx::query(
        "UPDATE bridge_points SET active = FALSE WHERE id = 'old-district'",
    )
    .execute(p)
    .await
    .map(|_| ()))
    .expect("old row off");
    let bp2 = store
        .add_bridge_point(
            ACTOR,
            NewBridgePoint {
                name: "Sở Tài chính".into(),
                level: BridgeLevel::Department,
                contact: String::new(),
                code: String::new(),
                operator_phone: String::new(),
                email: String::new(),
            },
        )
        .await
        .expect("bridge point");
    let list = store.list_bridge_points().await.expect("list");
    assert_eq!(
        list.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
        vec!["Sở Tài chính", "UBND huyện cũ (lưu)", "UBND xã Cư Jút"]
    );
    assert!(matches!(
        store
            .add_bridge_point(
                ACTOR,
                NewBridgePoint {
                    name: "".into(),
                    level: BridgeLevel::Commune,
                    contact: String::new(),
                    code: String::new(),
                    operator_phone: String::new(),
                    email: String::new(),
                }
            )
            .await,
        Err(Error::InvalidInput(_))
    ));

    let m = store.create_meeting("Giao ban").await.expect("meeting");
    let chair = store
        .add_participant(
            ACTOR,
            &m.id,
            NewParticipant {
                name: "Chủ tịch".into(),
                position: "Chủ tịch UBND tỉnh".into(),
                role: ParticipantRole::Chair,
                voting: None,
                bridge_point_id: None,
            },
        )
        .await
        .expect("chair");
    assert!(chair.voting, "the chair votes by default");
    let op = store
        .add_participant(
            ACTOR,
            &m.id,
            NewParticipant {
                name: "Kỹ thuật viên".into(),
                position: String::new(),
                role: ParticipantRole::BridgeOperator,
                voting: None,
                bridge_point_id: Some(bp.id.clone()),
            },
        )
        .await
        .expect("operator");
    assert!(!op.voting);
    assert_eq!(op.bridge_point_id.as_deref(), Some(bp.id.as_str()));
    assert!(matches!(
        store
            .add_participant(
                ACTOR,
                &m.id,
                NewParticipant {
                    name: "x".into(),
                    position: String::new(),
                    role: ParticipantRole::Delegate,
                    voting: None,
                    bridge_point_id: Some("nope".into())
                }
            )
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store
            .add_participant(
                ACTOR,
                "nope",
                NewParticipant {
                    name: "x".into(),
                    position: String::new(),
                    role: ParticipantRole::Delegate,
                    voting: None,
                    bridge_point_id: None
                }
            )
            .await,
        Err(Error::MeetingNotFound(_))
    ));

    // Deactivate bp2: no new participants or invitations from it.
    let off = store
        .update_bridge_point(
            ACTOR,
            &bp2.id,
            BridgePointPatch {
                active: Some(false),
                contact: Some("Chánh VP".into()),
                ..BridgePointPatch::default()
            },
        )
        .await
        .expect("deactivate");
    assert!(!off.active);
    assert_eq!(off.contact, "Chánh VP");
    assert!(matches!(
        store
            .update_participant(
                ACTOR,
                &op.id,
                ParticipantPatch {
                    bridge_point_id: Some(Some(bp2.id.clone())),
                    ..ParticipantPatch::default()
                }
            )
            .await,
        Err(Error::InvalidInput(_))
    ));
    let mut inv = invitation(&m.id);
    inv.bridge_point_id = Some(bp2.id.clone());
    assert!(matches!(
        store.add_invitation(ACTOR, inv).await,
        Err(Error::InvalidInput(_))
    ));

    // Update a participant.
    let op2 = store
        .update_participant(
            ACTOR,
            &op.id,
            ParticipantPatch {
                position: Some("Chuyên viên CNTT".into()),
                voting: Some(true),
                bridge_point_id: Some(None),
                ..ParticipantPatch::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(op2.position, "Chuyên viên CNTT");
    assert!(op2.voting);
    assert_eq!(op2.bridge_point_id, None);

    // Invitation tied to the chair and bp; chair named on the meeting and a document.
    let mut inv = invitation(&m.id);
    inv.participant_id = Some(chair.id.clone());
    inv.bridge_point_id = Some(bp.id.clone());
    let inv = store.add_invitation(ACTOR, inv).await.expect("invitation");
    assert_eq!(inv.participant_id.as_deref(), Some(chair.id.as_str()));
    assert_eq!(
        store.get_invitation(&inv.id).await.expect("get"),
        Some(inv.clone())
    );
    let other = store.create_meeting("Khác").await.expect("meeting");
    let mut wrong = invitation(&other.id);
    wrong.participant_id = Some(chair.id.clone());
    assert!(matches!(
        store.add_invitation(ACTOR, wrong).await,
        Err(Error::InvalidInput(_))
    ));
    let m2 = store
        .update_meeting(
            ACTOR,
            &m.id,
            MeetingPatch {
                chair_participant_id: Some(Some(chair.id.clone())),
                ..MeetingPatch::default()
            },
        )
        .await
        .expect("set chair");
    assert_eq!(m2.chair_participant_id.as_deref(), Some(chair.id.as_str()));
    assert!(matches!(
        store
            .update_meeting(
                ACTOR,
                &other.id,
                MeetingPatch {
                    chair_participant_id: Some(Some(chair.id.clone())),
                    ..MeetingPatch::default()
                }
            )
            .await,
        Err(Error::InvalidInput(_))
    ));

    let list = store.list_participants(&m.id).await.expect("list");
    assert_eq!(list.len(), 2);
    // Deleting the chair unlinks it everywhere, in one transaction.
    store
        .delete_participant(ACTOR, &chair.id)
        .await
        .expect("delete");
    assert!(store
        .get_participant(&chair.id)
        .await
        .expect("get")
        .is_none());
    assert_eq!(
        store
            .get_meeting(&m.id)
            .await
            .expect("get")
            .expect("exists")
            .chair_participant_id,
        None
    );
    let inv = store
        .get_invitation(&inv.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(inv.participant_id, None);
    assert!(!inv.is_revoked(), "the invitation itself stays");
    assert!(matches!(
        store.delete_participant(ACTOR, &chair.id).await,
        Err(Error::NotFound { .. })
    ));
    let actions: Vec<String> = store
        .audit_of("participant", &chair.id)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions, vec!["participant.create", "participant.delete"]);
}

async fn agenda_and_documents(store: &Store, data: &std::path::Path) {
    let blobs = Blobs::new(data.join("documents"));
    let m = store
        .create_meeting("Giao ban tháng 12")
        .await
        .expect("meeting");
    let mut items = Vec::new();
    for (t, d) in [
        ("Khai mạc", Some(5)),
        ("Báo cáo KT-XH", Some(30)),
        ("Kết luận", None),
    ] {
        items.push(
            store
                .add_agenda_item(
                    ACTOR,
                    &m.id,
                    NewAgendaItem {
                        title: t.into(),
                        presenter: "Văn phòng".into(),
                        duration_minutes: d,
                    },
                )
                .await
                .expect("item"),
        );
    }
    assert_eq!(
        items.iter().map(|i| i.position).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(matches!(
        store
            .add_agenda_item(
                ACTOR,
                &m.id,
                NewAgendaItem {
                    title: "x".into(),
                    presenter: String::new(),
                    duration_minutes: Some(-1)
                }
            )
            .await,
        Err(Error::InvalidInput(_))
    ));
    // Reorder: 3, 1, 2.
    let order = vec![
        items[2].id.clone(),
        items[0].id.clone(),
        items[1].id.clone(),
    ];
    let agenda = store
        .reorder_agenda(ACTOR, &m.id, &order)
        .await
        .expect("reorder");
    assert_eq!(
        agenda.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        order
    );
    assert_eq!(
        agenda.iter().map(|i| i.position).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    for bad in [
        vec![items[0].id.clone(), items[1].id.clone()],
        vec![
            items[0].id.clone(),
            items[0].id.clone(),
            items[1].id.clone(),
        ],
        vec![
            items[0].id.clone(),
            items[1].id.clone(),
            items[2].id.clone(),
            "x".into(),
        ],
    ] {
        assert!(matches!(
            store.reorder_agenda(ACTOR, &m.id, &bad).await,
            Err(Error::InvalidInput(_))
        ));
    }
    assert_eq!(
        store.list_agenda(&m.id).await.expect("list"),
        agenda,
        "a refused reorder changes nothing"
    );
    let upd = store
        .update_agenda_item(
            ACTOR,
            &items[1].id,
            AgendaItemPatch {
                title: Some("Báo cáo tình hình KT-XH".into()),
                duration_minutes: Some(None),
                ..AgendaItemPatch::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(upd.title, "Báo cáo tình hình KT-XH");
    assert_eq!(upd.duration_minutes, None);
    assert_eq!(upd.presenter, "Văn phòng");

    // Documents: named access to a participant, versions, dedup.
    let member = store
        .add_participant(
            ACTOR,
            &m.id,
            NewParticipant {
                name: "Ủy viên".into(),
                position: String::new(),
                role: ParticipantRole::Member,
                voting: None,
                bridge_point_id: None,
            },
        )
        .await
        .expect("participant");
    let other = store.create_meeting("Khác").await.expect("meeting");
    let stranger = store
        .add_participant(
            ACTOR,
            &other.id,
            NewParticipant {
                name: "Người ngoài".into(),
                position: String::new(),
                role: ParticipantRole::Member,
                voting: None,
                bridge_point_id: None,
            },
        )
        .await
        .expect("participant");
    let staged = upload(&blobs, b"%PDF-1.7 secret").await;
    let sha = staged.sha256.clone();
    assert!(matches!(
        store
            .add_document(
                ACTOR,
                NewDocument {
                    agenda_item_id: items[1].id.clone(),
                    title: "Mật".into(),
                    access: DocumentAccess::Named,
                    participant_ids: vec![stranger.id.clone()],
                },
                pdf_upload("mat.pdf"),
                staged,
                &blobs,
            )
            .await,
        Err(Error::InvalidInput(_))
    ));
    assert!(
        !blobs.path_of(&sha).expect("path").exists(),
        "a refused document stores nothing"
    );
    let doc = store
        .add_document(
            ACTOR,
            NewDocument {
                agenda_item_id: items[1].id.clone(),
                title: "Báo cáo mật".into(),
                access: DocumentAccess::Named,
                participant_ids: vec![member.id.clone(), member.id.clone()],
            },
            Upload {
                filename: "../bao-cao.pdf".into(),
                file_type: FileType::Pdf,
                signature_report: serde_json::json!({"status": "valid", "signatures": []}),
            },
            upload(&blobs, b"%PDF-1.7 secret").await,
            &blobs,
        )
        .await
        .expect("document");
    assert_eq!(doc.access, DocumentAccess::Named);
    assert_eq!(doc.participant_ids, vec![member.id.clone()]);
    assert_eq!(doc.meeting_id, m.id);
    assert_eq!(doc.current_version, 1);
    let v1 = doc.version(None).expect("v1").clone();
    assert_eq!(v1.sha256, sha);
    assert_eq!(v1.size, 15);
    assert_eq!(v1.filename, "bao-cao.pdf");
    assert_eq!(v1.uploaded_by, ACTOR);
    assert_eq!(v1.signature_report["status"], "valid");
    assert_eq!(
        std::fs::read(blobs.path_of(&sha).expect("path")).expect("stored"),
        b"%PDF-1.7 secret"
    );

    let doc2 = store
        .add_document_version(
            ACTOR,
            &doc.id,
            pdf_upload("bao-cao-v2.pdf"),
            upload(&blobs, b"%PDF-1.7 secret v2").await,
            &blobs,
        )
        .await
        .expect("version 2");
    assert_eq!(doc2.current_version, 2);
    assert_eq!(doc2.versions.len(), 2);
    assert_eq!(doc2.version(Some(1)), Some(&v1));
    assert_eq!(doc2.version(None).expect("v2").filename, "bao-cao-v2.pdf");
    assert!(doc2.version(Some(3)).is_none());

    // The same content in another document is stored once.
    let everyone = store
        .add_document(
            ACTOR,
            NewDocument {
                agenda_item_id: items[0].id.clone(),
                title: "Bản sao".into(),
                access: DocumentAccess::Everyone,
                participant_ids: vec![member.id.clone()],
            },
            pdf_upload("copy.pdf"),
            upload(&blobs, b"%PDF-1.7 secret").await,
            &blobs,
        )
        .await
        .expect("document");
    assert!(
        everyone.participant_ids.is_empty(),
        "only named access keeps a list"
    );
    assert_eq!(everyone.versions[0].sha256, sha);
    let mut files = 0;
    for sub in std::fs::read_dir(blobs.root()).expect("root") {
        let sub = sub.expect("entry").path();
        if sub.file_name().is_some_and(|n| n != "tmp") {
            files += std::fs::read_dir(&sub).expect("sub").count();
        }
    }
    assert_eq!(files, 2, "two distinct contents");
    assert_eq!(
        std::fs::read_dir(blobs.root().join("tmp"))
            .expect("tmp")
            .count(),
        0,
        "no temp files left"
    );

    let listed = store.list_documents(&items[1].id).await.expect("list");
    assert_eq!(listed, vec![doc2.clone()]);
    assert_eq!(
        store.get_document(&doc.id).await.expect("get"),
        Some(doc2.clone())
    );
    assert!(store.get_document("nope").await.expect("get").is_none());

    // Removing the member drops them from the named list.
    store
        .delete_participant(ACTOR, &member.id)
        .await
        .expect("delete");
    assert!(store
        .get_document(&doc.id)
        .await
        .expect("get")
        .expect("exists")
        .participant_ids
        .is_empty());

    // Deleting an item removes its documents and closes the gap.
    store
        .delete_agenda_item(ACTOR, &items[1].id)
        .await
        .expect("delete item");
    assert!(store.get_document(&doc.id).await.expect("get").is_none());
    let agenda = store.list_agenda(&m.id).await.expect("list");
    assert_eq!(
        agenda
            .iter()
            .map(|i| (i.id.clone(), i.position))
            .collect::<Vec<_>>(),
        vec![(items[2].id.clone(), 1), (items[0].id.clone(), 2)]
    );
    assert!(blobs.path_of(&sha).expect("path").exists(), "contents stay");
    let actions: Vec<String> = store
        .audit_of("document", &doc.id)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions, vec!["document.create", "document.version"]);
}

async fn users_and_audit(store: &Store, _data: &std::path::Path) {
    let u = store
        .create_user(
            "cli",
            NewUser {
                username: " ThuKy ".into(),
                display_name: "Thư ký Văn phòng".into(),
                role: StaffRole::Secretary,
                password: "mật-khẩu-tốt".into(),
            },
        )
        .await
        .expect("create");
    assert_eq!(u.username, "thuky");
    assert!(u.active);
    assert!(matches!(
        store
            .create_user(
                "cli",
                NewUser {
                    username: "thuky".into(),
                    display_name: "x".into(),
                    role: StaffRole::Admin,
                    password: "password-long".into()
                }
            )
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store
            .create_user(
                "cli",
                NewUser {
                    username: "short".into(),
                    display_name: "x".into(),
                    role: StaffRole::Admin,
                    password: "1234567".into()
                }
            )
            .await,
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(
        store
            .authenticate("THUKY", "mật-khẩu-tốt")
            .await
            .expect("auth"),
        Some(u.clone())
    );
    assert_eq!(
        store.authenticate("thuky", "wrong").await.expect("auth"),
        None
    );
    assert_eq!(
        store
            .authenticate("nobody", "mật-khẩu-tốt")
            .await
            .expect("auth"),
        None
    );
    assert_eq!(store.get_user(&u.id).await.expect("get"), Some(u.clone()));
    assert_eq!(store.list_users().await.expect("list"), vec![u.clone()]);
    let off = store
        .set_user_active("user:admin", &u.id, false)
        .await
        .expect("deactivate");
    assert!(!off.active);
    assert_eq!(
        store
            .authenticate("thuky", "mật-khẩu-tốt")
            .await
            .expect("auth"),
        None,
        "an inactive account cannot log in"
    );
    let log = store.audit_log(100).await.expect("audit");
    let mine: Vec<(&str, &str)> = log
        .iter()
        .filter(|a| a.target_id == u.id)
        .map(|a| (a.actor.as_str(), a.action.as_str()))
        .collect();
    assert_eq!(
        mine,
        vec![("cli", "user.create"), ("user:admin", "user.active")]
    );
    assert!(
        log.iter()
            .all(|a| !a.detail.to_string().contains("mật-khẩu")),
        "no password in the audit log"
    );
    let seqs: Vec<i64> = log.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, (1..=log.len() as i64).collect::<Vec<_>>());

    // The chain is intact, and an edited row breaks it where it was edited
    // (the guard triggers dropped first, as a hostile administrator would).
    assert_eq!(store.verify_audit_chain().await.expect("verify"), None);
    drop_audit_guards(store).await;
    let edited = "UPDATE audit_log SET actor = 'cli' WHERE seq = 2";
    with_pool!(store, p => sqlx::query(edited).execute(p).await.map(|_| ())).expect("tamper");
    let b = store
        .verify_audit_chain()
        .await
        .expect("verify")
        .expect("broken");
    assert_eq!((b.seq, b.problem), (2, AuditProblem::Edited));
    let undo = format!(
        "UPDATE audit_log SET actor = '{}' WHERE seq = 2",
        log[1].actor
    );
    with_pool!(store, p => sqlx::query(&undo).execute(p).await.map(|_| ())).expect("undo");
    assert_eq!(store.verify_audit_chain().await.expect("verify"), None);
    // Removing the last row is seen too (the head remembers it).
    let last = format!("DELETE FROM audit_log WHERE seq = {}", log.len());
    with_pool!(store, p => sqlx::query(&last).execute(p).await.map(|_| ())).expect("delete");
    let b = store
        .verify_audit_chain()
        .await
        .expect("verify")
        .expect("broken");
    assert_eq!(
        (b.seq, b.problem),
        (log.len() as i64, AuditProblem::Truncated)
    );
}

/// Withdrawing and replacing a document: kept in the record, marked, with
/// the new document taking the old one's item and access; refused twice,
/// without a reason, and once the meeting is frozen; audited.
async fn withdraw_and_replace(store: &Store, data: &std::path::Path) {
    let blobs = Blobs::new(data.join("documents"));
    let m = store
        .create_meeting("Họp chuyên đề")
        .await
        .expect("meeting");
    let member = store
        .add_participant(
            ACTOR,
            &m.id,
            NewParticipant {
                name: "Trần Thị B".into(),
                position: String::new(),
                role: ParticipantRole::Member,
                voting: None,
                bridge_point_id: None,
            },
        )
        .await
        .expect("participant");
    let item = store
        .add_agenda_item(
            ACTOR,
            &m.id,
            NewAgendaItem {
                title: "Tờ trình".into(),
                presenter: String::new(),
                duration_minutes: None,
            },
        )
        .await
        .expect("item");
    let mut docs = Vec::new();
    for tag in ["a", "b"] {
        docs.push(
            store
                .add_document(
                    ACTOR,
                    NewDocument {
                        agenda_item_id: item.id.clone(),
                        title: format!("Tài liệu {tag}"),
                        access: DocumentAccess::Named,
                        participant_ids: vec![member.id.clone()],
                    },
                    pdf_upload(&format!("{tag}.pdf")),
                    upload(&blobs, format!("%PDF-1.7 {tag}").as_bytes()).await,
                    &blobs,
                )
                .await
                .expect("document"),
        );
    }
    assert_eq!(docs[0].versions[0].file_type, Some(FileType::Pdf));
    assert_eq!(docs[0].versions[0].content_type, "application/pdf");
    assert!(matches!(
        store.withdraw_document(ACTOR, &docs[0].id, " ").await,
        Err(Error::InvalidInput(_))
    ));
    let w = store
        .withdraw_document(ACTOR, &docs[0].id, "Tải nhầm")
        .await
        .expect("withdraw");
    assert!(w.is_withdrawn());
    assert_eq!(w.withdrawn_by.as_deref(), Some(ACTOR));
    assert_eq!(w.withdrawn_reason.as_deref(), Some("Tải nhầm"));
    assert!(matches!(
        store.withdraw_document(ACTOR, &docs[0].id, "again").await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store
            .add_document_version(
                ACTOR,
                &docs[0].id,
                pdf_upload("v2.pdf"),
                upload(&blobs, b"%PDF-1.7 v2").await,
                &blobs
            )
            .await,
        Err(Error::Conflict(_))
    ));
    let new = store
        .replace_document(
            ACTOR,
            &docs[1].id,
            Replacement {
                title: None,
                reason: "Sửa số liệu".into(),
            },
            Upload {
                filename: "b-sua.pdf".into(),
                file_type: FileType::Docx,
                signature_report: serde_json::json!({"status": "not_checked"}),
            },
            upload(&blobs, b"PK docx bytes").await,
            &blobs,
        )
        .await
        .expect("replace");
    assert_eq!(new.title, "Tài liệu b");
    assert_eq!(new.access, DocumentAccess::Named);
    assert_eq!(new.participant_ids, vec![member.id.clone()]);
    assert_eq!(new.replaces.as_deref(), Some(docs[1].id.as_str()));
    assert_eq!(new.versions[0].filename, "b-sua.pdf.docx");
    assert_eq!(new.versions[0].file_type, Some(FileType::Docx));
    let old = store
        .get_document(&docs[1].id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(old.replaced_by.as_deref(), Some(new.id.as_str()));
    assert_eq!(old.withdrawn_reason.as_deref(), Some("Sửa số liệu"));
    let listed = store.list_documents(&item.id).await.expect("list");
    assert_eq!(listed.len(), 3);
    assert_eq!(listed.iter().filter(|d| d.is_withdrawn()).count(), 2);
    let actions: Vec<String> = store
        .audit_of("document", &docs[1].id)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, vec!["document.create", "document.replace"]);
    store
        .change_meeting_status(ACTOR, &m.id, MeetingStatus::Ended)
        .await
        .expect("end");
    assert!(matches!(
        store.withdraw_document(ACTOR, &new.id, "late").await,
        Err(Error::Frozen { .. })
    ));
}

on_both!(
    sqlite_withdraw_and_replace,
    pg_withdraw_and_replace,
    withdraw_and_replace
);
on_both!(sqlite_lifecycle, pg_lifecycle, lifecycle);
on_both!(
    sqlite_registry_and_participants,
    pg_registry_and_participants,
    registry_and_participants
);
on_both!(
    sqlite_agenda_and_documents,
    pg_agenda_and_documents,
    agenda_and_documents
);
on_both!(sqlite_users_and_audit, pg_users_and_audit, users_and_audit);

/// A database at migration 0001 with data is upgraded by 0002 without loss:
/// meetings keep their status (scheduled stays scheduled), invitations
/// their fields.
async fn upgrade_from_0001<DB>(pool: &sqlx::Pool<DB>, url: &str)
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Connection: sqlx::migrate::Migrate,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
{
    use sqlx::migrate::Migrate;
    let first = MIGRATOR.iter().next().expect("migration 0001");
    assert_eq!(first.version, 1);
    let mut conn = pool.acquire().await.expect("connection");
    conn.ensure_migrations_table().await.expect("table");
    conn.apply(first).await.expect("apply 0001");
    sqlx::raw_sql(
        "INSERT INTO meetings (id, title, status, created_at) VALUES ('m1', 'Cũ', 'scheduled', 100);\
         INSERT INTO meetings (id, title, status, created_at) VALUES ('m2', 'Đã xong', 'ended', 50);\
         INSERT INTO invitations (id, meeting_id, name, role, created_at, expires_at, revoked_at) \
         VALUES ('i1', 'm1', 'Điểm cầu', 'bridge', 100, 200, NULL);",
    )
    .execute(&mut *conn)
    .await
    .expect("old rows");
    drop(conn);
    pool.close().await;

    let store = Store::connect(url).await.expect("upgrade");
    let m = store.get_meeting("m1").await.expect("get").expect("kept");
    assert_eq!(m.status, MeetingStatus::Scheduled);
    assert_eq!(m.kind, MeetingKind::Regular);
    assert_eq!(m.created_at, 100);
    assert_eq!(m.updated_at, 100);
    assert_eq!(m.title, "Cũ");
    let ended = store.get_meeting("m2").await.expect("get").expect("kept");
    assert_eq!(ended.status, MeetingStatus::Ended);
    let inv = store
        .get_invitation("i1")
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(inv.meeting_id, "m1");
    assert_eq!(inv.role, Role::Bridge);
    assert_eq!(inv.expires_at, 200);
    assert_eq!(inv.participant_id, None);
    // The rebuilt tables still enforce their references.
    assert!(store.add_invitation(ACTOR, invitation("m1")).await.is_ok());
    assert!(matches!(
        store.add_invitation(ACTOR, invitation("m9")).await,
        Err(Error::MeetingNotFound(_))
    ));
    store.close().await;
}

#[tokio::test]
async fn sqlite_upgrade_from_0001() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let opts = SqliteConnectOptions::from_str(&url)
        .expect("url")
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .expect("open");
    upgrade_from_0001(&pool, &url).await;
    let s = Store::connect(&url).await.expect("reopen");
    let Pool::Sqlite(p) = &s.pool else {
        panic!("sqlite store expected");
    };
    let r = sqlx::query(
        "INSERT INTO invitations (id, meeting_id, name, role, created_at, expires_at) \
         VALUES ('i9', 'missing', 'n', 'chair', 0, 0)",
    )
    .execute(p)
    .await;
    assert!(r.is_err(), "foreign key still enforced after the rebuild");
}

#[tokio::test]
async fn pg_upgrade_from_0001() {
    let Some((s, schema)) = pg_store_without_migrations().await else {
        return;
    };
    let (pool, url) = s;
    upgrade_from_0001(&pool, &url).await;
    let store = Store::connect(&url).await.expect("reopen");
    schema.drop_now(store).await;
}

/// A fresh PostgreSQL schema with nothing in it: a pool on it and its URL.
async fn pg_store_without_migrations() -> Option<((PgPool, String), PgSchema)> {
    let (store, schema) = pg_store().await?;
    // pg_store migrated the schema: start again with an empty one.
    let Pool::Postgres(p) = &store.pool else {
        panic!("postgres store expected");
    };
    // Every table of this test's own schema, whatever the migrations made
    // (a list by hand missed each new migration's tables).
    sqlx::raw_sql(
        "DO $$ DECLARE t record; BEGIN \
           FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP \
             EXECUTE 'DROP TABLE IF EXISTS ' || quote_ident(t.tablename) || ' CASCADE'; \
           END LOOP; \
         END $$",
    )
    .execute(p)
    .await
    .expect("empty the schema");
    store.close().await;
    let url = schema.store_url();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("connect");
    Some(((pool, url), schema))
}

/// Concurrent writers append to one unbroken chain.
async fn concurrent_audit(store: &Store, _data: &std::path::Path) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.add_meeting(ACTOR, NewMeeting::titled(&format!("Họp {i}")))
                .await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("meeting");
    }
    let log = store.audit_log(100).await.expect("audit");
    assert_eq!(log.len(), 16);
    assert_eq!(store.verify_audit_chain().await.expect("verify"), None);
}

on_both!(
    sqlite_concurrent_audit,
    pg_concurrent_audit,
    concurrent_audit
);

// ---------------------------------------------------------------------------
// Idempotency keys (migration 0004).

async fn idempotency(store: &Store, _dir: &std::path::Path) {
    let m = store.create_meeting("Giao ban").await.expect("meeting");
    let key = IdempotencyKey::new("k-1", idempotency::fingerprint(&[b"a"])).expect("key");
    let new = || NewAgendaItem {
        title: "Mục 1".into(),
        presenter: String::new(),
        duration_minutes: None,
    };
    let none = store.idempotent_response("user:a", "k-1").await;
    assert!(none.expect("lookup").is_none());
    let item = store
        .add_agenda_item_idempotent("user:a", &m.id, new(), Some(&key))
        .await
        .expect("add");
    let stored = store
        .idempotent_response("user:a", "k-1")
        .await
        .expect("lookup")
        .expect("stored");
    assert_eq!(stored.status, 201);
    assert_eq!(stored.fingerprint, key.fingerprint);
    assert_eq!(stored.body, serde_json::to_value(&item).expect("json"));
    // Each actor has its own keys.
    let other = store.idempotent_response("user:b", "k-1").await;
    assert!(other.expect("lookup").is_none());
    // The same key again creates nothing: the write fails as a whole.
    let e = store
        .add_agenda_item_idempotent("user:a", &m.id, new(), Some(&key))
        .await
        .expect_err("second write with the key");
    assert!(e.is_unique_violation(), "{e}");
    assert_eq!(store.list_agenda(&m.id).await.expect("list").len(), 1);
    // Racing writes with one key: exactly one commits.
    let key2 = IdempotencyKey::new("k-2", idempotency::fingerprint(&[b"b"])).expect("key");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (s, id, k) = (store.clone(), m.id.clone(), key2.clone());
        tasks.push(tokio::spawn(async move {
            s.add_agenda_item_idempotent("user:a", &id, new(), Some(&k))
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.is_unique_violation(), "{e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(store.list_agenda(&m.id).await.expect("list").len(), 2);
    assert!(IdempotencyKey::new("", String::new()).is_err());
    assert!(IdempotencyKey::new("a b", String::new()).is_err());
    assert!(IdempotencyKey::new(&"x".repeat(201), String::new()).is_err());
    assert_ne!(
        idempotency::fingerprint(&[b"ab", b"c"]),
        idempotency::fingerprint(&[b"a", b"bc"])
    );
    assert_eq!(store.verify_audit_chain().await.expect("verify"), None);
}

on_both!(sqlite_idempotency, pg_idempotency, idempotency);

// ---------------------------------------------------------------------------
// The audit log against a hostile database administrator (migration 0007).

/// Drops the triggers that keep `audit_log` append-only (what someone with
/// the database's owner rights can do).
async fn drop_audit_guards(store: &Store) {
    let drops: &[&str] = match store.backend() {
        "sqlite" => &[
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
        ],
        _ => &[
            "DROP TRIGGER audit_log_no_change ON audit_log",
            "DROP TRIGGER audit_log_no_truncate ON audit_log",
        ],
    };
    for q in drops {
        with_pool!(store, p => sqlx::query(q).execute(p).await.map(|_| ())).expect("drop trigger");
    }
}

async fn exec(store: &Store, sql: &str) -> Result<()> {
    with_pool!(store, p => sqlx::query(sql).execute(p).await.map(|_| ()))?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct RawAudit {
    id: String,
    seq: i64,
    at: i64,
    actor: String,
    action: String,
    target_type: String,
    target_id: String,
    detail: String,
    prev_hash: String,
    hash: String,
}

impl RawAudit {
    fn fields(&self) -> AuditFields {
        AuditFields {
            seq: self.seq,
            at: self.at,
            actor: self.actor.clone(),
            action: self.action.clone(),
            target_type: self.target_type.clone(),
            target_id: self.target_id.clone(),
            detail: self.detail.clone(),
        }
    }
}

async fn raw_rows(store: &Store) -> Vec<RawAudit> {
    with_pool!(store, p => sqlx::query_as(
        "SELECT id, seq, at, actor, action, target_type, target_id, detail, prev_hash, hash \
         FROM audit_log ORDER BY seq")
        .fetch_all(p)
        .await)
    .expect("rows")
}

/// Replaces the whole log and its head with `rows` (guards dropped).
async fn put_rows(store: &Store, rows: &[RawAudit], keyed_from: i64) {
    exec(store, "DELETE FROM audit_log").await.expect("clear");
    for r in rows {
        with_pool!(store, p => sqlx::query(
            "INSERT INTO audit_log (id, seq, at, actor, action, target_type, target_id, \
             detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .bind(&r.id).bind(r.seq).bind(r.at).bind(&r.actor).bind(&r.action)
            .bind(&r.target_type).bind(&r.target_id).bind(&r.detail)
            .bind(&r.prev_hash).bind(&r.hash)
            .execute(p).await.map(|_| ()))
        .expect("insert");
    }
    let (seq, hash) = rows
        .last()
        .map_or((0, audit::GENESIS_HASH.to_owned()), |r| {
            (r.seq, r.hash.clone())
        });
    with_pool!(store, p => sqlx::query(
        "UPDATE audit_head SET seq = $1, hash = $2, keyed_from = $3 WHERE id = 1")
        .bind(seq).bind(&hash).bind(keyed_from)
        .execute(p).await.map(|_| ()))
    .expect("head");
}

/// The same rows rehashed from `from_seq` on with `hash` (a recomputation).
fn rehash(rows: &[RawAudit], hash: impl Fn(&str, &AuditFields) -> String) -> Vec<RawAudit> {
    let mut prev = audit::GENESIS_HASH.to_owned();
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            r.prev_hash = prev.clone();
            r.hash = hash(&prev, &r.fields());
            prev = r.hash.clone();
            r
        })
        .collect()
}

async fn broken(store: &Store) -> AuditBreak {
    store
        .verify_audit_chain()
        .await
        .expect("verify")
        .expect("the chain should be found broken")
}

async fn audit_against_hostile_dba(store: &Store, dir: &std::path::Path) {
    let key = vec![0x42; 32];
    let checkpoint = dir.join(AUDIT_CHECKPOINT_FILE);
    let store = store
        .clone()
        .with_audit_seal(AuditSeal::new(key.clone(), Some(checkpoint.clone())));
    for i in 1..=5 {
        store
            .record_audit(
                ACTOR,
                "test.event",
                "thing",
                &format!("t{i}"),
                serde_json::json!({"i": i}),
            )
            .await
            .expect("record");
    }
    assert_eq!(store.verify_audit_chain().await.expect("verify"), None);
    let saved: AuditCheckpoint =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).expect("checkpoint"))
            .expect("checkpoint json");
    assert_eq!(
        (saved.seq, saved.keyed_from),
        (5, 1),
        "checkpointed on every write"
    );
    let rows = raw_rows(&store).await;
    assert_eq!(rows.len(), 5);

    // The triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).
    for q in [
        "UPDATE audit_log SET actor = 'x' WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 3",
        "DELETE FROM audit_log",
    ] {
        let e = exec(&store, q).await.expect_err("refused by the trigger");
        assert!(e.to_string().contains("append-only"), "{q}: {e}");
    }
    if store.backend() == "postgres" {
        let e = exec(&store, "TRUNCATE audit_log")
            .await
            .expect_err("refused");
        assert!(e.to_string().contains("append-only"), "{e}");
    }
    assert_eq!(raw_rows(&store).await.len(), 5);

    // A hostile administrator drops them.
    drop_audit_guards(&store).await;

    // An edited row.
    exec(
        &store,
        "UPDATE audit_log SET actor = 'user:someone-else' WHERE seq = 3",
    )
    .await
    .expect("edit");
    let b = broken(&store).await;
    assert_eq!(
        (b.seq, b.id.as_deref(), b.problem),
        (3, Some(rows[2].id.as_str()), AuditProblem::Edited)
    );
    put_rows(&store, &rows, 1).await;
    assert_eq!(store.verify_audit_chain().await.expect("verify"), None);

    // A row deleted from the middle.
    exec(&store, "DELETE FROM audit_log WHERE seq = 3")
        .await
        .expect("delete");
    let b = broken(&store).await;
    assert_eq!(
        (b.seq, b.id.as_deref(), b.problem),
        (3, None, AuditProblem::Missing)
    );
    assert!(
        b.detail.contains(&rows[3].id),
        "names the next row: {}",
        b.detail
    );
    put_rows(&store, &rows, 1).await;

    // The tail cut off, the head row moved back to match: the checkpoint
    // outside the database still counts 5.
    put_rows(&store, &rows[..3], 1).await;
    let b = broken(&store).await;
    assert_eq!((b.seq, b.problem), (4, AuditProblem::Truncated));
    put_rows(&store, &rows, 1).await;

    // The whole chain recomputed with the public (plain SHA-256) algorithm,
    // head included, and the switch point moved so the database claims
    // every row is an old plain one: the checkpoint's switch point wins.
    let plain = rehash(&rows, audit_hash);
    put_rows(&store, &plain, 1).await;
    let b = broken(&store).await;
    assert_eq!(
        (b.seq, b.id.as_deref(), b.problem),
        (1, Some(rows[0].id.as_str()), AuditProblem::Recomputed)
    );
    put_rows(&store, &plain, 6).await;
    let b = broken(&store).await;
    assert_eq!((b.seq, b.problem), (1, AuditProblem::Recomputed));

    // Recomputed with a key that is not ours.
    let other = rehash(&rows, |prev, f| audit_hash_keyed(&[7; 32], prev, f));
    put_rows(&store, &other, 1).await;
    let b = broken(&store).await;
    assert_eq!(
        (b.seq, b.id.as_deref(), b.problem),
        (1, Some(rows[0].id.as_str()), AuditProblem::KeyMismatch)
    );

    // Back to the truth; a verifier holding the wrong key is told so.
    put_rows(&store, &rows, 1).await;
    assert_eq!(store.verify_audit_chain().await.expect("verify"), None);
    let wrong = store
        .clone()
        .with_audit_seal(AuditSeal::new(vec![9; 32], Some(checkpoint.clone())));
    assert_eq!(broken(&wrong).await.problem, AuditProblem::KeyMismatch);
    let wrong = store
        .clone()
        .with_audit_seal(AuditSeal::new(vec![9; 32], None));
    assert_eq!(broken(&wrong).await.problem, AuditProblem::KeyMismatch);

    // The checkpoint file removed: said plainly.
    std::fs::remove_file(&checkpoint).expect("rm");
    assert_eq!(
        broken(&store).await.problem,
        AuditProblem::CheckpointMissing
    );
    store.audit_checkpoint().await.expect("anchor again");
    assert_eq!(store.verify_audit_chain().await.expect("verify"), None);

    // Reconnecting puts the triggers back.
    store.install_audit_guards().await.expect("guards");
    assert!(exec(&store, "DELETE FROM audit_log WHERE seq = 5")
        .await
        .is_err());
}

on_both!(
    sqlite_audit_against_hostile_dba,
    pg_audit_against_hostile_dba,
    audit_against_hostile_dba
);

/// The tail cut (head row fixed up) and the log grown again past the old
/// checkpoint: the checkpoint is not replaced, and the rewrite shows.
async fn audit_cut_and_grown_again(store: &Store, dir: &std::path::Path) {
    let checkpoint = dir.join(AUDIT_CHECKPOINT_FILE);
    let store = store
        .clone()
        .with_audit_seal(AuditSeal::new(vec![0x11; 32], Some(checkpoint.clone())));
    for i in 1..=5 {
        store
            .record_audit(
                ACTOR,
                "test.event",
                "thing",
                &format!("t{i}"),
                serde_json::json!({}),
            )
            .await
            .expect("record");
    }
    drop_audit_guards(&store).await;
    let rows = raw_rows(&store).await;
    put_rows(&store, &rows[..3], 1).await;
    for i in 6..=8 {
        store
            .record_audit(
                ACTOR,
                "test.event",
                "thing",
                &format!("t{i}"),
                serde_json::json!({}),
            )
            .await
            .expect("record");
    }
    let kept: AuditCheckpoint =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).expect("checkpoint"))
            .expect("checkpoint json");
    assert_eq!(
        (kept.seq, kept.hash.as_str()),
        (5, rows[4].hash.as_str()),
        "kept as evidence"
    );
    let b = broken(&store).await;
    assert_eq!((b.seq, b.problem), (5, AuditProblem::CheckpointMismatch));
}

on_both!(
    sqlite_audit_cut_and_grown_again,
    pg_audit_cut_and_grown_again,
    audit_cut_and_grown_again
);

/// A chain from before migration 0007 (plain SHA-256) stays valid and is
/// continued with keyed rows; moving the switch point in the database shows.
async fn audit_plain_rows_before_the_switch(store: &Store, dir: &std::path::Path) {
    drop_audit_guards(store).await;
    let old: Vec<RawAudit> = (1..=2)
        .map(|seq| RawAudit {
            id: format!("old-{seq}"),
            seq,
            at: 1_700_000_000 + seq,
            actor: "cli".into(),
            action: "meeting.create".into(),
            target_type: "meeting".into(),
            target_id: format!("m{seq}"),
            detail: "{}".into(),
            prev_hash: String::new(),
            hash: String::new(),
        })
        .collect();
    let old = rehash(&old, audit_hash);
    // What migration 0007 leaves: the old rows, keyed_from after them.
    put_rows(store, &old, 3).await;
    let checkpoint = dir.join(AUDIT_CHECKPOINT_FILE);
    let store = store
        .clone()
        .with_audit_seal(AuditSeal::new(vec![0x24; 32], Some(checkpoint.clone())));
    // The server anchors at start.
    store.audit_checkpoint().await.expect("anchor");
    assert_eq!(store.verify_audit_chain().await.expect("verify"), None);
    store
        .record_audit(ACTOR, "test.event", "thing", "a", serde_json::json!({}))
        .await
        .expect("record");
    store
        .record_audit(ACTOR, "test.event", "thing", "b", serde_json::json!({}))
        .await
        .expect("record");
    assert_eq!(store.verify_audit_chain().await.expect("verify"), None);
    let rows = raw_rows(&store).await;
    assert_eq!(
        rows[2].prev_hash, old[1].hash,
        "the keyed rows continue the chain"
    );

    // An old row edited and the old part recomputed: the first keyed row
    // no longer points at it.
    let mut edited = rows.clone();
    edited[0].actor = "user:x".into();
    let mut redone = rehash(&edited[..2], audit_hash);
    redone.extend_from_slice(&rows[2..]);
    put_rows(&store, &redone, 3).await;
    let b = broken(&store).await;
    assert_eq!((b.seq, b.problem), (3, AuditProblem::Edited));

    // The switch point moved in the database and the keyed rows recomputed
    // plainly: the checkpoint's switch point still says 3.
    let plain = rehash(&rows, audit_hash);
    put_rows(&store, &plain, 5).await;
    let b = broken(&store).await;
    assert_eq!((b.seq, b.problem), (3, AuditProblem::Recomputed));
    // Only the switch point moved: the checkpoint disagrees.
    put_rows(&store, &rows, 4).await;
    let b = broken(&store).await;
    assert_eq!((b.seq, b.problem), (3, AuditProblem::CheckpointMismatch));
}

on_both!(
    sqlite_audit_plain_rows_before_the_switch,
    pg_audit_plain_rows_before_the_switch,
    audit_plain_rows_before_the_switch
);

/// Filters and pages of the audit log.
async fn audit_pages(store: &Store, _dir: &std::path::Path) {
    for i in 0..7 {
        let (actor, action) = if i % 2 == 0 {
            ("user:a", "auth.login")
        } else {
            ("user:b", "document.download")
        };
        store
            .record_audit(
                actor,
                action,
                "thing",
                &format!("t{i}"),
                serde_json::json!({}),
            )
            .await
            .expect("record");
    }
    let all = AuditFilter::default();
    let page1 = store.audit_page(&all, 3).await.expect("page");
    let seqs: Vec<i64> = page1.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![7, 6, 5], "newest first");
    let page2 = store
        .audit_page(
            &AuditFilter {
                before_seq: Some(5),
                ..all.clone()
            },
            3,
        )
        .await
        .expect("page");
    assert_eq!(
        page2.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![4, 3, 2]
    );
    let a = AuditFilter {
        actor: Some("user:a".into()),
        ..all.clone()
    };
    let got = store.audit_page(&a, 100).await.expect("actor");
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|e| e.actor == "user:a"));
    let pre = AuditFilter {
        action: Some("document.*".into()),
        ..all.clone()
    };
    assert_eq!(store.audit_page(&pre, 100).await.expect("prefix").len(), 3);
    let lit = AuditFilter {
        action: Some("auth_*".into()),
        ..all.clone()
    };
    assert!(
        store
            .audit_page(&lit, 100)
            .await
            .expect("literal")
            .is_empty(),
        "_ is not a wildcard"
    );
    let t = AuditFilter {
        target_type: Some("thing".into()),
        target_id: Some("t3".into()),
        ..all.clone()
    };
    assert_eq!(store.audit_page(&t, 100).await.expect("target").len(), 1);
    let now = now_unix();
    let future = AuditFilter {
        from: Some(now + 100),
        ..all.clone()
    };
    assert!(store
        .audit_page(&future, 100)
        .await
        .expect("from")
        .is_empty());
    let past = AuditFilter {
        to: Some(now - 100),
        ..all.clone()
    };
    assert!(store.audit_page(&past, 100).await.expect("to").is_empty());
    let window = AuditFilter {
        from: Some(now - 100),
        to: Some(now + 100),
        ..all
    };
    assert_eq!(
        store.audit_page(&window, 100).await.expect("window").len(),
        7
    );
}

on_both!(sqlite_audit_pages, pg_audit_pages, audit_pages);

/// Staff sessions: token epochs (revoke all, disable, password change and
/// reset raise them), single-token revocation (logout), the last admin, and
/// an audit row for each change.
async fn staff_sessions(store: &Store, _data: &std::path::Path) {
    let new = |username: &str, role| NewUser {
        username: username.into(),
        display_name: username.into(),
        role,
        password: "mật-khẩu-ban-đầu".into(),
    };
    let admin = store
        .create_user("cli", new("admin", StaffRole::Admin))
        .await
        .expect("admin");
    let u = store
        .create_user("cli", new("thuky", StaffRole::Secretary))
        .await
        .expect("user");
    let (got, epoch) = store
        .authenticate_staff("thuky", "mật-khẩu-ban-đầu")
        .await
        .expect("auth")
        .expect("right password");
    assert_eq!((got.id.as_str(), epoch), (u.id.as_str(), 0));
    let ok = |e: i64, jti: &'static str| {
        let id = u.id.clone();
        async move { store.staff_token_user(&id, e, jti).await.expect("check") }
    };
    assert!(ok(0, "a").await.is_some());
    assert!(ok(1, "a").await.is_none(), "another epoch");
    assert!(store
        .staff_token_user("nobody", 0, "a")
        .await
        .expect("check")
        .is_none());

    // Logout: one token.
    store
        .revoke_staff_token("user:x", &u.id, "a", now_unix() + 60)
        .await
        .expect("logout");
    store
        .revoke_staff_token("user:x", &u.id, "a", now_unix() + 60)
        .await
        .expect("logout twice");
    assert!(ok(0, "a").await.is_none());
    assert!(ok(0, "b").await.is_some());

    // Revoke all, disable, enable, change, reset: each ends what came before.
    assert_eq!(
        store
            .revoke_user_sessions("user:x", &u.id)
            .await
            .expect("all"),
        1
    );
    assert!(ok(0, "b").await.is_none());
    assert!(ok(1, "b").await.is_some());
    store
        .set_user_active("user:x", &u.id, false)
        .await
        .expect("disable");
    assert!(ok(1, "b").await.is_none());
    assert!(ok(2, "b").await.is_none(), "disabled");
    store
        .set_user_active("user:x", &u.id, true)
        .await
        .expect("enable");
    assert!(ok(1, "b").await.is_none(), "not revived");
    assert!(ok(2, "b").await.is_some());
    assert_eq!(
        store
            .change_password("user:x", &u.id, "sai-mật-khẩu", "mật-khẩu-mới-1")
            .await
            .expect("change"),
        None,
        "a wrong old password changes nothing"
    );
    assert!(matches!(
        store
            .change_password("user:x", &u.id, "mật-khẩu-ban-đầu", "ngắn")
            .await,
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(
        store
            .change_password("user:x", &u.id, "mật-khẩu-ban-đầu", "mật-khẩu-mới-1")
            .await
            .expect("change"),
        Some(3)
    );
    assert!(store
        .authenticate("thuky", "mật-khẩu-ban-đầu")
        .await
        .expect("auth")
        .is_none());
    store
        .reset_password("user:admin", &u.id, "mật-khẩu-đặt-lại")
        .await
        .expect("reset");
    let (_, epoch) = store
        .authenticate_staff("thuky", "mật-khẩu-đặt-lại")
        .await
        .expect("auth")
        .expect("the reset password");
    assert_eq!(epoch, 4);
    assert!(matches!(
        store
            .reset_password("user:admin", "nobody", "mật-khẩu-dài")
            .await,
        Err(Error::NotFound { .. })
    ));

    // The last active admin stays.
    assert!(matches!(
        store.set_user_active("user:x", &admin.id, false).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.find_user("THUKY").await.expect("find").map(|x| x.id),
        Some(u.id.clone())
    );
    assert_eq!(
        store.find_user(&u.id).await.expect("find").map(|x| x.id),
        Some(u.id.clone())
    );

    let actions: Vec<String> = store
        .audit_of("user", &u.id)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions,
        [
            "user.create",
            "auth.logout",
            "auth.logout",
            "user.revoke_sessions",
            "user.active",
            "user.active",
            "user.password_change",
            "user.password_reset"
        ]
    );
}

on_both!(sqlite_staff_sessions, pg_staff_sessions, staff_sessions);

/// The first participant added as chair becomes the meeting's chair; a
/// second one does not replace a chair already named.
async fn first_chair_chairs(store: &Store, _dir: &std::path::Path) {
    let m = store
        .add_meeting(
            ACTOR,
            NewMeeting {
                title: "Giao ban".into(),
                kind: MeetingKind::Regular,
                starts_at: None,
                ends_at: None,
                location: String::new(),
                join_muted: None,
            },
        )
        .await
        .expect("meeting");
    let person = |name: &str, role| NewParticipant {
        name: name.into(),
        position: String::new(),
        role,
        voting: None,
        bridge_point_id: None,
    };
    store
        .add_participant(ACTOR, &m.id, person("Thành viên", ParticipantRole::Member))
        .await
        .expect("member");
    let chair = store
        .add_participant(ACTOR, &m.id, person("Chủ tịch", ParticipantRole::Chair))
        .await
        .expect("chair");
    let got = store
        .get_meeting(&m.id)
        .await
        .expect("get")
        .expect("meeting");
    assert_eq!(got.chair_participant_id.as_deref(), Some(chair.id.as_str()));
    store
        .add_participant(ACTOR, &m.id, person("Phó chủ tịch", ParticipantRole::Chair))
        .await
        .expect("second chair");
    let got = store
        .get_meeting(&m.id)
        .await
        .expect("get")
        .expect("meeting");
    assert_eq!(got.chair_participant_id.as_deref(), Some(chair.id.as_str()));
}

on_both!(
    sqlite_first_chair_chairs,
    pg_first_chair_chairs,
    first_chair_chairs
);

// Administrative units after 1 July 2025 (migration 0009).

/// A database just before migration 0009, with bridge points of the old
/// levels referenced by a participant and an invitation, is upgraded
/// without loss: the levels are kept, code and phone are empty, the new
/// levels are allowed, unknown ones still refused, references still hold.
async fn upgrade_to_0009<DB>(pool: &sqlx::Pool<DB>, url: &str)
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Connection: sqlx::migrate::Migrate,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
{
    use sqlx::migrate::Migrate;
    let mut conn = pool.acquire().await.expect("connection");
    conn.ensure_migrations_table().await.expect("table");
    for m in MIGRATOR.iter().filter(|m| m.version < 9) {
        conn.apply(m).await.expect("apply an older migration");
    }
    sqlx::raw_sql(
        "INSERT INTO meetings (id, title, kind, status, location, created_at, updated_at) \
         VALUES ('m1', 'Giao ban', 'regular', 'draft', '', 1, 1);\
         INSERT INTO bridge_points (id, name, level, contact, active, created_at, updated_at) \
         VALUES ('b1', 'UBND huyện Cư Jút', 'district', '0262', TRUE, 1, 2);\
         INSERT INTO bridge_points (id, name, level, contact, active, created_at, updated_at) \
         VALUES ('b2', 'UBND xã Đắk Wil', 'commune', '', FALSE, 1, 1);\
         INSERT INTO participants (id, meeting_id, name, position, role, voting, bridge_point_id, \
         created_at, updated_at) VALUES ('p1', 'm1', 'KTV', '', 'bridge_operator', FALSE, 'b1', 1, 1);\
         INSERT INTO invitations (id, meeting_id, name, role, participant_id, bridge_point_id, \
         created_at, expires_at, revoked_at) VALUES ('i1', 'm1', 'Huyện', 'bridge', NULL, 'b1', 1, 9, NULL);",
    )
    .execute(&mut *conn)
    .await
    .expect("old rows");
    drop(conn);
    pool.close().await;

    let store = Store::connect(url).await.expect("upgrade");
    let b1 = store
        .get_bridge_point("b1")
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(b1.level, BridgeLevel::District);
    assert_eq!(
        (
            b1.contact.as_str(),
            b1.code.as_str(),
            b1.operator_phone.as_str()
        ),
        ("0262", "", "")
    );
    assert_eq!((b1.created_at, b1.updated_at, b1.active), (1, 2, true));
    let b2 = store
        .get_bridge_point("b2")
        .await
        .expect("get")
        .expect("kept");
    assert_eq!((b2.level, b2.active), (BridgeLevel::Commune, false));
    let p = store
        .get_participant("p1")
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(p.bridge_point_id.as_deref(), Some("b1"));
    let i = store
        .get_invitation("i1")
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(i.bridge_point_id.as_deref(), Some("b1"));
    for (level, ok) in [
        ("ward", true),
        ("special_zone", true),
        ("other", true),
        ("county", false),
    ] {
        let r = with_pool!(store, p => sqlx::query(
            "INSERT INTO bridge_points (id, name, level, contact, active, created_at, updated_at) \
             VALUES ($1, 'x', $2, '', TRUE, 1, 1)",
        )
        .bind(format!("new-{level}"))
        .bind(level)
        .execute(p)
        .await
        .map(|_| ()));
        assert_eq!(r.is_ok(), ok, "level {level}: {r:?}");
    }
    // References to bridge points are still enforced.
    let r = with_pool!(store, p => sqlx::query(
        "INSERT INTO participants (id, meeting_id, name, position, role, voting, bridge_point_id, \
         created_at, updated_at) VALUES ('p9', 'm1', 'X', '', 'observer', FALSE, 'missing', 1, 1)",
    )
    .execute(p)
    .await
    .map(|_| ()));
    assert!(r.is_err(), "a participant of a missing bridge point");
    store.close().await;
}

#[tokio::test]
async fn sqlite_upgrade_to_0009() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let opts = SqliteConnectOptions::from_str(&url)
        .expect("url")
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .expect("open");
    upgrade_to_0009(&pool, &url).await;
}

#[tokio::test]
async fn pg_upgrade_to_0009() {
    let Some((store, schema)) = pg_store().await else {
        return;
    };
    store.close().await;
    // Start again from an empty schema.
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&schema.url)
        .await
        .expect("connect");
    sqlx::raw_sql(&format!(
        "DROP SCHEMA {s} CASCADE; CREATE SCHEMA {s}",
        s = schema.schema
    ))
    .execute(&admin)
    .await
    .expect("empty schema");
    admin.close().await;
    let url = schema.store_url();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("connect");
    upgrade_to_0009(&pool, &url).await;
    let store = Store::connect(&url).await.expect("reopen");
    schema.drop_now(store).await;
}

// Copying a meeting (the monthly giao ban).

/// A copy is a new draft with the title, kind, location, the agenda in
/// order (no documents), the participants and the chair mapped to its copy,
/// the time moved keeping the duration; no invitations, but the invited
/// levels; audited as `meeting.copy`. An unknown meeting is not found.
async fn copy_meeting(store: &Store, data: &std::path::Path) {
    let blobs = Blobs::new(data.join("documents"));
    let old = store
        .add_meeting(
            ACTOR,
            NewMeeting {
                title: "Giao ban tháng 11".into(),
                kind: MeetingKind::Thematic,
                starts_at: Some(1_000_000),
                ends_at: Some(1_000_000 + 5400),
                location: "Hội trường UBND tỉnh".into(),
                join_muted: Some(true),
            },
        )
        .await
        .expect("meeting");
    for (title, minutes) in [
        ("Khai mạc", Some(5)),
        ("Kinh tế", None),
        ("Kết luận", Some(10)),
    ] {
        store
            .add_agenda_item(
                ACTOR,
                &old.id,
                NewAgendaItem {
                    title: title.into(),
                    presenter: format!("Người trình bày {title}"),
                    duration_minutes: minutes,
                },
            )
            .await
            .expect("item");
    }
    let agenda = store.list_agenda(&old.id).await.expect("agenda");
    // Reordered: the copy follows the order, not the creation.
    let order: Vec<String> = [2, 0, 1].iter().map(|&i| agenda[i].id.clone()).collect();
    store
        .reorder_agenda(ACTOR, &old.id, &order)
        .await
        .expect("reorder");
    store
        .add_document(
            ACTOR,
            NewDocument {
                agenda_item_id: agenda[0].id.clone(),
                title: "Tờ trình".into(),
                access: DocumentAccess::Everyone,
                participant_ids: vec![],
            },
            pdf_upload("a.pdf"),
            upload(&blobs, b"%PDF-1.7 a").await,
            &blobs,
        )
        .await
        .expect("document");
    let commune = store
        .add_bridge_point(
            ACTOR,
            NewBridgePoint {
                name: "UBND xã Đắk Wil".into(),
                level: BridgeLevel::Commune,
                contact: String::new(),
                code: String::new(),
                operator_phone: String::new(),
                email: String::new(),
            },
        )
        .await
        .expect("unit");
    let person = |name: &str, role, bridge: Option<String>| NewParticipant {
        name: name.into(),
        position: format!("Chức vụ {name}"),
        role,
        voting: Some(false),
        bridge_point_id: bridge,
    };
    for (name, role, bridge) in [
        ("Thành viên", ParticipantRole::Member, None),
        ("Chủ tịch", ParticipantRole::Chair, None),
        (
            "Kỹ thuật viên",
            ParticipantRole::BridgeOperator,
            Some(commune.id.clone()),
        ),
    ] {
        store
            .add_participant(ACTOR, &old.id, person(name, role, bridge))
            .await
            .expect("participant");
    }
    let old_people = store.list_participants(&old.id).await.expect("people");
    store
        .invite_bridge_points(ACTOR, &old.id, &[BridgeLevel::Commune], 3600)
        .await
        .expect("group invitation");
    store
        .change_meeting_status(ACTOR, &old.id, MeetingStatus::Scheduled)
        .await
        .expect("scheduled");

    let copy = store
        .copy_meeting(ACTOR, &old.id, Some("Giao ban tháng 12"), Some(2_000_000))
        .await
        .expect("copy");
    assert_eq!(copy.invited_levels, vec![BridgeLevel::Commune]);
    let m = store
        .get_meeting(&copy.meeting.id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(m, copy.meeting);
    assert_ne!(m.id, old.id);
    assert_eq!(m.title, "Giao ban tháng 12");
    assert_eq!(m.kind, MeetingKind::Thematic);
    assert_eq!(m.status, MeetingStatus::Draft);
    assert_eq!(
        m.join_muted,
        Some(true),
        "the copy keeps the join-muted setting"
    );
    assert_eq!(m.location, "Hội trường UBND tỉnh");
    assert_eq!((m.starts_at, m.ends_at), (Some(2_000_000), Some(2_005_400)));

    let items = store.list_agenda(&m.id).await.expect("agenda");
    let got: Vec<(i64, &str, &str, Option<i64>)> = items
        .iter()
        .map(|i| {
            (
                i.position,
                i.title.as_str(),
                i.presenter.as_str(),
                i.duration_minutes,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "Kết luận", "Người trình bày Kết luận", Some(10)),
            (2, "Khai mạc", "Người trình bày Khai mạc", Some(5)),
            (3, "Kinh tế", "Người trình bày Kinh tế", None),
        ]
    );
    for i in &items {
        assert!(store.list_documents(&i.id).await.expect("docs").is_empty());
    }

    let people = store.list_participants(&m.id).await.expect("people");
    let shape = |p: &Participant| {
        (
            p.name.clone(),
            p.position.clone(),
            p.role,
            p.voting,
            p.bridge_point_id.clone(),
        )
    };
    assert_eq!(
        people.iter().map(shape).collect::<Vec<_>>(),
        old_people.iter().map(shape).collect::<Vec<_>>()
    );
    let chair = people
        .iter()
        .find(|p| p.name == "Chủ tịch")
        .expect("chair copied");
    assert_eq!(m.chair_participant_id.as_deref(), Some(chair.id.as_str()));
    assert!(people.iter().all(|p| p.meeting_id == m.id));
    assert!(store
        .list_invitations(&m.id)
        .await
        .expect("invs")
        .is_empty());

    let rows = store
        .audit_page(
            &AuditFilter {
                action: Some("meeting.copy".into()),
                target_id: Some(m.id.clone()),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .expect("audit");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].detail["source"], serde_json::json!(old.id));

    // Default title; no new start: no planned time.
    let again = store
        .copy_meeting(ACTOR, &old.id, None, None)
        .await
        .expect("copy again");
    assert_eq!(again.meeting.title, "Giao ban tháng 11");
    assert_eq!(
        (again.meeting.starts_at, again.meeting.ends_at),
        (None, None)
    );
    assert!(matches!(
        store.copy_meeting(ACTOR, "no-such", None, None).await,
        Err(Error::MeetingNotFound(_))
    ));
    assert!(matches!(
        store.copy_meeting(ACTOR, &old.id, Some("  "), None).await,
        Err(Error::InvalidInput(_))
    ));
}

on_both!(sqlite_copy_meeting, pg_copy_meeting, copy_meeting);
