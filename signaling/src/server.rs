//! Running the server: open storage and key, bind HTTP, start the SFU, print
//! the ready line, serve until the shutdown future resolves, then close the
//! sessions (1001), the SFU and the database.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::{KeyError, Keys};
use crate::config::Config;
use crate::hub::Hub;
use crate::session::SessionLimits;
use crate::AppState;

/// Why the server could not start (or stopped badly).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot set up e-mail ([mail]): {0}")]
    Mail(#[from] crate::mail::MailError),
    #[error("cannot create the data folder {path}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] cabinet::Error),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the media plane")]
    Media(#[from] sfu::SfuError),
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("cannot load the trust anchors of documents.trust_dir: {0}")]
    Trust(String),
    #[error("cannot load the seal of the minutes: {0}")]
    Seal(String),
    #[error("cannot set up HTTPS (server.tls_cert_file, server.tls_key_file)")]
    Tls(#[from] crate::tls::TlsError),
    #[error("invalid metrics configuration: {0}")]
    Metrics(String),
    #[error(transparent)]
    Turn(#[from] crate::turn::TurnError),
}

/// Creates the data folder (owner-only on Unix) if needed.
pub fn ensure_data_dir(config: &Config) -> Result<(), ServerError> {
    let path = &config.server.data_dir;
    let err = |source| ServerError::DataDir {
        path: path.clone(),
        source,
    };
    if !path.exists() {
        std::fs::create_dir_all(path).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
    }
    Ok(())
}

/// Opens the database and the signing key as configured (the CLI uses this
/// too, so it works on the same data while a server runs).
pub async fn open(config: &Config) -> Result<(cabinet::Store, Keys), ServerError> {
    ensure_data_dir(config)?;
    let keys = Keys::load_or_create(
        config.auth.signing_key_file.as_deref(),
        &config.server.data_dir,
    )?;
    let seal = cabinet::AuditSeal::load_or_create(&config.server.data_dir)?;
    let store = cabinet::Store::connect(&config.database_url())
        .await?
        .with_audit_seal(seal);
    Ok((store, keys))
}

/// The content store of documents: `data_dir/documents`.
pub fn documents_store(config: &Config) -> cabinet::Blobs {
    cabinet::Blobs::new(config.server.data_dir.join("documents"))
}

/// The line printed on stdout once every socket is bound (tests parse it).
pub fn ready_line(http: SocketAddr, udp: SocketAddr, tcp: SocketAddr) -> String {
    serde_json::json!({
        "event": "ready",
        "http": http.to_string(),
        "media_udp": udp.to_string(),
        "media_tcp": tcp.to_string(),
    })
    .to_string()
}

/// Runs the server until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (store, keys) = open(&config).await?;
    let turn = crate::turn::TurnService::from_config(&config.turn)?.map(Arc::new);
    tracing::info!(db = store.backend(), data_dir = %config.server.data_dir.display(), "storage ready");
    // The audit chain's signed checkpoint outside the database: anchored
    // here when missing (first start, or after an upgrade), renewed after
    // every audited write and at shutdown.
    let checkpoint = config.server.data_dir.join(cabinet::AUDIT_CHECKPOINT_FILE);
    if !checkpoint.exists() {
        tracing::warn!(path = %checkpoint.display(), "no audit checkpoint yet: anchoring the audit chain at its current head");
    }
    if let Err(e) = store.audit_checkpoint().await {
        // Evidence of tampering is kept; the meetings go on.
        tracing::error!(error = %e, "cannot checkpoint the audit log: run `giaoban audit verify`");
    }
    // What a crash may have left in the content store: unfinished uploads
    // and contents whose database write never committed.
    let referenced = store.referenced_contents().await?;
    match documents_store(&config).clean_leftovers(&referenced).await {
        Ok((0, 0)) => {}
        Ok((temps, orphans)) => {
            tracing::info!(temps, orphans, "removed leftovers of interrupted uploads")
        }
        Err(e) => tracing::warn!(error = %e, "cannot clean the document store"),
    }
    // HTTPS: a bad certificate or key stops the start with a clear error.
    let tls = match (&config.server.tls_cert_file, &config.server.tls_key_file) {
        (Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
        _ => None,
    };

    let listener = tokio::net::TcpListener::bind(config.server.http_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.server.http_addr,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(ServerError::Http)?;

    let media_addr = SocketAddr::new(config.media.bind_ip, config.media.port);
    let sfu = sfu::Sfu::start(sfu::SfuConfig {
        udp_bind: media_addr,
        tcp_bind: media_addr,
        announce_ips: config.media.announce_ips.clone(),
        nat_1to1_ip: config.media.nat_1to1_ip,
        include_loopback: config.media.include_loopback,
        last_n: config.media.last_n,
        audio_loudest: config.media.audio_loudest,
        tcp_max_per_address: config.media.tcp_max_per_address,
        tcp_ice_timeout: std::time::Duration::from_secs(config.media.tcp_ice_timeout_secs),
        send_workers: config.media.send_workers,
        overload: config.media.overload(),
    })
    .await?;

    let trust = match &config.documents.trust_dir {
        Some(p) => cabinet::signature::TrustStore::from_path(p)
            .map_err(|e| ServerError::Trust(format!("{}: {e}", p.display())))?,
        None => cabinet::signature::TrustStore::empty(),
    };
    let fallback_url = {
        let host = match http_addr.ip() {
            ip if ip.is_unspecified() => crate::config::first_lan_ip()
                .map_or_else(|| "localhost".to_owned(), |ip| ip.to_string()),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{host}:{}", http_addr.port())
    };
    // E-mail: links made without a request (reminders) use public_url,
    // else the same address as the command line's.
    let mailer = crate::mail::Mailer::from_config(
        &config.mail,
        config.server.public_url.as_ref().map_or_else(
            || fallback_url.clone(),
            |u| u.trim_end_matches('/').to_owned(),
        ),
    )?;
    let api = crate::api::ApiState {
        mail: mailer.clone(),
        public_url: config
            .server
            .public_url
            .as_ref()
            .map(|u| u.trim_end_matches('/').to_owned()),
        fallback_url,
        tls: tls.is_some(),
        contact: config.server.contact.clone(),
        links: Arc::new(crate::linkstats::LinkStats::new(
            config.signaling.link_settings(),
        )),
        invite_ttl_hours: config.auth.invite_ttl_hours,
        invite_grace_hours: config.auth.invite_grace_hours,
        staff_token_ttl_seconds: i64::from(config.auth.staff_token_ttl_hours) * 3600,
        max_upload_bytes: config.documents.max_upload_bytes,
        trust: Arc::new(trust),
        blobs: documents_store(&config),
        login_limiter: crate::api::LoginLimiter::new(),
        code_limiter: crate::api::LoginLimiter::new(),
        hash_gate: crate::api::HashGate::new(
            config.auth.password_hash_concurrency,
            crate::api::GATE_WAIT,
        ),
        trusted_proxies: config
            .server
            .trusted_proxies
            .iter()
            .filter_map(|n| crate::metrics::IpNet::parse(n).ok())
            .collect(),
        quorum: config.rules.quorum(),
        minutes_header: config.minutes.header(),
        seal: crate::seal::SealSource::new(&config),
        // Checked by Config::validate.
        calendar: config.calendar.calendar().unwrap_or_default(),
        notice: config.notice.settings(&config.deadlines),
        documents_deadline: config.deadlines.documents(),
    };

    // A configured seal that cannot be loaded stops the start, not the
    // first sealing.
    api.seal
        .check_configured()
        .await
        .map_err(ServerError::Seal)?;

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let state = AppState {
        store: store.clone(),
        keys,
        hub: Arc::new(Hub::new()),
        sfu: Some(sfu.clone()),
        limits: SessionLimits {
            max_message_bytes: config.limits.ws_max_message_bytes,
            messages_per_second: config.limits.ws_messages_per_second,
            resume_grace: std::time::Duration::from_secs(config.signaling.resume_grace_secs),
            join_timeout: Duration::from_secs(config.signaling.join_timeout_secs),
            send_timeout: Duration::from_secs(config.signaling.send_timeout_secs),
            max_offer_media: config.signaling.max_offer_media,
            whep_viewers_per_invitation: config.signaling.whep_viewers_per_invitation,
            join_muted_from: config.signaling.join_muted_from,
            sockets: Arc::new(crate::session::SocketCaps::new(
                config.signaling.max_sockets_per_address,
                config.signaling.max_sockets,
            )),
            ..SessionLimits::default()
        },
        shutdown: shutdown_rx,
        sessions: Arc::new(()),
        api: Arc::new(api),
        turn,
        placement: Arc::new(crate::placement::Local),
    };
    state
        .hub
        .set_media(crate::hub::spawn_media_ops(sfu.clone()));
    // Sessions open when the server last stopped left no leave time: their
    // attendance intervals end now.
    match store.attendance_close_open(crate::hub::now_unix()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            intervals = n,
            "closed the attendance intervals left open by the last run"
        ),
        Err(e) => tracing::error!(error = %e, "cannot close the attendance intervals left open"),
    }
    let sessions = state.sessions.clone();
    let hub = state.hub.clone();
    let sweep = tokio::spawn(revocation_sweep(
        store.clone(),
        state.hub.clone(),
        state.shutdown.clone(),
    ));
    let opinions = tokio::spawn(opinion_sweep(store.clone(), state.shutdown.clone()));
    // The outbox: what an earlier run left pending goes out now.
    let mail = mailer.map(|m| {
        tracing::info!(host = ?m.config.host, "e-mail on: the outbox is delivered over SMTP");
        tokio::spawn(crate::mail::run(state.clone(), m, state.shutdown.clone()))
    });

    let line = ready_line(http_addr, sfu.udp_addr(), sfu.tcp_addr());
    {
        let mut out = std::io::stdout().lock();
        // If stdout is gone there is nobody to tell; keep serving.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    tracing::info!(http = %http_addr, https = tls.is_some(), media_udp = %sfu.udp_addr(), media_tcp = %sfu.tcp_addr(), "giaoban is ready");

    let metrics =
        crate::metrics::routes(state.clone(), &config.metrics).map_err(ServerError::Metrics)?;
    let headers = crate::http::SecurityHeaders::new(&config.server.frame_ancestors, tls.is_some());
    let app = crate::http::app(state)
        .merge(metrics)
        .layer(axum::middleware::map_response(move |r| {
            let headers = headers.clone();
            async move { headers.apply(r) }
        }))
        .layer(axum::middleware::from_fn(crate::metrics::count_responses));
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
        hub.kick_all();
    };
    let limits = crate::http_serve::HttpLimits {
        header_read_timeout: Duration::from_secs(config.server.header_read_timeout_secs),
    };
    match tls {
        Some(tls) => {
            let listener =
                crate::tls::TlsListener::new(listener, tls).map_err(ServerError::Http)?;
            crate::http_serve::run(listener, app, limits, graceful).await;
        }
        None => crate::http_serve::run(listener, app, limits, graceful).await,
    }

    // Upgraded WebSockets are not waited for by axum: wait for the sessions
    // (they close with 1001 and leave the hub and the SFU) for a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&sessions) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sweep.abort();
    opinions.abort();
    if let Some(m) = mail {
        m.abort();
    }
    crate::api::audit::drain(Duration::from_secs(3)).await;
    if let Err(e) = store.audit_checkpoint().await {
        tracing::error!(error = %e, "cannot write the audit checkpoint at shutdown");
    }
    sfu.shutdown().await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// How often live sessions are checked against revocations made outside this
/// process (`giaoban invite revoke` on the command line, another node).
const REVOCATION_SWEEP: Duration = Duration::from_secs(5);

/// Ends the sessions of invitations revoked, and of meetings ended, behind
/// the server's back. The REST API's revoke and status change end them at
/// once; the command line writes only to the database, and this notices it
/// within a few seconds.
async fn revocation_sweep(
    store: cabinet::Store,
    hub: Arc<Hub>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REVOCATION_SWEEP) => {}
            _ = shutdown.changed() => return,
        }
        for (meeting_id, invitation_id) in hub.live_invitations() {
            match store.get_invitation(&invitation_id).await {
                Ok(Some(inv)) if inv.is_revoked() => {
                    if hub.kick_invitation(&meeting_id, &invitation_id) {
                        tracing::info!(invitation = %invitation_id, meeting = %meeting_id, "revoked invitation's session ended");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("revocation check: {e}"),
            }
        }
        // Meetings ended or cancelled behind the server's back
        // (`giaoban meeting end`): their live sessions end too.
        for meeting_id in hub.live_meetings() {
            match store.get_meeting(&meeting_id).await {
                Ok(Some(m)) if !m.status.is_frozen() => {}
                Ok(_) => {
                    let n = hub.end_meeting(&meeting_id);
                    tracing::info!(meeting = %meeting_id, sessions = n, "meeting ended; its live sessions end");
                }
                Err(e) => tracing::warn!("meeting status check: {e}"),
            }
        }
        // Meetings started behind the server's back (`giaoban meeting
        // start`): the participants waiting for them enter.
        for meeting_id in hub.awaited_meetings() {
            match store.get_meeting(&meeting_id).await {
                Ok(Some(m)) if m.status == cabinet::MeetingStatus::InProgress => {
                    hub.meeting_started(&meeting_id);
                }
                Ok(Some(m)) if !m.status.is_frozen() => {}
                Ok(_) => {
                    hub.end_meeting(&meeting_id);
                }
                Err(e) => tracing::warn!("meeting status check: {e}"),
            }
        }
    }
}

/// Closes written opinion requests whose deadline has passed (their
/// outcome is stored then, by `system:deadline`), within a few seconds of
/// it. Answers after the deadline are refused by the store before this
/// runs.
async fn opinion_sweep(store: cabinet::Store, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        match store.close_due_opinion_requests(cabinet::now_unix()).await {
            Ok(closed) => {
                for r in closed {
                    tracing::info!(request = %r.id, "written opinion request closed at its deadline");
                }
            }
            Err(e) => tracing::warn!("opinion deadline sweep: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(REVOCATION_SWEEP) => {}
            _ = shutdown.changed() => return,
        }
    }
}
