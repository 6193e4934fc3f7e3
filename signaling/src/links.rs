//! Invitation links: which address they point to, and how long they live by
//! default. Shared by the REST API and the command line.
//!
//! - The base is `server.public_url` when it is set. Otherwise the API uses
//!   the address the secretary's browser reached the server at (its `Host`
//!   header): a link copied in `/admin` then works wherever that address
//!   works, never `http://0.0.0.0:8080`. The command line has no browser and
//!   uses the first LAN address ([`crate::Config::public_base_url`]).
//! - An invitation lives until the meeting's planned end (or its start when
//!   no end is planned) plus `auth.invite_grace_hours`; a meeting with no
//!   planned time gives `auth.invite_ttl_hours` from now.

use axum::http::{header, HeaderMap};
use cabinet::Meeting;

/// The base URL of links for a request with `headers`: `configured`
/// (`server.public_url`, already without a trailing `/`) if set, else
/// `scheme://<Host>` when the Host header is a plain host\[:port\], else
/// `fallback`.
pub fn link_base(
    configured: Option<&str>,
    tls: bool,
    headers: &HeaderMap,
    fallback: &str,
) -> String {
    if let Some(url) = configured {
        return url.to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|h| is_plain_host(h));
    match host {
        Some(h) => format!("{}://{h}", if tls { "https" } else { "http" }),
        None => fallback.to_owned(),
    }
}

/// A host name or address with an optional port, and nothing else (no user
/// info, path, spaces or quotes that could bend a link).
fn is_plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// Why a link base will not work for a bridge point on another machine, if
/// it will not: `"local_only"` (it names this machine: `localhost`,
/// loopback or `0.0.0.0`) or `"insecure"` (plain `http://` to another
/// machine: browsers give a page camera and microphone only over HTTPS).
pub fn link_warning(base: &str) -> Option<&'static str> {
    let (scheme, rest) = base.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let host = host.to_ascii_lowercase();
    let local = host == "localhost"
        || host.ends_with(".localhost")
        || host == "0.0.0.0"
        || host == "::"
        || host == "::1"
        || host.starts_with("127.");
    if local {
        Some("local_only")
    } else if scheme.eq_ignore_ascii_case("http") {
        Some("insecure")
    } else {
        None
    }
}

/// The default expiry (Unix seconds) of an invitation to `meeting` made at
/// `now`.
pub fn default_expiry(meeting: &Meeting, now: i64, ttl_hours: u32, grace_hours: u32) -> i64 {
    let grace = i64::from(grace_hours) * 3600;
    match meeting.ends_at.or(meeting.starts_at) {
        // At least `grace` from now, so a link made during an overrunning
        // meeting still works.
        Some(end) => end.saturating_add(grace).max(now + grace),
        None => now + i64::from(ttl_hours) * 3600,
    }
}

/// Whether an invitation expiring at `expires_at` ends before `meeting` is
/// over (its planned end, else its planned start); false when the meeting
/// has no planned time.
pub fn expires_before_meeting(meeting: &Meeting, expires_at: i64) -> bool {
    meeting
        .ends_at
        .or(meeting.starts_at)
        .is_some_and(|end| expires_at < end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn meeting(starts_at: Option<i64>, ends_at: Option<i64>) -> Meeting {
        Meeting {
            id: "m".into(),
            title: "t".into(),
            kind: cabinet::MeetingKind::Regular,
            status: cabinet::MeetingStatus::Scheduled,
            starts_at,
            ends_at,
            location: String::new(),
            chair_participant_id: None,
            created_at: 0,
            updated_at: 0,
            join_muted: None,
        }
    }

    #[test]
    fn base_from_config_then_host_then_fallback() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("10.1.2.3:8080"));
        assert_eq!(
            link_base(Some("https://hop.example.vn"), false, &h, "x"),
            "https://hop.example.vn"
        );
        assert_eq!(link_base(None, false, &h, "x"), "http://10.1.2.3:8080");
        assert_eq!(link_base(None, true, &h, "x"), "https://10.1.2.3:8080");
        h.insert(header::HOST, HeaderValue::from_static("evil.vn/path?"));
        assert_eq!(link_base(None, false, &h, "http://fb:1"), "http://fb:1");
        assert_eq!(
            link_base(None, false, &HeaderMap::new(), "http://fb:1"),
            "http://fb:1"
        );
    }

    #[test]
    fn warnings() {
        assert_eq!(link_warning("http://0.0.0.0:8080"), Some("local_only"));
        assert_eq!(link_warning("http://localhost:8080"), Some("local_only"));
        assert_eq!(link_warning("https://127.0.0.1:8443"), Some("local_only"));
        assert_eq!(link_warning("http://[::1]:8080"), Some("local_only"));
        assert_eq!(link_warning("http://10.1.2.3:8080"), Some("insecure"));
        assert_eq!(link_warning("https://hop.tinh.gov.vn"), None);
        assert_eq!(link_warning("https://[fd00::5]:8443"), None);
    }

    #[test]
    fn expiry_follows_the_meeting() {
        let now = 1_000_000;
        let day = 86_400;
        // No planned time: the configured lifetime.
        assert_eq!(
            default_expiry(&meeting(None, None), now, 72, 12),
            now + 72 * 3600
        );
        // A meeting in two weeks: until its end plus the grace.
        let m = meeting(Some(now + 14 * day), Some(now + 14 * day + 4 * 3600));
        assert_eq!(default_expiry(&m, now, 72, 12), now + 14 * day + 16 * 3600);
        assert!(!expires_before_meeting(&m, default_expiry(&m, now, 72, 12)));
        assert!(expires_before_meeting(&m, now + 72 * 3600));
        // Only a start: until the start plus the grace.
        let m = meeting(Some(now + 5 * day), None);
        assert_eq!(default_expiry(&m, now, 72, 12), now + 5 * day + 12 * 3600);
        // Already over: still `grace` from now.
        let m = meeting(Some(now - 2 * day), Some(now - day));
        assert_eq!(default_expiry(&m, now, 72, 12), now + 12 * 3600);
        assert!(!expires_before_meeting(&meeting(None, None), now));
    }
}
