//! Built-in HTTPS/WSS: `server.tls_cert_file` + `server.tls_key_file` (PEM)
//! load into a rustls server config (ring provider), and [`TlsListener`]
//! hands axum TLS streams whose handshakes ran in their own tasks, so a slow
//! or silent client never holds up the others.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client must finish its TLS handshake within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for axum to take them.
const QUEUE: usize = 64;

/// Why the certificate or the key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("cannot read the private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the certificate and the private key do not go together: {0}")]
    Config(String),
}

/// Loads a PEM certificate chain (server certificate first, then the
/// intermediates) and a PEM private key (PKCS#8, PKCS#1 or SEC1) into a
/// server config speaking HTTP/1.1 (WebSocket upgrades need it).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert.display().to_string(),
        reason,
    };
    let key_err = |reason: String| TlsError::Key {
        path: key.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE block in the file".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| key_err(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener of TLS connections for `axum::serve`. A background task
/// accepts TCP connections and runs each handshake in its own task (with a
/// timeout); finished ones queue here. The task ends when this is dropped.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp` with `config`.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(accept_loop(tcp, acceptor, tx));
        Ok(TlsListener { rx, local })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            r = tcp.accept() => r,
            _ = tx.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait a little.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    // The listener is gone: the server stops.
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task ended (it only does when we are dropped).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cert_and_key_go_together() {
        let one = Config::load_with_env(None, env(&[("GIAOBAN_SERVER_TLS_CERT_FILE", "/c.pem")]));
        match one {
            Err(ConfigError::Invalid(m)) => {
                assert!(
                    m.contains("tls_cert_file") && m.contains("tls_key_file"),
                    "{m}"
                )
            }
            other => panic!("expected an invalid config, got {other:?}"),
        }
        let both = Config::load_with_env(
            None,
            env(&[
                ("GIAOBAN_SERVER_TLS_CERT_FILE", "/c.pem"),
                ("GIAOBAN_SERVER_TLS_KEY_FILE", "/k.pem"),
            ]),
        )
        .expect("both is valid");
        assert!(both.server.tls());
        let host = crate::config::first_lan_ip()
            .map_or_else(|| "localhost".to_owned(), |ip| ip.to_string());
        assert_eq!(both.public_base_url(), format!("https://{host}:8080"));
        let neither = Config::load_with_env(None, env(&[])).expect("defaults");
        assert!(!neither.server.tls());
    }

    #[test]
    fn metrics_keys() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("GIAOBAN_METRICS_ENABLED", "false"),
                ("GIAOBAN_METRICS_ALLOW", "10.0.0.0/8, 127.0.0.1"),
                ("GIAOBAN_METRICS_TOKEN", "t0k"),
            ]),
        )
        .expect("loads");
        assert!(!c.metrics.enabled);
        assert_eq!(c.metrics.allow, vec!["10.0.0.0/8", "127.0.0.1"]);
        assert_eq!(c.metrics.token.as_deref(), Some("t0k"));
        assert!(matches!(
            Config::load_with_env(None, env(&[("GIAOBAN_METRICS_ALLOW", "10.0.0.0/40")])),
            Err(ConfigError::Invalid(_))
        ));
        assert!(Config::from_toml("[metrics]\nallow = [\"10.1.0.0/16\"]\n").is_ok());
    }

    #[test]
    fn unreadable_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("server.crt");
        let key = dir.path().join("server.key");
        match server_config(&cert, &key) {
            Err(TlsError::Cert { path, .. }) => assert!(path.ends_with("server.crt")),
            other => panic!("expected a certificate error, got {:?}", other.err()),
        }
        std::fs::write(&cert, "no pem here\n").expect("write");
        assert!(matches!(
            server_config(&cert, &key),
            Err(TlsError::Cert { .. })
        ));
    }
}
