//! Short codes of invitations ("mã tham dự"): 8 characters that an
//! operator reads out over the phone or types from a printed sheet, on the
//! join page, instead of a link.
//!
//! - The alphabet has no `0`, `O`, `1` or `I` (32 symbols: 5 bits each), so
//!   a code is 40 bits: with failed lookups throttled per address (5 a
//!   minute, [`crate::api::LoginLimiter`]), guessing one of even thousands of
//!   active codes takes decades.
//! - A code is computed, not stored: HMAC-SHA256 under the server's secret
//!   of the invitation's id and a counter `n` (0 unless an earlier code
//!   collided). The database keeps only the code's lookup key, another HMAC
//!   of the code, so a copy of the database gives no code.
//! - A code leads to its invitation, so it expires and is revoked with it.

use crate::auth::Keys;

/// The symbols of a code: digits and capital letters without `0`, `O`,
/// `1` and `I`.
pub const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Symbols in a code.
pub const LEN: usize = 8;

/// The code number `n` of invitation `invitation_id` (8 symbols).
pub fn code_for(keys: &Keys, invitation_id: &str, n: i64) -> String {
    let mac = keys.mac(
        "giaoban short code v1",
        format!("{invitation_id}\u{0}{n}").as_bytes(),
    );
    // The first 40 bits, 5 at a time.
    let mut bits: u64 = 0;
    for b in &mac[..5] {
        bits = (bits << 8) | u64::from(*b);
    }
    (0..LEN)
        .map(|i| {
            let v = (bits >> (5 * (LEN - 1 - i))) & 31;
            char::from(ALPHABET[usize::try_from(v).unwrap_or(0)])
        })
        .collect()
}

/// The lookup key of `code` (a normalized code), as stored.
pub fn lookup_key(keys: &Keys, code: &str) -> String {
    keys.mac("giaoban short code lookup v1", code.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A code as typed (spaces, dashes and dots anywhere, any case), as
/// [`LEN`] symbols of the [`ALPHABET`]; `None` when it cannot be one.
pub fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '.' | '_'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// A code as printed and read out: `ABCD-EFGH`.
pub fn display(code: &str) -> String {
    match (code.get(..4), code.get(4..)) {
        (Some(a), Some(b)) if !b.is_empty() => format!("{a}-{b}"),
        _ => code.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_readable_and_keyed() {
        let k = Keys::from_secret(&[7u8; 48]);
        let a = code_for(&k, "inv-1", 0);
        assert_eq!(a.len(), LEN);
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
        assert!(!a.contains(['0', 'O', '1', 'I']));
        assert_eq!(a, code_for(&k, "inv-1", 0), "deterministic");
        assert_ne!(a, code_for(&k, "inv-1", 1), "the counter changes it");
        assert_ne!(a, code_for(&k, "inv-2", 0));
        let other = Keys::from_secret(&[8u8; 48]);
        assert_ne!(a, code_for(&other, "inv-1", 0), "keyed by the secret");
        assert_ne!(lookup_key(&k, &a), lookup_key(&other, &a));
        assert_eq!(lookup_key(&k, &a).len(), 64);
        // Many codes: all symbols appear, codes differ.
        let many: std::collections::HashSet<String> = (0..2000)
            .map(|i| code_for(&k, &format!("i{i}"), 0))
            .collect();
        assert_eq!(many.len(), 2000);
        for s in ALPHABET {
            assert!(many.iter().any(|c| c.as_bytes().contains(s)));
        }
    }

    #[test]
    fn typed_codes() {
        assert_eq!(normalize("abcd-efgh").as_deref(), Some("ABCDEFGH"));
        assert_eq!(normalize(" AB CD.EF GH ").as_deref(), Some("ABCDEFGH"));
        assert_eq!(normalize("ABCDEFG"), None, "too short");
        assert_eq!(normalize("ABCDEFGHJ"), None, "too long");
        assert_eq!(normalize("ABCDEFG0"), None, "0 is not a symbol");
        assert_eq!(normalize("ABCDEFGO"), None, "O is not a symbol");
        assert_eq!(normalize("ABCDEFGĐ"), None);
        assert_eq!(display("ABCDEFGH"), "ABCD-EFGH");
    }
}
