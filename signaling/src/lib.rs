//! giaoban's server: configuration, CLI, HTTP and WebSocket endpoints,
//! authentication, and the wiring of meetings to the media plane (`sfu`) and
//! to the eCabinet (`cabinet`).
//!
//! # Layout
//! - [`config`]: the one typed [`Config`] (defaults, TOML file, `GIAOBAN_*`
//!   environment), validated once.
//! - [`auth`]: the HS256 signing key, invitation and staff tokens (JWT).
//! - [`http`]: [`app`], the router (health, `/ws`, the embedded web client
//!   from `web/`, compiled in by `build.rs`, and the API).
//! - [`http_serve`]: the HTTP accept loop (header read deadline).
//! - [`api`]: the eCabinet REST API under `/api` (staff and invitation
//!   tokens, roles checked per endpoint), described by `openapi.json`.
//! - [`links`]: where invitation links point and how long they live.
//! - [`session`]: one WebSocket session speaking `docs/protocol.md`.
//! - [`protocol`]: the typed protocol: the error codes shared with the REST
//!   API, the one parser of client messages, the server messages.
//! - [`hub`]: who is in which meeting now; broadcasts the live changes.
//! - [`permissions`]: the one table of what each invitation role may do.
//! - [`metrics`]: Prometheus `/metrics` and the readiness check `/readyz`.
//! - [`tls`]: built-in HTTPS/WSS (rustls) from a PEM certificate and key.
//! - [`turn`]: short-lived TURN credentials for coturn (REST API scheme).
//! - [`whip`]: WHIP ingest (RFC 9725) for encoders and WHEP egress of a
//!   meeting's main view for players (`/whip/…`, `/whep/…`).
//! - [`server`]: [`serve`]: binds the sockets, starts the SFU, runs until a
//!   shutdown future resolves, then closes everything.
//! - [`cli`]: the command line of the `giaoban` binary (`serve`, `meeting`,
//!   `invite`, `user`, `audit`, `verify`); `main.rs` only calls it.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod http_serve;
pub mod hub;
pub mod links;
pub mod metrics;
pub mod permissions;
pub mod protocol;
pub mod server;
pub mod session;
pub mod tls;
pub mod turn;
pub mod whip;

use std::sync::Arc;

pub use config::Config;
pub use http::app;
pub use server::serve;

/// What every request handler and session shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The eCabinet database (meetings, invitations).
    pub store: cabinet::Store,
    /// Signs and verifies invitation tokens.
    pub keys: auth::Keys,
    /// Who is in which meeting now.
    pub hub: Arc<hub::Hub>,
    /// The media plane; None when the server runs without one (unit tests).
    pub sfu: Option<sfu::Sfu>,
    /// Limits of each WebSocket session.
    pub limits: session::SessionLimits,
    /// Turns true when the server shuts down; sessions then close (1001).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Held by every live session, so shutdown can wait for them to finish.
    pub sessions: Arc<()>,
    /// What the REST API needs (links, limits, trust anchors, contents).
    pub api: Arc<api::ApiState>,
    /// TURN servers and their credentials for clients; None: TURN is off.
    pub turn: Option<Arc<turn::TurnService>>,
}
