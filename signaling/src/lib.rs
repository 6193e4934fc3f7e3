//! giaoban's server: configuration, CLI, HTTP and WebSocket endpoints,
//! authentication, and the wiring of meetings to the media plane (`sfu`) and
//! to the eCabinet (`cabinet`).
//!
//! # Layout
//! - [`config`]: the one typed [`Config`] (defaults, TOML file, `GIAOBAN_*`
//!   environment), validated once.
//! - [`mail`]: e-mail over SMTP when configured: invitations, reminders and
//!   notices written to the outbox, delivered with retries by [`mail::run`].
//! - [`auth`]: the HS256 signing key, invitation and staff tokens (JWT).
//! - [`http`]: [`app`], the router (health, `/ws`, the embedded web client
//!   from `web/`, compiled in by `build.rs`, and the API).
//! - [`http_serve`]: the HTTP accept loop (header read deadline).
//! - [`api`]: the eCabinet REST API under `/api` (staff and invitation
//!   tokens, roles checked per endpoint), described by `openapi.json`.
//! - [`links`]: where invitation links point and how long they live.
//! - [`short_codes`]: invitations' short codes ("mã tham dự"), typed on the
//!   join page instead of a link.
//! - [`session`]: one WebSocket session speaking `docs/protocol.md`.
//! - [`protocol`]: the typed protocol: the error codes shared with the REST
//!   API, the one parser of client messages, the server messages.
//! - [`admission`]: the one way into a live meeting (WebSocket and WHIP):
//!   placement, status, lock and removals, then the hub and the records.
//! - [`votes`]: live votes: open, one ballot each, close with the result
//!   under the meeting's rules (the cabinet stores them).
//! - [`placement`]: which node hosts a meeting ([`placement::Local`]: this one).
//! - [`hub`]: who is in which meeting now and the live meeting's control
//!   state (floor, speaking queue, blocks, lock, current item); broadcasts
//!   the live changes and orders the media plane's side of them.
//! - [`permissions`]: the one table of what each invitation role may do.
//! - [`linkstats`]: the bridge points' links as their clients report them
//!   (`link_report`), the history and the alerts of the operator's dashboard.
//! - [`metrics`]: Prometheus `/metrics` and the readiness check `/readyz`.
//! - [`tls`]: built-in HTTPS/WSS (rustls) from a PEM certificate and key.
//! - [`turn`]: short-lived TURN credentials for coturn (REST API scheme).
//! - [`whip`]: WHIP ingest (RFC 9725) for encoders and WHEP egress of a
//!   meeting's main view for players (`/whip/…`, `/whep/…`).
//! - [`server`]: [`serve`]: binds the sockets, starts the SFU, runs until a
//!   shutdown future resolves, then closes everything.
//! - [`cli`]: the command line of the `giaoban` binary (`serve`, `meeting`,
//!   `invite`, `user`, `audit`, `verify`); `main.rs` only calls it.
//! - [`seal`]: the minutes' seal: the province's certificate and key, or a
//!   self-signed one made on first use and kept in the data folder.

pub mod admission;
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
pub mod linkstats;
pub mod metrics;
pub mod permissions;
pub mod placement;
pub mod protocol;
pub mod server;
pub mod session;
pub mod short_codes;
pub mod tls;
pub mod turn;
pub mod votes;
pub mod whip;

use std::sync::Arc;

pub use config::Config;
pub use http::app;
pub use server::serve;

/// The minutes' seal (see the layout above).
pub mod seal;

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
    /// Which node hosts each meeting (every admission asks).
    pub placement: Arc<dyn placement::Placement>,
}

/// E-mail over SMTP, when configured (see the layout above).
pub mod mail;
