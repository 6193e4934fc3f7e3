//! Finding signature dictionaries in the raw bytes of a PDF.
//!
//! A signature's `/Contents` must be a hex string written directly in the
//! file (the `/ByteRange` leaves exactly that string out of the signed
//! bytes), so a signature dictionary is always visible in the raw bytes, even
//! when the rest of the file uses object streams. We look for every
//! `/ByteRange` key, find the dictionary it belongs to, and parse that
//! dictionary with a small, bounded PDF object parser.

/// Most dictionary starts (`<<`) tried, walking back from a `/ByteRange`.
const MAX_DICT_TRIES: usize = 8;
/// Deepest nesting of arrays and dictionaries inside a signature dictionary.
const MAX_DEPTH: usize = 16;
/// Most entries in one array or dictionary.
const MAX_ITEMS: usize = 4096;

/// A parsed PDF value, with the span of its bytes in the file.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Name(String),
    Int(i128),
    Real,
    /// A literal string `( ... )`, decoded.
    Str(Vec<u8>),
    /// A hex string `< ... >`: its span, `<` to `>` inclusive.
    Hex {
        start: usize,
        end: usize,
    },
    Array(Vec<Value>),
    Dict(Vec<(String, Value)>),
    /// `true`, `false`, `null`, `R` and other bare words.
    Keyword,
}

/// A signature dictionary as found in the file.
#[derive(Debug, Clone)]
pub(crate) struct SigDict {
    /// Offset of the `<<` that opens the dictionary.
    pub start: usize,
    /// Offset just past the `>>` that closes it.
    pub end: usize,
    /// Offset of the `/ByteRange` key.
    pub byte_range_at: usize,
    pub entries: Vec<(String, Value)>,
}

impl SigDict {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn name(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(Value::Name(n)) => Some(n.clone()),
            _ => None,
        }
    }

    pub fn text(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(pdf_text(s)),
            _ => None,
        }
    }
}

/// What the scan found at one `/ByteRange`.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    Dict(SigDict),
    /// A `/ByteRange` whose dictionary could not be read.
    Malformed {
        message: String,
    },
}

/// Offsets of every `/ByteRange` name token in the file.
pub(crate) fn byte_range_offsets(pdf: &[u8]) -> Vec<usize> {
    const KEY: &[u8] = b"/ByteRange";
    let mut out = Vec::new();
    let mut i = 0;
    while i + KEY.len() <= pdf.len() {
        match pdf[i..].iter().position(|&b| b == b'/') {
            None => break,
            Some(p) => i += p,
        }
        if pdf[i..].starts_with(KEY) {
            let after = pdf.get(i + KEY.len()).copied();
            if after.is_none_or(|b| is_delimiter(b) || is_white(b)) {
                out.push(i);
            }
            i += KEY.len();
        } else {
            i += 1;
        }
    }
    out
}

/// Finds the dictionary that has the `/ByteRange` key at `at` as one of its
/// own keys, looking back at most `window` bytes.
///
/// The dictionary must end within `window` bytes after the key too, and the
/// bytes scanned and parsed are taken from `budget`, shared by every call
/// on one file, so a hostile file costs a bounded amount of work.
pub(crate) fn dict_around(pdf: &[u8], at: usize, window: usize, budget: &mut usize) -> Found {
    let lowest = at.saturating_sub(window);
    let pdf = &pdf[..pdf.len().min(at.saturating_add(window))];
    let mut pos = at;
    let mut tries = 0;
    let mut last_err = String::from("no dictionary encloses it");
    while pos > lowest && tries < MAX_DICT_TRIES {
        // The previous "<<" before pos.
        let found = rfind_open(pdf, lowest, pos);
        let scanned = pos - found.unwrap_or(lowest);
        let Some(open) = found else {
            break;
        };
        if *budget < scanned {
            return Found::Malformed {
                message: "the file needs too much work to find its signatures".into(),
            };
        }
        *budget -= scanned;
        tries += 1;
        pos = open;
        let mut p = Parser {
            buf: pdf,
            pos: open,
            key_hit: None,
            target: at,
        };
        let parsed = p.value(0);
        let used = p.pos.saturating_sub(open);
        if *budget < used {
            return Found::Malformed {
                message: "the file needs too much work to find its signatures".into(),
            };
        }
        *budget -= used;
        match parsed {
            Ok(Value::Dict(entries)) => {
                if p.key_hit == Some(0) {
                    return Found::Dict(SigDict {
                        start: open,
                        end: p.pos,
                        byte_range_at: at,
                        entries,
                    });
                }
                if p.pos > at {
                    // It encloses the key, but only in a nested dictionary:
                    // the key is not a signature dictionary's.
                    return Found::Malformed {
                        message: "/ByteRange found nested, not in a signature dictionary".into(),
                    };
                }
            }
            Ok(_) => {}
            Err(e) => last_err = e,
        }
    }
    Found::Malformed {
        message: format!("cannot read the dictionary of a /ByteRange: {last_err}"),
    }
}

fn rfind_open(pdf: &[u8], lowest: usize, before: usize) -> Option<usize> {
    let mut i = before;
    while i > lowest {
        i -= 1;
        if pdf[i] == b'<' && i > lowest && pdf[i - 1] == b'<' {
            return Some(i - 1);
        }
    }
    None
}

fn is_white(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Depth at which the key at `target` was seen as a dictionary key.
    key_hit: Option<usize>,
    target: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            if is_white(b) {
                self.pos += 1;
            } else if b == b'%' {
                while let Some(c) = self.peek() {
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("objects nested too deeply".into());
        }
        self.skip_ws();
        let start = self.pos;
        let b = self.peek().ok_or("unexpected end of file")?;
        match b {
            b'<' if self.buf.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                let mut entries = Vec::new();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        None => return Err("unterminated dictionary".into()),
                        Some(b'>') => {
                            if self.buf.get(self.pos + 1) == Some(&b'>') {
                                self.pos += 2;
                                return Ok(Value::Dict(entries));
                            }
                            return Err(format!("stray '>' at offset {}", self.pos));
                        }
                        Some(b'/') => {
                            let key_at = self.pos;
                            let key = self.name()?;
                            if key_at == self.target {
                                self.key_hit = Some(depth);
                            }
                            let v = self.value(depth + 1)?;
                            if entries.len() >= MAX_ITEMS {
                                return Err("dictionary too large".into());
                            }
                            entries.push((key, v));
                        }
                        Some(_) => {
                            return Err(format!("dictionary key expected at offset {}", self.pos))
                        }
                    }
                }
            }
            b'<' => {
                self.pos += 1;
                loop {
                    match self.peek() {
                        None => return Err("unterminated hex string".into()),
                        Some(b'>') => {
                            self.pos += 1;
                            return Ok(Value::Hex {
                                start,
                                end: self.pos,
                            });
                        }
                        Some(c) if c.is_ascii_hexdigit() || is_white(c) => self.pos += 1,
                        Some(c) => {
                            return Err(format!(
                                "invalid byte 0x{c:02x} in hex string at offset {}",
                                self.pos
                            ))
                        }
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        None => return Err("unterminated array".into()),
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::Array(items));
                        }
                        Some(_) => {
                            let v = self.value(depth + 1)?;
                            if items.len() >= MAX_ITEMS {
                                return Err("array too large".into());
                            }
                            items.push(v);
                        }
                    }
                }
            }
            b'(' => self.literal(),
            b'/' => Ok(Value::Name(self.name()?)),
            b'+' | b'-' | b'.' | b'0'..=b'9' => self.number(),
            b')' | b'>' | b']' | b'{' | b'}' => {
                Err(format!("unexpected '{}' at offset {}", b as char, self.pos))
            }
            _ => {
                // A bare keyword (true, false, null, R, obj...).
                let mut n = 0;
                while let Some(c) = self.peek() {
                    if is_white(c) || is_delimiter(c) {
                        break;
                    }
                    self.pos += 1;
                    n += 1;
                    if n > 64 {
                        return Err("keyword too long".into());
                    }
                }
                Ok(Value::Keyword)
            }
        }
    }

    fn name(&mut self) -> Result<String, String> {
        // At '/'.
        self.pos += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            if is_white(c) || is_delimiter(c) {
                break;
            }
            if c == b'#' {
                let h = self
                    .buf
                    .get(self.pos + 1..self.pos + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("bad #xx escape in a name")?;
                out.push(h);
                self.pos += 3;
            } else {
                out.push(c);
                self.pos += 1;
            }
            if out.len() > 127 {
                return Err("name too long".into());
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let mut real = false;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' | b'+' | b'-' => {}
                b'.' => real = true,
                _ => break,
            }
            self.pos += 1;
            if self.pos - start > 32 {
                return Err("number too long".into());
            }
        }
        let text = std::str::from_utf8(&self.buf[start..self.pos]).map_err(|e| e.to_string())?;
        if real {
            return Ok(Value::Real);
        }
        text.parse::<i128>()
            .map(Value::Int)
            .map_err(|_| format!("bad number {text:?} at offset {start}"))
    }

    fn literal(&mut self) -> Result<Value, String> {
        // At '('.
        self.pos += 1;
        let mut depth = 1usize;
        let mut out = Vec::new();
        loop {
            let c = self.peek().ok_or("unterminated string")?;
            self.pos += 1;
            match c {
                b'\\' => {
                    let e = self.peek().ok_or("unterminated string")?;
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push((v & 0xff) as u8);
                        }
                        b'\r' => {
                            if self.peek() == Some(b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        other => out.push(other),
                    }
                }
                b'(' => {
                    depth += 1;
                    out.push(c);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(Value::Str(out));
                    }
                    out.push(c);
                }
                _ => out.push(c),
            }
            if out.len() > 1 << 20 {
                return Err("string too long".into());
            }
        }
    }
}

/// Decodes a hex string's bytes (between `<` and `>`); an odd digit count
/// means a final 0.
pub(crate) fn decode_hex(inner: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(inner.len() / 2 + 1);
    let mut hi: Option<u8> = None;
    for &c in inner {
        if is_white(c) {
            continue;
        }
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(format!("invalid hex digit 0x{c:02x}")),
        };
        match hi.take() {
            None => hi = Some(d),
            Some(h) => out.push((h << 4) | d),
        }
    }
    if let Some(h) = hi {
        out.push(h << 4);
    }
    Ok(out)
}

/// A PDF text string: UTF-16BE with a BOM, UTF-8 with a BOM, or
/// PDFDocEncoding (read as Latin-1, close enough for display).
pub(crate) fn pdf_text(s: &[u8]) -> String {
    if let Some(rest) = s.strip_prefix(&[0xfe, 0xff]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    if let Some(rest) = s.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    s.iter().map(|&b| char::from(b)).collect()
}

/// Parses a PDF date (`D:YYYYMMDDHHmmSSOHH'mm'`, every part after the year
/// optional) into Unix seconds.
pub(crate) fn parse_pdf_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_prefix("D:").unwrap_or(s);
    let b = s.as_bytes();
    let num = |from: usize, len: usize, default: u32| -> Option<u32> {
        match b.get(from..from + len) {
            Some(d) if d.iter().all(u8::is_ascii_digit) => {
                std::str::from_utf8(d).ok()?.parse().ok()
            }
            Some(_) => None,
            None if from >= b.len() => Some(default),
            None => None,
        }
    };
    let year = i32::try_from(num(0, 4, 0)?).ok()?;
    if b.len() < 4 {
        return None;
    }
    let month = u8::try_from(num(4, 2, 1)?).ok()?;
    let day = u8::try_from(num(6, 2, 1)?).ok()?;
    let hour = u8::try_from(num(8, 2, 0)?).ok()?;
    let minute = u8::try_from(num(10, 2, 0)?).ok()?;
    let second = u8::try_from(num(12, 2, 0)?).ok()?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let t = time::Time::from_hms(hour, minute, second.min(59)).ok()?;
    let local = time::PrimitiveDateTime::new(date, t)
        .assume_utc()
        .unix_timestamp();
    // Offset from UTC: Z, +HH'mm' or -HH'mm'.
    let offset = match b.get(14) {
        None | Some(b'Z') => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = i64::from(num(15, 2, 0)?);
            let om = match b.get(17) {
                Some(b'\'') => i64::from(num(18, 2, 0).unwrap_or(0)),
                _ => 0,
            };
            let secs = oh * 3600 + om * 60;
            if sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        Some(_) => return None,
    };
    Some(local - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_signature_dictionary() {
        let pdf = b"%PDF-1.7\n1 0 obj\n<< /Type /Sig /Prop << /A (x) >> /Contents <0A0B> /ByteRange [0 10 20 5] /M (D:20250102030405+07'00') >>\nendobj\n";
        let offs = byte_range_offsets(pdf);
        assert_eq!(offs.len(), 1);
        let mut budget = 1 << 30;
        match dict_around(pdf, offs[0], 1 << 20, &mut budget) {
            Found::Dict(d) => {
                assert_eq!(d.name("Type").as_deref(), Some("Sig"));
                assert!(matches!(d.get("Contents"), Some(Value::Hex { .. })));
                assert_eq!(d.text("M").as_deref(), Some("D:20250102030405+07'00'"));
            }
            Found::Malformed { message, .. } => panic!("{message}"),
        }
    }

    #[test]
    fn pdf_dates() {
        assert_eq!(parse_pdf_date("D:19700101000000Z"), Some(0));
        assert_eq!(parse_pdf_date("D:19700101070000+07'00'"), Some(0));
        assert_eq!(parse_pdf_date("D:1970"), Some(0));
        assert_eq!(parse_pdf_date("garbage"), None);
        assert_eq!(parse_pdf_date("D:19701301"), None);
    }

    #[test]
    fn hex() {
        assert_eq!(decode_hex(b"0a B"), Ok(vec![0x0a, 0xb0]));
        assert!(decode_hex(b"zz").is_err());
    }
}
