//! Secretariat accounts (passwords hashed with Argon2id); the audit log is
//! in `audit`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use serde_json::json;

use crate::{
    new_id, now_unix, parse_stored, required_text, Error, NewUser, Pool, Result, Store, User,
};

const USER_COLUMNS: &str = "id, username, display_name, role, active, created_at, updated_at";

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (hashing cost is bounded).
const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    display_name: String,
    role: String,
    active: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = Error;
    fn try_from(r: UserRow) -> Result<User> {
        Ok(User {
            role: parse_stored(&r.role, "staff role")?,
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            active: r.active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// An account with what logging in needs.
#[derive(sqlx::FromRow)]
struct AuthRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
    token_epoch: i64,
}

/// An account with what checking one of its tokens needs.
#[derive(sqlx::FromRow)]
struct SessionRow {
    #[sqlx(flatten)]
    user: UserRow,
    token_epoch: i64,
    revoked: i64,
}

/// A username as stored: trimmed, lowercase, 1 to 64 of `a-z 0-9 . _ -`.
pub fn normalize_username(username: &str) -> Result<String> {
    let u = username.trim().to_lowercase();
    let ok = !u.is_empty()
        && u.len() <= 64
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !ok {
        return Err(Error::InvalidInput(
            "a username is 1 to 64 characters among a-z, 0-9, '.', '_' and '-'".into(),
        ));
    }
    Ok(u)
}

/// Argon2's working memory (19 MiB with the default parameters), kept
/// between hashes: without it every hash allocates its own, and glibc keeps
/// the freed block in the arena of whichever thread hashed, so a burst of
/// logins spread over many blocking threads held up to one block per arena
/// (measured: 300 MB after 30 hashes one at a time on 2 cores, where 19 MiB
/// would do). The pool holds at most as many blocks as hashes ran at once
/// (the server bounds that); [`Store::release_password_memory`] drops them
/// (the server calls it once logins have been quiet for a moment).
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());
/// Hashes running now.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Stored hashes asking for more memory than this (KiB) are not checked.
const MAX_M_COST_KIB: u32 = 256 * 1024;

/// Runs `f` with `blocks` blocks of Argon2 memory from the pool.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let lock = || MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    RUNNING.fetch_add(1, Ordering::SeqCst);
    let mut mem = lock().pop().unwrap_or_default();
    if mem.len() < blocks {
        // Capacity past glibc's largest mmap threshold (32 MiB on 64-bit):
        // the block gets its own mapping, given back to the system as soon
        // as it is freed, never kept in an arena (a freed block at the top
        // of a thread arena's heap is out of malloc_trim's reach). Only the
        // `blocks` used are ever touched, so only they are resident.
        const MMAP_ALWAYS: usize = 33 * 1024 * 1024;
        let cap = blocks.max(MMAP_ALWAYS / std::mem::size_of::<Block>());
        mem = Vec::with_capacity(cap);
        mem.resize(blocks, Block::default());
    }
    let out = f(&mut mem[..blocks]);
    lock().push(mem);
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    out
}

/// The Argon2 output for `password` and raw `salt`, on pooled memory.
fn argon2_output(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
) -> std::result::Result<Output, argon2::password_hash::Error> {
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    with_memory(blocks, |mem| {
        Output::init_with(len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt, out, &mut *mem)?)
        })
    })
}

/// An Argon2id hash (PHC string, default parameters) of a new password.
fn hash_password(password: &str) -> Result<String> {
    let err = |e: argon2::password_hash::Error| Error::Password(e.to_string());
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let params = Params::default();
    let hash = argon2_output(
        Algorithm::Argon2id,
        Version::V0x13,
        params.clone(),
        password.as_bytes(),
        &salt,
    )
    .map_err(err)?;
    let salt = SaltString::encode_b64(&salt).map_err(err)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(err)?,
        salt: Some(salt.as_salt()),
        hash: Some(hash),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the stored PHC string `hash` (constant-time
/// comparison of the outputs).
fn verify_password(password: &str, hash: &str) -> bool {
    let check = || -> std::result::Result<bool, argon2::password_hash::Error> {
        let parsed = PasswordHash::new(hash)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v)?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed)?;
        if params.m_cost() > MAX_M_COST_KIB {
            return Ok(false);
        }
        let mut salt_buf = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_buf)?;
        let computed = argon2_output(algorithm, version, params, password.as_bytes(), salt)?;
        Ok(computed == expected)
    };
    check().unwrap_or(false)
}

/// A new password's rules: at least [`MIN_PASSWORD_CHARS`] characters, at
/// most [`MAX_PASSWORD_BYTES`] bytes.
fn check_new_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::InvalidInput(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::InvalidInput("the password is too long".into()));
    }
    Ok(())
}

/// Raises an account's token epoch inside `$tx`; evaluates to the new one
/// (`NotFound` when there is no such account).
macro_rules! bump_epoch {
    ($tx:ident, $id:expr) => {{
        let epoch: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET token_epoch = token_epoch + 1, updated_at = $1 WHERE id = $2 \
             RETURNING token_epoch",
        )
        .bind(now_unix())
        .bind($id)
        .fetch_optional(&mut *$tx)
        .await?;
        match epoch {
            Some(e) => e,
            None => {
                return Err(Error::NotFound {
                    what: "user",
                    id: String::from($id),
                })
            }
        }
    }};
}

/// Stores a new password hash inside `$tx`.
macro_rules! set_hash {
    ($tx:ident, $id:expr, $hash:expr) => {{
        let n = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind($hash)
            .bind($id)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound {
                what: "user",
                id: String::from($id),
            });
        }
    }};
}

/// Runs CPU-heavy hashing off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Password(e.to_string()))
}

impl Store {
    /// Frees the pooled Argon2 memory (19 MiB per password hash that ran at
    /// the same time as others) unless a hash is running; the next hash
    /// allocates again.
    pub fn release_password_memory() {
        let mut pool = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
        if RUNNING.load(Ordering::SeqCst) == 0 {
            pool.clear();
        }
    }

    /// Creates an account. The username is normalized
    /// ([`normalize_username`]) and must be free.
    pub async fn create_user(&self, actor: &str, new: NewUser) -> Result<User> {
        let username = normalize_username(&new.username)?;
        let display_name = required_text(&new.display_name, "display name", 200)?;
        check_new_password(&new.password)?;
        let password = new.password;
        let hash = blocking(move || hash_password(&password)).await??;
        let now = now_unix();
        let user = User {
            id: new_id(),
            username,
            display_name,
            role: new.role,
            active: true,
            created_at: now,
            updated_at: now,
        };
        in_tx!(self, tx => {
            let taken: Option<String> =
                sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
                    .bind(&user.username)
                    .fetch_optional(&mut *tx)
                    .await?;
            if taken.is_some() {
                return Err(Error::Conflict(format!(
                    "the username {} is already taken",
                    user.username
                )));
            }
            sqlx::query(
                "INSERT INTO users (id, username, display_name, role, password_hash, active, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&user.id)
            .bind(&user.username)
            .bind(&user.display_name)
            .bind(user.role.as_str())
            .bind(&hash)
            .bind(user.active)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "user.create", "user", &user.id, json!({
                "username": user.username, "display_name": user.display_name, "role": user.role,
            }));
        });
        Ok(user)
    }

    /// The account for `username` and `password`, if they match an active
    /// account. Takes about as long whether or not the username exists.
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Option<User>> {
        Ok(self
            .authenticate_staff(username, password)
            .await?
            .map(|(u, _)| u))
    }

    /// As [`Store::authenticate`], with the account's token epoch (which a
    /// staff token carries; see [`Store::staff_token_user`]).
    pub async fn authenticate_staff(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<(User, i64)>> {
        let Ok(username) = normalize_username(username) else {
            return Ok(None);
        };
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {USER_COLUMNS}, password_hash, token_epoch FROM users WHERE username = $1"
        );
        let row: Option<AuthRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(&username)
            .fetch_optional(p)
            .await)?;
        // Unknown user: verify against a throwaway hash anyway (same cost).
        let hash = row
            .as_ref()
            .map_or_else(|| DUMMY_HASH.to_owned(), |r| r.password_hash.clone());
        let password = password.to_owned();
        let ok = blocking(move || verify_password(&password, &hash)).await?;
        match row {
            Some(r) if ok && r.user.active => Ok(Some((User::try_from(r.user)?, r.token_epoch))),
            _ => Ok(None),
        }
    }

    /// The account with this id, if any.
    pub async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?;
        row.map(User::try_from).transpose()
    }

    /// Every account, by username.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username");
        let rows: Vec<UserRow> = with_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await)?;
        rows.into_iter().map(User::try_from).collect()
    }

    /// Activates or deactivates an account (a deactivated one cannot log in
    /// and its tokens stop working at once; deactivating also raises its
    /// token epoch, so activating it again does not revive old tokens). The
    /// last active admin cannot be deactivated (`Conflict`).
    pub async fn set_user_active(&self, actor: &str, id: &str, active: bool) -> Result<User> {
        in_tx!(self, tx => {
            let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(role) = role else {
                return Err(Error::NotFound { what: "user", id: id.to_owned() });
            };
            if !active && role == "admin" {
                let others: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND active = $1 AND id <> $2",
                )
                .bind(true)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                if others == 0 {
                    return Err(Error::Conflict(
                        "the last active admin account cannot be disabled".into(),
                    ));
                }
            }
            let bump = i64::from(!active);
            sqlx::query(
                "UPDATE users SET active = $1, token_epoch = token_epoch + $2, updated_at = $3 \
                 WHERE id = $4",
            )
            .bind(active)
            .bind(bump)
            .bind(now_unix())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "user.active", "user", id, json!({"active": active}));
        });
        self.get_user(id).await?.ok_or_else(|| Error::NotFound {
            what: "user",
            id: id.to_owned(),
        })
    }

    /// The account by id, or else by username.
    pub async fn find_user(&self, id_or_username: &str) -> Result<Option<User>> {
        if let Some(u) = self.get_user(id_or_username).await? {
            return Ok(Some(u));
        }
        let Ok(username) = normalize_username(id_or_username) else {
            return Ok(None);
        };
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
        let row: Option<UserRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(&username)
            .fetch_optional(p)
            .await)?;
        row.map(User::try_from).transpose()
    }

    /// The account a staff token stands for, if the token is still good:
    /// the account exists and is active, the token's `epoch` is the
    /// account's current token epoch, and the token (`jti`) was not revoked.
    pub async fn staff_token_user(
        &self,
        user_id: &str,
        epoch: i64,
        jti: &str,
    ) -> Result<Option<User>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, token_epoch, \
             (SELECT COUNT(*) FROM revoked_staff_tokens WHERE jti = $2) AS revoked \
             FROM users WHERE id = $1"
        );
        let row: Option<SessionRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(user_id)
            .bind(jti)
            .fetch_optional(p)
            .await)?;
        match row {
            Some(r) if r.user.active && r.token_epoch == epoch && r.revoked == 0 => {
                Ok(Some(User::try_from(r.user)?))
            }
            _ => Ok(None),
        }
    }

    /// Revokes one staff token (logout) until it would have expired.
    pub async fn revoke_staff_token(
        &self,
        actor: &str,
        user_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<()> {
        in_tx!(self, tx => {
            sqlx::query("DELETE FROM revoked_staff_tokens WHERE expires_at < $1")
                .bind(now_unix())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO revoked_staff_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(user_id)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "auth.logout", "user", user_id, json!({}));
        });
        Ok(())
    }

    /// Ends every staff token of the account issued so far (raises its
    /// token epoch). Returns the new epoch.
    pub async fn revoke_user_sessions(&self, actor: &str, id: &str) -> Result<i64> {
        Ok(in_tx!(self, tx => {
            let epoch = bump_epoch!(tx, id);
            audit!(tx, actor, "user.revoke_sessions", "user", id, json!({}));
            epoch
        }))
    }

    /// The account changes its own password: `Ok(None)` when `old` is wrong;
    /// else every token issued so far stops and the new token epoch is
    /// returned.
    pub async fn change_password(
        &self,
        actor: &str,
        id: &str,
        old: &str,
        new: &str,
    ) -> Result<Option<i64>> {
        check_new_password(new)?;
        if old.len() > MAX_PASSWORD_BYTES {
            return Ok(None);
        }
        let current: Option<String> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(p)
            .await)?;
        let Some(current) = current else {
            return Err(Error::NotFound {
                what: "user",
                id: id.to_owned(),
            });
        };
        let (old, new) = (old.to_owned(), new.to_owned());
        let hash = blocking(move || {
            if verify_password(&old, &current) {
                hash_password(&new).map(Some)
            } else {
                Ok(None)
            }
        })
        .await??;
        let Some(hash) = hash else {
            return Ok(None);
        };
        Ok(Some(in_tx!(self, tx => {
            set_hash!(tx, id, &hash);
            let epoch = bump_epoch!(tx, id);
            audit!(tx, actor, "user.password_change", "user", id, json!({}));
            epoch
        })))
    }

    /// An admin sets a new password for an account; every token of the
    /// account issued so far stops.
    pub async fn reset_password(&self, actor: &str, id: &str, new: &str) -> Result<User> {
        check_new_password(new)?;
        let new = new.to_owned();
        let hash = blocking(move || hash_password(&new)).await??;
        in_tx!(self, tx => {
            set_hash!(tx, id, &hash);
            bump_epoch!(tx, id);
            audit!(tx, actor, "user.password_reset", "user", id, json!({}));
        });
        self.get_user(id).await?.ok_or_else(|| Error::NotFound {
            what: "user",
            id: id.to_owned(),
        })
    }
}

/// An Argon2id hash of a random password nobody knows, for timing parity.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Vd4Gf9cJ1oX2b1mW3r7r8YkqH2m3o0Xy9Kx3v0mRZzE";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(normalize_username(" Thu.Ky_01 ").expect("ok"), "thu.ky_01");
        assert!(normalize_username("").is_err());
        assert!(normalize_username("a b").is_err());
        assert!(normalize_username("người").is_err());
        assert!(normalize_username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn hashes_verify() {
        let h = hash_password("mật khẩu dài").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("mật khẩu dài", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(
            PasswordHash::new(DUMMY_HASH).is_ok(),
            "the dummy hash parses"
        );
        // Hashes made by the argon2 crate's own API (as stored before the
        // memory pool) verify, and the other way round.
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let theirs = Argon2::default()
            .hash_password("cũ-mật-khẩu".as_bytes(), &salt)
            .expect("hash")
            .to_string();
        assert!(verify_password("cũ-mật-khẩu", &theirs));
        assert!(!verify_password("cu-mat-khau", &theirs));
        let parsed = PasswordHash::new(&h).expect("parse");
        assert!(Argon2::default()
            .verify_password("mật khẩu dài".as_bytes(), &parsed)
            .is_ok());
        assert!(h.contains("$m=19456,t=2,p=1$"), "{h}");
        // Memory-hungry stored parameters are not honoured.
        let huge = "$argon2id$v=19$m=4000000,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$Vd4Gf9cJ1oX2b1mW3r7r8YkqH2m3o0Xy9Kx3v0mRZzE";
        assert!(!verify_password("x", huge));
    }
}
