//! E-mail over SMTP, when `[mail]` names a host: invitations, the reminder
//! before a meeting, the notice that a meeting's documents changed, written
//! opinion requests and their reminders, in Vietnamese, each with the
//! recipient's own link.
//!
//! Nothing is sent from a request: the message is written to the outbox
//! (`cabinet::mail`) and [`run`] delivers it with lettre (SMTP, plain,
//! STARTTLS or TLS with rustls), retrying with a growing delay, and sweeps
//! for the reminders that fall due. A restart loses nothing; a message the
//! SMTP server accepted is never sent again (one `dedupe_key` each).
//! Without a host nothing is queued and everything else works as before.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cabinet::mail::{MailKind, NewMail, OutboxMail};
use cabinet::{Meeting, MeetingStatus, OpinionRecipient, OpinionReminder, OpinionRequest};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::AppState;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailSecurity {
    /// Plain SMTP (port 25): only inside a trusted network.
    None,
    /// STARTTLS required (port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

/// `[mail]`: the province's SMTP server. Unset `host`: no e-mail.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// The SMTP server's name or address; unset: no e-mail at all.
    pub host: Option<String>,
    /// Its port; 0: 25, 587 or 465 by `security`.
    pub port: u16,
    pub security: MailSecurity,
    /// The SMTP account, if the server wants one.
    pub user: Option<String>,
    /// Its password, inline (or `GIAOBAN_MAIL_PASSWORD`). Prefer
    /// `password_file`.
    pub password: Option<String>,
    /// A file holding the password (surrounding whitespace ignored).
    pub password_file: Option<PathBuf>,
    /// The sender, `Name <address>` or `address`.
    pub from: String,
    /// Where answers go (the secretariat's mailbox); empty: `from`.
    pub reply_to: String,
    /// PEM file of the CA certificates the SMTP server's certificate must
    /// chain to (only those); unset: the system's.
    pub ca_file: Option<PathBuf>,
    /// Connecting to the SMTP server within this, in seconds, and a whole
    /// conversation within twice this (else it is abandoned and retried).
    pub timeout_secs: u64,
    /// The first retry after a failed attempt, in seconds; doubled each
    /// time up to `retry_max_secs`.
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    /// Attempts before a message is given up (`failed`).
    pub max_attempts: u32,
    /// How often the outbox and the reminders are looked at, in seconds
    /// (new messages are sent at once).
    pub poll_secs: u64,
    /// The reminder before a meeting, this many hours before its start;
    /// 0: none.
    pub meeting_reminder_hours: u32,
    /// The e-mail reminder of a written opinion request to members who
    /// have not answered, this many hours before its deadline; 0: none.
    pub opinion_reminder_hours: u32,
    /// The notice that a meeting's documents changed waits this long, in
    /// seconds, so a series of changes makes one e-mail.
    pub documents_notice_delay_secs: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            host: None,
            port: 0,
            security: MailSecurity::Starttls,
            user: None,
            password: None,
            password_file: None,
            from: String::new(),
            reply_to: String::new(),
            ca_file: None,
            timeout_secs: 30,
            retry_base_secs: 60,
            retry_max_secs: 3600,
            max_attempts: 30,
            poll_secs: 15,
            meeting_reminder_hours: 24,
            opinion_reminder_hours: 24,
            documents_notice_delay_secs: 300,
        }
    }
}

// By hand, so the password never reaches a log through `{:?}`.
impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("from", &self.from)
            .field("reply_to", &self.reply_to)
            .finish_non_exhaustive()
    }
}

impl MailConfig {
    /// Applies `GIAOBAN_MAIL_<KEY>` (`key` in lower case).
    pub fn apply_env(&mut self, key: &str, value: &str) -> Result<(), String> {
        fn parse<T: std::str::FromStr>(v: &str) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse::<T>().map_err(|e| format!("{e}"))
        }
        let text = |v: &str| Some(v.trim().to_owned()).filter(|s| !s.is_empty());
        match key {
            "host" => self.host = text(value),
            "port" => self.port = parse(value)?,
            "security" => {
                self.security = match value.trim() {
                    "none" => MailSecurity::None,
                    "starttls" => MailSecurity::Starttls,
                    "tls" => MailSecurity::Tls,
                    other => return Err(format!("expected none, starttls or tls, got {other:?}")),
                }
            }
            "user" => self.user = text(value),
            // Not trimmed: a password may end in a space.
            "password" => self.password = Some(value.to_owned()).filter(|s| !s.is_empty()),
            "password_file" => self.password_file = text(value).map(PathBuf::from),
            "from" => self.from = value.trim().to_owned(),
            "reply_to" => self.reply_to = value.trim().to_owned(),
            "ca_file" => self.ca_file = text(value).map(PathBuf::from),
            "timeout_secs" => self.timeout_secs = parse(value)?,
            "retry_base_secs" => self.retry_base_secs = parse(value)?,
            "retry_max_secs" => self.retry_max_secs = parse(value)?,
            "max_attempts" => self.max_attempts = parse(value)?,
            "poll_secs" => self.poll_secs = parse(value)?,
            "meeting_reminder_hours" => self.meeting_reminder_hours = parse(value)?,
            "opinion_reminder_hours" => self.opinion_reminder_hours = parse(value)?,
            "documents_notice_delay_secs" => self.documents_notice_delay_secs = parse(value)?,
            _ => return Err("no such configuration key".into()),
        }
        Ok(())
    }

    /// Checks values that parse but make no sense (only when a host is set).
    pub fn validate(&self) -> Result<(), String> {
        let Some(host) = &self.host else {
            return Ok(());
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(format!("mail.host {host:?} is not a host name or address"));
        }
        if self.from.is_empty() {
            return Err("mail.from is needed when mail.host is set".into());
        }
        self.from
            .parse::<Mailbox>()
            .map_err(|e| format!("mail.from {:?}: {e}", self.from))?;
        if !self.reply_to.is_empty() {
            self.reply_to
                .parse::<Mailbox>()
                .map_err(|e| format!("mail.reply_to {:?}: {e}", self.reply_to))?;
        }
        if self.password.is_some() && self.password_file.is_some() {
            return Err("mail.password and mail.password_file: set one, not both".into());
        }
        if (self.password.is_some() || self.password_file.is_some()) && self.user.is_none() {
            return Err("mail.password needs mail.user".into());
        }
        if !(1..=600).contains(&self.timeout_secs) {
            return Err("mail.timeout_secs must be between 1 and 600".into());
        }
        if self.retry_base_secs == 0 || self.retry_max_secs < self.retry_base_secs {
            return Err(
                "mail.retry_base_secs must be at least 1 and at most retry_max_secs".into(),
            );
        }
        if self.max_attempts == 0 {
            return Err("mail.max_attempts must be at least 1".into());
        }
        if !(1..=3600).contains(&self.poll_secs) {
            return Err("mail.poll_secs must be between 1 and 3600".into());
        }
        Ok(())
    }

    /// The port to use.
    pub fn effective_port(&self) -> u16 {
        match (self.port, self.security) {
            (0, MailSecurity::None) => 25,
            (0, MailSecurity::Starttls) => 587,
            (0, MailSecurity::Tls) => 465,
            (p, _) => p,
        }
    }
}

/// Why the mail sender could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The SMTP client and what composing messages needs.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    /// The right side of Message-IDs: `from`'s domain.
    domain: String,
    /// The settings (timings, reminders).
    pub config: MailConfig,
    /// Base of links made without a request (`server.public_url`, else the
    /// first LAN address).
    pub default_base: String,
    /// Wakes the sender when something was queued.
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// The sender of `config`, or `None` when no host is set.
    pub fn from_config(
        config: &MailConfig,
        default_base: String,
    ) -> Result<Option<Arc<Mailer>>, MailError> {
        let Some(host) = config.host.clone() else {
            return Ok(None);
        };
        config.validate().map_err(MailError::Invalid)?;
        let invalid = |e: String| MailError::Invalid(e);
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| invalid(format!("mail.from: {e}")))?;
        let reply_to = match config.reply_to.as_str() {
            "" => None,
            r => Some(
                r.parse::<Mailbox>()
                    .map_err(|e| invalid(format!("mail.reply_to: {e}")))?,
            ),
        };
        let password = match (&config.password, &config.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| MailError::Read {
                        path: path.clone(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        // The SMTP server's certificate chains to mail.ca_file's CAs (only
        // those), else to the system's (rustls-native-certs reads them).
        let tls = || -> Result<TlsParameters, MailError> {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(path) = &config.ca_file {
                let pem = std::fs::read(path).map_err(|source| MailError::Read {
                    path: path.clone(),
                    source,
                })?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
                b = b
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| invalid(format!("mail TLS: {e}")))
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
            .port(config.effective_port())
            .timeout(Some(Duration::from_secs(config.timeout_secs)));
        let builder = match config.security {
            MailSecurity::None => builder.tls(Tls::None),
            MailSecurity::Starttls => builder.tls(Tls::Required(tls()?)),
            MailSecurity::Tls => builder.tls(Tls::Wrapper(tls()?)),
        };
        let builder = match (&config.user, password) {
            (Some(u), Some(p)) => builder.credentials(Credentials::new(u.clone(), p)),
            _ => builder,
        };
        let domain = from.email.domain().to_owned();
        Ok(Some(Arc::new(Mailer {
            transport: builder.build(),
            from,
            reply_to,
            domain,
            config: config.clone(),
            default_base,
            wake: tokio::sync::Notify::new(),
        })))
    }

    /// Tells the sender that something was queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Hands one message to the SMTP server. `Err((error, permanent))`.
    async fn deliver(&self, m: &OutboxMail) -> Result<(), (String, bool)> {
        let addr = m
            .to_addr
            .parse()
            .map_err(|e| (format!("bad address {:?}: {e}", m.to_addr), true))?;
        let to = Mailbox::new(Some(m.to_name.clone()), addr);
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .message_id(Some(m.message_id.clone()))
            .header(ContentType::TEXT_PLAIN);
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        let msg = b
            .body(m.body.clone())
            .map_err(|e| (format!("cannot build the message: {e}"), true))?;
        // The whole conversation within twice the timeout (connecting, then
        // the exchange): lettre's timeout covers each read and write, not a
        // TLS connection that the server leaves hanging (seen after a
        // refused login over SMTPS), which would stall the whole outbox.
        let limit = Duration::from_secs(self.config.timeout_secs.saturating_mul(2));
        match tokio::time::timeout(limit, self.transport.send(msg)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err((e.to_string(), e.is_permanent())),
            Err(_) => Err((
                format!(
                    "the SMTP server did not finish the conversation within {} s",
                    limit.as_secs()
                ),
                false,
            )),
        }
    }

    /// The delay before attempt `attempts + 1`, in seconds.
    fn backoff(&self, attempts: u32) -> i64 {
        let base = self.config.retry_base_secs;
        let delay = base.saturating_mul(1u64 << attempts.min(20));
        i64::try_from(delay.min(self.config.retry_max_secs)).unwrap_or(i64::MAX)
    }
}

/// Most messages claimed at once.
const BATCH: u32 = 20;

/// Delivers the outbox and queues the reminders that fall due, until
/// shutdown.
pub async fn run(
    state: AppState,
    mailer: Arc<Mailer>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let poll = Duration::from_secs(mailer.config.poll_secs);
    // A claim lasts longer than one conversation can (connect, then the
    // whole SMTP exchange, each within the timeout).
    let lease = i64::try_from(mailer.config.timeout_secs.saturating_mul(2)).unwrap_or(60) + 5;
    loop {
        if let Err(e) = queue_reminders(&state, &mailer).await {
            tracing::warn!(error = %e, "mail reminders");
        }
        let mut busy = false;
        match state
            .store
            .claim_due_mail(cabinet::now_unix(), lease, BATCH)
            .await
        {
            Ok(due) => {
                busy = due.len() == BATCH as usize;
                for m in due {
                    if *shutdown.borrow() {
                        return;
                    }
                    send_one(&state, &mailer, &m).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "mail outbox"),
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = mailer.wake.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn send_one(state: &AppState, mailer: &Mailer, m: &OutboxMail) {
    // A documents notice lists what changed up to now (it waited so that a
    // series of changes makes one e-mail); the outbox keeps what was sent.
    let recomposed = match m.kind {
        MailKind::DocumentsChanged => match compose_documents_notice(state, m).await {
            Ok(Some(body)) => {
                if let Err(e) = state.store.mail_set_body(&m.id, &body).await {
                    tracing::warn!(mail = %m.id, error = %e, "cannot store a notice's body");
                }
                Some(OutboxMail { body, ..m.clone() })
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(mail = %m.id, error = %e, "cannot list the changed documents");
                None
            }
        },
        _ => None,
    };
    let m = recomposed.as_ref().unwrap_or(m);
    let result = mailer.deliver(m).await;
    let now = cabinet::now_unix();
    let stored = match result {
        Ok(()) => {
            tracing::info!(mail = %m.id, kind = %m.kind, "e-mail sent");
            state.store.mail_sent(&m.id, now).await
        }
        Err((error, permanent)) => {
            let give_up = permanent || m.attempts.saturating_add(1) >= mailer.config.max_attempts;
            let retry = (!give_up).then(|| now.saturating_add(mailer.backoff(m.attempts)));
            tracing::warn!(mail = %m.id, kind = %m.kind, attempts = m.attempts + 1, give_up, error = %error, "e-mail not sent");
            state.store.mail_attempt_failed(&m.id, &error, retry).await
        }
    };
    if let Err(e) = stored {
        tracing::error!(mail = %m.id, error = %e, "cannot record an e-mail attempt");
    }
}

// ------------------------------------------------------------ composing ----

/// Unix seconds as `08:00, thứ Hai, ngày 14/12/2026` in Vietnam's time.
pub fn vn_datetime(at: i64) -> String {
    let offset = time::UtcOffset::from_hms(7, 0, 0).unwrap_or(time::UtcOffset::UTC);
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(at) else {
        return at.to_string();
    };
    let t = t.to_offset(offset);
    let day = match t.weekday() {
        time::Weekday::Monday => "thứ Hai",
        time::Weekday::Tuesday => "thứ Ba",
        time::Weekday::Wednesday => "thứ Tư",
        time::Weekday::Thursday => "thứ Năm",
        time::Weekday::Friday => "thứ Sáu",
        time::Weekday::Saturday => "thứ Bảy",
        time::Weekday::Sunday => "Chủ nhật",
    };
    format!(
        "{:02}:{:02}, {day}, ngày {:02}/{:02}/{:04}",
        t.hour(),
        t.minute(),
        t.day(),
        u8::from(t.month()),
        t.year()
    )
}

/// The lines naming a meeting: title, time, place.
fn meeting_lines(m: &Meeting) -> String {
    let mut s = format!("    {}\n", m.title);
    match m.starts_at {
        Some(at) => {
            s += &format!("    Thời gian: {} (giờ Việt Nam)\n", vn_datetime(at));
            if let Some(end) = m.ends_at {
                s += &format!("    Dự kiến kết thúc: {}\n", vn_datetime(end));
            }
        }
        None => s += "    Thời gian: sẽ thông báo sau\n",
    }
    let place = if m.location.trim().is_empty() {
        "trực tuyến (tại điểm cầu của đơn vị)"
    } else {
        m.location.trim()
    };
    s += &format!("    Địa điểm: {place}\n");
    s
}

fn footer(contact: &str, to: Addressee) -> String {
    let mut s = String::new();
    if !contact.trim().is_empty() {
        s += &format!("Cần hỗ trợ, xin liên hệ: {}\n", contact.trim());
    }
    s += &format!(
        "\nThư này được gửi tự động từ hệ thống họp trực tuyến; đường dẫn trong thư là \
         riêng của {}, xin không chuyển cho người khác.\n",
        to.word()
    );
    s
}

/// Whom a meeting e-mail addresses: a unit ("quý đơn vị") or a person
/// (a member, the chair: "đồng chí").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressee {
    Unit,
    Person,
}

impl Addressee {
    /// A unit's invitation (one for a bridge point, or with role bridge)
    /// or a person's.
    pub fn of(inv: &cabinet::Invitation) -> Addressee {
        if inv.bridge_point_id.is_some() || inv.role == cabinet::Role::Bridge {
            Addressee::Unit
        } else {
            Addressee::Person
        }
    }

    fn word(self) -> &'static str {
        match self {
            Addressee::Unit => "quý đơn vị",
            Addressee::Person => "đồng chí",
        }
    }
}

/// Subject and body of an invitation, a reminder or a documents notice;
/// `changes`: what the notice lists (see [`document_changes`]).
pub fn meeting_mail(
    kind: MailKind,
    m: &Meeting,
    to: Addressee,
    name: &str,
    link: &str,
    contact: &str,
    changes: &[DocumentChange],
) -> (String, String) {
    let when = m.starts_at.map(vn_datetime).unwrap_or_default();
    let who = to.word();
    let (subject, intro) = match kind {
        MailKind::MeetingReminder => (
            format!("Nhắc lịch họp: {} ({when})", m.title),
            format!("Xin nhắc lịch cuộc họp mà {who} được mời tham dự:"),
        ),
        MailKind::DocumentsChanged => (
            format!("Tài liệu họp đã được cập nhật: {}", m.title),
            "Tài liệu của cuộc họp dưới đây đã được bổ sung hoặc thay đổi sau khi gửi giấy \
             mời. Xin xem lại tài liệu trước cuộc họp:"
                .to_owned(),
        ),
        _ => (
            format!("Giấy mời họp: {}", m.title),
            format!("Trân trọng kính mời {who} tham dự cuộc họp:"),
        ),
    };
    let mut listed = String::new();
    if kind == MailKind::DocumentsChanged && !changes.is_empty() {
        listed += "Tài liệu đã thay đổi:\n";
        for c in changes {
            listed += &format!("  - {} ({})\n", c.title, c.describe());
        }
        listed += "\n";
    }
    let body = format!(
        "Kính gửi: {name}\n\n{intro}\n\n{}\n{listed}Đường dẫn tham dự của {name}:\n{link}\n\n\
         Mở đường dẫn bằng trình duyệt (Chrome, Edge, Chromium hoặc Firefox) để xem \
         chương trình và tài liệu, xác nhận tham dự hoặc cử người dự thay, và vào phòng \
         họp khi cuộc họp bắt đầu.\n\n{}",
        meeting_lines(m),
        footer(contact, to)
    );
    (subject, body)
}

// ------------------------------------------------ documents' changes ----

/// How a document changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new document.
    Added,
    /// A new version of a document.
    NewVersion,
    /// A new document in place of a withdrawn one (`replaces_title`).
    Replaced,
    /// Withdrawn (without a replacement).
    Withdrawn,
}

/// One change of a meeting's documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentChange {
    pub document_id: String,
    pub title: String,
    pub change: ChangeKind,
    /// Unix seconds.
    pub at: i64,
    /// For `new_version`: its number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// For `replaced`: the title of the document it replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces_title: Option<String>,
}

impl DocumentChange {
    /// In words, with the time (Vietnam's).
    pub fn describe(&self) -> String {
        let what = match self.change {
            ChangeKind::Added => "bổ sung".to_owned(),
            ChangeKind::NewVersion => {
                format!("cập nhật phiên bản {}", self.version.unwrap_or_default())
            }
            ChangeKind::Replaced => match &self.replaces_title {
                Some(old) => format!("thay thế tài liệu \u{201c}{old}\u{201d}"),
                None => "thay thế".to_owned(),
            },
            ChangeKind::Withdrawn => "đã rút".to_owned(),
        };
        format!("{what}, lúc {}", vn_datetime(self.at))
    }
}

/// The changes of `docs` (one meeting's) after `since` until `until`
/// (Unix seconds; `since` excluded, `until` included), of the documents
/// `visible` lets through, oldest first: documents added (or replacing another), new versions,
/// documents withdrawn without a replacement.
pub fn document_changes(
    docs: &[cabinet::Document],
    since: i64,
    until: i64,
    visible: impl Fn(&cabinet::Document) -> bool,
) -> Vec<DocumentChange> {
    let within = |at: i64| since < at && at <= until;
    let mut out = Vec::new();
    for d in docs.iter().filter(|d| visible(d)) {
        let change = |change, at, version| DocumentChange {
            document_id: d.id.clone(),
            title: d.title.clone(),
            change,
            at,
            version,
            replaces_title: None,
        };
        let created = within(d.created_at);
        if created {
            let mut c = change(ChangeKind::Added, d.created_at, None);
            if let Some(old) = &d.replaces {
                c.change = ChangeKind::Replaced;
                c.replaces_title = docs.iter().find(|o| &o.id == old).map(|o| o.title.clone());
            }
            out.push(c);
        }
        for v in &d.versions {
            if v.version > 1 && within(v.uploaded_at) {
                out.push(change(
                    ChangeKind::NewVersion,
                    v.uploaded_at,
                    Some(v.version),
                ));
            }
        }
        if let Some(at) = d.withdrawn_at.filter(|at| within(*at)) {
            // A replacement says it itself.
            if d.replaced_by.is_none() {
                out.push(change(ChangeKind::Withdrawn, at, None));
            }
        }
    }
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.title.cmp(&b.title)));
    out
}

/// Every document of meeting `meeting_id`, item by item.
pub async fn meeting_documents(
    state: &AppState,
    meeting_id: &str,
) -> cabinet::Result<Vec<cabinet::Document>> {
    let mut docs = Vec::new();
    for item in state.store.list_agenda(meeting_id).await? {
        docs.extend(state.store.list_documents(&item.id).await?);
    }
    Ok(docs)
}

/// The invitee of `inv` as a caller (for what it may read).
async fn as_invitee(
    state: &AppState,
    meeting: &Meeting,
    inv: &cabinet::Invitation,
) -> cabinet::Result<crate::api::Caller> {
    let participant_role = match &inv.participant_id {
        Some(pid) => state.store.get_participant(pid).await?.map(|p| p.role),
        None => None,
    };
    Ok(crate::api::Caller::Invitee {
        invitation: Box::new(inv.clone()),
        meeting: Box::new(meeting.clone()),
        participant_role,
    })
}

/// When the invitation was sent: its e-mail's queuing, else, once the
/// meeting's invitations went out (it was scheduled), the later of the
/// scheduling (from the audit log) and the invitation's making. `None`:
/// not sent yet.
pub async fn invited_at(
    state: &AppState,
    meeting: &Meeting,
    inv: &cabinet::Invitation,
) -> cabinet::Result<Option<i64>> {
    if let Some(m) = state
        .store
        .mail_by_key(&format!("invitation:{}", inv.id))
        .await?
    {
        return Ok(Some(m.created_at));
    }
    if !invitations_sent(meeting) {
        return Ok(None);
    }
    let scheduled = state
        .store
        .audit_of("meeting", &meeting.id)
        .await?
        .into_iter()
        .filter(|e| e.action == "meeting.status" && e.detail["to"] == "scheduled")
        .map(|e| e.at)
        .next_back()
        .unwrap_or(meeting.updated_at);
    Ok(Some(scheduled.max(inv.created_at)))
}

/// The documents notice `m` as it is sent now: the changes since the
/// invitation (or the previous notice to the same invitation) that its
/// invitee may read.
async fn compose_documents_notice(
    state: &AppState,
    m: &OutboxMail,
) -> cabinet::Result<Option<String>> {
    let (Some(mid), Some(target)) = (&m.meeting_id, &m.target_id) else {
        return Ok(None);
    };
    let (Some(meeting), Some(inv)) = (
        state.store.get_meeting(mid).await?,
        state.store.get_invitation(target).await?,
    ) else {
        return Ok(None);
    };
    let mut since = invited_at(state, &meeting, &inv)
        .await?
        .unwrap_or(inv.created_at);
    for earlier in state.store.mail_of_meeting(mid).await? {
        if earlier.id != m.id
            && earlier.kind == MailKind::DocumentsChanged
            && earlier.target_id.as_deref() == Some(target.as_str())
        {
            if let Some(at) = earlier.sent_at {
                since = since.max(at);
            }
        }
    }
    let caller = as_invitee(state, &meeting, &inv).await?;
    let docs = meeting_documents(state, mid).await?;
    let changes = document_changes(&docs, since, cabinet::now_unix(), |d| {
        caller.may_read_document(d)
    });
    let (_, body) = meeting_mail(
        MailKind::DocumentsChanged,
        &meeting,
        Addressee::of(&inv),
        &m.to_name,
        &m.link,
        &state.api.contact,
        &changes,
    );
    Ok(Some(body))
}

/// Subject and body of a written opinion request or its reminder.
pub fn opinion_mail(
    req: &OpinionRequest,
    name: &str,
    link: &str,
    reminder: Option<&str>,
    contact: &str,
) -> (String, String) {
    let subject = match reminder {
        Some(_) => format!("Nhắc trả lời phiếu lấy ý kiến: {}", req.title),
        None => format!("Phiếu lấy ý kiến: {}", req.title),
    };
    let mut body = format!("Kính gửi: {name}\n\n");
    match reminder {
        Some(message) => {
            body += "Văn phòng xin nhắc đồng chí trả lời phiếu lấy ý kiến dưới đây trước hạn.\n";
            if !message.trim().is_empty() {
                body += &format!("Lời nhắn: {}\n", message.trim());
            }
        }
        None => body += "Văn phòng xin ý kiến của đồng chí về nội dung dưới đây.\n",
    }
    body += &format!(
        "\n    {}\n\n{}\n\nHạn trả lời: {} (giờ Việt Nam)\n\n\
         Xem tài liệu và trả lời (đồng ý, không đồng ý hoặc ý kiến khác) tại đường dẫn \
         riêng của đồng chí:\n{link}\n\n{}",
        req.title,
        req.question,
        vn_datetime(req.deadline),
        footer(contact, Addressee::Person)
    );
    (subject, body)
}

// -------------------------------------------------------------- queuing ----

/// The link of invitation `inv`: the one its earlier e-mail carried, else
/// a new one on `base`.
async fn invitation_link(
    state: &AppState,
    inv: &cabinet::Invitation,
    base: &str,
) -> cabinet::Result<Option<String>> {
    if let Some(m) = state
        .store
        .mail_by_key(&format!("invitation:{}", inv.id))
        .await?
    {
        if !m.link.is_empty() {
            return Ok(Some(m.link));
        }
    }
    match state.keys.sign(&crate::auth::claims_for(inv)) {
        Ok(token) => Ok(Some(format!("{base}/join#{token}"))),
        Err(e) => {
            tracing::error!(error = %e, "cannot sign an invitation token");
            Ok(None)
        }
    }
}

/// Queues `kind` for every active invitation of `meeting` whose unit has
/// an e-mail address, under `key(invitation id)` (`None`: skipped);
/// returns how many were queued.
async fn queue_for_meeting(
    state: &AppState,
    mailer: &Mailer,
    meeting: &Meeting,
    kind: MailKind,
    base: &str,
    not_before: i64,
    key: impl Fn(&str) -> Option<String>,
) -> cabinet::Result<usize> {
    let mut mails = Vec::new();
    for mi in state.store.mailable_invitations(&meeting.id).await? {
        if mi.email.is_empty() {
            continue;
        }
        let inv = &mi.invitation;
        let Some(dedupe_key) = key(&inv.id) else {
            continue;
        };
        let Some(link) = invitation_link(state, inv, base).await? else {
            continue;
        };
        let (subject, body) = meeting_mail(
            kind,
            meeting,
            Addressee::of(inv),
            &inv.name,
            &link,
            &state.api.contact,
            &[],
        );
        mails.push(NewMail {
            dedupe_key,
            kind,
            meeting_id: Some(meeting.id.clone()),
            opinion_request_id: None,
            target_id: Some(inv.id.clone()),
            to_name: inv.name.clone(),
            to_addr: mi.email.clone(),
            subject,
            body,
            link,
            not_before,
        });
    }
    let n = state.store.enqueue_mail(&mails, &mailer.domain).await?;
    if n > 0 {
        mailer.wake();
    }
    Ok(n)
}

/// Whether a meeting's invitations have been sent: it is scheduled or
/// under way.
pub fn invitations_sent(m: &Meeting) -> bool {
    matches!(
        m.status,
        MeetingStatus::Scheduled | MeetingStatus::InProgress
    )
}

/// Queues the invitation e-mail of every active invitation of `meeting`
/// (scheduled or under way) that has an address and none yet; links on
/// `base` (the secretary's address, see `crate::links`). Returns how many
/// were queued; 0 when e-mail is off.
pub async fn send_invitations(state: &AppState, meeting: &Meeting, base: Option<&str>) -> usize {
    let Some(mailer) = state.api.mail.clone() else {
        return 0;
    };
    if !invitations_sent(meeting) {
        return 0;
    }
    let base = base.unwrap_or(&mailer.default_base).to_owned();
    match queue_for_meeting(
        state,
        &mailer,
        meeting,
        MailKind::Invitation,
        &base,
        0,
        |id| Some(format!("invitation:{id}")),
    )
    .await
    {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(meeting = %meeting.id, error = %e, "cannot queue the invitations' e-mail");
            0
        }
    }
}

/// After a change of meeting `meeting_id`'s documents: when its
/// invitations were sent, a notice to each unit with an address that has
/// none pending yet, after `mail.documents_notice_delay_secs`.
pub async fn documents_changed(state: &AppState, meeting_id: &str) {
    let Some(mailer) = state.api.mail.clone() else {
        return;
    };
    let meeting = match state.store.get_meeting(meeting_id).await {
        Ok(Some(m)) if invitations_sent(&m) => m,
        Ok(_) => return,
        Err(e) => {
            tracing::error!(meeting = %meeting_id, error = %e, "documents notice");
            return;
        }
    };
    let delay = i64::try_from(mailer.config.documents_notice_delay_secs).unwrap_or(0);
    let mut pending = Vec::new();
    match state.store.mailable_invitations(meeting_id).await {
        Ok(list) => {
            for mi in list {
                match state
                    .store
                    .mail_pending_for(MailKind::DocumentsChanged, &mi.invitation.id)
                    .await
                {
                    Ok(true) => pending.push(mi.invitation.id),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "documents notice"),
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "documents notice"),
    }
    let change = uuid::Uuid::now_v7().to_string();
    let base = mailer.default_base.clone();
    let r = queue_for_meeting(
        state,
        &mailer,
        &meeting,
        MailKind::DocumentsChanged,
        &base,
        cabinet::now_unix().saturating_add(delay),
        |id| {
            // One pending already tells of this change.
            (!pending.iter().any(|p| p == id)).then(|| format!("documents_changed:{id}:{change}"))
        },
    )
    .await;
    if let Err(e) = r {
        tracing::error!(meeting = %meeting_id, error = %e, "cannot queue the documents notice");
    }
}

/// The opinion link of recipient `r` of `req`: the one its request e-mail
/// carried, else a new one on `base`.
async fn opinion_link(
    state: &AppState,
    req: &OpinionRequest,
    r: &OpinionRecipient,
    base: &str,
) -> cabinet::Result<Option<String>> {
    if let Some(m) = state
        .store
        .mail_by_key(&format!("opinion:{}", r.id))
        .await?
    {
        if !m.link.is_empty() {
            return Ok(Some(m.link));
        }
    }
    Ok(
        match state
            .keys
            .sign_opinion(&crate::auth::OpinionClaims::for_recipient(req, r))
        {
            Ok(token) => Some(format!("{base}/opinion#{token}")),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign an opinion token");
                None
            }
        },
    )
}

/// Queues opinion e-mails: the request itself (`reminder` None, key
/// `opinion:<recipient>`) or a reminder (key given by `key`).
async fn queue_opinion(
    state: &AppState,
    mailer: &Mailer,
    req: &OpinionRequest,
    recipients: &[&OpinionRecipient],
    base: &str,
    reminder: Option<&str>,
    key: impl Fn(&OpinionRecipient) -> String,
) -> cabinet::Result<usize> {
    let mut mails = Vec::new();
    for r in recipients {
        if r.email.is_empty() {
            continue;
        }
        let Some(link) = opinion_link(state, req, r, base).await? else {
            continue;
        };
        let (subject, body) = opinion_mail(req, &r.name, &link, reminder, &state.api.contact);
        mails.push(NewMail {
            dedupe_key: key(r),
            kind: if reminder.is_some() {
                MailKind::OpinionReminder
            } else {
                MailKind::OpinionRequest
            },
            meeting_id: None,
            opinion_request_id: Some(req.id.clone()),
            target_id: Some(r.id.clone()),
            to_name: r.name.clone(),
            to_addr: r.email.clone(),
            subject,
            body,
            link,
            not_before: 0,
        });
    }
    let n = state.store.enqueue_mail(&mails, &mailer.domain).await?;
    if n > 0 {
        mailer.wake();
    }
    Ok(n)
}

/// After a written opinion request was made: its e-mail to each
/// recipient with an address.
pub async fn opinion_requested(
    state: &AppState,
    req: &OpinionRequest,
    recipients: &[OpinionRecipient],
    base: &str,
) {
    let Some(mailer) = state.api.mail.clone() else {
        return;
    };
    let all: Vec<&OpinionRecipient> = recipients.iter().collect();
    if let Err(e) = queue_opinion(state, &mailer, req, &all, base, None, |r| {
        format!("opinion:{}", r.id)
    })
    .await
    {
        tracing::error!(request = %req.id, error = %e, "cannot queue the opinion request's e-mail");
    }
}

/// After the secretariat's reminders: one e-mail per reminder to a
/// recipient with an address.
pub async fn opinion_reminded(
    state: &AppState,
    request_id: &str,
    sent: &[OpinionReminder],
    base: &str,
) {
    let Some(mailer) = state.api.mail.clone() else {
        return;
    };
    let run = async {
        let Some(req) = state.store.get_opinion_request(request_id).await? else {
            return Ok(0);
        };
        let recipients = state.store.opinion_recipients(request_id).await?;
        let mut n = 0;
        for rem in sent {
            if let Some(r) = recipients.iter().find(|r| r.id == rem.recipient_id) {
                n += queue_opinion(state, &mailer, &req, &[r], base, Some(&rem.message), |_| {
                    format!("opinion_reminder:{}", rem.id)
                })
                .await?;
            }
        }
        cabinet::Result::Ok(n)
    };
    if let Err(e) = run.await {
        tracing::error!(request = %request_id, error = %e, "cannot queue the reminders' e-mail");
    }
}

/// Queues the reminders that fell due: before a scheduled meeting (once
/// per invitation whose invitation e-mail was queued; a meeting scheduled
/// within the reminder's time gets it right away) and before an opinion
/// request's deadline (once per recipient who has not answered, unless the
/// request itself was made within that time).
async fn queue_reminders(state: &AppState, mailer: &Mailer) -> cabinet::Result<()> {
    let now = cabinet::now_unix();
    let hours = i64::from(mailer.config.meeting_reminder_hours);
    if hours > 0 {
        for m in state
            .store
            .meetings_starting_within(now, hours * 3600)
            .await?
        {
            // The units whose invitation e-mail was queued; once each.
            let invited: Vec<String> = state
                .store
                .mail_of_meeting(&m.id)
                .await?
                .into_iter()
                .filter(|x| x.kind == MailKind::Invitation)
                .filter_map(|x| x.target_id)
                .collect();
            if invited.is_empty() {
                continue;
            }
            let base = mailer.default_base.clone();
            queue_for_meeting(
                state,
                mailer,
                &m,
                MailKind::MeetingReminder,
                &base,
                0,
                |id| {
                    invited
                        .iter()
                        .any(|s| s == id)
                        .then(|| format!("meeting_reminder:{id}"))
                },
            )
            .await?;
        }
    }
    let hours = i64::from(mailer.config.opinion_reminder_hours);
    if hours > 0 {
        for req in state.store.opinions_due_within(now, hours * 3600).await? {
            let due_from = req.deadline - hours * 3600;
            if req.created_at >= due_from {
                // Asked within the reminder's window: the request is the
                // reminder.
                continue;
            }
            let recipients = state.store.opinion_recipients(&req.id).await?;
            let waiting: Vec<&OpinionRecipient> =
                recipients.iter().filter(|r| r.answer.is_none()).collect();
            let base = mailer.default_base.clone();
            let message = "Phiếu sắp hết hạn trả lời.";
            queue_opinion(state, mailer, &req, &waiting, &base, Some(message), |r| {
                format!("opinion_deadline:{}", r.id)
            })
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> MailConfig {
        MailConfig {
            host: Some("mail.tinh.gov.vn".into()),
            from: "Văn phòng UBND tỉnh <hop@tinh.gov.vn>".into(),
            ..MailConfig::default()
        }
    }

    #[test]
    fn settings() {
        assert!(MailConfig::default().validate().is_ok());
        assert!(on().validate().is_ok());
        let mut c = on();
        for (k, v) in [
            ("security", "tls"),
            ("user", "hop"),
            ("password", "bí mật "),
            ("reply_to", "vanphong@tinh.gov.vn"),
            ("meeting_reminder_hours", "48"),
        ] {
            c.apply_env(k, v).expect(k);
        }
        assert_eq!(c.security, MailSecurity::Tls);
        assert_eq!(c.effective_port(), 465);
        assert_eq!(c.password.as_deref(), Some("bí mật "));
        assert!(c.validate().is_ok());
        assert!(!format!("{c:?}").contains("bí mật"));
        assert!(c.apply_env("security", "ssl").is_err());
        assert!(c.apply_env("nope", "1").is_err());
        for bad in [
            MailConfig {
                from: String::new(),
                ..on()
            },
            MailConfig {
                from: "not an address".into(),
                ..on()
            },
            MailConfig {
                reply_to: "x@".into(),
                ..on()
            },
            MailConfig {
                password: Some("p".into()),
                ..on()
            },
            MailConfig {
                retry_base_secs: 10,
                retry_max_secs: 5,
                ..on()
            },
            MailConfig {
                host: Some("smtp server".into()),
                ..on()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert_eq!(on().effective_port(), 587);
    }

    #[test]
    fn texts() {
        // 2026-12-14 01:00 UTC is 08:00 on Monday in Vietnam.
        assert_eq!(
            vn_datetime(1_797_210_000),
            "08:00, thứ Hai, ngày 14/12/2026"
        );
        let m = Meeting {
            id: "m".into(),
            title: "Giao ban tháng 12".into(),
            kind: cabinet::MeetingKind::Regular,
            status: MeetingStatus::Scheduled,
            starts_at: Some(1_797_210_000),
            ends_at: None,
            location: String::new(),
            chair_participant_id: None,
            created_at: 0,
            updated_at: 0,
            join_muted: None,
        };
        let (s, b) = meeting_mail(
            MailKind::Invitation,
            &m,
            Addressee::Unit,
            "UBND xã Ea Tiêu",
            "https://hop/join#t",
            "0221 3 123 456",
            &[],
        );
        assert_eq!(s, "Giấy mời họp: Giao ban tháng 12");
        assert!(b.starts_with("Kính gửi: UBND xã Ea Tiêu\n"));
        assert!(b.contains("https://hop/join#t"));
        assert!(b.contains("Thời gian: 08:00, thứ Hai, ngày 14/12/2026"));
        assert!(b.contains("Cần hỗ trợ, xin liên hệ: 0221 3 123 456"));
        assert!(b.contains("kính mời quý đơn vị tham dự"));
        let (s, b) = meeting_mail(
            MailKind::MeetingReminder,
            &m,
            Addressee::Person,
            "X",
            "l",
            "",
            &[],
        );
        assert!(s.starts_with("Nhắc lịch họp: Giao ban tháng 12"));
        assert!(b.contains("mà đồng chí được mời") && !b.contains("quý đơn vị"));
    }

    fn doc(id: &str, title: &str, created_at: i64) -> cabinet::Document {
        cabinet::Document {
            id: id.into(),
            meeting_id: "m".into(),
            agenda_item_id: "i".into(),
            title: title.into(),
            access: cabinet::DocumentAccess::Everyone,
            participant_ids: Vec::new(),
            current_version: 1,
            versions: vec![version(1, created_at)],
            created_at,
            updated_at: created_at,
            withdrawn_at: None,
            withdrawn_by: None,
            withdrawn_reason: None,
            replaced_by: None,
            replaces: None,
        }
    }

    fn version(n: i64, at: i64) -> cabinet::DocumentVersion {
        cabinet::DocumentVersion {
            version: n,
            sha256: String::new(),
            size: 1,
            filename: "a.pdf".into(),
            content_type: "application/pdf".into(),
            file_type: None,
            uploaded_by: "t".into(),
            uploaded_at: at,
            signature_report: serde_json::json!({}),
        }
    }

    #[test]
    fn changes_of_documents() {
        // Before the invitation (100): not a change.
        let old = doc("a", "Báo cáo cũ", 50);
        // Versioned after it.
        let mut versioned = doc("b", "Dự thảo nghị quyết", 60);
        versioned.versions.push(version(2, 150));
        versioned.current_version = 2;
        // Replaced after it by "d".
        let mut replaced = doc("c", "Tờ trình số 12", 70);
        replaced.withdrawn_at = Some(160);
        replaced.replaced_by = Some("d".into());
        let mut replacement = doc("d", "Tờ trình số 12 (sửa)", 160);
        replacement.replaces = Some("c".into());
        // Withdrawn after it.
        let mut withdrawn = doc("e", "Phụ lục", 80);
        withdrawn.withdrawn_at = Some(170);
        // Added after it, but not for this invitee.
        let mut hidden = doc("f", "Tài liệu mật", 180);
        hidden.access = cabinet::DocumentAccess::Committee;
        let added = doc("g", "Báo cáo bổ sung", 140);
        let docs = [
            old,
            versioned,
            replaced,
            replacement,
            withdrawn,
            hidden,
            added,
        ];
        let got = document_changes(&docs, 100, 200, |d| {
            d.access == cabinet::DocumentAccess::Everyone
        });
        let seen: Vec<(&str, ChangeKind, i64)> = got
            .iter()
            .map(|c| (c.title.as_str(), c.change, c.at))
            .collect();
        assert_eq!(
            seen,
            [
                ("Báo cáo bổ sung", ChangeKind::Added, 140),
                ("Dự thảo nghị quyết", ChangeKind::NewVersion, 150),
                ("Tờ trình số 12 (sửa)", ChangeKind::Replaced, 160),
                ("Phụ lục", ChangeKind::Withdrawn, 170),
            ]
        );
        assert_eq!(got[2].replaces_title.as_deref(), Some("Tờ trình số 12"));
        assert!(got[1].describe().starts_with("cập nhật phiên bản 2, lúc "));
        // Only what changed after a later notice.
        assert_eq!(document_changes(&docs, 165, 200, |_| true).len(), 2);
        let m = Meeting {
            id: "m".into(),
            title: "Giao ban".into(),
            kind: cabinet::MeetingKind::Regular,
            status: MeetingStatus::Scheduled,
            starts_at: None,
            ends_at: None,
            location: String::new(),
            chair_participant_id: None,
            created_at: 0,
            updated_at: 0,
            join_muted: None,
        };
        let (_, b) = meeting_mail(
            MailKind::DocumentsChanged,
            &m,
            Addressee::Unit,
            "X",
            "l",
            "",
            &got,
        );
        assert!(b.contains("  - Phụ lục (đã rút, lúc "), "{b}");
        assert!(
            b.contains(
                "  - Tờ trình số 12 (sửa) (thay thế tài liệu \u{201c}Tờ trình số 12\u{201d}, lúc "
            ),
            "{b}"
        );
    }
}
