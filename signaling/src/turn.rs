//! TURN credentials for coturn's REST API scheme (coturn `use-auth-secret`
//! with `static-auth-secret`): the server and coturn share a secret; for each
//! participant the server makes
//!
//! - username = `<expiry as unix seconds>:<participant id>`
//! - credential = base64(HMAC-SHA1(secret, username))
//!
//! and coturn recomputes the credential from the username, refusing it once
//! the expiry has passed. Nothing is stored and coturn needs no database of
//! users. Credentials go to the client in `joined` (and again in
//! `ice_servers` every half lifetime, by [`RefreshTask`]); they are never
//! logged, nor is the secret.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokio::sync::mpsc;

use crate::config::{TurnConfig, TURN_SECRET_MIN_BYTES};
use crate::hub::HubMsg;
use crate::protocol::{IceFields, IceServer, ServerMsg};

/// Why the TURN setup cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("cannot read turn.secret_file {path}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("turn.secret_file {path} holds fewer than {TURN_SECRET_MIN_BYTES} bytes")]
    ShortSecret { path: PathBuf },
    #[error("turn.enabled is set without a secret")]
    NoSecret,
}

/// The TURN servers handed to clients and the secret their credentials are
/// made from.
pub struct TurnService {
    urls: Vec<String>,
    secret: Vec<u8>,
    ttl: Duration,
    force_relay: bool,
}

// By hand: the secret stays out of `{:?}`.
impl std::fmt::Debug for TurnService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnService")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .field("force_relay", &self.force_relay)
            .finish_non_exhaustive()
    }
}

/// The username of coturn's REST API scheme: `<expiry>:<who>`.
pub fn rest_username(expires_unix: u64, who: &str) -> String {
    format!("{expires_unix}:{who}")
}

/// The credential of coturn's REST API scheme: base64(HMAC-SHA1(secret, username)).
pub fn rest_credential(secret: &[u8], username: &str) -> String {
    // SHA-1 is what coturn's scheme uses; as an HMAC it is not broken.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = ring::hmac::sign(&key, username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

impl TurnService {
    /// From a validated config: None when TURN is off; reads `secret_file`.
    pub fn from_config(c: &TurnConfig) -> Result<Option<TurnService>, TurnError> {
        if !c.enabled {
            return Ok(None);
        }
        let secret = match (&c.secret, &c.secret_file) {
            (Some(s), _) => s.trim().as_bytes().to_vec(),
            (None, Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| TurnError::SecretFile {
                        path: path.clone(),
                        source,
                    })?;
                let s = text.trim();
                if s.len() < TURN_SECRET_MIN_BYTES {
                    return Err(TurnError::ShortSecret { path: path.clone() });
                }
                s.as_bytes().to_vec()
            }
            (None, None) => return Err(TurnError::NoSecret),
        };
        Ok(Some(TurnService {
            urls: c.urls.clone(),
            secret,
            ttl: Duration::from_secs(c.credential_ttl_seconds),
            force_relay: c.force_relay,
        }))
    }

    /// `relay` when clients must use only relayed candidates, else `all`.
    pub fn transport_policy(&self) -> &'static str {
        if self.force_relay {
            "relay"
        } else {
            "all"
        }
    }

    /// How often a live session gets fresh credentials: half their lifetime.
    pub fn refresh_interval(&self) -> Duration {
        self.ttl / 2
    }

    /// `RTCIceServer`s for participant `who` with credentials valid from
    /// `now` for the configured lifetime.
    pub fn ice_servers(&self, who: &str, now: SystemTime) -> Vec<IceServer> {
        let now_unix = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let username = rest_username((now_unix + self.ttl).as_secs(), who);
        let credential = rest_credential(&self.secret, &username);
        vec![IceServer {
            urls: self.urls.clone(),
            username,
            credential,
        }]
    }
}

/// The ICE fields of `joined` and of `ice_servers`: `ice_servers` (an
/// `RTCIceServer` list, empty without TURN) and `ice_transport_policy`.
pub fn ice_fields(turn: Option<&TurnService>, who: &str, now: SystemTime) -> IceFields {
    match turn {
        Some(t) => IceFields {
            ice_servers: t.ice_servers(who, now),
            ice_transport_policy: t.transport_policy(),
        },
        None => IceFields {
            ice_servers: Vec::new(),
            ice_transport_policy: "all",
        },
    }
}

/// Pushes fresh credentials (`{"type": "ice_servers", ...}`) to one session
/// every [`TurnService::refresh_interval`]; stops when the session's channel
/// is gone, and is aborted when dropped (with the session).
pub struct RefreshTask(tokio::task::JoinHandle<()>);

impl RefreshTask {
    /// Starts refreshing for participant `who`. Holds only a weak sender, so
    /// the session still sees its hub channel close when the hub drops it.
    pub fn spawn(
        turn: Arc<TurnService>,
        who: String,
        tx: mpsc::WeakUnboundedSender<HubMsg>,
    ) -> RefreshTask {
        RefreshTask(tokio::spawn(async move {
            let every = turn.refresh_interval();
            loop {
                tokio::time::sleep(every).await;
                let Some(tx) = tx.upgrade() else { return };
                let msg = ServerMsg::IceServers(ice_fields(Some(&turn), &who, SystemTime::now()));
                if tx.send(HubMsg::Event(msg.to_text(None).into())).is_err() {
                    return;
                }
            }
        }))
    }
}

impl Drop for RefreshTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(force_relay: bool) -> TurnService {
        TurnService::from_config(&TurnConfig {
            enabled: true,
            urls: vec!["turns:turn.example.vn:443?transport=tcp".into()],
            secret: Some("a shared secret of coturn".into()),
            secret_file: None,
            credential_ttl_seconds: 3600,
            force_relay,
        })
        .expect("valid")
        .expect("enabled")
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        // RFC 2202 test case 2: key "Jefe".
        let b64 = rest_credential(b"Jefe", "what do ya want for nothing?");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn credentials_follow_the_rest_scheme() {
        let t = service(false);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let servers = t.ice_servers("p-0123456789ab", now);
        let s = &servers[0];
        assert_eq!(s.urls[0], "turns:turn.example.vn:443?transport=tcp");
        assert_eq!(s.username, "1700003600:p-0123456789ab");
        assert_eq!(
            s.credential,
            rest_credential(b"a shared secret of coturn", "1700003600:p-0123456789ab")
        );
        assert_eq!(t.transport_policy(), "all");
        assert_eq!(service(true).transport_policy(), "relay");
        assert_eq!(t.refresh_interval(), Duration::from_secs(1800));
        let off = ServerMsg::IceServers(ice_fields(None, "p-1", now));
        assert_eq!(
            off.to_text(None),
            r#"{"ice_servers":[],"ice_transport_policy":"all","type":"ice_servers"}"#
        );
    }

    #[test]
    fn secret_file_is_read_and_checked_and_never_printed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("turn.secret");
        std::fs::write(&path, "  0123456789abcdef0123\n").expect("write");
        let c = TurnConfig {
            enabled: true,
            urls: vec!["turn:10.0.0.1:3478".into()],
            secret_file: Some(path.clone()),
            ..TurnConfig::default()
        };
        let t = TurnService::from_config(&c).expect("ok").expect("on");
        let s = t.ice_servers("x", UNIX_EPOCH);
        assert_eq!(s[0].username, "43200:x");
        assert_eq!(
            s[0].credential,
            rest_credential(b"0123456789abcdef0123", "43200:x")
        );
        assert!(!format!("{t:?}").contains("0123456789abcdef"));
        std::fs::write(&path, "short\n").expect("write");
        assert!(matches!(
            TurnService::from_config(&c),
            Err(TurnError::ShortSecret { .. })
        ));
        let missing = TurnConfig {
            secret_file: Some(dir.path().join("nope")),
            ..c
        };
        assert!(matches!(
            TurnService::from_config(&missing),
            Err(TurnError::SecretFile { .. })
        ));
        let off = TurnConfig::default();
        assert!(TurnService::from_config(&off).expect("ok").is_none());
    }
}
