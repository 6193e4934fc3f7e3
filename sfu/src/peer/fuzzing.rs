//! Fuzzing entry points for what the WebRTC stack parses from the network:
//! remote SDP, datagrams into a negotiated peer, RTP and RTCP. Used by the
//! targets in `fuzz/` and by the corpus regression tests (docs/fuzzing.md).
//! It lives under `peer` because only this module may speak to `rtc`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::shared::marshal::Unmarshal;

use super::{Codec, Direction, LocalCandidate, Peer, Proto};
use crate::MediaKind;

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

fn candidates() -> [LocalCandidate; 2] {
    [
        LocalCandidate {
            proto: Proto::Udp,
            addr: local(),
        },
        LocalCandidate {
            proto: Proto::Tcp,
            addr: local(),
        },
    ]
}

fn vp8() -> Codec {
    Codec {
        mime_type: MIME_TYPE_VP8.into(),
        clock_rate: 90000,
        channels: 0,
        fmtp: String::new(),
    }
}

fn opus() -> Codec {
    Codec {
        mime_type: MIME_TYPE_OPUS.into(),
        clock_rate: 48000,
        channels: 2,
        fmtp: "minptime=10;useinbandfec=1".into(),
    }
}

/// Everything a peer has to say, as the engine drains it.
fn drain(p: &mut Peer) {
    while p.poll_transmit().is_some() {}
    while p.poll_event().is_some() {}
}

/// A subscriber-side peer with an audio and a video track, having made its
/// offer (what `subscriber_answer` applies an answer to).
fn offering_peer(now: Instant) -> Option<(Peer, String)> {
    let mut p = Peer::new(&candidates(), Direction::Both).ok()?;
    p.add_send_track("p-1", "t-a", MediaKind::Audio, &opus())
        .ok()?;
    p.add_send_track("p-1", "t-v", MediaKind::Video, &vp8())
        .ok()?;
    let offer = p.create_offer(now).ok()?;
    Some((p, offer))
}

/// A remote SDP applied as `publish` does (a client's offer, answered) and
/// as `subscriber_answer` does (a client's answer to our offer).
pub(crate) fn sdp(text: &str) {
    let now = Instant::now();
    if let Ok(mut p) = Peer::new(&candidates(), Direction::Both) {
        let _ = p.accept_offer(now, text.to_owned());
        p.handle_timeout(now);
        drain(&mut p);
        p.close();
    }
    if let Some((mut p, _)) = offering_peer(now) {
        let _ = p.accept_answer(now, text.to_owned());
        p.handle_timeout(now);
        drain(&mut p);
        p.close();
    }
}

/// Example SDPs made by our own peers: an offer with audio and video, and
/// the answer to it (seeds for the SDP corpus).
pub(crate) fn example_sdps() -> Vec<String> {
    let now = Instant::now();
    let Some((_, offer)) = offering_peer(now) else {
        return Vec::new();
    };
    let mut out = vec![offer.clone()];
    if let Ok(mut p) = Peer::new(&candidates(), Direction::Both) {
        if let Ok(answer) = p.accept_offer(now, offer) {
            out.push(answer);
        }
    }
    out
}

/// Datagrams (the input read as an RFC 4571 stream: 2-byte big-endian
/// length, then that many bytes, repeated) fed to a peer that has a remote
/// description, as the engine feeds everything from a routed 5-tuple. The
/// first byte picks UDP or TCP.
pub(crate) fn peer_input(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let proto = if first & 1 == 0 {
        Proto::Udp
    } else {
        Proto::Tcp
    };
    let now = Instant::now();
    let Some((mut ours, offer)) = offering_peer(now) else {
        return;
    };
    let Ok(mut theirs) = Peer::new(&candidates(), Direction::Both) else {
        return;
    };
    let Ok(answer) = theirs.accept_offer(now, offer) else {
        return;
    };
    if ours.accept_answer(now, answer).is_err() {
        return;
    }
    let remote = SocketAddr::from(([127, 0, 0, 1], 50000));
    let mut decoder = rtc::shared::tcp_framing::TcpFrameDecoder::new();
    decoder.extend_from_slice(rest);
    let mut t = now;
    while let Some(frame) = decoder.next_packet() {
        ours.handle_input(t, proto, local(), remote, BytesMut::from(&frame[..]));
        t += Duration::from_millis(5);
        ours.handle_timeout(t);
        drain(&mut ours);
    }
    ours.close();
    theirs.close();
}

/// RTP and RTCP as the stack unmarshals them after SRTP.
pub(crate) fn rtp_rtcp(data: &[u8]) {
    let mut b = data;
    if let Ok(p) = rtc::rtp::packet::Packet::unmarshal(&mut b) {
        for id in p.header.get_extension_ids() {
            let _ = p.header.get_extension(id);
        }
    }
    let mut b = data;
    if let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut b) {
        let _ = super::asks_for_keyframe(&packets);
        for p in &packets {
            let _ = p.destination_ssrc();
        }
    }
    let mut m = rtc::stun::message::Message::new();
    let _ = m.unmarshal_binary(data);
}
