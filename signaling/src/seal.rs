//! The seal of the minutes ([`cabinet::signature::seal`]): the province's
//! certificate and key from `[minutes] seal_cert` / `seal_key`, or else a
//! self-signed seal that the server makes on first use and keeps in the data
//! folder (`minutes-seal/seal-cert.pem` and `seal-key.pem`, the key readable
//! by the server's user only), so it stays the same across restarts.
//!
//! The certificate is what PDF readers must trust to accept the seal: `GET
//! /api/minutes/seal-certificate` and `giaoban seal-cert` print it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cabinet::signature::Seal;

use crate::config::Config;

/// Years a generated seal certificate is valid.
const GENERATED_YEARS: u32 = 10;
/// The folder of the generated seal, under the data folder.
pub const SEAL_DIR: &str = "minutes-seal";
const CERT_FILE: &str = "seal-cert.pem";
const KEY_FILE: &str = "seal-key.pem";

/// Where the seal comes from, and the seal once loaded.
pub struct SealSource {
    /// `(seal_cert, seal_key)` when configured.
    configured: Option<(PathBuf, PathBuf)>,
    /// The generated seal's folder.
    dir: PathBuf,
    /// The subject of a generated seal: common name and organisation.
    common_name: String,
    organization: String,
    cell: tokio::sync::OnceCell<Arc<Seal>>,
}

impl std::fmt::Debug for SealSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealSource")
            .field("configured", &self.configured)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SealSource {
    /// The seal of `config` (nothing is read yet).
    pub fn new(config: &Config) -> SealSource {
        let issuer = config
            .minutes
            .issuer
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let issuer = if issuer.is_empty() {
            "giaoban".to_owned()
        } else {
            issuer
        };
        SealSource {
            configured: config
                .minutes
                .seal_cert
                .clone()
                .zip(config.minutes.seal_key.clone()),
            dir: config.server.data_dir.join(SEAL_DIR),
            common_name: format!("{issuer} (con dấu số giaoban)"),
            organization: issuer,
            cell: tokio::sync::OnceCell::new(),
        }
    }

    /// Whether the seal is the province's (configured), not generated.
    pub fn is_configured(&self) -> bool {
        self.configured.is_some()
    }

    /// The seal: loaded (or made) on the first call, then kept.
    pub async fn get(&self) -> Result<Arc<Seal>, String> {
        self.cell
            .get_or_try_init(|| async {
                let configured = self.configured.clone();
                let dir = self.dir.clone();
                let (cn, org) = (self.common_name.clone(), self.organization.clone());
                tokio::task::spawn_blocking(move || load_or_create(configured, &dir, &cn, &org))
                    .await
                    .map_err(|e| format!("loading the seal failed: {e}"))?
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// Loads the configured seal now (at start: a wrong file stops the
    /// server rather than the first sealing). Does nothing when the seal
    /// is generated.
    pub async fn check_configured(&self) -> Result<(), String> {
        if self.configured.is_some() {
            self.get().await?;
        }
        Ok(())
    }

    /// As [`SealSource::get`], without a runtime (the CLI).
    pub fn load_blocking(&self) -> Result<Seal, String> {
        load_or_create(
            self.configured.clone(),
            &self.dir,
            &self.common_name,
            &self.organization,
        )
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

fn load_or_create(
    configured: Option<(PathBuf, PathBuf)>,
    dir: &Path,
    common_name: &str,
    organization: &str,
) -> Result<Seal, String> {
    if let Some((cert, key)) = configured {
        let seal = Seal::from_pem(
            &read(&cert, "seal certificate (minutes.seal_cert)")?,
            &read(&key, "seal key (minutes.seal_key)")?,
        )
        .map_err(|e| format!("{} / {}: {e}", cert.display(), key.display()))?;
        return Ok(seal);
    }
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if key_path.exists() {
        return load_generated(&cert_path, &key_path);
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the seal folder {}: {e}", dir.display()))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (seal, cert_pem, key_pem) = Seal::generate(common_name, organization, now, GENERATED_YEARS)
        .map_err(|e| e.to_string())?;
    // The key first, created only if absent: of two processes making a seal
    // at once, one wins and the other loads the winner's.
    let tmp = dir.join(format!(".{KEY_FILE}.{}", std::process::id()));
    write_private(&tmp, key_pem.as_bytes())?;
    let linked = std::fs::hard_link(&tmp, &key_path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Let the other writer finish its certificate.
            std::thread::sleep(std::time::Duration::from_millis(200));
            return load_generated(&cert_path, &key_path);
        }
        Err(e) => return Err(format!("cannot write {}: {e}", key_path.display())),
    }
    let tmp = dir.join(format!(".{CERT_FILE}.{}", std::process::id()));
    std::fs::write(&tmp, cert_pem.as_bytes())
        .and_then(|()| std::fs::rename(&tmp, &cert_path))
        .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    tracing::info!(
        subject = %seal.subject(),
        folder = %dir.display(),
        "made a self-signed seal for the minutes (set [minutes] seal_cert and seal_key to use the province's)"
    );
    Ok(seal)
}

fn load_generated(cert_path: &Path, key_path: &Path) -> Result<Seal, String> {
    let cert = read(cert_path, "seal certificate").map_err(|e| {
        format!("{e} (the folder holds a key without its certificate: remove the folder to make a new seal)")
    })?;
    Seal::from_pem(&cert, &read(key_path, "seal key")?)
        .map_err(|e| format!("{}: {e}", cert_path.display()))
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts.open(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn generated_seal_is_kept_across_restarts() {
        let dir = tempfile::tempdir().expect("dir");
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_owned();
        config.minutes.issuer = "ỦY BAN NHÂN DÂN\nTỈNH HƯNG YÊN".into();
        let a = SealSource::new(&config).get().await.expect("made");
        assert!(
            a.common_name()
                .starts_with("ỦY BAN NHÂN DÂN TỈNH HƯNG YÊN (con dấu số giaoban)"),
            "{}",
            a.common_name()
        );
        let b = SealSource::new(&config).get().await.expect("loaded");
        assert_eq!(a.certificate_der(), b.certificate_der());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(SEAL_DIR).join(KEY_FILE))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key is private: {mode:o}");
        }
        // A configured seal that is not there stops at once.
        config.minutes.seal_cert = Some(dir.path().join("none.pem"));
        config.minutes.seal_key = Some(dir.path().join("none.key"));
        let e = SealSource::new(&config)
            .check_configured()
            .await
            .expect_err("missing");
        assert!(e.contains("minutes.seal_cert"), "{e}");
    }

    #[test]
    fn seal_cert_and_key_go_together() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        let one = Config::load_with_env(None, env(&[("GIAOBAN_MINUTES_SEAL_CERT", "/etc/s.pem")]));
        assert!(one.is_err());
        let both = Config::load_with_env(
            None,
            env(&[
                ("GIAOBAN_MINUTES_SEAL_CERT", "/etc/s.pem"),
                ("GIAOBAN_MINUTES_SEAL_KEY", "/etc/s.key"),
            ]),
        )
        .expect("both");
        assert_eq!(
            both.minutes.seal_key.as_deref(),
            Some(Path::new("/etc/s.key"))
        );
        assert!(SealSource::new(&both).is_configured());
    }
}
