//! What we read in and rewrite of SDP text ourselves, beside the stack:
//! the ICE ufrag an SDP names, what a publisher's offer says about
//! retransmissions, and the rewrite that keeps the stack's simulcast
//! bindings across a re-offer.

use std::collections::HashMap;

use super::{MID_URI, RID_URI, RRID_URI};

/// The ICE username fragment an SDP names.
pub(crate) fn ufrag_in(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| {
        l.trim()
            .strip_prefix("a=ice-ufrag:")
            .map(|u| u.trim().to_owned())
    })
}

/// What a publisher's offer says about retransmissions: which payload types
/// are RTX and which payload type each repairs (`apt=`), and the ids of the
/// header extensions that tie an RTX stream to its simulcast layer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct RepairNegotiation {
    /// RTX payload type -> the payload type it repairs.
    pub(super) apt: HashMap<u8, u8>,
    pub(super) mid_ext: Option<u8>,
    pub(super) rid_ext: Option<u8>,
    pub(super) rrid_ext: Option<u8>,
}

impl RepairNegotiation {
    /// Reads the offer's `a=rtpmap`, `a=fmtp` and `a=extmap` lines (an answer
    /// keeps the offer's payload types and extension ids). Unknown or odd
    /// lines are ignored.
    pub(super) fn from_sdp(sdp: &str) -> RepairNegotiation {
        let mut n = RepairNegotiation::default();
        let mut rtx_pts = Vec::new();
        let mut apts = Vec::new();
        for line in sdp.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("a=rtpmap:") {
                let mut f = rest.split_whitespace();
                if let (Some(pt), Some(enc)) = (f.next(), f.next()) {
                    let is_rtx = enc
                        .split('/')
                        .next()
                        .is_some_and(|e| e.eq_ignore_ascii_case("rtx"));
                    if let (true, Ok(pt)) = (is_rtx, pt.parse::<u8>()) {
                        rtx_pts.push(pt);
                    }
                }
            } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
                let Some((pt, params)) = rest.split_once(' ') else {
                    continue;
                };
                let apt = params
                    .split(';')
                    .filter_map(|kv| kv.trim().strip_prefix("apt="))
                    .find_map(|v| v.trim().parse::<u8>().ok());
                if let (Ok(pt), Some(apt)) = (pt.parse::<u8>(), apt) {
                    apts.push((pt, apt));
                }
            } else if let Some(rest) = line.strip_prefix("a=extmap:") {
                let mut f = rest.split_whitespace();
                let (Some(id), Some(uri)) = (f.next(), f.next()) else {
                    continue;
                };
                // "id" or "id/direction".
                let Some(id) = id.split('/').next().and_then(|i| i.parse::<u8>().ok()) else {
                    continue;
                };
                match uri {
                    MID_URI => n.mid_ext = Some(id),
                    RID_URI => n.rid_ext = Some(id),
                    RRID_URI => n.rrid_ext = Some(id),
                    _ => {}
                }
            }
        }
        for (pt, apt) in apts {
            if rtx_pts.contains(&pt) {
                n.apt.insert(pt, apt);
            }
        }
        n
    }
}

/// The `a=mid` and the sorted `a=rid` ids of each media section of an SDP
/// that is not receive-only or inactive (what the remote sends).
fn sending_rid_sections(sdp: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for section in sdp.split("\nm=").skip(1) {
        let mut mid = None;
        let mut rids = Vec::new();
        let mut sends = true;
        for line in section.lines().map(str::trim) {
            if let Some(m) = line.strip_prefix("a=mid:") {
                mid = Some(m.trim().to_owned());
            } else if let Some(r) = line.strip_prefix("a=rid:") {
                // "a=rid:<id> send [...]"
                let mut f = r.split_whitespace();
                if let (Some(id), Some("send")) = (f.next(), f.next()) {
                    rids.push(id.to_owned());
                }
            } else if line == "a=recvonly" || line == "a=inactive" {
                sends = false;
            }
        }
        if let (Some(mid), true, false) = (mid, sends, rids.is_empty()) {
            rids.sort();
            out.push((mid, rids));
        }
    }
    out
}

/// Works around rtc 0.21.1 forgetting simulcast layers on renegotiation.
///
/// Applying a remote offer replaces every receiving track that the offer
/// describes; for a simulcast section (`a=rid`) the new track's layers have
/// no SSRC yet, and the stack learns each layer's SSRC again only from the
/// `mid`/`rid` RTP header extensions. Browsers send those only at the start
/// of a stream (Chromium stops once the receiver acknowledged the SSRC), so
/// after a re-offer (an ICE restart, a track added) every packet of an
/// existing simulcast video was dropped inside the stack until the browser
/// happened to restart that layer, seconds or never.
///
/// The stack leaves a receiver alone when the offer describes no track for
/// its section: it derives a simulcast track only when the section names
/// its stream (`a=msid`), and an SSRC track only from `a=ssrc` lines. So for
/// each section that was already receiving the same `a=rid` layers in the
/// previous remote offer, this drops those lines from what the stack is
/// given; layers, codecs, extensions, direction and `a=simulcast` stay, so
/// the answer is the same. New sections, changed layer sets and
/// non-simulcast sections pass unchanged.
pub(super) fn keep_simulcast_bindings(previous: &str, offer: &str) -> String {
    let before = sending_rid_sections(previous);
    let now = sending_rid_sections(offer);
    let keep: Vec<&str> = now
        .iter()
        .filter(|s| before.contains(s))
        .map(|(mid, _)| mid.as_str())
        .collect();
    if keep.is_empty() {
        return offer.to_owned();
    }
    let mut out = String::with_capacity(offer.len());
    // Sections start at "m=" lines; the mid of a section is only known
    // once its `a=mid` is read, so buffer one section at a time.
    let mut section: Vec<&str> = Vec::new();
    let flush = |section: &mut Vec<&str>, out: &mut String| {
        let kept = section.first().is_some_and(|l| l.starts_with("m="))
            && section.iter().any(|l| {
                l.trim()
                    .strip_prefix("a=mid:")
                    .is_some_and(|m| keep.contains(&m.trim()))
            });
        for line in section.drain(..) {
            let t = line.trim_start();
            if kept
                && (t.starts_with("a=msid:")
                    || t.starts_with("a=ssrc:")
                    || t.starts_with("a=ssrc-group:"))
            {
                continue;
            }
            out.push_str(line);
        }
    };
    for line in offer.split_inclusive('\n') {
        if line.starts_with("m=") {
            flush(&mut section, &mut out);
        }
        section.push(line);
    }
    flush(&mut section, &mut out);
    out
}
