//! Entry points for the fuzz targets in `fuzz/` and their corpus regression
//! tests (see docs/fuzzing.md). Each one runs the same code the engine runs
//! on bytes from the network or SDP from a client; none of them may panic,
//! whatever the input. Not an API: hidden from the docs, may change freely.

use crate::codec::{self, VideoCodec};

/// A remote SDP applied as a client's offer (`publish`) and as a client's
/// answer to our offer (`subscriber_answer`). Not UTF-8: ignored, as the
/// WebSocket layer never hands us such a string.
pub fn sdp(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        crate::peer::fuzzing::sdp(text);
    }
}

/// SDPs our own peers make (an offer with audio and video, its answer): seeds.
pub fn example_sdps() -> Vec<String> {
    crate::peer::fuzzing::example_sdps()
}

/// One datagram or RTP payload through everything of ours that reads one:
/// STUN detection and USERNAME (routing), VP8 descriptor and keyframe
/// detection plus the picture id / TL0PICIDX rewrite (forwarding), an RFC
/// 4571 stream decoder fed in uneven pieces (ICE-TCP), and the stack's RTP,
/// RTCP and STUN unmarshalling.
pub fn datagram(data: &[u8]) {
    if crate::stun::is_stun(data) {
        if let Some(user) = crate::stun::stun_username(data) {
            let _ = user.split(':').next();
        }
    }
    for c in [VideoCodec::Vp8, VideoCodec::H264, VideoCodec::Other] {
        let _ = codec::is_keyframe_start(c, data);
    }
    if let Some(d) = codec::parse_vp8(data) {
        let mut copy = data.to_vec();
        if let Some((at, width, value)) = d.picture_id {
            codec::write_vp8_picture_id(&mut copy, at, width, value.wrapping_add(1));
        }
        if let Some((at, value)) = d.tl0picidx {
            codec::write_vp8_tl0(&mut copy, at, value.wrapping_add(1));
        }
    }
    crate::net::fuzz_tcp_frames(data);
    crate::peer::fuzzing::rtp_rtcp(data);
}

/// Datagrams into a peer that has a remote description; see
/// `peer::fuzzing::peer_input` for the input's shape.
pub fn peer_input(data: &[u8]) {
    crate::peer::fuzzing::peer_input(data);
}
