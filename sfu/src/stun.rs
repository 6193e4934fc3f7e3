//! The little of STUN the engine reads itself (RFC 5389): whether a
//! datagram is STUN, and its USERNAME, by which a new flow is routed to its
//! peer connection (the stack parses the rest).

/// The USERNAME attribute of a STUN message, if `data` is one.
pub(crate) fn stun_username(data: &[u8]) -> Option<&str> {
    // RFC 5389: 20-byte header, first two bits zero, magic cookie 0x2112A442.
    if data.len() < 20 || data[0] & 0xc0 != 0 || data[4..8] != [0x21, 0x12, 0xa4, 0x42] {
        return None;
    }
    let len = u16::from_be_bytes([data[2], data[3]]) as usize;
    let body = data.get(20..20 + len)?;
    let mut i = 0;
    while i + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[i], body[i + 1]]);
        let alen = u16::from_be_bytes([body[i + 2], body[i + 3]]) as usize;
        let value = body.get(i + 4..i + 4 + alen)?;
        if typ == 0x0006 {
            return std::str::from_utf8(value).ok();
        }
        i += 4 + alen.div_ceil(4) * 4;
    }
    None
}

/// Whether a datagram looks like STUN (RFC 7983 demultiplexing: first byte 0..3).
pub(crate) fn is_stun(data: &[u8]) -> bool {
    data.first().is_some_and(|b| *b < 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_username_is_found() {
        let mut m = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[7; 12]);
        let user = b"abcd:efg";
        let mut attrs = vec![0x00, 0x06, 0, user.len() as u8];
        attrs.extend_from_slice(user);
        m[2..4].copy_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&attrs);
        assert_eq!(stun_username(&m), Some("abcd:efg"));
    }

    #[test]
    fn stun_username_rejects_garbage() {
        assert_eq!(stun_username(&[]), None);
        assert_eq!(stun_username(&[0u8; 19]), None);
        let mut m = vec![0x00, 0x01, 0, 40, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&[0x00, 0x06, 0xff, 0xff]);
        assert_eq!(stun_username(&m), None);
    }
}
