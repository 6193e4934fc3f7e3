//! The same scenarios on SQLite (a temp file) and on PostgreSQL (a fresh
//! schema per test in the database named by `GIAOBAN_TEST_PG_URL`).

use super::*;

/// A store on a fresh SQLite file; the temp dir lives as long as the guard.
async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let store = Store::connect(&url).await.expect("open sqlite");
    (store, dir)
}

/// A store on a fresh PostgreSQL schema, or `None` when the PG tests are
/// explicitly skipped with `GIAOBAN_SKIP_PG=1`. Panics (fails the test) when
/// `GIAOBAN_TEST_PG_URL` is not set and skipping was not asked for.
async fn pg_store() -> Option<(Store, PgSchema)> {
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
struct PgSchema {
    url: String,
    schema: String,
}

impl PgSchema {
    async fn drop_now(self, store: Store) {
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
    assert_eq!(a.status, MeetingStatus::Scheduled);
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
