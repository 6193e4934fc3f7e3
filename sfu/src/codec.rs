//! What forwarding needs to know of payloads: whether a packet starts a
//! keyframe (VP8, H264), the VP8 payload descriptor fields a layer switch
//! rewrites (picture id, TL0PICIDX), the original sequence number inside an
//! RTX retransmission (RFC 4588) and the blocks of an audio RED payload
//! (RFC 2198). Everything here reads untrusted bytes: short or odd payloads
//! answer "no" or are left as they are, never panic.

/// Which video codec a track carries, for keyframe detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoCodec {
    Vp8,
    H264,
    Other,
}

impl VideoCodec {
    pub fn from_mime(mime: &str) -> VideoCodec {
        if mime.eq_ignore_ascii_case("video/vp8") {
            VideoCodec::Vp8
        } else if mime.eq_ignore_ascii_case("video/h264") {
            VideoCodec::H264
        } else {
            VideoCodec::Other
        }
    }
}

/// The VP8 payload descriptor (RFC 7741 §4.2), as far as we use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Vp8Descriptor {
    /// Start of a VP8 partition, partition index 0: the frame begins here.
    pub starts_frame: bool,
    /// Offset and width (7 or 15 bits) of the picture id, when present.
    pub picture_id: Option<(usize, u8, u16)>,
    /// Offset and value of TL0PICIDX, when present.
    pub tl0picidx: Option<(usize, u8)>,
    /// Offset of the VP8 payload after the descriptor.
    pub header_len: usize,
}

/// Parses the VP8 payload descriptor; `None` when it is truncated.
pub(crate) fn parse_vp8(p: &[u8]) -> Option<Vp8Descriptor> {
    let b0 = *p.first()?;
    let x = b0 & 0x80 != 0;
    let s = b0 & 0x10 != 0;
    let pid = b0 & 0x07;
    let mut d = Vp8Descriptor {
        starts_frame: s && pid == 0,
        ..Default::default()
    };
    let mut i = 1;
    if x {
        let b1 = *p.get(i)?;
        i += 1;
        let has_i = b1 & 0x80 != 0;
        let has_l = b1 & 0x40 != 0;
        let has_tk = b1 & 0x30 != 0;
        if has_i {
            let m = *p.get(i)?;
            if m & 0x80 != 0 {
                let lo = *p.get(i + 1)?;
                d.picture_id = Some((i, 15, (u16::from(m & 0x7f) << 8) | u16::from(lo)));
                i += 2;
            } else {
                d.picture_id = Some((i, 7, u16::from(m & 0x7f)));
                i += 1;
            }
        }
        if has_l {
            d.tl0picidx = Some((i, *p.get(i)?));
            i += 1;
        }
        if has_tk {
            p.get(i)?;
            i += 1;
        }
    }
    d.header_len = i;
    Some(d)
}

/// Whether this packet begins a keyframe of the given codec.
pub(crate) fn is_keyframe_start(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => {
            let Some(d) = parse_vp8(payload) else {
                return false;
            };
            // The VP8 frame header: bit 0 of the first byte is 0 for a keyframe.
            d.starts_frame && payload.get(d.header_len).is_some_and(|b| b & 0x01 == 0)
        }
        VideoCodec::H264 => h264_has_idr(payload),
        // Without knowing the codec, any packet is as good a start as another.
        VideoCodec::Other => true,
    }
}

/// Whether an H264 RTP payload (RFC 6184) starts a frame a decoder can
/// start from: it carries a sequence parameter set (SPS), which encoders
/// send right before each IDR picture (browsers, and OBS/ffmpeg/GStreamer
/// with their WebRTC defaults; GStreamer's rtph264pay needs
/// `config-interval=-1`).
///
/// An IDR slice alone is not enough: an IDR picture may be sent as several
/// slices, each a fragmentation unit with its start bit set, so starting at
/// an IDR fragment can start in the middle of a picture, without its SPS
/// and PPS. Chromium then decodes nothing until the next keyframe (a layer
/// switch froze its video for 3-4 s).
fn h264_has_idr(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let is_key = |nal: u8| nal & 0x1f == 7;
    match b0 & 0x1f {
        1..=23 => is_key(b0),
        // STAP-A: 16-bit size, then the NAL unit, repeated.
        24 => {
            let mut i = 1;
            while i + 2 < p.len() {
                let size = usize::from(u16::from_be_bytes([p[i], p[i + 1]]));
                if size == 0 || i + 2 + size > p.len() {
                    return false;
                }
                if p.get(i + 2).is_some_and(|&n| is_key(n)) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        // FU-A: the start fragment names the NAL type.
        28 => p.get(1).is_some_and(|&fu| fu & 0x80 != 0 && is_key(fu)),
        _ => false,
    }
}

/// Writes a picture id (keeping its width) into a VP8 payload.
pub(crate) fn write_vp8_picture_id(p: &mut [u8], at: usize, width: u8, value: u16) {
    if width == 15 {
        if let Some(s) = p.get_mut(at..at + 2) {
            s[0] = 0x80 | ((value >> 8) as u8 & 0x7f);
            s[1] = value as u8;
        }
    } else if let Some(b) = p.get_mut(at) {
        *b = (value & 0x7f) as u8;
    }
}

/// Writes TL0PICIDX into a VP8 payload.
pub(crate) fn write_vp8_tl0(p: &mut [u8], at: usize, value: u8) {
    if let Some(b) = p.get_mut(at) {
        *b = value;
    }
}

/// RFC 4588 §4: an RTX payload is the original sequence number (OSN, two
/// bytes, network order) followed by the original payload. `None` for a
/// payload too short to carry the OSN (a padding-only probe).
pub(crate) fn rtx_unwrap(payload: &[u8]) -> Option<(u16, &[u8])> {
    let osn = u16::from_be_bytes([*payload.first()?, *payload.get(1)?]);
    Some((osn, &payload[2..]))
}

/// One block header of a RED payload (RFC 2198 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RedBlock {
    /// Payload type of the block's data (Opus, normally).
    pub pt: u8,
    /// How much earlier than the packet's timestamp this block's data is
    /// (0 for the primary block).
    pub ts_offset: u16,
    /// Byte range of the block's data within the RED payload.
    pub start: usize,
    pub end: usize,
}

/// Most redundant blocks one RED payload is read with (browsers send one or two).
const RED_MAX_BLOCKS: usize = 8;

/// Walks the block headers of a RED payload (RFC 2198): calls `f` with the
/// offset of each header's first byte and the block it describes, redundant
/// blocks first, the primary last. `None` when the payload is malformed
/// (truncated header, lengths past the end, too many blocks).
fn walk_red(p: &[u8], mut f: impl FnMut(usize, RedBlock)) -> Option<()> {
    // Headers: F=1 -> 4 bytes (F|PT, 14-bit timestamp offset, 10-bit length);
    // F=0 -> 1 byte (F|PT), the primary, last.
    let mut headers = [(0usize, 0u8, 0u16, 0usize); RED_MAX_BLOCKS];
    let mut n = 0;
    let mut i = 0;
    let primary_at = loop {
        let b0 = *p.get(i)?;
        if b0 & 0x80 == 0 {
            break i;
        }
        let h = p.get(i..i + 4)?;
        let ts_offset = (u16::from(h[1]) << 6) | (u16::from(h[2]) >> 2);
        let len = (usize::from(h[2] & 0x03) << 8) | usize::from(h[3]);
        *headers.get_mut(n)? = (i, b0 & 0x7f, ts_offset, len);
        n += 1;
        i += 4;
    };
    let mut data = primary_at + 1;
    for &(at, pt, ts_offset, len) in &headers[..n] {
        let end = data.checked_add(len).filter(|e| *e <= p.len())?;
        f(
            at,
            RedBlock {
                pt,
                ts_offset,
                start: data,
                end,
            },
        );
        data = end;
    }
    f(
        primary_at,
        RedBlock {
            pt: p[primary_at] & 0x7f,
            ts_offset: 0,
            start: data,
            end: p.len(),
        },
    );
    Some(())
}

/// Every block of a RED payload, redundant ones first, the primary last.
#[cfg(test)]
pub(crate) fn parse_red(p: &[u8]) -> Option<Vec<RedBlock>> {
    let mut blocks = Vec::new();
    walk_red(p, |_, b| blocks.push(b))?;
    Some(blocks)
}

/// The primary block of a RED payload: its payload type and data. This is
/// what a subscriber that did not negotiate RED receives instead.
pub(crate) fn red_primary(p: &[u8]) -> Option<(u8, &[u8])> {
    let mut primary = None;
    walk_red(p, |_, b| primary = Some(b))?;
    let b = primary?;
    Some((b.pt, p.get(b.start..b.end)?))
}

/// A copy of a RED payload whose blocks of payload type `from` say `to`
/// instead (the subscriber's number for the same codec); `None` when the
/// payload is malformed.
pub(crate) fn red_map_pt(p: &[u8], from: u8, to: u8) -> Option<Vec<u8>> {
    let mut out = p.to_vec();
    walk_red(p, |at, b| {
        if b.pt == from {
            if let Some(h) = out.get_mut(at) {
                *h = (*h & 0x80) | (to & 0x7f);
            }
        }
    })?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_with_extended_descriptor() {
        // X=1 S=1 PID=0; I=1 L=1; 15-bit picture id 0x1234; TL0PICIDX 7; then key header.
        let p = [
            0x90, 0xc0, 0x92, 0x34, 0x07, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a,
        ];
        let d = parse_vp8(&p).unwrap();
        assert_eq!(d.picture_id, Some((2, 15, 0x1234)));
        assert_eq!(d.tl0picidx, Some((4, 7)));
        assert_eq!(d.header_len, 5);
        assert!(is_keyframe_start(VideoCodec::Vp8, &p));
        // Same packet as a delta frame.
        let mut q = p;
        q[5] = 0x11;
        assert!(!is_keyframe_start(VideoCodec::Vp8, &q));
        // Not the start of the frame.
        let mut r = p;
        r[0] = 0x80;
        assert!(!is_keyframe_start(VideoCodec::Vp8, &r));
    }

    #[test]
    fn vp8_rewrite_keeps_width() {
        let mut p = [0x90, 0x80, 0x85, 0x00, 0x10];
        write_vp8_picture_id(&mut p, 2, 15, 0x7fff);
        assert_eq!(&p[2..4], &[0xff, 0xff]);
        let mut q = [0x90, 0x80, 0x05, 0x10];
        write_vp8_picture_id(&mut q, 2, 7, 0x1ff);
        assert_eq!(q[2], 0x7f);
    }

    #[test]
    fn truncated_payloads_are_not_keyframes() {
        for p in [
            &[][..],
            &[0x90],
            &[0x90, 0x80],
            &[0x90, 0x80, 0x80],
            &[0x10],
        ] {
            assert!(!is_keyframe_start(VideoCodec::Vp8, p));
        }
        for p in [&[][..], &[0x1c], &[0x18, 0x00], &[0x18, 0xff, 0xff, 0x65]] {
            assert!(!is_keyframe_start(VideoCodec::H264, p));
        }
    }

    #[test]
    fn h264_idr_detection() {
        // A single SPS NAL unit starts a keyframe; an IDR slice alone may be
        // any slice of its picture.
        assert!(is_keyframe_start(VideoCodec::H264, &[0x67, 0x42, 0x00]));
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x65, 0x88]));
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x41, 0x9a]));
        // STAP-A with SPS.
        assert!(is_keyframe_start(
            VideoCodec::H264,
            &[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]
        ));
        // STAP-A with PPS and an IDR but no SPS.
        assert!(!is_keyframe_start(
            VideoCodec::H264,
            &[0x18, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x65, 0x88]
        ));
        // FU-A start of an IDR (perhaps its second slice): not a start.
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x7c, 0x05, 0x00]));
        // FU-A start of an SPS (odd, but a start).
        assert!(is_keyframe_start(VideoCodec::H264, &[0x7c, 0x87, 0x00]));
    }
    #[test]
    fn rtx_payload_unwraps_to_osn_and_original() {
        // An RTX payload for original sequence number 0xbeef.
        let p = [0xbe, 0xef, 0x90, 0x80, 0x01];
        assert_eq!(rtx_unwrap(&p), Some((0xbeef, &p[2..])));
        assert_eq!(rtx_unwrap(&[0xbe, 0xef]), Some((0xbeef, &[][..])));
        // Padding-only probes carry no OSN.
        assert_eq!(rtx_unwrap(&[]), None);
        assert_eq!(rtx_unwrap(&[0x01]), None);
    }

    /// A RED payload with one redundant block (PT 111, 960 ticks earlier,
    /// 3 bytes) and a 2-byte primary (PT 111), as Chromium sends it.
    fn red_sample() -> Vec<u8> {
        let offset: u16 = 960;
        let len: u16 = 3;
        vec![
            0x80 | 111,
            (offset >> 6) as u8,
            (((offset & 0x3f) << 2) as u8) | ((len >> 8) as u8),
            len as u8,
            111,
            0xaa,
            0xbb,
            0xcc,
            0x11,
            0x22,
        ]
    }

    #[test]
    fn red_blocks_are_parsed() {
        let p = red_sample();
        let blocks = parse_red(&p).unwrap();
        assert_eq!(
            blocks,
            vec![
                RedBlock {
                    pt: 111,
                    ts_offset: 960,
                    start: 5,
                    end: 8
                },
                RedBlock {
                    pt: 111,
                    ts_offset: 0,
                    start: 8,
                    end: 10
                },
            ]
        );
        assert_eq!(red_primary(&p), Some((111, &[0x11, 0x22][..])));
        // Only a primary (no redundancy yet, as at the start of a stream).
        assert_eq!(red_primary(&[111, 1, 2, 3]), Some((111, &[1, 2, 3][..])));
        // An empty primary (DTX comfort) is still a primary.
        assert_eq!(red_primary(&[111]), Some((111, &[][..])));
    }

    #[test]
    fn red_payload_types_are_mapped() {
        let p = red_sample();
        let q = red_map_pt(&p, 111, 109).unwrap();
        assert_eq!(q[0], 0x80 | 109);
        assert_eq!(q[4], 109);
        assert_eq!(&q[1..4], &p[1..4]);
        assert_eq!(&q[5..], &p[5..]);
        // Another payload type is left alone.
        assert_eq!(red_map_pt(&p, 96, 109).unwrap(), p);
    }

    #[test]
    fn malformed_red_is_refused() {
        let p = red_sample();
        for bad in [&[][..], &p[..3], &p[..6], &[0x80 | 111, 0, 0, 200, 111, 1]] {
            assert_eq!(red_primary(bad), None, "{bad:?}");
            assert_eq!(red_map_pt(bad, 111, 109), None);
        }
        // Headers without end (every byte has F set).
        assert_eq!(red_primary(&[0xff; 64]), None);
    }
}
