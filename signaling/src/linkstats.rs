//! The bridge points' links as their clients report them (issue 23): the
//! latest `link_report` of each invitation in a meeting, a short history,
//! whether it is connected and since when, and the alerts of the
//! operator's dashboard (a point drops, degrades, sends silence or a
//! frozen picture, receives frozen pictures, or says it sends media the
//! server does not get).
//!
//! Beside the clients' reports, the media server's own figures of each
//! point ([`LinkStats::server_figures`], from
//! [`sfu::Sfu::participant_figures`] whenever the dashboard reads): rates
//! and loss between two readings, round-trip time, NACKs, keyframe
//! requests, layers, path. They tell a point whose client stopped
//! reporting while its media still flows (`stale`, `media_flowing`) from
//! one whose client reports sending while the server receives nothing
//! (`no_media`).
//!
//! Reports are telemetry, not the meeting's control state: they live here
//! under their own lock (one short critical section per report, never an
//! await), apart from the hub's live state, so 150 points reporting every
//! few seconds never contend with the chair's actions. Who is connected is
//! the hub's to say: [`LinkStats::sync`] reconciles with the hub's roster
//! whenever the dashboard or `/metrics` reads (a point that left is
//! `disconnected` from then, with a `dropped` alert).
//!
//! Everything is in memory and bounded: per meeting at most
//! [`MAX_POINTS`] points, each with at most the history window of samples
//! (one per [`MIN_SAMPLE_GAP_SECS`] at most), and [`MAX_ALERTS`] alerts; a
//! meeting nobody reported to for the history window is forgotten.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

use cabinet::LinkPath;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::{ErrorCode, Fail};

/// Points kept per meeting at most (invitations reporting).
pub const MAX_POINTS: usize = 5_000;
/// Alerts kept per meeting (the newest).
pub const MAX_ALERTS: usize = 500;
/// Two samples of the history are at least this far apart (a closer report
/// replaces the last sample).
pub const MIN_SAMPLE_GAP_SECS: i64 = 2;
/// Longest `browser` of a report, in characters.
pub const MAX_BROWSER_CHARS: usize = 80;

/// The dashboard's thresholds (`[signaling]` `link_*` settings).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSettings {
    /// Packet loss at or above this percentage degrades a point.
    pub loss_alert_percent: f64,
    /// Round-trip time at or above this degrades a point (milliseconds).
    pub rtt_alert_ms: u32,
    /// Jitter at or above this degrades a point (milliseconds).
    pub jitter_alert_ms: u32,
    /// An unmuted microphone below [`LinkSettings::silence_level`] this
    /// long is `silent`.
    pub silence_alert_secs: i64,
    /// Audio level (0 to 1) under which a microphone counts as silent.
    pub silence_level: f64,
    /// A camera sending no frames this long is `frozen`.
    pub frozen_alert_secs: i64,
    /// Videos it receives freezing in every report this long is `frozen`
    /// too (a `frozen_in` alert).
    pub frozen_in_alert_secs: i64,
    /// A client reporting that it sends media while the server receives
    /// none of it this long is `no_media`.
    pub no_media_alert_secs: i64,
    /// A connected point without a report this long is `stale`.
    pub stale_secs: i64,
    /// How much history is kept per point (seconds).
    pub history_secs: i64,
    /// A pre-meeting check is ready only under this round-trip time (ms).
    pub check_max_rtt_ms: u32,
    /// ... and with at least this much bandwidth down and up (kbit/s).
    pub check_min_down_kbps: u32,
    pub check_min_up_kbps: u32,
}

impl Default for LinkSettings {
    fn default() -> Self {
        LinkSettings {
            loss_alert_percent: 5.0,
            rtt_alert_ms: 400,
            jitter_alert_ms: 60,
            silence_alert_secs: 30,
            silence_level: 0.01,
            frozen_alert_secs: 10,
            frozen_in_alert_secs: 10,
            no_media_alert_secs: 10,
            stale_secs: 20,
            history_secs: 300,
            check_max_rtt_ms: 400,
            check_min_down_kbps: 1000,
            check_min_up_kbps: 500,
        }
    }
}

/// A client's report of its link (the checked body of `link_report`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LinkReport {
    /// How its media connection reaches the server (the selected ICE
    /// candidate pair): `udp`, `tcp` or `relay`.
    pub path: Option<LinkPath>,
    /// Media received and sent, kbit/s.
    pub bitrate_in_kbps: Option<u32>,
    pub bitrate_out_kbps: Option<u32>,
    /// Packets lost of what it receives, and of what it sends (as the
    /// server's receiver reports say), in percent.
    pub loss_in_percent: Option<f64>,
    pub loss_out_percent: Option<f64>,
    pub rtt_ms: Option<u32>,
    pub jitter_ms: Option<u32>,
    /// Its microphone's level, 0 to 1 (None: it sends no audio).
    pub audio_level: Option<f64>,
    /// Frames per second of its camera as sent (None: it sends no video).
    pub fps_out: Option<f64>,
    /// Height of the picture it sends (the top simulcast layer), pixels.
    pub video_height_out: Option<u32>,
    /// Height of the main picture it receives (the layer the server
    /// forwards it), pixels.
    pub video_height_in: Option<u32>,
    /// Received videos that stopped moving.
    pub frozen_in: Option<u32>,
    /// Browser name and major version.
    pub browser: Option<String>,
}

impl LinkReport {
    /// The worse of the two losses.
    pub fn loss(&self) -> Option<f64> {
        match (self.loss_in_percent, self.loss_out_percent) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The body of `link_report` as it came (docs/protocol.md, "Link
/// reports"): every figure optional; [`LinkReportReq::checked`] bounds them.
#[derive(Debug, Deserialize)]
pub struct LinkReportReq {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub bitrate_in_kbps: Option<f64>,
    #[serde(default)]
    pub bitrate_out_kbps: Option<f64>,
    #[serde(default)]
    pub loss_in_percent: Option<f64>,
    #[serde(default)]
    pub loss_out_percent: Option<f64>,
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    #[serde(default)]
    pub jitter_ms: Option<f64>,
    #[serde(default)]
    pub audio_level: Option<f64>,
    #[serde(default)]
    pub fps_out: Option<f64>,
    #[serde(default)]
    pub video_height_out: Option<f64>,
    #[serde(default)]
    pub video_height_in: Option<f64>,
    #[serde(default)]
    pub frozen_in: Option<f64>,
    #[serde(default)]
    pub browser: Option<String>,
}

/// Largest bitrate a report may carry, kbit/s.
pub const MAX_KBPS: f64 = 1_000_000.0;
/// Largest round-trip time or jitter a report may carry, milliseconds.
pub const MAX_MS: f64 = 60_000.0;
/// Largest frame rate, height and count of frozen videos of a report.
pub const MAX_FPS: f64 = 240.0;
pub const MAX_HEIGHT: f64 = 4320.0;
pub const MAX_FROZEN: f64 = 1000.0;

fn bounded(v: Option<f64>, name: &str, max: f64) -> Result<Option<f64>, Fail> {
    match v {
        Some(x) if !(0.0..=max).contains(&x) => Err(Fail::new(
            ErrorCode::BadRequest,
            format!("{name} must be 0 to {max}"),
        )),
        other => Ok(other),
    }
}

fn whole(v: Option<f64>, name: &str, max: f64) -> Result<Option<u32>, Fail> {
    // In range (checked first), so the cast cannot overflow.
    Ok(bounded(v, name, max)?.map(|x| x.round() as u32))
}

impl LinkReportReq {
    /// The report, or `bad_request` naming the first figure out of range.
    pub fn checked(&self) -> Result<LinkReport, Fail> {
        let path = match self.path.as_deref() {
            None => None,
            Some(p) => match p.parse::<LinkPath>() {
                Ok(LinkPath::None) | Err(()) => {
                    return Err(Fail::new(
                        ErrorCode::BadRequest,
                        "path must be udp, tcp or relay",
                    ))
                }
                Ok(p) => Some(p),
            },
        };
        let browser = match &self.browser {
            Some(b) if b.chars().count() > MAX_BROWSER_CHARS || b.chars().any(char::is_control) => {
                return Err(Fail::new(
                    ErrorCode::BadRequest,
                    format!("browser must be at most {MAX_BROWSER_CHARS} printable characters"),
                ))
            }
            Some(b) => Some(b.trim().to_owned()).filter(|b| !b.is_empty()),
            None => None,
        };
        Ok(LinkReport {
            path,
            bitrate_in_kbps: whole(self.bitrate_in_kbps, "bitrate_in_kbps", MAX_KBPS)?,
            bitrate_out_kbps: whole(self.bitrate_out_kbps, "bitrate_out_kbps", MAX_KBPS)?,
            loss_in_percent: bounded(self.loss_in_percent, "loss_in_percent", 100.0)?,
            loss_out_percent: bounded(self.loss_out_percent, "loss_out_percent", 100.0)?,
            rtt_ms: whole(self.rtt_ms, "rtt_ms", MAX_MS)?,
            jitter_ms: whole(self.jitter_ms, "jitter_ms", MAX_MS)?,
            audio_level: bounded(self.audio_level, "audio_level", 1.0)?,
            fps_out: bounded(self.fps_out, "fps_out", MAX_FPS)?,
            video_height_out: whole(self.video_height_out, "video_height_out", MAX_HEIGHT)?,
            video_height_in: whole(self.video_height_in, "video_height_in", MAX_HEIGHT)?,
            frozen_in: whole(self.frozen_in, "frozen_in", MAX_FROZEN)?,
            browser,
        })
    }
}

/// One sample of a point's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Unix seconds.
    pub at: i64,
    pub loss_percent: Option<f64>,
    pub rtt_ms: Option<u32>,
    pub jitter_ms: Option<u32>,
    pub bitrate_in_kbps: Option<u32>,
    pub bitrate_out_kbps: Option<u32>,
    pub audio_level: Option<f64>,
    pub fps_out: Option<f64>,
}

/// What the dashboard says of a point, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PointState {
    /// It was connected and is not now.
    Disconnected,
    /// Loss, round-trip time or jitter over the thresholds.
    Degraded,
    /// Its client reports sending media; the server receives none.
    NoMedia,
    /// Its camera is on but sends no frames, or videos it receives keep
    /// freezing.
    Frozen,
    /// Its microphone is on but silent.
    Silent,
    /// Connected, but its reports stopped.
    Stale,
    /// Expected, never connected while the server runs.
    Absent,
    /// Connected, nothing wrong.
    Ok,
}

impl PointState {
    pub const ALL: [PointState; 8] = [
        PointState::Disconnected,
        PointState::Degraded,
        PointState::NoMedia,
        PointState::Frozen,
        PointState::Silent,
        PointState::Stale,
        PointState::Absent,
        PointState::Ok,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PointState::Disconnected => "disconnected",
            PointState::Degraded => "degraded",
            PointState::NoMedia => "no_media",
            PointState::Frozen => "frozen",
            PointState::Silent => "silent",
            PointState::Stale => "stale",
            PointState::Absent => "absent",
            PointState::Ok => "ok",
        }
    }
}

/// Why the dashboard raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Dropped,
    Degraded,
    Silent,
    Frozen,
    /// Videos it receives keep freezing.
    FrozenIn,
    /// Its client reports sending media; the server receives none.
    NoMedia,
    /// A degraded, silent, frozen or `no_media` point is fine again, or a
    /// dropped one is back.
    Recovered,
}

impl AlertKind {
    pub const ALL: [AlertKind; 7] = [
        AlertKind::Dropped,
        AlertKind::Degraded,
        AlertKind::Silent,
        AlertKind::Frozen,
        AlertKind::FrozenIn,
        AlertKind::NoMedia,
        AlertKind::Recovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Dropped => "dropped",
            AlertKind::Degraded => "degraded",
            AlertKind::Silent => "silent",
            AlertKind::Frozen => "frozen",
            AlertKind::FrozenIn => "frozen_in",
            AlertKind::NoMedia => "no_media",
            AlertKind::Recovered => "recovered",
        }
    }
}

/// An alert of the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Unix seconds.
    pub at: i64,
    pub invitation_id: String,
    pub kind: AlertKind,
    /// The figures that raised it ("mất gói 10.2 %", ...), for people.
    pub detail: String,
}

/// A live session of an invitation, as the hub's roster has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub invitation_id: String,
    pub participant_id: String,
    /// Unix seconds.
    pub joined_at: i64,
    /// `participant` (WebSocket) or `whip`.
    pub kind: String,
}

impl Connected {
    /// The connected sessions of a meeting from [`crate::hub::Hub::roster`].
    pub fn from_roster(roster: &Value) -> Vec<Connected> {
        roster["participants"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| {
                        Some(Connected {
                            invitation_id: p["invitation_id"].as_str()?.to_owned(),
                            participant_id: p["id"].as_str()?.to_owned(),
                            joined_at: p["joined_at"].as_i64()?,
                            kind: p["kind"].as_str().unwrap_or("participant").to_owned(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One point's link as the server knows it.
#[derive(Debug, Clone, Default)]
struct Point {
    participant_id: String,
    /// How it is connected (`participant`, `whip`), from the roster.
    kind: String,
    latest: Option<LinkReport>,
    /// Unix seconds of the latest report.
    last_report: Option<i64>,
    history: VecDeque<Sample>,
    connected: bool,
    /// Since when it is connected (or disconnected), Unix seconds.
    since: Option<i64>,
    /// Since when its microphone is silent, its camera frozen, videos it
    /// receives freeze.
    silent_since: Option<i64>,
    frozen_since: Option<i64>,
    frozen_in_since: Option<i64>,
    /// Alerts standing (raised, not recovered), so each is raised once.
    degraded: bool,
    silent: bool,
    frozen: bool,
    frozen_in: bool,
    no_media: bool,
    /// The media server's figures of its current session.
    server: Option<ServerLink>,
}

impl Point {
    /// Whether an alert stands (a `recovered` follows when none does).
    fn bad(&self) -> bool {
        self.degraded || self.silent || self.frozen || self.frozen_in || self.no_media
    }

    /// A new session, or none: the states of the last one are forgotten.
    fn restart(&mut self) {
        self.silent_since = None;
        self.frozen_since = None;
        self.frozen_in_since = None;
        self.server = None;
    }
}

/// Media received this recently counts as flowing.
pub const MEDIA_FLOWING_SECS: u64 = 5;
/// Two readings of the server's figures at least this far apart make a
/// rate (a closer reading updates only the cumulative figures).
const MIN_RATE_GAP_MS: i64 = 1_000;
/// Reports at or above this bitrate out say the client sends media.
const SENDING_KBPS: u32 = 8;

/// The media server's figures of a point, as the dashboard shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerView {
    /// What the server received from it and sent to it, kbit/s (RTP
    /// payload), over the interval between two readings.
    pub received_kbps: Option<u32>,
    pub sent_kbps: Option<u32>,
    /// Sequence numbers missing of what it sends, percent, over the
    /// interval (before retransmissions repaired them).
    pub loss_in_percent: Option<f64>,
    /// Its latest receiver report's loss of what it receives, percent.
    pub loss_out_percent: Option<f64>,
    pub rtt_ms: Option<u32>,
    /// Packets received from it and sent to it since it connected.
    pub packets_in: u64,
    pub packets_out: u64,
    /// NACKs and keyframe requests it sent; keyframes asked of it.
    pub nacks: u64,
    pub keyframe_requests: u64,
    pub keyframes_asked: u64,
    /// Seconds since its last media packet came (None: none yet).
    pub last_media_secs: Option<u64>,
    /// Its last media came within [`MEDIA_FLOWING_SECS`].
    pub media_flowing: bool,
    /// The layer of each video it receives now, best first.
    pub layers: Vec<String>,
    /// `udp` or `tcp`, as the server sees it.
    pub path: Option<String>,
}

/// The server's figures of a point: the last reading, for rates.
#[derive(Debug, Clone)]
struct ServerLink {
    /// Milliseconds (Unix) of the reading the rates start from.
    at_ms: i64,
    bytes_in: u64,
    bytes_out: u64,
    packets_in: u64,
    lost_in: u64,
    view: ServerView,
}

#[derive(Debug, Default)]
struct MeetingLinks {
    points: HashMap<String, Point>,
    alerts: VecDeque<Alert>,
    /// Alerts raised since the server started, by kind (for `/metrics`).
    alert_counts: HashMap<AlertKind, u64>,
    /// Unix seconds of the latest report or connected session.
    last_activity: i64,
}

impl MeetingLinks {
    fn alert(&mut self, at: i64, invitation_id: &str, kind: AlertKind, detail: String) {
        *self.alert_counts.entry(kind).or_default() += 1;
        self.alerts.push_back(Alert {
            at,
            invitation_id: invitation_id.to_owned(),
            kind,
            detail,
        });
        while self.alerts.len() > MAX_ALERTS {
            self.alerts.pop_front();
        }
    }
}

/// The state of a point now, and the figures of its problems.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointView {
    pub state: PointState,
    pub connected: bool,
    /// How it is connected now (`participant`, `whip`), if it is.
    pub kind: Option<String>,
    pub participant_id: Option<String>,
    /// Connected (or disconnected) since, Unix seconds.
    pub since: Option<i64>,
    /// The latest report's time, Unix seconds.
    pub last_seen: Option<i64>,
    pub report: Option<LinkReport>,
    /// The media server's own figures (None: not in the media plane).
    pub server: Option<ServerView>,
}

/// Every meeting's links. Cheap to share (`Arc`).
#[derive(Debug, Default)]
pub struct LinkStats {
    settings: LinkSettings,
    meetings: Mutex<HashMap<String, MeetingLinks>>,
}

/// What [`LinkStats::report`] needs of the hub: whether the sender's
/// microphone and camera are on (muted or blocked ones are neither silent
/// nor frozen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaOn {
    pub audio: bool,
    pub video: bool,
}

impl LinkStats {
    pub fn new(settings: LinkSettings) -> LinkStats {
        LinkStats {
            settings,
            meetings: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &LinkSettings {
        &self.settings
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, MeetingLinks>> {
        // Every change is a few field writes: a panic cannot leave it torn.
        self.meetings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a report's figures degrade the link, and how.
    fn degradation(&self, r: &LinkReport) -> Option<String> {
        let s = &self.settings;
        let mut why = Vec::new();
        if let Some(l) = r.loss().filter(|l| *l >= s.loss_alert_percent) {
            why.push(format!("loss {l:.1} %"));
        }
        if let Some(rtt) = r.rtt_ms.filter(|v| *v >= s.rtt_alert_ms) {
            why.push(format!("rtt {rtt} ms"));
        }
        if let Some(j) = r.jitter_ms.filter(|v| *v >= s.jitter_alert_ms) {
            why.push(format!("jitter {j} ms"));
        }
        (!why.is_empty()).then(|| why.join(", "))
    }

    /// Takes a point's report (at `now`, Unix seconds): the latest, a sample
    /// of the history, and the alerts it raises or clears. A meeting with
    /// [`MAX_POINTS`] points takes no new one.
    pub fn report(
        &self,
        meeting_id: &str,
        invitation_id: &str,
        participant_id: &str,
        report: LinkReport,
        media: MediaOn,
        now: i64,
    ) {
        let degraded = self.degradation(&report);
        let s = &self.settings;
        let mut all = self.lock();
        let m = all.entry(meeting_id.to_owned()).or_default();
        if !m.points.contains_key(invitation_id) && m.points.len() >= MAX_POINTS {
            return;
        }
        m.last_activity = now;
        let p = m.points.entry(invitation_id.to_owned()).or_default();
        if p.participant_id != participant_id {
            // A new session of the invitation: its states start afresh.
            p.participant_id = participant_id.to_owned();
            p.restart();
        }
        if !p.connected {
            p.connected = true;
            p.since = Some(now);
        }
        let sample = Sample {
            at: now,
            loss_percent: report.loss(),
            rtt_ms: report.rtt_ms,
            jitter_ms: report.jitter_ms,
            bitrate_in_kbps: report.bitrate_in_kbps,
            bitrate_out_kbps: report.bitrate_out_kbps,
            audio_level: report.audio_level,
            fps_out: report.fps_out,
        };
        match p.history.back_mut() {
            Some(last) if now - last.at < MIN_SAMPLE_GAP_SECS => *last = sample,
            _ => p.history.push_back(sample),
        }
        while p
            .history
            .front()
            .is_some_and(|f| f.at < now - s.history_secs)
        {
            p.history.pop_front();
        }
        // Silence and a frozen picture count only for media that is on.
        let quiet = media.audio && report.audio_level.is_some_and(|l| l < s.silence_level);
        p.silent_since = if quiet {
            p.silent_since.or(Some(now))
        } else {
            None
        };
        let still = media.video && report.fps_out.is_some_and(|f| f < 0.5);
        p.frozen_since = if still {
            p.frozen_since.or(Some(now))
        } else {
            None
        };
        // Received videos count while every report says some froze.
        p.frozen_in_since = if report.frozen_in.is_some_and(|n| n > 0) {
            p.frozen_in_since.or(Some(now))
        } else {
            None
        };
        let silent = p
            .silent_since
            .is_some_and(|t| now - t >= s.silence_alert_secs);
        let frozen = p
            .frozen_since
            .is_some_and(|t| now - t >= s.frozen_alert_secs);
        let frozen_in = p
            .frozen_in_since
            .is_some_and(|t| now - t >= s.frozen_in_alert_secs);
        let frozen_count = report.frozen_in.unwrap_or(0);
        p.latest = Some(report);
        p.last_report = Some(now);
        let mut raised: Vec<(AlertKind, String)> = Vec::new();
        let was_bad = p.bad();
        if let Some(why) = &degraded {
            if !p.degraded {
                raised.push((AlertKind::Degraded, why.clone()));
            }
        }
        if silent && !p.silent {
            raised.push((
                AlertKind::Silent,
                format!("no sound for {} s", now - p.silent_since.unwrap_or(now)),
            ));
        }
        if frozen && !p.frozen {
            raised.push((
                AlertKind::Frozen,
                format!("no frames for {} s", now - p.frozen_since.unwrap_or(now)),
            ));
        }
        if frozen_in && !p.frozen_in {
            raised.push((
                AlertKind::FrozenIn,
                format!(
                    "received videos freezing for {} s ({frozen_count} in the last report)",
                    now - p.frozen_in_since.unwrap_or(now)
                ),
            ));
        }
        p.degraded = degraded.is_some();
        p.silent = silent;
        p.frozen = frozen;
        p.frozen_in = frozen_in;
        if was_bad && !p.bad() {
            raised.push((AlertKind::Recovered, String::new()));
        }
        for (kind, detail) in raised {
            m.alert(now, invitation_id, kind, detail);
        }
    }

    /// Reconciles a meeting with the hub's connected sessions at `now`:
    /// those connected are (since they joined); a point connected before
    /// and gone now is disconnected from now, with a `dropped` alert.
    pub fn sync(&self, meeting_id: &str, connected: &[Connected], now: i64) {
        let mut all = self.lock();
        if connected.is_empty() && !all.contains_key(meeting_id) {
            return;
        }
        let m = all.entry(meeting_id.to_owned()).or_default();
        let mut seen = std::collections::HashSet::new();
        let mut raised = Vec::new();
        for c in connected {
            if !m.points.contains_key(&c.invitation_id) && m.points.len() >= MAX_POINTS {
                continue;
            }
            seen.insert(c.invitation_id.as_str());
            m.last_activity = now;
            let p = m.points.entry(c.invitation_id.clone()).or_default();
            let back = !p.connected && p.since.is_some();
            if !p.connected || p.participant_id != c.participant_id {
                p.connected = true;
                p.since = Some(c.joined_at);
                if p.participant_id != c.participant_id {
                    p.participant_id = c.participant_id.clone();
                    p.restart();
                }
            }
            p.kind = c.kind.clone();
            if back {
                raised.push((c.invitation_id.clone(), AlertKind::Recovered, String::new()));
            }
        }
        for (inv, p) in &mut m.points {
            if p.connected && !seen.contains(inv.as_str()) {
                p.connected = false;
                p.since = Some(now);
                p.degraded = false;
                p.silent = false;
                p.frozen = false;
                p.frozen_in = false;
                p.no_media = false;
                p.restart();
                let last = p
                    .last_report
                    .map_or_else(String::new, |t| format!("last report {} s ago", now - t));
                raised.push((inv.clone(), AlertKind::Dropped, last));
            }
        }
        for (inv, kind, detail) in raised {
            m.alert(now, &inv, kind, detail);
        }
    }

    /// Takes the media server's figures of a meeting's participants
    /// ([`sfu::Sfu::participant_figures`]) at `now_ms` (Unix
    /// milliseconds): each connected point's, by its session's participant
    /// id. Rates and loss cover the interval since the reading they start
    /// from, at least [`MIN_RATE_GAP_MS`] before (a closer reading updates
    /// the rest). A point whose fresh reports say it sends media (at least
    /// 8 kbit/s out) while the server received none of it for
    /// `no_media_alert_secs` is `no_media`, with an alert; `recovered` when
    /// its media arrives.
    pub fn server_figures(
        &self,
        meeting_id: &str,
        figures: &[sfu::ParticipantFigures],
        now_ms: i64,
    ) {
        let s = &self.settings;
        let now = now_ms.div_euclid(1000);
        let by_pid: HashMap<&str, &sfu::ParticipantFigures> = figures
            .iter()
            .map(|f| (f.participant.as_str(), f))
            .collect();
        let mut all = self.lock();
        let Some(m) = all.get_mut(meeting_id) else {
            return;
        };
        let mut raised = Vec::new();
        for (inv, p) in &mut m.points {
            let Some(f) = by_pid
                .get(p.participant_id.as_str())
                .filter(|_| p.connected)
            else {
                p.server = None;
                continue;
            };
            let fresh = |f: &sfu::ParticipantFigures| ServerLink {
                at_ms: now_ms,
                bytes_in: f.bytes_in,
                bytes_out: f.bytes_out,
                packets_in: f.packets_in,
                lost_in: f.lost_in,
                view: ServerView::default(),
            };
            let link = p.server.get_or_insert_with(|| fresh(f));
            if f.bytes_in < link.bytes_in
                || f.bytes_out < link.bytes_out
                || f.packets_in < link.packets_in
                || f.lost_in < link.lost_in
            {
                // Counters went back: a new connection of the session.
                *link = fresh(f);
            }
            let gap_ms = now_ms - link.at_ms;
            if gap_ms >= MIN_RATE_GAP_MS {
                // Bits per millisecond are kbit/s.
                let kbps = |bytes: u64| {
                    u32::try_from(bytes.saturating_mul(8) / gap_ms.unsigned_abs())
                        .unwrap_or(u32::MAX)
                };
                let got = f.packets_in - link.packets_in;
                let lost = f.lost_in - link.lost_in;
                let v = &mut link.view;
                v.received_kbps = Some(kbps(f.bytes_in - link.bytes_in));
                v.sent_kbps = Some(kbps(f.bytes_out - link.bytes_out));
                v.loss_in_percent = (got + lost > 0)
                    .then(|| (1000.0 * lost as f64 / (got + lost) as f64).round() / 10.0);
                link.at_ms = now_ms;
                link.bytes_in = f.bytes_in;
                link.bytes_out = f.bytes_out;
                link.packets_in = f.packets_in;
                link.lost_in = f.lost_in;
            }
            let v = &mut link.view;
            v.loss_out_percent = f.loss_out.map(|x| (x * 1000.0).round() / 10.0);
            v.rtt_ms = f
                .rtt
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
            v.packets_in = f.packets_in;
            v.packets_out = f.packets_out;
            v.nacks = f.nacks_received;
            v.keyframe_requests = f.keyframe_requests_received;
            v.keyframes_asked = f.keyframes_asked;
            v.last_media_secs = f.last_media_in.map(|d| d.as_secs());
            v.media_flowing = f
                .last_media_in
                .is_some_and(|d| d.as_secs() < MEDIA_FLOWING_SECS);
            v.layers.clone_from(&f.layers);
            v.path = f.path.map(str::to_owned);
            // The client says it sends; has the server got any of it lately?
            let says = p
                .latest
                .as_ref()
                .and_then(|r| r.bitrate_out_kbps)
                .filter(|k| *k >= SENDING_KBPS)
                .filter(|_| p.last_report.is_some_and(|t| now - t < s.stale_secs));
            let unfed_secs = f.last_media_in.map_or_else(
                || now - p.since.unwrap_or(now),
                |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            );
            let no_media = says.is_some() && unfed_secs >= s.no_media_alert_secs;
            let was_bad = p.bad();
            if no_media && !p.no_media {
                raised.push((
                    inv.clone(),
                    AlertKind::NoMedia,
                    format!(
                        "reports {} kbit/s out; the server got no media for {unfed_secs} s",
                        says.unwrap_or(0)
                    ),
                ));
            }
            p.no_media = no_media;
            if was_bad && !p.bad() {
                raised.push((inv.clone(), AlertKind::Recovered, String::new()));
            }
        }
        for (inv, kind, detail) in raised {
            m.alert(now, &inv, kind, detail);
        }
    }

    /// Forgets meetings with nobody connected and no report for the
    /// history window.
    pub fn prune(&self, now: i64) {
        let window = self.settings.history_secs;
        self.lock().retain(|_, m| {
            m.points.values().any(|p| p.connected) || now - m.last_activity <= window
        });
    }

    fn view_of(&self, p: &Point, now: i64) -> PointView {
        // Reports that stopped say nothing of the link now: stale before
        // the figures' verdicts.
        let stale = p.kind != "whip"
            && p.last_report.map_or_else(
                || p.since.is_some_and(|s| now - s >= self.settings.stale_secs),
                |t| now - t >= self.settings.stale_secs,
            );
        let state = if !p.connected {
            PointState::Disconnected
        } else if stale {
            PointState::Stale
        } else if p.degraded {
            PointState::Degraded
        } else if p.no_media {
            PointState::NoMedia
        } else if p.frozen || p.frozen_in {
            PointState::Frozen
        } else if p.silent {
            PointState::Silent
        } else {
            PointState::Ok
        };
        PointView {
            state,
            connected: p.connected,
            kind: p.connected.then(|| p.kind.clone()),
            participant_id: (!p.participant_id.is_empty()).then(|| p.participant_id.clone()),
            since: p.since,
            last_seen: p.last_report,
            report: p.latest.clone(),
            server: p
                .server
                .as_ref()
                .filter(|_| p.connected)
                .map(|l| l.view.clone()),
        }
    }

    /// Each known point of a meeting (by invitation id) as the dashboard
    /// shows it at `now`; the alerts, newest first.
    pub fn snapshot(&self, meeting_id: &str, now: i64) -> (HashMap<String, PointView>, Vec<Alert>) {
        let all = self.lock();
        let Some(m) = all.get(meeting_id) else {
            return (HashMap::new(), Vec::new());
        };
        let points = m
            .points
            .iter()
            .map(|(inv, p)| (inv.clone(), self.view_of(p, now)))
            .collect();
        let alerts = m.alerts.iter().rev().cloned().collect();
        (points, alerts)
    }

    /// A point's history, oldest first.
    pub fn history(&self, meeting_id: &str, invitation_id: &str) -> Vec<Sample> {
        self.lock()
            .get(meeting_id)
            .and_then(|m| m.points.get(invitation_id))
            .map(|p| p.history.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Meetings with links known now.
    pub fn meetings(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The `/metrics` families, per meeting (the meeting id is the only
    /// label besides a fixed set: states, alert kinds, directions,
    /// histogram buckets; never a participant). The server's figures are
    /// those of the latest [`LinkStats::server_figures`].
    pub fn render_metrics(&self, out: &mut String, now: i64) {
        const LOSS_BUCKETS: [f64; 6] = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0];
        const RTT_BUCKETS: [f64; 6] = [50.0, 100.0, 200.0, 400.0, 800.0, 1600.0];
        let all = self.lock();
        let mut ids: Vec<&String> = all.keys().collect();
        ids.sort();
        let _ = writeln!(
            out,
            "# HELP giaoban_link_points Points of a meeting known to the dashboard, by state."
        );
        let _ = writeln!(out, "# TYPE giaoban_link_points gauge");
        for id in &ids {
            let m = &all[*id];
            let mut counts: HashMap<PointState, u64> = HashMap::new();
            for p in m.points.values() {
                *counts.entry(self.view_of(p, now).state).or_default() += 1;
            }
            for st in PointState::ALL {
                if st == PointState::Absent {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "giaoban_link_points{{meeting=\"{id}\",state=\"{}\"}} {}",
                    st.as_str(),
                    counts.get(&st).copied().unwrap_or(0)
                );
            }
        }
        let histogram = |out: &mut String,
                         name: &str,
                         help: &str,
                         buckets: &[f64],
                         value: &dyn Fn(&LinkReport) -> Option<f64>| {
            family(out, name, "histogram", help);
            for id in &ids {
                let values: Vec<f64> = connected(&all[*id])
                    .into_iter()
                    .filter_map(|p| p.latest.as_ref().and_then(value))
                    .collect();
                histogram_series(out, name, &format!("meeting=\"{id}\""), buckets, &values);
            }
        };
        histogram(
            out,
            "giaoban_link_loss_percent",
            "Latest packet loss of the connected points, percent.",
            &LOSS_BUCKETS,
            &|r: &LinkReport| r.loss(),
        );
        histogram(
            out,
            "giaoban_link_rtt_ms",
            "Latest round-trip time of the connected points, milliseconds.",
            &RTT_BUCKETS,
            &|r: &LinkReport| r.rtt_ms.map(f64::from),
        );
        // The media server's own figures (labels: meeting, direction).
        family(
            out,
            "giaoban_link_server_kbps",
            "gauge",
            "Media (RTP payload) the server received from / sent to the connected points of a meeting, kbit/s, summed.",
        );
        for id in &ids {
            let views = served(&all[*id]);
            for (direction, rate) in [
                (
                    "received",
                    (|v: &ServerView| v.received_kbps) as fn(&ServerView) -> Option<u32>,
                ),
                ("sent", |v: &ServerView| v.sent_kbps),
            ] {
                let sum: u64 = views.iter().filter_map(|v| rate(v)).map(u64::from).sum();
                let _ = writeln!(
                    out,
                    "giaoban_link_server_kbps{{meeting=\"{id}\",direction=\"{direction}\"}} {sum}"
                );
            }
        }
        family(
            out,
            "giaoban_link_server_loss_percent",
            "histogram",
            "Packet loss of each connected point as the server measured it, percent: received (sequence gaps of what it sends) or sent (its receiver reports).",
        );
        for id in &ids {
            let views = served(&all[*id]);
            for (direction, loss) in [
                (
                    "received",
                    (|v: &ServerView| v.loss_in_percent) as fn(&ServerView) -> Option<f64>,
                ),
                ("sent", |v: &ServerView| v.loss_out_percent),
            ] {
                let values: Vec<f64> = views.iter().filter_map(|v| loss(v)).collect();
                histogram_series(
                    out,
                    "giaoban_link_server_loss_percent",
                    &format!("meeting=\"{id}\",direction=\"{direction}\""),
                    &LOSS_BUCKETS,
                    &values,
                );
            }
        }
        family(
            out,
            "giaoban_link_server_rtt_ms",
            "histogram",
            "Round-trip time of each connected point from its receiver reports to the server, milliseconds.",
        );
        for id in &ids {
            let values: Vec<f64> = served(&all[*id])
                .iter()
                .filter_map(|v| v.rtt_ms.map(f64::from))
                .collect();
            histogram_series(
                out,
                "giaoban_link_server_rtt_ms",
                &format!("meeting=\"{id}\""),
                &RTT_BUCKETS,
                &values,
            );
        }
        family(
            out,
            "giaoban_link_server_media_flowing_points",
            "gauge",
            "Connected points whose media reached the server within the last 5 s.",
        );
        for id in &ids {
            let n = served(&all[*id]).iter().filter(|v| v.media_flowing).count();
            let _ = writeln!(
                out,
                "giaoban_link_server_media_flowing_points{{meeting=\"{id}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP giaoban_link_alerts_total Dashboard alerts raised, by kind."
        );
        let _ = writeln!(out, "# TYPE giaoban_link_alerts_total counter");
        for id in &ids {
            let m = &all[*id];
            for k in AlertKind::ALL {
                let _ = writeln!(
                    out,
                    "giaoban_link_alerts_total{{meeting=\"{id}\",kind=\"{}\"}} {}",
                    k.as_str(),
                    m.alert_counts.get(&k).copied().unwrap_or(0)
                );
            }
        }
    }
}

/// A meeting's connected points.
fn connected(m: &MeetingLinks) -> Vec<&Point> {
    m.points.values().filter(|p| p.connected).collect()
}

/// The media server's figures of a meeting's connected points (of the
/// latest reading, a dashboard refresh's or a scrape's).
fn served(m: &MeetingLinks) -> Vec<&ServerView> {
    m.points
        .values()
        .filter(|p| p.connected)
        .filter_map(|p| p.server.as_ref().map(|l| &l.view))
        .collect()
}

/// One metric family's header.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One histogram's samples (`labels` without braces; cumulative buckets).
fn histogram_series(out: &mut String, name: &str, labels: &str, buckets: &[f64], values: &[f64]) {
    for b in buckets {
        let n = values.iter().filter(|v| **v <= *b).count();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
        values.len()
    );
    let sum: f64 = values.iter().sum();
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", values.len());
}

/// Reconciles every meeting with the hub (the dashboard and `/metrics` do
/// this before they read) and forgets the idle ones.
pub fn sync_with_hub(links: &LinkStats, hub: &crate::hub::Hub, now: i64) {
    let mut ids = links.meetings();
    for m in hub.live_meetings() {
        if !ids.contains(&m) {
            ids.push(m);
        }
    }
    for id in ids {
        let connected = Connected::from_roster(&hub.roster(&id));
        links.sync(&id, &connected, now);
    }
    links.prune(now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conn(inv: &str, pid: &str, at: i64) -> Connected {
        Connected {
            invitation_id: inv.into(),
            participant_id: pid.into(),
            joined_at: at,
            kind: "participant".into(),
        }
    }

    fn good() -> LinkReport {
        LinkReport {
            path: Some(LinkPath::Udp),
            bitrate_in_kbps: Some(1500),
            bitrate_out_kbps: Some(800),
            loss_in_percent: Some(0.0),
            loss_out_percent: Some(0.2),
            rtt_ms: Some(30),
            jitter_ms: Some(5),
            audio_level: Some(0.2),
            fps_out: Some(25.0),
            ..LinkReport::default()
        }
    }

    const ON: MediaOn = MediaOn {
        audio: true,
        video: true,
    };

    #[test]
    fn states_and_alerts() {
        let l = LinkStats::new(LinkSettings::default());
        l.sync("m", &[conn("a", "pa", 100), conn("b", "pb", 100)], 100);
        l.report("m", "a", "pa", good(), ON, 101);
        l.report("m", "b", "pb", good(), ON, 101);
        let (points, alerts) = l.snapshot("m", 102);
        assert_eq!(points["a"].state, PointState::Ok);
        assert!(alerts.is_empty());

        // 10 % loss degrades at once, once.
        let lossy = LinkReport {
            loss_in_percent: Some(10.0),
            ..good()
        };
        l.report("m", "a", "pa", lossy.clone(), ON, 106);
        l.report("m", "a", "pa", lossy, ON, 111);
        let (points, alerts) = l.snapshot("m", 111);
        assert_eq!(points["a"].state, PointState::Degraded);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, AlertKind::Degraded);
        assert!(
            alerts[0].detail.contains("loss 10.0 %"),
            "{}",
            alerts[0].detail
        );
        l.report("m", "a", "pa", good(), ON, 116);
        let (points, alerts) = l.snapshot("m", 116);
        assert_eq!(points["a"].state, PointState::Ok);
        assert_eq!(alerts[0].kind, AlertKind::Recovered);

        // Silence counts only for an unmuted microphone, after the setting.
        let quiet = LinkReport {
            audio_level: Some(0.0),
            ..good()
        };
        let muted = MediaOn {
            audio: false,
            video: true,
        };
        l.report("m", "b", "pb", quiet.clone(), muted, 120);
        l.report("m", "b", "pb", quiet.clone(), muted, 200);
        assert_eq!(l.snapshot("m", 200).0["b"].state, PointState::Ok);
        l.report("m", "b", "pb", quiet.clone(), ON, 205);
        l.report("m", "b", "pb", quiet, ON, 236);
        assert_eq!(l.snapshot("m", 236).0["b"].state, PointState::Silent);

        // b leaves: disconnected since the sync, with an alert.
        l.sync("m", &[conn("a", "pa", 100)], 240);
        let (points, alerts) = l.snapshot("m", 241);
        assert_eq!(points["b"].state, PointState::Disconnected);
        assert_eq!(points["b"].since, Some(240));
        assert_eq!(alerts[0].kind, AlertKind::Dropped);
        assert_eq!(alerts[0].invitation_id, "b");

        // a stops reporting: stale.
        assert_eq!(l.snapshot("m", 116 + 25).0["a"].state, PointState::Stale);

        // History: one sample per report, at least 2 s apart, bounded.
        let h = l.history("m", "a");
        assert_eq!(
            h.iter().map(|s| s.at).collect::<Vec<_>>(),
            vec![101, 106, 111, 116]
        );

        let mut out = String::new();
        l.render_metrics(&mut out, 241);
        assert!(out.contains("giaoban_link_points{meeting=\"m\",state=\"disconnected\"} 1"));
        assert!(out.contains("giaoban_link_alerts_total{meeting=\"m\",kind=\"dropped\"} 1"));
        assert!(out.contains("giaoban_link_loss_percent_count{meeting=\"m\"} 1"));
        l.sync("m", &[], 1000);
        l.prune(1000);
        assert!(l.meetings().is_empty());
    }

    #[test]
    fn frozen_received_videos_raise_an_alert_after_the_setting() {
        let l = LinkStats::new(LinkSettings::default());
        l.sync("m", &[conn("a", "pa", 100)], 100);
        let freezing = LinkReport {
            frozen_in: Some(2),
            ..good()
        };
        l.report("m", "a", "pa", freezing.clone(), ON, 101);
        l.report("m", "a", "pa", freezing.clone(), ON, 106);
        assert_eq!(l.snapshot("m", 106).0["a"].state, PointState::Ok);
        // One report without a freeze starts the count again.
        l.report("m", "a", "pa", good(), ON, 108);
        l.report("m", "a", "pa", freezing.clone(), ON, 110);
        l.report("m", "a", "pa", freezing.clone(), ON, 115);
        assert!(l.snapshot("m", 115).1.is_empty());
        l.report("m", "a", "pa", freezing.clone(), ON, 120);
        l.report("m", "a", "pa", freezing, ON, 125);
        let (points, alerts) = l.snapshot("m", 125);
        assert_eq!(points["a"].state, PointState::Frozen);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].kind, AlertKind::FrozenIn);
        assert!(alerts[0].detail.contains("10 s"), "{}", alerts[0].detail);
        l.report("m", "a", "pa", good(), ON, 130);
        let (points, alerts) = l.snapshot("m", 130);
        assert_eq!(points["a"].state, PointState::Ok);
        assert_eq!(alerts[0].kind, AlertKind::Recovered);
    }

    fn figures(pid: &str, bytes_in: u64, packets_in: u64, lost_in: u64) -> sfu::ParticipantFigures {
        sfu::ParticipantFigures {
            participant: pid.into(),
            packets_in,
            bytes_in,
            lost_in,
            last_media_in: (packets_in > 0).then(|| std::time::Duration::from_millis(20)),
            bytes_out: 2 * bytes_in,
            packets_out: 2 * packets_in,
            loss_out: Some(0.25),
            rtt: Some(std::time::Duration::from_millis(42)),
            layers: vec!["f".into(), "q".into()],
            path: Some("udp"),
            ..Default::default()
        }
    }

    #[test]
    fn server_figures_make_rates_and_tell_silence_from_stale_reports() {
        let l = LinkStats::new(LinkSettings::default());
        l.sync("m", &[conn("a", "pa", 100), conn("b", "pb", 100)], 100);
        l.report("m", "a", "pa", good(), ON, 100);
        l.report("m", "b", "pb", good(), ON, 100);
        // b's client says it sends 800 kbit/s; the server gets nothing.
        let first = [figures("pa", 1_000, 10, 0), figures("pb", 0, 0, 0)];
        l.server_figures("m", &first, 100_000);
        // Closer than a second: no rate yet.
        l.server_figures("m", &first, 100_500);
        let (points, _) = l.snapshot("m", 100);
        let sa = points["a"].server.clone().expect("server figures");
        assert_eq!(sa.received_kbps, None);
        assert_eq!(sa.rtt_ms, Some(42));
        assert_eq!(sa.loss_out_percent, Some(25.0));
        assert_eq!(sa.layers, vec!["f", "q"]);
        assert!(sa.media_flowing);
        // 2 s later: 64 000 bytes more is 256 kbit/s; 1 lost of 100.
        l.report("m", "a", "pa", good(), ON, 108);
        l.report("m", "b", "pb", good(), ON, 108);
        l.server_figures(
            "m",
            &[figures("pa", 65_000, 109, 1), figures("pb", 0, 0, 0)],
            102_000,
        );
        let (points, alerts) = l.snapshot("m", 102);
        let sa = points["a"].server.clone().expect("server figures");
        assert_eq!(sa.received_kbps, Some(256));
        assert_eq!(sa.sent_kbps, Some(512));
        assert_eq!(sa.loss_in_percent, Some(1.0));
        assert!(alerts.is_empty(), "{alerts:?}");
        // The same in /metrics, per meeting and direction.
        let mut out = String::new();
        l.render_metrics(&mut out, 102);
        for line in [
            "giaoban_link_server_kbps{meeting=\"m\",direction=\"received\"} 256",
            "giaoban_link_server_kbps{meeting=\"m\",direction=\"sent\"} 512",
            "giaoban_link_server_loss_percent_count{meeting=\"m\",direction=\"received\"} 1",
            "giaoban_link_server_loss_percent_bucket{meeting=\"m\",direction=\"received\",le=\"1\"} 1",
            "giaoban_link_server_loss_percent_sum{meeting=\"m\",direction=\"sent\"} 50",
            "giaoban_link_server_rtt_ms_count{meeting=\"m\"} 2",
            "giaoban_link_server_media_flowing_points{meeting=\"m\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} not in:\n{out}");
        }
        assert!(!out.contains("\"pa\"") && !out.contains("\"a\""), "{out}");
        // b: still nothing at the server 10 s after it connected.
        l.server_figures(
            "m",
            &[figures("pa", 65_000, 109, 1), figures("pb", 0, 0, 0)],
            110_000,
        );
        let (points, alerts) = l.snapshot("m", 110);
        assert_eq!(points["b"].state, PointState::NoMedia);
        assert_eq!(alerts[0].kind, AlertKind::NoMedia);
        assert_eq!(alerts[0].invitation_id, "b");
        // Its media arrives: recovered.
        l.server_figures(
            "m",
            &[figures("pa", 65_000, 109, 1), figures("pb", 500, 5, 0)],
            111_000,
        );
        let (points, alerts) = l.snapshot("m", 111);
        assert_eq!(points["b"].state, PointState::Ok);
        assert_eq!(alerts[0].kind, AlertKind::Recovered);
        // a's reports stop while its media still flows: stale, flowing.
        let (points, _) = l.snapshot("m", 108 + 25);
        assert_eq!(points["a"].state, PointState::Stale);
        assert!(points["a"].server.as_ref().is_some_and(|s| s.media_flowing));
        // A point that left has no server figures.
        l.sync("m", &[conn("a", "pa", 100)], 140);
        l.server_figures("m", &[figures("pa", 70_000, 120, 1)], 140_000);
        assert!(l.snapshot("m", 140).0["b"].server.is_none());
    }

    #[test]
    fn history_is_bounded() {
        let l = LinkStats::new(LinkSettings::default());
        for t in 0..2000 {
            l.report("m", "a", "pa", good(), ON, t);
        }
        let h = l.history("m", "a");
        assert!(h.len() <= 300 / 2 + 2, "{}", h.len());
        assert_eq!(h.last().map(|s| s.at), Some(1999));
    }

    #[test]
    fn reports_are_bounded() {
        let parse = |v: serde_json::Value| -> Result<LinkReport, Fail> {
            serde_json::from_value::<LinkReportReq>(v)
                .map_err(|e| Fail::new(ErrorCode::BadRequest, e.to_string()))?
                .checked()
        };
        let r = parse(
            json!({"path": "tcp", "loss_in_percent": 10.5, "rtt_ms": 41.6,
            "browser": " Chrome 131 ", "extra": 1}),
        )
        .expect("ok");
        assert_eq!(r.path, Some(LinkPath::Tcp));
        assert_eq!(r.rtt_ms, Some(42));
        assert_eq!(r.browser.as_deref(), Some("Chrome 131"));
        for bad in [
            json!({"path": "none"}),
            json!({"path": "carrier-pigeon"}),
            json!({"loss_in_percent": 101}),
            json!({"loss_out_percent": -1}),
            json!({"rtt_ms": 1e9}),
            json!({"audio_level": 2}),
            json!({"fps_out": 1000}),
            json!({"bitrate_in_kbps": "fast"}),
            json!({"browser": "x".repeat(81)}),
            json!({"browser": "a\nb"}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(parse(json!({})).expect("empty"), LinkReport::default());
    }

    #[test]
    fn roster_parsing() {
        let r = json!({"participants": [
            {"id": "p1", "invitation_id": "i1", "joined_at": 5, "kind": "whip"},
            {"id": "p2"}
        ]});
        assert_eq!(
            Connected::from_roster(&r),
            vec![Connected {
                invitation_id: "i1".into(),
                participant_id: "p1".into(),
                joined_at: 5,
                kind: "whip".into()
            }]
        );
    }
}
