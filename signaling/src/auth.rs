//! Tokens: the HS256 signing key, and the two kinds of JWT it signs:
//! invitation tokens with the claims of `docs/protocol.md` ("Tokens"), and
//! staff tokens of secretariat accounts ([`StaffClaims`], `aud`
//! [`STAFF_AUDIENCE`], `typ` `staff`). Each kind's decoder refuses the other:
//! invitation tokens carry no `aud` (and a token with one is refused as an
//! invitation), staff tokens must carry the staff audience and no meeting.
//!
//! Verification is in two steps: [`Keys::decode`] checks what the token says
//! by itself (signature, `iss`, `exp`, shape), then [`check_invitation`]
//! checks it against the database (meeting exists and is open, invitation
//! exists and is not revoked). Tokens are never logged.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use cabinet::{Invitation, Meeting, Role, Store};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The `iss` of our own tokens.
pub const ISSUER: &str = "giaoban";
/// File name of the generated key in the data folder.
pub const KEY_FILE_NAME: &str = "signing.key";
/// The `aud` of staff tokens (invitation tokens have none).
pub const STAFF_AUDIENCE: &str = "giaoban-staff";
/// The `typ` claim of staff tokens.
pub const STAFF_TYPE: &str = "staff";
/// Smallest accepted secret.
const MIN_KEY_BYTES: usize = 32;
/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECONDS: u64 = 2;

/// The claims of an invitation token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The invitation id.
    pub sub: String,
    /// The meeting id.
    pub mtg: String,
    /// Display name.
    pub name: String,
    /// The role, as text (parsed by [`Claims::role`]).
    pub role: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
}

/// Why a token is not accepted; each maps to a protocol error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the invitation token is not valid")]
    Invalid,
    #[error("the invitation has expired")]
    Expired,
    #[error("the invitation is for another meeting")]
    WrongMeeting,
    #[error("the invitation was revoked")]
    Revoked,
    #[error("the meeting does not exist")]
    MeetingNotFound,
    #[error("the meeting has ended")]
    MeetingClosed,
    #[error("could not check the invitation")]
    Internal,
}

impl TokenError {
    /// The stable protocol code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Invalid => "token_invalid",
            TokenError::Expired => "token_expired",
            TokenError::WrongMeeting => "token_wrong_meeting",
            TokenError::Revoked => "token_revoked",
            TokenError::MeetingNotFound => "meeting_not_found",
            TokenError::MeetingClosed => "meeting_closed",
            TokenError::Internal => "internal",
        }
    }
}

/// Errors loading or creating the signing key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key file {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signing key file {0} holds fewer than 32 bytes")]
    TooShort(PathBuf),
}

/// The HS256 keys (the same secret signs and verifies).
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// HMAC-SHA256 with the same secret, for values the server derives
    /// rather than stores (invitations' short codes, [`Keys::mac`]).
    mac: ring::hmac::Key,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Keys from a secret.
    pub fn from_secret(secret: &[u8]) -> Keys {
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            mac: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        }
    }

    /// HMAC-SHA256 of `data` under the server's secret, in the domain
    /// `context` (a fixed label, so one use's values never serve another).
    pub fn mac(&self, context: &str, data: &[u8]) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.mac);
        ctx.update(context.as_bytes());
        ctx.update(&[0]);
        ctx.update(data);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Loads the key from `configured` if given, else from `data_dir/signing.key`,
    /// creating the latter (0600, 48 random bytes, base64) if it does not exist.
    /// The secret is the file's content without surrounding whitespace.
    pub fn load_or_create(configured: Option<&Path>, data_dir: &Path) -> Result<Keys, KeyError> {
        let path = match configured {
            Some(p) => p.to_owned(),
            None => {
                let path = data_dir.join(KEY_FILE_NAME);
                create_key_file(&path)?;
                path
            }
        };
        let bytes = std::fs::read(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        let secret = trim_ascii(&bytes);
        if secret.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(path));
        }
        Ok(Keys::from_secret(secret))
    }

    /// Signs claims.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Checks signature, algorithm, `iss`, `exp` (a few seconds of leeway) and
    /// the claims' shape. Says nothing about the database.
    pub fn decode(&self, token: &str) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = LEEWAY_SECONDS;
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        // No audience is expected: a token that has one (a staff token) is
        // refused here.
        v.validate_aud = true;
        let data = jsonwebtoken::decode::<Claims>(token.trim(), &self.decoding, &v).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            },
        )?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.mtg.is_empty() || claims.role().is_none() {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

impl Keys {
    /// Signs staff claims.
    pub fn sign_staff(&self, claims: &StaffClaims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Checks a staff token by itself: signature, `iss`, `aud`, `typ`, `exp`.
    /// The account still has to be looked up (it may be inactive now).
    pub fn decode_staff(&self, token: &str) -> Result<StaffClaims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = LEEWAY_SECONDS;
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[STAFF_AUDIENCE]);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let data =
            jsonwebtoken::decode::<StaffClaims>(token.trim(), &self.decoding, &v).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        let c = data.claims;
        if c.typ != STAFF_TYPE || c.sub.is_empty() {
            return Err(TokenError::Invalid);
        }
        Ok(c)
    }
}

/// The claims of a staff token (a secretariat login).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`STAFF_AUDIENCE`].
    pub aud: String,
    /// Always [`STAFF_TYPE`].
    pub typ: String,
    /// The account id.
    pub sub: String,
    /// The username (informative; the account is looked up by `sub`).
    pub name: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// The token's id, for revoking this one token (logout). Tokens made
    /// before it existed have none; logging out with one of those ends all
    /// sessions of the account.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// The account's token epoch when the token was issued: raising the
    /// account's epoch (revoke all sessions, disable, password change or
    /// reset) ends every token with an older one.
    #[serde(default)]
    pub ep: i64,
}

impl StaffClaims {
    /// Claims for an account whose token epoch is `epoch`, valid
    /// `ttl_seconds` from now, with a fresh random id.
    pub fn for_user(user: &cabinet::User, epoch: i64, ttl_seconds: i64) -> StaffClaims {
        let now = cabinet::now_unix();
        StaffClaims {
            iss: ISSUER.to_owned(),
            aud: STAFF_AUDIENCE.to_owned(),
            typ: STAFF_TYPE.to_owned(),
            sub: user.id.clone(),
            name: user.username.clone(),
            iat: now,
            exp: now.saturating_add(ttl_seconds),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            ep: epoch,
        }
    }
}

/// The `aud` of written opinion tokens (one per recipient of a request).
pub const OPINION_AUDIENCE: &str = "giaoban-opinion";
/// The `typ` claim of written opinion tokens.
pub const OPINION_TYPE: &str = "opinion";
/// An opinion token lives this long after its request's deadline, so the
/// recipient can still read the result.
pub const OPINION_AFTER_DEADLINE_SECONDS: i64 = 30 * 24 * 3600;

/// The claims of a written opinion token: the answer link of one recipient
/// of one request (`cabinet::OpinionRequest`). Neither an invitation nor a
/// staff token decoder accepts it (its audience), nor does its decoder
/// accept theirs. Made again from the database whenever the secretariat
/// asks for the links (nothing secret is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpinionClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`OPINION_AUDIENCE`]. (The claims of another kind of token
    /// default, so that the validation says why it is refused: expired,
    /// or not an opinion token.)
    #[serde(default)]
    pub aud: String,
    /// Always [`OPINION_TYPE`].
    #[serde(default)]
    pub typ: String,
    /// The recipient id.
    pub sub: String,
    /// The request id.
    #[serde(default)]
    pub req: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds): the deadline plus
    /// [`OPINION_AFTER_DEADLINE_SECONDS`].
    pub exp: i64,
}

impl OpinionClaims {
    /// The claims of `recipient`'s link to `request`.
    pub fn for_recipient(
        request: &cabinet::OpinionRequest,
        recipient: &cabinet::OpinionRecipient,
    ) -> OpinionClaims {
        OpinionClaims {
            iss: ISSUER.to_owned(),
            aud: OPINION_AUDIENCE.to_owned(),
            typ: OPINION_TYPE.to_owned(),
            sub: recipient.id.clone(),
            req: request.id.clone(),
            iat: request.created_at,
            exp: request
                .deadline
                .saturating_add(OPINION_AFTER_DEADLINE_SECONDS),
        }
    }
}

impl Keys {
    /// Signs opinion claims.
    pub fn sign_opinion(
        &self,
        claims: &OpinionClaims,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Checks an opinion token by itself: signature, `iss`, `aud`, `typ`,
    /// `exp`. The recipient still has to be looked up.
    pub fn decode_opinion(&self, token: &str) -> Result<OpinionClaims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = LEEWAY_SECONDS;
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[OPINION_AUDIENCE]);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let data = jsonwebtoken::decode::<OpinionClaims>(token.trim(), &self.decoding, &v)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let c = data.claims;
        if c.typ != OPINION_TYPE || c.sub.is_empty() || c.req.is_empty() {
            return Err(TokenError::Invalid);
        }
        Ok(c)
    }
}

/// The account a decoded staff token stands for, after checking it in the
/// database: the account exists and is active, and the token was neither
/// revoked (logout) nor issued before the account's sessions were ended.
/// `Ok(None)`: the token no longer counts.
pub async fn check_staff(
    store: &Store,
    claims: &StaffClaims,
) -> Result<Option<cabinet::User>, cabinet::Error> {
    store
        .staff_token_user(&claims.sub, claims.ep, &claims.jti)
        .await
}

impl Claims {
    pub fn role(&self) -> Option<Role> {
        self.role.parse().ok()
    }
}

/// Claims for an invitation.
pub fn claims_for(inv: &Invitation) -> Claims {
    Claims {
        iss: ISSUER.to_owned(),
        sub: inv.id.clone(),
        mtg: inv.meeting_id.clone(),
        name: inv.name.clone(),
        role: inv.role.as_str().to_owned(),
        iat: inv.created_at,
        exp: inv.expires_at,
    }
}

/// The meeting and invitation a decoded token stands for, after checking them
/// in the database. `want_meeting`: the meeting the client asked for, if any.
pub async fn check_invitation(
    store: &Store,
    claims: &Claims,
    want_meeting: Option<&str>,
) -> Result<(Meeting, Invitation), TokenError> {
    if let Some(want) = want_meeting {
        if want != claims.mtg {
            return Err(TokenError::WrongMeeting);
        }
    }
    let internal = |e: cabinet::Error| {
        tracing::error!(error = %e, "database error while checking an invitation");
        TokenError::Internal
    };
    let meeting = store
        .get_meeting(&claims.mtg)
        .await
        .map_err(internal)?
        .ok_or(TokenError::MeetingNotFound)?;
    let inv = store
        .get_invitation(&claims.sub)
        .await
        .map_err(internal)?
        .ok_or(TokenError::Invalid)?;
    if inv.meeting_id != meeting.id {
        return Err(TokenError::Invalid);
    }
    if inv.is_revoked() {
        return Err(TokenError::Revoked);
    }
    if meeting.status.is_frozen() {
        return Err(TokenError::MeetingClosed);
    }
    Ok((meeting, inv))
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}

/// Creates the key file with a fresh secret unless it exists. Exclusive
/// creation, so a CLI command and the server starting at once agree on one key.
fn create_key_file(path: &Path) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            let mut secret = [0u8; 48];
            rand::rng().fill_bytes(&mut secret);
            let text = base64::engine::general_purpose::STANDARD.encode(secret);
            f.write_all(text.as_bytes()).map_err(io)?;
            f.write_all(b"\n").map_err(io)?;
            f.sync_all().map_err(io)?;
            tracing::info!(path = %path.display(), "created a new signing key");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another process may be writing it right now: wait until it has content.
            for _ in 0..50 {
                match std::fs::metadata(path) {
                    Ok(m) if m.len() > 0 => return Ok(()),
                    _ => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
            Ok(())
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64) -> Claims {
        let now = cabinet::now_unix();
        Claims {
            iss: ISSUER.into(),
            sub: "inv".into(),
            mtg: "m".into(),
            name: "n".into(),
            role: "bridge".into(),
            iat: now,
            exp: now + exp_in,
        }
    }

    #[test]
    fn sign_and_decode() {
        let k = Keys::from_secret(&[7u8; 32]);
        let t = k.sign(&claims(60)).expect("sign");
        assert_eq!(k.decode(&t).expect("valid"), claims(60));
    }

    #[test]
    fn rejects_other_key_expired_bad_iss_and_garbage() {
        let k = Keys::from_secret(&[7u8; 32]);
        let other = Keys::from_secret(&[8u8; 32]);
        let t = other.sign(&claims(60)).expect("sign");
        assert_eq!(k.decode(&t), Err(TokenError::Invalid));
        let t = k.sign(&claims(-30)).expect("sign");
        assert_eq!(k.decode(&t), Err(TokenError::Expired));
        let mut c = claims(60);
        c.iss = "someone".into();
        assert_eq!(
            k.decode(&k.sign(&c).expect("sign")),
            Err(TokenError::Invalid)
        );
        let mut c = claims(60);
        c.role = "king".into();
        assert_eq!(
            k.decode(&k.sign(&c).expect("sign")),
            Err(TokenError::Invalid)
        );
        assert_eq!(k.decode("not a token"), Err(TokenError::Invalid));
        assert_eq!(k.decode(""), Err(TokenError::Invalid));
    }

    #[test]
    fn staff_and_invitation_tokens_are_not_interchangeable() {
        let k = Keys::from_secret(&[7u8; 32]);
        let staff = StaffClaims {
            iss: ISSUER.into(),
            aud: STAFF_AUDIENCE.into(),
            typ: STAFF_TYPE.into(),
            sub: "u1".into(),
            name: "admin".into(),
            iat: cabinet::now_unix(),
            exp: cabinet::now_unix() + 60,
            jti: "t1".into(),
            ep: 3,
        };
        let st = k.sign_staff(&staff).expect("sign");
        assert_eq!(k.decode_staff(&st).expect("valid"), staff);
        assert_eq!(
            k.decode(&st),
            Err(TokenError::Invalid),
            "staff as invitation"
        );
        let it = k.sign(&claims(60)).expect("sign");
        assert_eq!(
            k.decode_staff(&it),
            Err(TokenError::Invalid),
            "invitation as staff"
        );
        // An invitation-shaped token with an audience is refused as an invitation.
        let mut with_aud = serde_json::to_value(claims(60)).expect("json");
        with_aud["aud"] = serde_json::json!(STAFF_AUDIENCE);
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &with_aud,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .expect("sign");
        assert_eq!(k.decode(&t), Err(TokenError::Invalid));
        let mut bad = staff.clone();
        bad.typ = "other".into();
        assert_eq!(
            k.decode_staff(&k.sign_staff(&bad).expect("sign")),
            Err(TokenError::Invalid)
        );
        let mut old = staff;
        old.exp = cabinet::now_unix() - 30;
        assert_eq!(
            k.decode_staff(&k.sign_staff(&old).expect("sign")),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn opinion_tokens_are_their_own_kind() {
        let keys = Keys::from_secret(&[7u8; 32]);
        let now = cabinet::now_unix();
        let oc = OpinionClaims {
            iss: ISSUER.into(),
            aud: OPINION_AUDIENCE.into(),
            typ: OPINION_TYPE.into(),
            sub: "r1".into(),
            req: "q1".into(),
            iat: now,
            exp: now + 60,
        };
        let t = keys.sign_opinion(&oc).expect("sign");
        assert_eq!(keys.decode_opinion(&t), Ok(oc.clone()));
        assert_eq!(keys.decode(&t), Err(TokenError::Invalid));
        assert_eq!(keys.decode_staff(&t), Err(TokenError::Invalid));
        let inv = keys.sign(&claims(60)).expect("sign");
        assert_eq!(keys.decode_opinion(&inv), Err(TokenError::Invalid));
        let wrong = keys
            .sign_opinion(&OpinionClaims {
                typ: "staff".into(),
                ..oc.clone()
            })
            .expect("sign");
        assert_eq!(keys.decode_opinion(&wrong), Err(TokenError::Invalid));
        let old = keys
            .sign_opinion(&OpinionClaims {
                exp: now - 60,
                ..oc
            })
            .expect("sign");
        assert_eq!(keys.decode_opinion(&old), Err(TokenError::Expired));
        // Another kind of token, expired: expired here too.
        let staff = keys
            .sign_staff(&StaffClaims {
                iss: ISSUER.into(),
                aud: STAFF_AUDIENCE.into(),
                typ: STAFF_TYPE.into(),
                sub: "u".into(),
                name: "n".into(),
                iat: now - 120,
                exp: now - 60,
                jti: String::new(),
                ep: 0,
            })
            .expect("sign");
        assert_eq!(keys.decode_opinion(&staff), Err(TokenError::Expired));
    }

    #[test]
    fn key_file_created_once_with_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k1 = Keys::load_or_create(None, dir.path()).expect("create");
        let k2 = Keys::load_or_create(None, dir.path()).expect("load");
        let t = k1.sign(&claims(60)).expect("sign");
        assert!(k2.decode(&t).is_ok(), "the same key is loaded again");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE_NAME))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let short = dir.path().join("short.key");
        std::fs::write(&short, "abc\n").expect("write");
        assert!(matches!(
            Keys::load_or_create(Some(&short), dir.path()),
            Err(KeyError::TooShort(_))
        ));
    }
}
