//! A small, strict DER walker: reads tag-length-value headers without
//! interpreting them. Used before handing bytes to the `der` crate, to bound
//! the work a hostile encoding can cause (depth, element counts), and to take
//! exact byte spans that a decoded structure does not keep (the signed
//! attributes of a CMS signer, which are signed as they were encoded).

/// One DER element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    /// First identifier octet (class, constructed bit, low tag number).
    pub tag: u8,
    /// The whole element: header and value.
    pub raw: &'a [u8],
    /// The value octets.
    pub value: &'a [u8],
}

impl Tlv<'_> {
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }
}

/// Reads one element at the start of `input`; returns it and what follows.
pub(crate) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    let tag = *input.first().ok_or("truncated DER (no tag)")?;
    let mut pos = 1usize;
    if tag & 0x1f == 0x1f {
        // High tag number form: base-128 octets, at most 4 of them.
        let mut n = 0;
        loop {
            let b = *input.get(pos).ok_or("truncated DER (tag)")?;
            pos += 1;
            n += 1;
            if n > 4 {
                return Err("DER tag number too long".into());
            }
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let first = *input.get(pos).ok_or("truncated DER (length)")?;
    pos += 1;
    let len = if first < 0x80 {
        usize::from(first)
    } else if first == 0x80 {
        return Err("indefinite length (BER) is not DER".into());
    } else {
        let count = usize::from(first & 0x7f);
        if count > 4 {
            return Err("DER length too large".into());
        }
        let mut len = 0usize;
        for _ in 0..count {
            let b = *input.get(pos).ok_or("truncated DER (length)")?;
            pos += 1;
            len = (len << 8) | usize::from(b);
        }
        len
    };
    let end = pos.checked_add(len).ok_or("DER length overflow")?;
    if end > input.len() {
        return Err(format!(
            "truncated DER: element needs {end} bytes, {} available",
            input.len()
        ));
    }
    let tlv = Tlv {
        tag,
        raw: &input[..end],
        value: &input[pos..end],
    };
    Ok((tlv, &input[end..]))
}

/// The elements inside a constructed value.
pub(crate) fn children(value: &[u8]) -> Result<Vec<Tlv<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let (tlv, r) = read_tlv(rest)?;
        out.push(tlv);
        rest = r;
    }
    Ok(out)
}

/// Re-encodes one BER element at the start of `input` with definite,
/// minimal lengths (DER's length rules), so that signers that write CMS
/// with indefinite lengths (some BouncyCastle-based tools) can be read.
/// Primitive values are copied as they are; constructed strings are not
/// merged. Returns the re-encoded element and the bytes it took in `input`.
pub(crate) fn normalize_lengths(input: &[u8], limits: Limits) -> Result<(Vec<u8>, usize), String> {
    let mut nodes = 0usize;
    let mut out = Vec::with_capacity(input.len());
    let used = normalize(input, 0, limits, &mut nodes, &mut out)?;
    Ok((out, used))
}

pub(crate) fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Normalizes one element of `input` into `out`; returns the bytes used.
fn normalize(
    input: &[u8],
    depth: usize,
    limits: Limits,
    nodes: &mut usize,
    out: &mut Vec<u8>,
) -> Result<usize, String> {
    *nodes += 1;
    if *nodes > limits.max_nodes {
        return Err(format!("more than {} BER elements", limits.max_nodes));
    }
    if depth > limits.max_depth {
        return Err(format!("BER nested deeper than {}", limits.max_depth));
    }
    // Identifier octets.
    let tag = *input.first().ok_or("truncated BER (no tag)")?;
    let mut pos = 1usize;
    if tag & 0x1f == 0x1f {
        loop {
            let b = *input.get(pos).ok_or("truncated BER (tag)")?;
            pos += 1;
            if pos > 5 {
                return Err("BER tag number too long".into());
            }
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let ident = &input[..pos];
    let first = *input.get(pos).ok_or("truncated BER (length)")?;
    pos += 1;
    let constructed = tag & 0x20 != 0;
    if first == 0x80 {
        if !constructed {
            return Err("indefinite length on a primitive BER element".into());
        }
        // Children until the end-of-contents octets 00 00.
        let mut body = Vec::new();
        let mut count = 0usize;
        loop {
            let rest = input.get(pos..).ok_or("truncated BER")?;
            if rest.starts_with(&[0, 0]) {
                pos += 2;
                break;
            }
            if rest.is_empty() {
                return Err("BER indefinite length without end-of-contents".into());
            }
            count += 1;
            if count > limits.max_children {
                return Err(format!(
                    "a BER structure has more than {} elements",
                    limits.max_children
                ));
            }
            pos += normalize(rest, depth + 1, limits, nodes, &mut body)?;
        }
        out.extend_from_slice(ident);
        push_length(out, body.len());
        out.extend_from_slice(&body);
        return Ok(pos);
    }
    let (tlv, _) = read_tlv(input)?;
    let header = tlv.raw.len() - tlv.value.len();
    if !constructed {
        out.extend_from_slice(ident);
        push_length(out, tlv.value.len());
        out.extend_from_slice(tlv.value);
        return Ok(header + tlv.value.len());
    }
    let mut body = Vec::with_capacity(tlv.value.len());
    let mut rest = tlv.value;
    let mut count = 0usize;
    while !rest.is_empty() {
        count += 1;
        if count > limits.max_children {
            return Err(format!(
                "a BER structure has more than {} elements",
                limits.max_children
            ));
        }
        let used = normalize(rest, depth + 1, limits, nodes, &mut body)?;
        rest = &rest[used..];
    }
    out.extend_from_slice(ident);
    push_length(out, body.len());
    out.extend_from_slice(&body);
    Ok(tlv.raw.len())
}

/// Bounds for [`check_limits`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_depth: usize,
    pub max_children: usize,
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_children: 512,
            max_nodes: 50_000,
        }
    }
}

/// Walks every constructed element of one DER element (and nothing after
/// it), failing on indefinite lengths, truncation, or structures past the
/// limits. Returns the length of the element.
pub(crate) fn check_limits(input: &[u8], limits: Limits) -> Result<usize, String> {
    let (tlv, _) = read_tlv(input)?;
    let mut nodes = 0usize;
    walk(tlv, 0, limits, &mut nodes)?;
    Ok(tlv.raw.len())
}

fn walk(tlv: Tlv<'_>, depth: usize, limits: Limits, nodes: &mut usize) -> Result<(), String> {
    *nodes += 1;
    if *nodes > limits.max_nodes {
        return Err(format!("more than {} DER elements", limits.max_nodes));
    }
    if depth > limits.max_depth {
        return Err(format!("DER nested deeper than {}", limits.max_depth));
    }
    if !tlv.constructed() {
        return Ok(());
    }
    let mut rest = tlv.value;
    let mut count = 0usize;
    while !rest.is_empty() {
        let (child, r) = read_tlv(rest)?;
        count += 1;
        if count > limits.max_children {
            return Err(format!(
                "a DER structure has more than {} elements",
                limits.max_children
            ));
        }
        walk(child, depth + 1, limits, nodes)?;
        rest = r;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_indefinite_and_truncated() {
        assert!(read_tlv(&[0x30, 0x80, 0, 0]).is_err());
        assert!(read_tlv(&[0x30, 0x05, 1]).is_err());
        assert!(read_tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(read_tlv(&[]).is_err());
    }

    #[test]
    fn normalizes_indefinite_lengths() {
        // SEQUENCE(indefinite) { [0](indefinite) { INTEGER 5 }, NULL } + padding.
        let ber = [
            0x30, 0x80, 0xa0, 0x80, 0x02, 0x01, 0x05, 0, 0, 0x05, 0x00, 0, 0, 0, 0,
        ];
        let (der, used) = normalize_lengths(&ber, Limits::default()).expect("ber");
        assert_eq!(
            der,
            vec![0x30, 0x07, 0xa0, 0x03, 0x02, 0x01, 0x05, 0x05, 0x00]
        );
        assert_eq!(used, 13);
        // DER stays as it is; non-minimal lengths become minimal.
        let (same, _) = normalize_lengths(&der, Limits::default()).expect("der");
        assert_eq!(same, der);
        let (min, _) =
            normalize_lengths(&[0x04, 0x81, 0x01, 0xff], Limits::default()).expect("ber");
        assert_eq!(min, vec![0x04, 0x01, 0xff]);
        // Truncated, primitive indefinite, missing end-of-contents.
        assert!(normalize_lengths(&[0x30, 0x80, 0x05, 0x00], Limits::default()).is_err());
        assert!(normalize_lengths(&[0x04, 0x80, 0, 0], Limits::default()).is_err());
        assert!(normalize_lengths(&[0x30, 0x80], Limits::default()).is_err());
        let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 1000)
            .flatten()
            .collect();
        assert!(normalize_lengths(&deep, Limits::default()).is_err());
    }

    #[test]
    fn bounds_depth_and_width() {
        // 100 nested SEQUENCEs.
        let mut v: Vec<u8> = vec![0x05, 0x00];
        for _ in 0..100 {
            let mut n = vec![0x30, v.len() as u8];
            if v.len() > 127 {
                n = vec![0x30, 0x81, v.len() as u8];
            }
            n.extend_from_slice(&v);
            v = n;
            if v.len() > 250 {
                break;
            }
        }
        assert!(check_limits(
            &v,
            Limits {
                max_depth: 10,
                ..Limits::default()
            }
        )
        .is_err());
        // A SET with 1000 NULLs.
        let mut set = vec![0x31, 0x82, 0x07, 0xd0];
        for _ in 0..1000 {
            set.extend_from_slice(&[0x05, 0x00]);
        }
        assert!(check_limits(&set, Limits::default()).is_err());
        assert_eq!(
            check_limits(&[0x30, 0x02, 0x05, 0x00, 0xff], Limits::default()),
            Ok(4)
        );
    }
}
