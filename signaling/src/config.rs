//! The one typed configuration: defaults, then a TOML file (unknown keys
//! rejected), then `GIAOBAN_<SECTION>_<KEY>` environment variables; validated
//! once by [`Config::load`]. `deploy/giaoban.toml` documents every key.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Configuration errors: a file that cannot be read or parsed, a bad
/// environment variable, or values that do not fit together.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid environment variable {name}: {reason}")]
    Env { name: String, reason: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Every setting of the server, one section per area.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    /// E-mail over SMTP (`crate::mail`); no host: no e-mail.
    pub mail: crate::mail::MailConfig,
    pub database: DatabaseConfig,
    pub media: MediaConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub documents: DocumentsConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub turn: TurnConfig,
    pub signaling: SignalingConfig,
    pub rules: RulesConfig,
    pub minutes: MinutesConfig,
    pub calendar: CalendarConfig,
    pub deadlines: DeadlinesConfig,
    pub notice: NoticeConfig,
}

/// The head of the minutes (`GET /api/meetings/{id}/minutes`): who issues
/// them and where, as Decree 30/2020/NĐ-CP lays out an administrative
/// document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinutesConfig {
    /// The issuing body, upper case by convention; `\n` splits its lines
    /// ("ỦY BAN NHÂN DÂN\nTỈNH HƯNG YÊN").
    pub issuer: String,
    /// The body above the issuer (for a department: "UBND TỈNH ..."); may
    /// be empty.
    pub parent: String,
    /// The place name of the date line ("Hưng Yên"); empty: dots.
    pub place: String,
    /// The symbol after the number ("BB-UBND"); the number is left blank
    /// for the clerical office.
    pub symbol: String,
    /// The seal's certificate (PEM: the seal certificate first, then its CA
    /// chain), e.g. one issued by the province's CA. Set together with
    /// `seal_key`; unset: a self-signed seal kept in the data folder
    /// (`minutes-seal/`), made on first use.
    pub seal_cert: Option<PathBuf>,
    /// The seal's private key (PEM, unencrypted; ECDSA P-256 or RSA).
    pub seal_key: Option<PathBuf>,
}

impl Default for MinutesConfig {
    fn default() -> Self {
        let h = cabinet::minutes::MinutesHeader::default();
        MinutesConfig {
            issuer: h.issuer,
            parent: h.parent,
            place: h.place,
            symbol: h.symbol,
            seal_cert: None,
            seal_key: None,
        }
    }
}

impl MinutesConfig {
    /// The head the minutes carry.
    pub fn header(&self) -> cabinet::minutes::MinutesHeader {
        cabinet::minutes::MinutesHeader {
            issuer: self.issuer.clone(),
            parent: self.parent.clone(),
            place: self.place.clone(),
            symbol: self.symbol.clone(),
        }
    }
}

/// The working-day calendar that deadlines count in (`cabinet::workdays`):
/// the weekend, the holidays, and extra working days ("ngày làm bù").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    /// Days off every week, by English name ("saturday", "sun").
    pub weekend: Vec<String>,
    /// Days off, `YYYY-MM-DD` (Tết, 30/4, 1/5, 2/9, 1/1 ...).
    pub holidays: Vec<String>,
    /// Days worked although on the weekend (or listed as holidays),
    /// `YYYY-MM-DD`.
    pub extra_working_days: Vec<String>,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            weekend: vec!["saturday".into(), "sunday".into()],
            holidays: Vec::new(),
            extra_working_days: Vec::new(),
        }
    }
}

impl CalendarConfig {
    /// The calendar (the values are checked by [`Config::validate`]).
    pub fn calendar(&self) -> Result<cabinet::workdays::Calendar, ConfigError> {
        cabinet::workdays::Calendar::from_settings(
            &self.weekend,
            &self.holidays,
            &self.extra_working_days,
        )
        .map_err(|e| ConfigError::Invalid(format!("calendar: {e}")))
    }
}

/// A comma-separated list of an environment variable, blanks dropped.
fn comma_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Deadlines in working days (`notes/meeting-rules.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadlinesConfig {
    /// The notice of conclusions is due this many working days after the
    /// meeting.
    pub notice_working_days: u32,
    /// The documents reach the members this many working days before a
    /// regular meeting ...
    pub documents_regular_working_days: u32,
    /// ... and this many before a thematic or extraordinary one.
    pub documents_thematic_working_days: u32,
}

impl Default for DeadlinesConfig {
    fn default() -> Self {
        let d = cabinet::notice::DocumentsDeadlineRule::default();
        DeadlinesConfig {
            notice_working_days: cabinet::notice::NoticeSettings::default().due_working_days,
            documents_regular_working_days: d.regular,
            documents_thematic_working_days: d.thematic,
        }
    }
}

impl DeadlinesConfig {
    /// The documents' deadline rule.
    pub fn documents(&self) -> cabinet::notice::DocumentsDeadlineRule {
        cabinet::notice::DocumentsDeadlineRule {
            regular: self.documents_regular_working_days,
            thematic: self.documents_thematic_working_days,
        }
    }
}

/// The notice of conclusions (`GET /api/meetings/{id}/notice`): its symbol
/// and signature block (the issuer and place are `[minutes]`').
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoticeConfig {
    /// The symbol after the number ("TB-UBND").
    pub symbol: String,
    /// The signer's lines; `\n` splits them ("TL. CHỦ TỊCH\nCHÁNH VĂN
    /// PHÒNG").
    pub signer_title: String,
    /// The signer's name; empty: left blank.
    pub signer_name: String,
    /// "Nơi nhận": one entry a line.
    pub recipients: Vec<String>,
}

impl Default for NoticeConfig {
    fn default() -> Self {
        let n = cabinet::notice::NoticeSettings::default();
        NoticeConfig {
            symbol: n.symbol,
            signer_title: n.signer_title.join("\n"),
            signer_name: n.signer_name,
            recipients: n.recipients,
        }
    }
}

impl NoticeConfig {
    /// The notice's settings, with the due days of `[deadlines]`.
    pub fn settings(&self, deadlines: &DeadlinesConfig) -> cabinet::notice::NoticeSettings {
        cabinet::notice::NoticeSettings {
            symbol: self.symbol.clone(),
            signer_title: self
                .signer_title
                .lines()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect(),
            signer_name: self.signer_name.clone(),
            recipients: self.recipients.clone(),
            due_working_days: deadlines.notice_working_days,
        }
    }
}

/// The committee's rules for decisions (`notes/meeting-rules.md`): the
/// quorum is `quorum_numerator / quorum_denominator` of the committee's
/// members present (two thirds by default), rounded up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    pub quorum_numerator: u32,
    pub quorum_denominator: u32,
    /// How many members the committee has; unset: the meeting's invitations
    /// with role chair or member (revoked ones excluded).
    pub committee_members: Option<u32>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            quorum_numerator: 2,
            quorum_denominator: 3,
            committee_members: None,
        }
    }
}

impl RulesConfig {
    /// The quorum rule the attendance report applies.
    pub fn quorum(&self) -> cabinet::QuorumRule {
        cabinet::QuorumRule {
            numerator: self.quorum_numerator,
            denominator: self.quorum_denominator,
            committee_members: self.committee_members,
        }
    }
}

/// The WebSocket sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalingConfig {
    /// How long a participant whose WebSocket dropped (without `leave`) stays
    /// in the meeting, its media flowing, waiting for the client to `resume`;
    /// 0 removes it at once.
    pub resume_grace_secs: u64,
    /// A WebSocket must `join` (or `resume`) within this many seconds of
    /// opening, or it is closed (`join_timeout`); pings do not extend it.
    pub join_timeout_secs: u64,
    /// A write to a client that does not finish within this many seconds
    /// drops its socket (the client stopped reading).
    pub send_timeout_secs: u64,
    /// Open WebSockets from one client address at most.
    pub max_sockets_per_address: usize,
    /// Open WebSockets in total at most.
    pub max_sockets: usize,
    /// Media sections (m-lines) in one publish offer (WebSocket or WHIP) at most.
    pub max_offer_media: usize,
    /// WHEP players of one invitation at once at most.
    pub whep_viewers_per_invitation: usize,
    /// A meeting with at least this many invitations makes its bridge
    /// points and delegates enter with their audio blocked by the chair
    /// (they raise a hand to speak); 0: never.
    pub join_muted_from: usize,
    /// The operator's dashboard (clients' `link_report`s): packet loss at or
    /// above this percentage degrades a point (an alert).
    pub link_loss_alert_percent: f64,
    /// Round-trip time at or above this degrades a point, milliseconds.
    pub link_rtt_alert_ms: u32,
    /// Jitter at or above this degrades a point, milliseconds.
    pub link_jitter_alert_ms: u32,
    /// An unmuted microphone below `link_silence_level` (0 to 1) this many
    /// seconds is silent (an alert).
    pub link_silence_alert_secs: u32,
    pub link_silence_level: f64,
    /// A camera sending no frames this many seconds is frozen (an alert).
    pub link_frozen_alert_secs: u32,
    /// Received videos freezing in every report this many seconds is
    /// frozen too (a `frozen_in` alert).
    pub link_frozen_in_alert_secs: u32,
    /// A client reporting media sent while the media server receives none
    /// this many seconds is `no_media` (an alert).
    pub link_no_media_alert_secs: u32,
    /// A connected point without a report this many seconds is stale.
    pub link_stale_secs: u32,
    /// History kept per point, seconds.
    pub link_history_secs: u32,
    /// The pre-meeting check is ready only under this round-trip time
    /// (ms) and with at least this bandwidth down and up (kbit/s).
    pub check_max_rtt_ms: u32,
    pub check_min_down_kbps: u32,
    pub check_min_up_kbps: u32,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        SignalingConfig {
            resume_grace_secs: 30,
            join_timeout_secs: 10,
            send_timeout_secs: 10,
            max_sockets_per_address: 50,
            max_sockets: 2000,
            max_offer_media: 16,
            whep_viewers_per_invitation: 1,
            join_muted_from: 20,
            link_loss_alert_percent: 5.0,
            link_rtt_alert_ms: 400,
            link_jitter_alert_ms: 60,
            link_silence_alert_secs: 30,
            link_silence_level: 0.01,
            link_frozen_alert_secs: 10,
            link_frozen_in_alert_secs: 10,
            link_no_media_alert_secs: 10,
            link_stale_secs: 20,
            link_history_secs: 300,
            check_max_rtt_ms: 400,
            check_min_down_kbps: 1000,
            check_min_up_kbps: 500,
        }
    }
}

impl SignalingConfig {
    /// The dashboard's thresholds (`signaling.link_*`, `check_*`).
    fn validate_links(&self) -> Result<(), ConfigError> {
        let sg = self;
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if !(sg.link_loss_alert_percent > 0.0 && sg.link_loss_alert_percent <= 100.0) {
            return invalid("signaling.link_loss_alert_percent must be over 0 and at most 100");
        }
        if !(sg.link_silence_level >= 0.0 && sg.link_silence_level < 1.0) {
            return invalid("signaling.link_silence_level must be 0 to under 1");
        }
        let ms = [
            ("link_rtt_alert_ms", sg.link_rtt_alert_ms),
            ("link_jitter_alert_ms", sg.link_jitter_alert_ms),
            ("check_max_rtt_ms", sg.check_max_rtt_ms),
        ];
        for (name, v) in ms {
            if !(1..=60_000).contains(&v) {
                return Err(ConfigError::Invalid(format!(
                    "signaling.{name} must be 1 to 60000"
                )));
            }
        }
        let secs = [
            ("link_silence_alert_secs", sg.link_silence_alert_secs),
            ("link_frozen_alert_secs", sg.link_frozen_alert_secs),
            ("link_frozen_in_alert_secs", sg.link_frozen_in_alert_secs),
            ("link_no_media_alert_secs", sg.link_no_media_alert_secs),
            ("link_stale_secs", sg.link_stale_secs),
            ("link_history_secs", sg.link_history_secs),
        ];
        for (name, v) in secs {
            if !(1..=3600).contains(&v) {
                return Err(ConfigError::Invalid(format!(
                    "signaling.{name} must be 1 to 3600"
                )));
            }
        }
        if sg.check_min_down_kbps > 1_000_000 || sg.check_min_up_kbps > 1_000_000 {
            return invalid(
                "signaling.check_min_down_kbps and check_min_up_kbps must be at most 1000000",
            );
        }
        Ok(())
    }

    /// The dashboard's settings.
    pub fn link_settings(&self) -> crate::linkstats::LinkSettings {
        let sg = self;
        crate::linkstats::LinkSettings {
            loss_alert_percent: sg.link_loss_alert_percent,
            rtt_alert_ms: sg.link_rtt_alert_ms,
            jitter_alert_ms: sg.link_jitter_alert_ms,
            silence_alert_secs: i64::from(sg.link_silence_alert_secs),
            silence_level: sg.link_silence_level,
            frozen_alert_secs: i64::from(sg.link_frozen_alert_secs),
            frozen_in_alert_secs: i64::from(sg.link_frozen_in_alert_secs),
            no_media_alert_secs: i64::from(sg.link_no_media_alert_secs),
            stale_secs: i64::from(sg.link_stale_secs),
            history_secs: i64::from(sg.link_history_secs),
            check_max_rtt_ms: sg.check_max_rtt_ms,
            check_min_down_kbps: sg.check_min_down_kbps,
            check_min_up_kbps: sg.check_min_up_kbps,
        }
    }
}

/// HTTP side and where the server keeps its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP + WebSocket listener.
    pub http_addr: SocketAddr,
    /// The URL people reach the server at (behind a proxy: the proxy's URL);
    /// used to build invitation links. None: `http://<http_addr>`.
    pub public_url: Option<String>,
    /// Folder for the SQLite database, the signing key and documents.
    pub data_dir: PathBuf,
    /// PEM certificate chain (server certificate first): with
    /// `tls_key_file`, the server speaks HTTPS/WSS itself. Both or neither.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Reverse proxies (addresses or networks) whose `X-Forwarded-For`
    /// names the client (login throttling, audit); empty: the header is
    /// ignored and the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// A client must send a request's headers within this many seconds, or
    /// its connection is closed (slow-header floods).
    pub header_read_timeout_secs: u64,
    /// Origins allowed to show the pages in a frame (CSP `frame-ancestors`);
    /// empty: none (`'none'` and `X-Frame-Options: DENY`).
    pub frame_ancestors: Vec<String>,
    /// Who bridge points call about the meeting or a link that does not
    /// work ("Văn phòng UBND tỉnh, 0262 3 123 456, vanphong@…"): shown on the
    /// join page and its error pages. Empty: none.
    pub contact: String,
}

impl ServerConfig {
    /// Whether the server serves HTTPS itself.
    pub fn tls(&self) -> bool {
        self.tls_cert_file.is_some() && self.tls_key_file.is_some()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080),
            public_url: None,
            data_dir: PathBuf::from("./giaoban-data"),
            tls_cert_file: None,
            tls_key_file: None,
            trusted_proxies: Vec::new(),
            header_read_timeout_secs: 10,
            frame_ancestors: Vec::new(),
            contact: String::new(),
        }
    }
}

/// Storage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`; empty: `giaoban.db` in the data folder.
    pub url: String,
}

/// The media plane (SFU) sockets and announced addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// The one UDP port and the one TCP port (ICE-TCP) of every peer; 0 picks a
    /// free port (the same number for both).
    pub port: u16,
    /// Address the media sockets bind to.
    pub bind_ip: IpAddr,
    /// Addresses announced in ICE candidates; empty: found automatically.
    pub announce_ips: Vec<IpAddr>,
    /// Public address of a 1:1 NAT in front of the server, also announced.
    pub nat_1to1_ip: Option<IpAddr>,
    /// Also announce 127.0.0.1 (tests, single-machine demos).
    pub include_loopback: bool,
    /// Video of at most this many publishers per participant, the most
    /// recent speakers first; 0: everybody's.
    pub last_n: usize,
    /// Audio of at most this many publishers per participant, the loudest;
    /// 0: every open microphone.
    pub audio_loudest: usize,
    /// Open media TCP connections from one IP address at most; more are
    /// closed at once.
    pub tcp_max_per_address: usize,
    /// A media TCP connection must pass ICE (the server answered a valid
    /// check on it) within this many seconds, or it is closed.
    pub tcp_ice_timeout_secs: u64,
    /// Threads that write forwarded packets (SRTP protect and send), the
    /// media engine's own included; 0: the machine's cores, at most 8.
    /// 1 by default: on a 2-core machine a second one forwarded no more and
    /// cost more CPU per packet (docs/performance.md, "Send workers").
    pub send_workers: usize,
    /// The media engine counts as short of CPU in a second in which its
    /// loop was busy at least this percent of the time (or dropped
    /// datagrams): it sheds thumbnails step by step.
    pub shed_busy_percent: u8,
    /// Seconds under this percent (without drops) count as calm.
    pub shed_calm_percent: u8,
    /// Least seconds between two steps of shedding.
    pub shed_step_secs: u64,
    /// Calm this many seconds before one step back.
    pub shed_calm_secs: u64,
}

impl MediaConfig {
    /// The media engine's shedding thresholds, as the SFU takes them.
    pub fn overload(&self) -> sfu::OverloadConfig {
        sfu::OverloadConfig {
            busy_high: f64::from(self.shed_busy_percent) / 100.0,
            busy_low: f64::from(self.shed_calm_percent) / 100.0,
            step_every: std::time::Duration::from_secs(self.shed_step_secs),
            calm_for: std::time::Duration::from_secs(self.shed_calm_secs),
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            port: 7882,
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            announce_ips: Vec::new(),
            nat_1to1_ip: None,
            include_loopback: false,
            last_n: 12,
            audio_loudest: 3,
            tcp_max_per_address: 16,
            tcp_ice_timeout_secs: 10,
            send_workers: 1,
            shed_busy_percent: 85,
            shed_calm_percent: 55,
            shed_step_secs: 2,
            shed_calm_secs: 5,
        }
    }
}

/// Invitations and tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Default lifetime of an invitation, in hours.
    pub invite_ttl_hours: u32,
    /// File holding the HS256 secret (at least 32 bytes); None: a key created
    /// on first start in the data folder (`signing.key`).
    pub signing_key_file: Option<PathBuf>,
    /// Lifetime of a secretariat login (staff token), in hours.
    pub staff_token_ttl_hours: u32,
    /// Password hashes (Argon2id, 19 MiB each) computed at once; more
    /// logins wait up to 2 s, then get 503. 0: half the CPU cores (at least 1).
    pub password_hash_concurrency: usize,
    /// An invitation made without an explicit expiry is valid until the
    /// meeting's planned end (or start) plus this many hours; a meeting
    /// without a planned time uses `invite_ttl_hours` from now.
    pub invite_grace_hours: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            invite_ttl_hours: 72,
            signing_key_file: None,
            staff_token_ttl_hours: 12,
            password_hash_concurrency: 0,
            invite_grace_hours: 12,
        }
    }
}

/// Documents of the eCabinet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DocumentsConfig {
    /// Largest file accepted by an upload, in bytes; a larger one is refused
    /// (413 `upload_too_large`) and nothing is stored.
    pub max_upload_bytes: u64,
    /// Trust anchors for PDF signatures: a folder of CA certificates (PEM or
    /// DER) or one PEM file. None: no anchor, so good signatures show as
    /// untrusted. In a folder, `.crl` files are CRLs that signer chains are
    /// checked against (revocation).
    pub trust_dir: Option<PathBuf>,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        DocumentsConfig {
            max_upload_bytes: 50 * 1024 * 1024,
            trust_dir: None,
        }
    }
}

/// Protection against misbehaving clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest WebSocket message accepted, in bytes.
    pub ws_max_message_bytes: usize,
    /// Messages per second one WebSocket may send (a burst of as many is allowed).
    pub ws_messages_per_second: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            ws_max_message_bytes: 262_144,
            ws_messages_per_second: 50,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Logging (to stderr).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `giaoban=debug,sfu=trace`...
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Prometheus metrics at `/metrics` on the HTTP port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` at all.
    pub enabled: bool,
    /// Addresses or networks (`10.0.0.5`, `10.20.0.0/16`) allowed to scrape;
    /// default: loopback only; empty: anyone who reaches the port.
    pub allow: Vec<String>,
    /// If set, scrapes must send `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            allow: vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()],
            token: None,
        }
    }
}

/// A TURN relay (coturn) for clients that cannot reach the media ports:
/// the server hands each participant short-lived credentials of coturn's
/// REST API scheme (`use-auth-secret`), computed from a secret it shares with
/// coturn (see `crate::turn`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// Hand TURN servers to clients at all.
    pub enabled: bool,
    /// The TURN URLs given to browsers (`turns:turn.example.vn:443?transport=tcp`,
    /// `turn:turn.example.vn:3478?transport=udp`), as in `RTCIceServer.urls`.
    pub urls: Vec<String>,
    /// coturn's `static-auth-secret`, inline. Prefer `secret_file`.
    pub secret: Option<String>,
    /// A file holding coturn's `static-auth-secret` (surrounding whitespace
    /// ignored), read at start.
    pub secret_file: Option<PathBuf>,
    /// How long handed-out credentials let a client open new allocations, in
    /// seconds; a session gets fresh ones every half of it.
    pub credential_ttl_seconds: u64,
    /// Tell clients to use only relayed candidates (`iceTransportPolicy:
    /// "relay"`): for sites where only TCP 443 to the TURN server works.
    pub force_relay: bool,
}

/// Shortest `turn.credential_ttl_seconds` accepted.
pub const TURN_TTL_MIN_SECONDS: u64 = 60;
/// Longest `turn.credential_ttl_seconds` accepted (7 days).
pub const TURN_TTL_MAX_SECONDS: u64 = 7 * 24 * 3600;
/// Shortest inline or file secret accepted, in bytes.
pub const TURN_SECRET_MIN_BYTES: usize = 16;

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            enabled: false,
            urls: Vec::new(),
            secret: None,
            secret_file: None,
            credential_ttl_seconds: 12 * 3600,
            force_relay: false,
        }
    }
}

// By hand, so the secret never reaches a log through `{:?}`.
impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("enabled", &self.enabled)
            .field("urls", &self.urls)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_file", &self.secret_file)
            .field("credential_ttl_seconds", &self.credential_ttl_seconds)
            .field("force_relay", &self.force_relay)
            .finish()
    }
}

/// Checks one TURN URL of `turn.urls` (RFC 7065 `turn:`/`turns:` URIs).
fn check_turn_url(url: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("turn.urls: {url:?} {why}"));
    let rest = if let Some(r) = url.strip_prefix("turns:") {
        r
    } else if let Some(r) = url.strip_prefix("turn:") {
        r
    } else {
        return bad("must start with turn: or turns:");
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains spaces");
    }
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    if hostport.is_empty() || hostport.starts_with(':') || hostport.contains(['/', '@']) {
        return bad("needs a host (turn:HOST[:PORT][?transport=udp|tcp])");
    }
    if let Some(q) = query {
        if !matches!(q, "transport=udp" | "transport=tcp") {
            return bad("may only end in ?transport=udp or ?transport=tcp");
        }
    }
    Ok(())
}

const ENV_PREFIX: &str = "GIAOBAN_";
const SECTIONS: [&str; 15] = [
    "SIGNALING",
    "RULES",
    "MINUTES",
    "CALENDAR",
    "DEADLINES",
    "NOTICE",
    "TURN",
    "METRICS",
    "SERVER",
    "DATABASE",
    "MEDIA",
    "AUTH",
    "LIMITS",
    "DOCUMENTS",
    "LOG",
];

impl Config {
    /// Defaults, then `file` (if any), then the process environment; validated.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::from_toml(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?
            }
            None => Config::default(),
        };
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        for (name, value) in vars {
            config.apply_env(&name, &value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document over the defaults (no environment, no validation).
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies one `GIAOBAN_<SECTION>_<KEY>` variable. Variables whose section
    /// is not a config section (`GIAOBAN_TEST_...`, `GIAOBAN_BIN`) are ignored;
    /// an unknown key in a known section is an error.
    fn apply_env(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            return Ok(());
        };
        if let Some(key) = rest.strip_prefix("MAIL_") {
            return self
                .mail
                .apply_env(&key.to_ascii_lowercase(), value)
                .map_err(|reason| ConfigError::Env {
                    name: name.to_owned(),
                    reason,
                });
        }
        let Some(section) = SECTIONS
            .iter()
            .find(|s| rest.starts_with(*s) && rest[s.len()..].starts_with('_'))
        else {
            return Ok(());
        };
        let key = rest[section.len() + 1..].to_ascii_lowercase();
        let bad = |reason: String| ConfigError::Env {
            name: name.to_owned(),
            reason,
        };
        fn parse<T: std::str::FromStr>(v: &str) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse::<T>().map_err(|e| format!("{e}"))
        }
        fn opt<T: std::str::FromStr>(v: &str) -> Result<Option<T>, String>
        where
            T::Err: std::fmt::Display,
        {
            if v.trim().is_empty() {
                Ok(None)
            } else {
                parse(v).map(Some)
            }
        }
        match (*section, key.as_str()) {
            ("SERVER", "http_addr") => self.server.http_addr = parse(value).map_err(bad)?,
            ("SERVER", "public_url") => {
                self.server.public_url = Some(value.trim().to_owned()).filter(|s| !s.is_empty())
            }
            ("SERVER", "data_dir") => self.server.data_dir = PathBuf::from(value),
            ("SERVER", "tls_cert_file") => {
                self.server.tls_cert_file =
                    Some(PathBuf::from(value.trim())).filter(|p| !p.as_os_str().is_empty())
            }
            ("SERVER", "tls_key_file") => {
                self.server.tls_key_file =
                    Some(PathBuf::from(value.trim())).filter(|p| !p.as_os_str().is_empty())
            }
            ("SERVER", "trusted_proxies") => {
                self.server.trusted_proxies = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            ("SERVER", "header_read_timeout_secs") => {
                self.server.header_read_timeout_secs = parse(value).map_err(bad)?
            }
            ("SERVER", "contact") => self.server.contact = value.trim().to_owned(),
            ("SERVER", "frame_ancestors") => {
                self.server.frame_ancestors = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            ("METRICS", "enabled") => self.metrics.enabled = parse(value).map_err(bad)?,
            ("METRICS", "allow") => {
                self.metrics.allow = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            ("METRICS", "token") => {
                self.metrics.token = Some(value.trim().to_owned()).filter(|s| !s.is_empty())
            }
            ("DATABASE", "url") => self.database.url = value.trim().to_owned(),
            ("MEDIA", "port") => self.media.port = parse(value).map_err(bad)?,
            ("MEDIA", "bind_ip") => self.media.bind_ip = parse(value).map_err(bad)?,
            ("MEDIA", "announce_ips") => {
                self.media.announce_ips = value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(parse)
                    .collect::<Result<_, _>>()
                    .map_err(bad)?
            }
            ("MEDIA", "nat_1to1_ip") => self.media.nat_1to1_ip = opt(value).map_err(bad)?,
            ("MEDIA", "include_loopback") => {
                self.media.include_loopback = parse(value).map_err(bad)?
            }
            ("MEDIA", "last_n") => self.media.last_n = parse(value).map_err(bad)?,
            ("MEDIA", "audio_loudest") => self.media.audio_loudest = parse(value).map_err(bad)?,
            ("MEDIA", "tcp_max_per_address") => {
                self.media.tcp_max_per_address = parse(value).map_err(bad)?
            }
            ("MEDIA", "tcp_ice_timeout_secs") => {
                self.media.tcp_ice_timeout_secs = parse(value).map_err(bad)?
            }
            ("MEDIA", "send_workers") => self.media.send_workers = parse(value).map_err(bad)?,
            ("MEDIA", "shed_busy_percent") => {
                self.media.shed_busy_percent = parse(value).map_err(bad)?
            }
            ("MEDIA", "shed_calm_percent") => {
                self.media.shed_calm_percent = parse(value).map_err(bad)?
            }
            ("MEDIA", "shed_step_secs") => self.media.shed_step_secs = parse(value).map_err(bad)?,
            ("MEDIA", "shed_calm_secs") => self.media.shed_calm_secs = parse(value).map_err(bad)?,
            ("AUTH", "invite_ttl_hours") => {
                self.auth.invite_ttl_hours = parse(value).map_err(bad)?
            }
            ("AUTH", "signing_key_file") => {
                self.auth.signing_key_file =
                    Some(PathBuf::from(value.trim())).filter(|p| !p.as_os_str().is_empty())
            }
            ("AUTH", "staff_token_ttl_hours") => {
                self.auth.staff_token_ttl_hours = parse(value).map_err(bad)?
            }
            ("AUTH", "password_hash_concurrency") => {
                self.auth.password_hash_concurrency = parse(value).map_err(bad)?
            }
            ("AUTH", "invite_grace_hours") => {
                self.auth.invite_grace_hours = parse(value).map_err(bad)?
            }
            ("DOCUMENTS", "max_upload_bytes") => {
                self.documents.max_upload_bytes = parse(value).map_err(bad)?
            }
            ("DOCUMENTS", "trust_dir") => {
                self.documents.trust_dir =
                    Some(PathBuf::from(value.trim())).filter(|p| !p.as_os_str().is_empty())
            }
            ("LIMITS", "ws_max_message_bytes") => {
                self.limits.ws_max_message_bytes = parse(value).map_err(bad)?
            }
            ("LIMITS", "ws_messages_per_second") => {
                self.limits.ws_messages_per_second = parse(value).map_err(bad)?
            }
            ("LOG", "format") => {
                self.log.format = match value.trim() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    other => return Err(bad(format!("expected text or json, got {other:?}"))),
                }
            }
            ("LOG", "level") => self.log.level = value.trim().to_owned(),
            ("SIGNALING", "resume_grace_secs") => {
                self.signaling.resume_grace_secs = parse(value).map_err(bad)?
            }
            ("SIGNALING", "join_timeout_secs") => {
                self.signaling.join_timeout_secs = parse(value).map_err(bad)?
            }
            ("SIGNALING", "send_timeout_secs") => {
                self.signaling.send_timeout_secs = parse(value).map_err(bad)?
            }
            ("SIGNALING", "max_sockets_per_address") => {
                self.signaling.max_sockets_per_address = parse(value).map_err(bad)?
            }
            ("SIGNALING", "max_sockets") => {
                self.signaling.max_sockets = parse(value).map_err(bad)?
            }
            ("SIGNALING", "max_offer_media") => {
                self.signaling.max_offer_media = parse(value).map_err(bad)?
            }
            ("SIGNALING", "join_muted_from") => {
                self.signaling.join_muted_from = parse(value).map_err(bad)?
            }
            ("SIGNALING", "link_loss_alert_percent") => {
                self.signaling.link_loss_alert_percent = parse(value).map_err(bad)?
            }
            ("SIGNALING", "link_rtt_alert_ms") => {
                self.signaling.link_rtt_alert_ms = parse(value).map_err(bad)?
            }
            ("SIGNALING", "link_jitter_alert_ms") => {
                self.signaling.link_jitter_alert_ms = parse(value).map_err(bad)?
            }
            ("SIGNALING", "link_silence_alert_secs") => {
                self.signaling.link_silence_alert_secs = parse(value).map_err(bad)?
            }
            ("SIGNALING", "link_silence_level") => {
                self.signaling.link_silence_level = parse(value).map_err(bad)?
            }
            ("SIGNALING", "link_frozen_alert_secs") => {
                self.signaling.link_frozen_alert_secs = parse(value).map_err(bad)?
            }
            ("SIGNALING", "link_stale_secs") => {
                self.signaling.link_stale_secs = parse(value).map_err(bad)?
            }
            ("SIGNALING", "link_history_secs") => {
                self.signaling.link_history_secs = parse(value).map_err(bad)?
            }
            ("SIGNALING", "check_max_rtt_ms") => {
                self.signaling.check_max_rtt_ms = parse(value).map_err(bad)?
            }
            ("SIGNALING", "check_min_down_kbps") => {
                self.signaling.check_min_down_kbps = parse(value).map_err(bad)?
            }
            ("SIGNALING", "check_min_up_kbps") => {
                self.signaling.check_min_up_kbps = parse(value).map_err(bad)?
            }
            ("SIGNALING", "whep_viewers_per_invitation") => {
                self.signaling.whep_viewers_per_invitation = parse(value).map_err(bad)?
            }
            ("TURN", "enabled") => self.turn.enabled = parse(value).map_err(bad)?,
            ("TURN", "urls") => {
                self.turn.urls = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            ("TURN", "secret") => {
                self.turn.secret = Some(value.trim().to_owned()).filter(|s| !s.is_empty())
            }
            ("TURN", "secret_file") => {
                self.turn.secret_file =
                    Some(PathBuf::from(value.trim())).filter(|p| !p.as_os_str().is_empty())
            }
            ("TURN", "credential_ttl_seconds") => {
                self.turn.credential_ttl_seconds = parse(value).map_err(bad)?
            }
            ("TURN", "force_relay") => self.turn.force_relay = parse(value).map_err(bad)?,
            ("RULES", "quorum_numerator") => {
                self.rules.quorum_numerator = parse(value).map_err(bad)?
            }
            ("RULES", "quorum_denominator") => {
                self.rules.quorum_denominator = parse(value).map_err(bad)?
            }
            ("RULES", "committee_members") => {
                self.rules.committee_members = opt(value).map_err(bad)?
            }
            ("MINUTES", "issuer") => self.minutes.issuer = value.replace("\\n", "\n"),
            ("MINUTES", "parent") => self.minutes.parent = value.replace("\\n", "\n"),
            ("MINUTES", "place") => self.minutes.place = value.to_owned(),
            ("MINUTES", "symbol") => self.minutes.symbol = value.to_owned(),
            ("MINUTES", "seal_cert") => {
                self.minutes.seal_cert =
                    Some(PathBuf::from(value.trim())).filter(|p| !p.as_os_str().is_empty())
            }
            ("MINUTES", "seal_key") => {
                self.minutes.seal_key =
                    Some(PathBuf::from(value.trim())).filter(|p| !p.as_os_str().is_empty())
            }
            ("CALENDAR", "weekend") => self.calendar.weekend = comma_list(value),
            ("CALENDAR", "holidays") => self.calendar.holidays = comma_list(value),
            ("CALENDAR", "extra_working_days") => {
                self.calendar.extra_working_days = comma_list(value)
            }
            ("DEADLINES", "notice_working_days") => {
                self.deadlines.notice_working_days = parse(value).map_err(bad)?
            }
            ("DEADLINES", "documents_regular_working_days") => {
                self.deadlines.documents_regular_working_days = parse(value).map_err(bad)?
            }
            ("DEADLINES", "documents_thematic_working_days") => {
                self.deadlines.documents_thematic_working_days = parse(value).map_err(bad)?
            }
            ("NOTICE", "symbol") => self.notice.symbol = value.to_owned(),
            ("NOTICE", "signer_title") => self.notice.signer_title = value.replace("\\n", "\n"),
            ("NOTICE", "signer_name") => self.notice.signer_name = value.to_owned(),
            ("NOTICE", "recipients") => {
                self.notice.recipients = value
                    .split(';')
                    .map(|x| x.trim().to_owned())
                    .filter(|x| !x.is_empty())
                    .collect()
            }
            _ => return Err(bad("no such configuration key".into())),
        }
        Ok(())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if let Some(url) = &self.server.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid("server.public_url must start with http:// or https://");
            }
        }
        if self.server.data_dir.as_os_str().is_empty() {
            return invalid("server.data_dir is empty");
        }
        self.mail.validate().map_err(ConfigError::Invalid)?;
        if self.server.tls_cert_file.is_some() != self.server.tls_key_file.is_some() {
            return invalid(
                "server.tls_cert_file and server.tls_key_file go together: set both (HTTPS) or neither",
            );
        }
        for a in &self.server.trusted_proxies {
            crate::metrics::IpNet::parse(a).map_err(|_| {
                ConfigError::Invalid(format!(
                    "server.trusted_proxies: {a:?} is not an IP address or network"
                ))
            })?;
        }
        if self.auth.password_hash_concurrency > 1024 {
            return invalid("auth.password_hash_concurrency must be at most 1024");
        }
        if self.minutes.seal_cert.is_some() != self.minutes.seal_key.is_some() {
            return invalid(
                "minutes.seal_cert and minutes.seal_key go together: set both (the province's seal) or neither (a self-signed seal in the data folder)",
            );
        }
        for a in &self.metrics.allow {
            crate::metrics::IpNet::parse(a).map_err(ConfigError::Invalid)?;
        }
        if self.server.contact.chars().count() > 300 {
            return invalid("server.contact must be at most 300 characters");
        }
        if self.server.header_read_timeout_secs == 0 {
            return invalid("server.header_read_timeout_secs must be at least 1");
        }
        for a in &self.server.frame_ancestors {
            // One CSP source expression each: nothing that could end the
            // directive or the header.
            if a.is_empty()
                || a.chars()
                    .any(|c| c.is_whitespace() || c == ';' || c == ',' || c.is_control())
            {
                return invalid("server.frame_ancestors: each entry is one origin such as https://portal.example.gov.vn");
            }
        }
        let url = &self.database.url;
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return invalid("database.url must be empty, sqlite://... or postgres://...");
        }
        if self.auth.invite_ttl_hours == 0 {
            return invalid("auth.invite_ttl_hours must be at least 1");
        }
        if self.auth.staff_token_ttl_hours == 0 {
            return invalid("auth.staff_token_ttl_hours must be at least 1");
        }
        if self.documents.max_upload_bytes == 0 {
            return invalid("documents.max_upload_bytes must be at least 1");
        }
        if self.limits.ws_max_message_bytes < 1024 {
            return invalid("limits.ws_max_message_bytes must be at least 1024");
        }
        if self.limits.ws_max_message_bytes > 64 * 1024 * 1024 {
            return invalid("limits.ws_max_message_bytes must be at most 64 MiB");
        }
        if self.limits.ws_messages_per_second == 0 {
            return invalid("limits.ws_messages_per_second must be at least 1");
        }
        if self.log.level.trim().is_empty() {
            return invalid("log.level is empty");
        }
        if self.signaling.resume_grace_secs > 600 {
            return invalid("signaling.resume_grace_secs must be at most 600");
        }
        self.signaling.validate_links()?;
        if self.media.tcp_max_per_address == 0 {
            return invalid("media.tcp_max_per_address must be at least 1");
        }
        if !(1..=120).contains(&self.media.tcp_ice_timeout_secs) {
            return invalid("media.tcp_ice_timeout_secs must be from 1 to 120");
        }
        if self.media.send_workers > 64 {
            return invalid("media.send_workers must be at most 64 (0: the machine's cores)");
        }
        let m = &self.media;
        if !(1..=100).contains(&m.shed_busy_percent) || m.shed_calm_percent >= m.shed_busy_percent {
            return invalid(
                "media.shed_busy_percent must be 1 to 100, and media.shed_calm_percent below it",
            );
        }
        if !(1..=60).contains(&m.shed_step_secs) || !(1..=600).contains(&m.shed_calm_secs) {
            return invalid("media.shed_step_secs must be 1 to 60, media.shed_calm_secs 1 to 600");
        }
        let sg = &self.signaling;
        if !(1..=300).contains(&sg.join_timeout_secs) {
            return invalid("signaling.join_timeout_secs must be 1 to 300");
        }
        if !(1..=300).contains(&sg.send_timeout_secs) {
            return invalid("signaling.send_timeout_secs must be 1 to 300");
        }
        if sg.max_sockets_per_address == 0 || sg.max_sockets == 0 {
            return invalid("signaling.max_sockets_per_address and max_sockets must be at least 1");
        }
        if !(1..=256).contains(&sg.max_offer_media) {
            return invalid("signaling.max_offer_media must be 1 to 256");
        }
        if sg.whep_viewers_per_invitation == 0 {
            return invalid("signaling.whep_viewers_per_invitation must be at least 1");
        }
        let r = &self.rules;
        if r.quorum_denominator == 0 || r.quorum_numerator == 0 {
            return invalid(
                "rules.quorum_numerator and rules.quorum_denominator must be at least 1",
            );
        }
        if r.quorum_numerator > r.quorum_denominator {
            return invalid("rules.quorum_numerator must be at most rules.quorum_denominator");
        }
        if r.committee_members == Some(0) {
            return invalid("rules.committee_members must be at least 1 (or unset)");
        }
        self.calendar.calendar()?;
        let d = &self.deadlines;
        for (name, v) in [
            ("notice_working_days", d.notice_working_days),
            (
                "documents_regular_working_days",
                d.documents_regular_working_days,
            ),
            (
                "documents_thematic_working_days",
                d.documents_thematic_working_days,
            ),
        ] {
            if v > 60 {
                return Err(ConfigError::Invalid(format!(
                    "deadlines.{name} must be at most 60"
                )));
            }
        }
        if self.notice.recipients.len() > 30 {
            return invalid("notice.recipients: at most 30 entries");
        }
        self.validate_turn()
    }

    fn validate_turn(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        let t = &self.turn;
        for url in &t.urls {
            check_turn_url(url).map_err(ConfigError::Invalid)?;
        }
        if !(TURN_TTL_MIN_SECONDS..=TURN_TTL_MAX_SECONDS).contains(&t.credential_ttl_seconds) {
            return Err(ConfigError::Invalid(format!(
                "turn.credential_ttl_seconds must be between {TURN_TTL_MIN_SECONDS} and {TURN_TTL_MAX_SECONDS}"
            )));
        }
        if let Some(s) = &t.secret {
            if s.len() < TURN_SECRET_MIN_BYTES {
                return Err(ConfigError::Invalid(format!(
                    "turn.secret must be at least {TURN_SECRET_MIN_BYTES} bytes"
                )));
            }
        }
        if t.secret.is_some() && t.secret_file.is_some() {
            return invalid("turn.secret and turn.secret_file: set one, not both");
        }
        if !t.enabled {
            if t.force_relay {
                return invalid("turn.force_relay needs turn.enabled = true");
            }
            return Ok(());
        }
        if t.urls.is_empty() {
            return invalid("turn.enabled needs at least one URL in turn.urls");
        }
        if t.secret.is_none() && t.secret_file.is_none() {
            return invalid("turn.enabled needs turn.secret_file (or turn.secret)");
        }
        Ok(())
    }

    /// The database URL to use: the configured one, or SQLite in the data folder.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.server.data_dir.join("giaoban.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }

    /// The base URL of invitation links: `public_url`, or the HTTP address
    /// (when that is every interface, the first non-loopback IPv4 address).
    pub fn public_base_url(&self) -> String {
        match &self.server.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let addr = self.server.http_addr;
                let host = if addr.ip().is_unspecified() {
                    // Bound to every interface: the first address another
                    // machine can reach, rather than `localhost`.
                    first_lan_ip()
                        .map(|ip| ip.to_string())
                        .unwrap_or_else(|| "localhost".to_owned())
                } else {
                    match addr.ip() {
                        IpAddr::V6(ip) => format!("[{ip}]"),
                        IpAddr::V4(ip) => ip.to_string(),
                    }
                };
                let scheme = if self.server.tls() { "https" } else { "http" };
                format!("{scheme}://{host}:{}", addr.port())
            }
        }
    }
}

/// The first non-loopback IPv4 address of this machine, if any.
pub(crate) fn first_lan_ip() -> Option<IpAddr> {
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .map(|i| i.ip())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback() && !ip.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn calendar_deadlines_and_notice_sections() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("GIAOBAN_CALENDAR_HOLIDAYS", "2026-01-01, 2026-02-17"),
                ("GIAOBAN_CALENDAR_EXTRA_WORKING_DAYS", "2026-02-28"),
                ("GIAOBAN_DEADLINES_NOTICE_WORKING_DAYS", "7"),
                ("GIAOBAN_NOTICE_SIGNER_TITLE", "KT. CHỦ TỊCH\\nPHÓ CHỦ TỊCH"),
                ("GIAOBAN_NOTICE_RECIPIENTS", "Như trên; Lưu: VT"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.calendar.holidays, ["2026-01-01", "2026-02-17"]);
        assert_eq!(c.calendar.weekend, ["saturday", "sunday"]);
        let n = c.notice.settings(&c.deadlines);
        assert_eq!(n.signer_title, ["KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH"]);
        assert_eq!(n.recipients, ["Như trên", "Lưu: VT"]);
        assert_eq!(n.due_working_days, 7);
        assert_eq!(c.deadlines.documents().regular, 3);
        let cal = c.calendar.calendar().expect("calendar");
        let d = |s: &str| cabinet::workdays::parse_date(s).expect("date");
        assert!(
            cal.is_working_day(d("2026-02-28")),
            "a compensating Saturday"
        );
        assert!(!cal.is_working_day(d("2026-02-17")), "a holiday");
        for bad in [
            ("GIAOBAN_CALENDAR_HOLIDAYS", "2026-02-30"),
            ("GIAOBAN_CALENDAR_WEEKEND", "caturday"),
            ("GIAOBAN_CALENDAR_WEEKEND", "mon,tue,wed,thu,fri,sat,sun"),
            ("GIAOBAN_DEADLINES_DOCUMENTS_REGULAR_WORKING_DAYS", "61"),
            ("GIAOBAN_DEADLINES_NOTICE_WORKING_DAYS", "-1"),
        ] {
            assert!(
                Config::load_with_env(None, env(&[bad])).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn defaults() {
        let c = Config::load_with_env(None, env(&[])).expect("defaults are valid");
        assert_eq!(c.server.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.media.port, 7882);
        assert_eq!(c.auth.invite_ttl_hours, 72);
        assert_eq!(c.limits.ws_max_message_bytes, 262_144);
        assert_eq!(c.limits.ws_messages_per_second, 50);
        assert_eq!(c.documents.max_upload_bytes, 50 * 1024 * 1024);
        assert_eq!(c.documents.trust_dir, None);
        assert_eq!(c.auth.staff_token_ttl_hours, 12);
        assert_eq!(c.signaling.resume_grace_secs, 30);
        assert!(c.database_url().starts_with("sqlite://"));
        assert!(c.database_url().ends_with("giaoban.db?mode=rwc"));
        let host = first_lan_ip().map_or_else(|| "localhost".to_owned(), |ip| ip.to_string());
        assert_eq!(c.public_base_url(), format!("http://{host}:8080"));
        assert_eq!(c.server.header_read_timeout_secs, 10);
        assert!(c.server.frame_ancestors.is_empty());
        assert_eq!(c.auth.invite_grace_hours, 12);
        assert_eq!(c.metrics.allow, ["127.0.0.0/8", "::1/128"]);
    }

    #[test]
    fn sample_config_parses_and_equals_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/giaoban.toml");
        let c = Config::load_with_env(Some(&path), env(&[])).expect("sample config loads");
        assert_eq!(
            c,
            Config::default(),
            "deploy/giaoban.toml must show the defaults"
        );
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[server]\nhttp_addr = \"127.0.0.1:9000\"\n[media]\nport = 0\n[log]\nformat = \"json\"\n",
        )
        .expect("write");
        let c = Config::load_with_env(
            Some(&path),
            env(&[
                ("GIAOBAN_MEDIA_PORT", "7000"),
                ("GIAOBAN_MEDIA_ANNOUNCE_IPS", "10.0.0.1, 10.0.0.2"),
                ("GIAOBAN_MEDIA_INCLUDE_LOOPBACK", "true"),
                ("GIAOBAN_MEDIA_LAST_N", "0"),
                ("GIAOBAN_MEDIA_AUDIO_LOUDEST", "5"),
                ("GIAOBAN_MEDIA_TCP_MAX_PER_ADDRESS", "4"),
                ("GIAOBAN_MEDIA_TCP_ICE_TIMEOUT_SECS", "3"),
                ("GIAOBAN_MEDIA_SEND_WORKERS", "2"),
                ("GIAOBAN_MEDIA_SHED_BUSY_PERCENT", "90"),
                ("GIAOBAN_MEDIA_SHED_CALM_PERCENT", "40"),
                ("GIAOBAN_MEDIA_SHED_STEP_SECS", "3"),
                ("GIAOBAN_MEDIA_SHED_CALM_SECS", "10"),
                ("GIAOBAN_DOCUMENTS_MAX_UPLOAD_BYTES", "1048576"),
                ("GIAOBAN_DOCUMENTS_TRUST_DIR", "/etc/giaoban/ca"),
                ("GIAOBAN_SERVER_PUBLIC_URL", "https://hop.example.vn/"),
                ("GIAOBAN_TEST_PG_URL", "ignored"),
                ("GIAOBAN_BIN", "ignored"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.server.http_addr.to_string(), "127.0.0.1:9000");
        assert_eq!(c.media.port, 7000);
        assert_eq!(c.media.announce_ips.len(), 2);
        assert!(c.media.include_loopback);
        assert_eq!((c.media.last_n, c.media.audio_loudest), (0, 5));
        assert_eq!(
            (c.media.tcp_max_per_address, c.media.tcp_ice_timeout_secs),
            (4, 3)
        );
        assert_eq!(c.media.send_workers, 2);
        let o = c.media.overload();
        assert_eq!((o.busy_high, o.busy_low), (0.9, 0.4));
        assert_eq!((o.step_every.as_secs(), o.calm_for.as_secs()), (3, 10));
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.public_base_url(), "https://hop.example.vn");
        assert_eq!(c.documents.max_upload_bytes, 1_048_576);
        assert_eq!(
            c.documents.trust_dir.as_deref(),
            Some(Path::new("/etc/giaoban/ca"))
        );
    }

    #[test]
    fn media_engine_settings_are_checked() {
        let d = Config::load_with_env(None, env(&[])).expect("defaults");
        assert_eq!(d.media.send_workers, 1);
        assert_eq!(d.media.overload(), sfu::OverloadConfig::default());
        for bad in [
            [("GIAOBAN_MEDIA_SEND_WORKERS", "65"), ("", "")],
            [("GIAOBAN_MEDIA_SHED_BUSY_PERCENT", "0"), ("", "")],
            [("GIAOBAN_MEDIA_SHED_BUSY_PERCENT", "101"), ("", "")],
            [("GIAOBAN_MEDIA_SHED_CALM_PERCENT", "85"), ("", "")],
            [
                ("GIAOBAN_MEDIA_SHED_BUSY_PERCENT", "50"),
                ("GIAOBAN_MEDIA_SHED_CALM_PERCENT", "60"),
            ],
            [("GIAOBAN_MEDIA_SHED_STEP_SECS", "0"), ("", "")],
            [("GIAOBAN_MEDIA_SHED_CALM_SECS", "601"), ("", "")],
        ] {
            let vars: Vec<_> = bad.into_iter().filter(|(k, _)| !k.is_empty()).collect();
            assert!(
                Config::load_with_env(None, env(&vars)).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn turn_section() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("GIAOBAN_TURN_ENABLED", "true"),
                (
                    "GIAOBAN_TURN_URLS",
                    "turns:turn.tinh.gov.vn:443?transport=tcp, turn:10.0.0.5:3478?transport=udp",
                ),
                ("GIAOBAN_TURN_SECRET_FILE", "/etc/giaoban/turn.secret"),
                ("GIAOBAN_TURN_CREDENTIAL_TTL_SECONDS", "3600"),
                ("GIAOBAN_TURN_FORCE_RELAY", "true"),
            ]),
        )
        .expect("loads");
        assert!(c.turn.enabled && c.turn.force_relay);
        assert_eq!(c.turn.urls.len(), 2);
        assert_eq!(c.turn.credential_ttl_seconds, 3600);
        let toml = "[turn]\nenabled = true\nurls = [\"turn:10.0.0.5\"]\nsecret = \"0123456789abcdefXYZ\"\n";
        let c = Config::from_toml(toml).expect("parses");
        assert!(c.validate().is_ok());
        assert!(!format!("{c:?}").contains("0123456789abcdefXYZ"));
        let invalid = |pairs: &[(&str, &str)]| {
            matches!(
                Config::load_with_env(None, env(pairs)),
                Err(ConfigError::Invalid(_))
            )
        };
        let on = ("GIAOBAN_TURN_ENABLED", "true");
        let url = (
            "GIAOBAN_TURN_URLS",
            "turns:turn.example.vn:443?transport=tcp",
        );
        let secret = ("GIAOBAN_TURN_SECRET", "0123456789abcdef");
        assert!(!invalid(&[on, url, secret]));
        assert!(invalid(&[on, secret]), "no URL");
        assert!(invalid(&[on, url]), "no secret");
        assert!(invalid(&[on, url, ("GIAOBAN_TURN_SECRET", "short")]));
        assert!(invalid(&[
            on,
            url,
            secret,
            ("GIAOBAN_TURN_SECRET_FILE", "/etc/x")
        ]));
        assert!(
            invalid(&[("GIAOBAN_TURN_FORCE_RELAY", "true")]),
            "relay without TURN"
        );
        for bad in [
            "stun:turn.example.vn",
            "https://turn.example.vn",
            "turn:",
            "turn::3478",
            "turn:user@host",
            "turn:host?transport=sctp",
            "turn:ho st",
        ] {
            assert!(invalid(&[on, secret, ("GIAOBAN_TURN_URLS", bad)]), "{bad}");
        }
        for ttl in ["59", "604801"] {
            assert!(invalid(&[
                on,
                url,
                secret,
                ("GIAOBAN_TURN_CREDENTIAL_TTL_SECONDS", ttl)
            ]));
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_rejected() {
        assert!(Config::from_toml("[server]\nhttp_adr = \"x\"\n").is_err());
        assert!(Config::from_toml("[nope]\n").is_err());
        assert!(matches!(
            Config::load_with_env(None, env(&[("GIAOBAN_SERVER_HTTPADDR", "x")])),
            Err(ConfigError::Env { .. })
        ));
        assert!(matches!(
            Config::load_with_env(None, env(&[("GIAOBAN_MEDIA_PORT", "seventy")])),
            Err(ConfigError::Env { .. })
        ));
        assert!(matches!(
            Config::load_with_env(None, env(&[("GIAOBAN_DATABASE_URL", "mysql://x")])),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            Config::load_with_env(None, env(&[("GIAOBAN_LIMITS_WS_MESSAGES_PER_SECOND", "0")])),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            Config::load_with_env(None, env(&[("GIAOBAN_SIGNALING_RESUME_GRACE_SECS", "601")])),
            Err(ConfigError::Invalid(_))
        ));
        let c = Config::load_with_env(None, env(&[("GIAOBAN_SIGNALING_RESUME_GRACE_SECS", "5")]))
            .expect("a short grace is valid");
        assert_eq!(c.signaling.resume_grace_secs, 5);
        let c = Config::load_with_env(
            None,
            env(&[
                ("GIAOBAN_SIGNALING_JOIN_TIMEOUT_SECS", "3"),
                ("GIAOBAN_SIGNALING_SEND_TIMEOUT_SECS", "4"),
                ("GIAOBAN_SIGNALING_MAX_SOCKETS_PER_ADDRESS", "5"),
                ("GIAOBAN_SIGNALING_MAX_SOCKETS", "6"),
                ("GIAOBAN_SIGNALING_MAX_OFFER_MEDIA", "7"),
                ("GIAOBAN_SIGNALING_WHEP_VIEWERS_PER_INVITATION", "2"),
            ]),
        )
        .expect("live-session limits from the environment");
        let sg = &c.signaling;
        assert_eq!(
            (
                sg.join_timeout_secs,
                sg.send_timeout_secs,
                sg.max_sockets_per_address
            ),
            (3, 4, 5)
        );
        assert_eq!(
            (
                sg.max_sockets,
                sg.max_offer_media,
                sg.whep_viewers_per_invitation
            ),
            (6, 7, 2)
        );
        for bad in [
            ("GIAOBAN_SIGNALING_JOIN_TIMEOUT_SECS", "0"),
            ("GIAOBAN_SIGNALING_SEND_TIMEOUT_SECS", "301"),
            ("GIAOBAN_SIGNALING_MAX_SOCKETS", "0"),
            ("GIAOBAN_SIGNALING_MAX_OFFER_MEDIA", "0"),
            ("GIAOBAN_SIGNALING_WHEP_VIEWERS_PER_INVITATION", "0"),
        ] {
            assert!(
                matches!(
                    Config::load_with_env(None, env(&[bad])),
                    Err(ConfigError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Config::load_with_env(Some(Path::new("/nonexistent/giaoban.toml")), env(&[])),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn rules_section() {
        let c = Config::load_with_env(None, env(&[])).expect("defaults");
        assert_eq!(c.rules.quorum(), cabinet::QuorumRule::default());
        let c = Config::from_toml(
            "[rules]\nquorum_numerator = 1\nquorum_denominator = 2\ncommittee_members = 9\n",
        )
        .expect("rules from a file");
        assert_eq!(
            (c.rules.quorum_numerator, c.rules.quorum_denominator),
            (1, 2)
        );
        assert_eq!(c.rules.committee_members, Some(9));
        assert!(Config::from_toml("[rules]\nquorum = 3\n").is_err());
        let c = Config::load_with_env(
            None,
            env(&[
                ("GIAOBAN_RULES_QUORUM_NUMERATOR", "3"),
                ("GIAOBAN_RULES_QUORUM_DENOMINATOR", "4"),
                ("GIAOBAN_RULES_COMMITTEE_MEMBERS", "15"),
            ]),
        )
        .expect("rules from the environment");
        assert_eq!(
            c.rules.quorum(),
            cabinet::QuorumRule {
                numerator: 3,
                denominator: 4,
                committee_members: Some(15)
            }
        );
        let c = Config::load_with_env(None, env(&[("GIAOBAN_RULES_COMMITTEE_MEMBERS", "")]))
            .expect("empty: unset");
        assert_eq!(c.rules.committee_members, None);
        assert!(matches!(
            Config::load_with_env(None, env(&[("GIAOBAN_RULES_QUORUM", "1")])),
            Err(ConfigError::Env { .. })
        ));
        for bad in [
            &[("GIAOBAN_RULES_QUORUM_DENOMINATOR", "0")][..],
            &[("GIAOBAN_RULES_QUORUM_NUMERATOR", "0")],
            &[("GIAOBAN_RULES_QUORUM_NUMERATOR", "4")],
            &[("GIAOBAN_RULES_COMMITTEE_MEMBERS", "0")],
        ] {
            assert!(
                matches!(
                    Config::load_with_env(None, env(bad)),
                    Err(ConfigError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
    }
}
