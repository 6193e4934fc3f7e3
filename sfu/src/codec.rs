//! What forwarding needs to know of payloads: whether a packet starts a
//! keyframe (VP8, H264), and the VP8 payload descriptor fields a layer switch
//! rewrites (picture id, TL0PICIDX). Everything here reads untrusted bytes:
//! short or odd payloads answer "no" or are left as they are, never panic.

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

/// Whether an H264 RTP payload (RFC 6184) carries an IDR slice or SPS.
fn h264_has_idr(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let is_key = |nal: u8| matches!(nal & 0x1f, 5 | 7);
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
        assert!(is_keyframe_start(VideoCodec::H264, &[0x65, 0x88]));
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x41, 0x9a]));
        // STAP-A with SPS.
        assert!(is_keyframe_start(
            VideoCodec::H264,
            &[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]
        ));
        // FU-A start of an IDR.
        assert!(is_keyframe_start(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x7c, 0x05, 0x00]));
    }
}
