//! The layout of Vietnamese administrative documents (Decree 30/2020/NĐ-CP)
//! shared by the minutes ([`crate::minutes`]) and the notice of conclusions
//! ([`crate::notice`]): national title and motto, issuing body, number and
//! symbol, place and date, title, body, signature block (with the
//! recipients, "Nơi nhận", when the document has them); as a standalone
//! HTML page and as a PDF (A4, Liberation Serif 13 pt embedded as subsets,
//! see [`crate::minutes`] for why krilla). Both are pure functions of a
//! [`Sheet`]; the same sheet gives the same PDF bytes.

use std::fmt::Write as _;

use krilla::geom::{PathBuilder, Point, Transform};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::Stroke;
use krilla::text::{Font, TextDirection};
use krilla::Document;

use crate::minutes::MinutesHeader;

/// Liberation Serif Regular 2.1.5 (Debian's fonts-liberation2), metric
/// compatible with Times New Roman; full Vietnamese (precomposed letters).
pub static FONT_REGULAR: &[u8] = include_bytes!("../fonts/LiberationSerif-Regular.ttf");
/// Liberation Serif Bold 2.1.5.
pub static FONT_BOLD: &[u8] = include_bytes!("../fonts/LiberationSerif-Bold.ttf");

/// A PDF could not be made (an internal fault: the fonts are compiled in,
/// the layout is ours).
#[derive(Debug, thiserror::Error)]
#[error("the PDF cannot be made: {0}")]
pub struct PdfError(String);

/// One signer's column of the signature block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Signer {
    /// Bold lines ("THƯ KÝ"; "TL. CHỦ TỊCH", "CHÁNH VĂN PHÒNG").
    pub titles: Vec<String>,
    /// An italic line under them ("(Ký, ghi rõ họ tên)"), if any.
    pub hint: Option<String>,
    /// The signer's name (may be empty).
    pub name: String,
}

/// An administrative document, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sheet {
    pub header: MinutesHeader,
    /// The number given by the clerical office; empty: left blank.
    pub number: String,
    /// The date of the date line (Unix seconds, shown in Vietnam's time);
    /// `None`: day and month left blank for the clerical office.
    pub date: Option<i64>,
    /// The year of a blank date line.
    pub date_year: i32,
    /// The kind of document, upper case ("BIÊN BẢN", "THÔNG BÁO").
    pub kind: &'static str,
    /// The line under it (bold, wrapped), cleaned.
    pub subtitle: String,
    pub blocks: Vec<Block>,
    /// "Nơi nhận": one entry a line, in the left column of the signature
    /// block; empty: none.
    pub recipients: Vec<String>,
    /// One or two signers; the last is in the right column.
    pub signers: Vec<Signer>,
    /// The HTML page's and the PDF's title.
    pub title: String,
    /// The PDF's document id (stable for the same document).
    pub document_id: String,
}

// ---------------------------------------------------------------------------
// The content, shared by the HTML and the PDF.

/// A block of the body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Block {
    /// "I. THÔNG TIN CUỘC HỌP".
    Section(String),
    /// A bold line ("1. Kinh tế - xã hội").
    Sub(String),
    /// A paragraph: `lead` in bold, then `text`; `marker` hangs before it.
    Para {
        indent: u8,
        marker: Option<String>,
        lead: String,
        text: String,
        italic: bool,
    },
}

pub(crate) fn para(lead: &str, text: impl Into<String>) -> Block {
    Block::Para {
        indent: 0,
        marker: None,
        lead: lead.to_owned(),
        text: text.into(),
        italic: false,
    }
}

pub(crate) fn bullet(text: impl Into<String>) -> Block {
    Block::Para {
        indent: 1,
        marker: Some("-".into()),
        lead: String::new(),
        text: text.into(),
        italic: false,
    }
}

pub(crate) fn note(text: &str) -> Block {
    Block::Para {
        indent: 0,
        marker: None,
        lead: String::new(),
        text: text.to_owned(),
        italic: true,
    }
}

/// User text on one line, in NFC (decomposed Vietnamese is composed, so
/// the text extracted from the PDF is the usual one): controls and line
/// breaks become spaces, runs of white space one space.
pub(crate) fn clean(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    s.nfc()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The time in Vietnam (UTC+7, no daylight saving).
pub(crate) fn vn(at: i64) -> time::OffsetDateTime {
    let offset = time::UtcOffset::from_hms(7, 0, 0).unwrap_or(time::UtcOffset::UTC);
    time::OffsetDateTime::from_unix_timestamp(at)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset)
}

/// "08:30".
pub(crate) fn hm(at: i64) -> String {
    let t = vn(at);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// "08 giờ 30 phút, ngày 05/01/2026".
pub(crate) fn moment(at: i64) -> String {
    let t = vn(at);
    format!(
        "{:02} giờ {:02} phút, ngày {:02}/{:02}/{}",
        t.hour(),
        t.minute(),
        t.day(),
        u8::from(t.month()),
        t.year()
    )
}

/// The date line of Decree 30: "Hà Nội, ngày 05 tháng 01 năm 2026" (a
/// leading zero for days below 10 and for January and February).
pub(crate) fn date_line(place: &str, at: i64) -> String {
    let t = vn(at);
    let month = u8::from(t.month());
    let place = match clean(place) {
        p if p.is_empty() => "……….".to_owned(),
        p => p,
    };
    let month = if month < 3 {
        format!("{month:02}")
    } else {
        month.to_string()
    };
    format!(
        "{place}, ngày {:02} tháng {month} năm {}",
        t.day(),
        t.year()
    )
}

/// The date line of a sheet: its date, or blanks for the day and month.
fn sheet_date_line(s: &Sheet) -> String {
    match s.date {
        Some(at) => date_line(&s.header.place, at),
        None => {
            let place = match clean(&s.header.place) {
                p if p.is_empty() => "……….".to_owned(),
                p => p,
            };
            format!("{place}, ngày      tháng      năm {}", s.date_year)
        }
    }
}

/// The lines of the issuing body (upper case, cleaned, empty ones dropped).
pub(crate) fn issuer_lines(h: &MinutesHeader) -> (Vec<String>, Vec<String>) {
    let split = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| clean(l).to_uppercase())
            .filter(|l| !l.is_empty())
            .collect()
    };
    (split(&h.parent), split(&h.issuer))
}

/// "Số:       /BB-UBND": the number blank for the clerical office, or the
/// number given ("Số: 12/TB-UBND").
pub(crate) fn number_line(h: &MinutesHeader, number: &str) -> String {
    let symbol = clean(&h.symbol);
    let number = clean(number);
    if number.is_empty() {
        format!("Số:       /{symbol}")
    } else {
        format!("Số: {number}/{symbol}")
    }
}

pub(crate) const NATIONAL_TITLE: &str = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM";
pub(crate) const MOTTO: &str = "Độc lập - Tự do - Hạnh phúc";

// ---------------------------------------------------------------------------
// HTML.

/// `s` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The style sheet of the HTML documents (inline: the page loads nothing).
pub const HTML_STYLE: &str = "\
body{font-family:'Times New Roman','Liberation Serif',Tinos,serif;font-size:13pt;\
line-height:1.35;max-width:170mm;margin:20mm auto;padding:0 8mm;color:#000;background:#fff}\
table.head{width:100%;border-collapse:collapse}\
table.head td{vertical-align:top;text-align:center;padding:0}\
td.issuer{width:38%}\
.b{font-weight:bold}.i{font-style:italic}\
.rule{display:inline-block;border-bottom:1px solid #000;padding-bottom:2px}\
h1{font-size:14pt;text-align:center;margin:18pt 0 0}\
h2.sub{font-size:13pt;text-align:center;margin:2pt 0 12pt}\
h3{font-size:13pt;margin:10pt 0 4pt}\
h4{font-size:13pt;margin:6pt 0 2pt}\
p{margin:2pt 0;text-align:justify}\
p.in1{padding-left:2.2em;text-indent:-1.1em}\
table.sign{width:100%;margin-top:18pt}\
table.sign td{width:50%;text-align:center;vertical-align:top;padding-bottom:60pt}\
td.to{text-align:left;font-size:11pt}\
@media print{body{margin:0;max-width:none}}";

/// The Content-Security-Policy of the HTML documents: nothing loads, nothing
/// runs, only the inline style sheet (by its hash) applies.
pub fn html_csp() -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(HTML_STYLE.as_bytes());
    format!(
        "default-src 'none'; style-src 'sha256-{}'; sandbox",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The document as a standalone HTML page (UTF-8; every text escaped).
pub(crate) fn html(s: &Sheet) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n",
        escape(&s.title)
    );
    let (parent, issuer) = issuer_lines(&s.header);
    h.push_str("<table class=\"head\"><tr><td class=\"issuer\">");
    for l in &parent {
        let _ = write!(h, "<div>{}</div>", escape(l));
    }
    h.push_str("<div class=\"b rule\">");
    h.push_str(
        &issuer
            .iter()
            .map(|l| escape(l))
            .collect::<Vec<_>>()
            .join("<br>"),
    );
    let _ = writeln!(
        h,
        "</div><div>{}</div></td><td><div class=\"b\">{NATIONAL_TITLE}</div>\
         <div class=\"b rule\">{MOTTO}</div><div class=\"i\">{}</div></td></tr></table>",
        escape(&number_line(&s.header, &s.number)),
        escape(&sheet_date_line(s))
    );
    let _ = write!(
        h,
        "<h1>{}</h1>\n<h2 class=\"sub\">{}</h2>\n",
        escape(s.kind),
        escape(&s.subtitle)
    );
    for b in &s.blocks {
        match b {
            Block::Section(t) => {
                let _ = writeln!(h, "<h3>{}</h3>", escape(t));
            }
            Block::Sub(t) => {
                let _ = writeln!(h, "<h4>{}</h4>", escape(t));
            }
            Block::Para {
                indent,
                marker,
                lead,
                text,
                italic,
            } => {
                let mut class = Vec::new();
                if *indent > 0 {
                    class.push("in1");
                }
                if *italic {
                    class.push("i");
                }
                h.push_str("<p");
                if !class.is_empty() {
                    let _ = write!(h, " class=\"{}\"", class.join(" "));
                }
                h.push('>');
                if let Some(m) = marker {
                    let _ = write!(h, "{} ", escape(m));
                }
                if !lead.is_empty() {
                    let _ = write!(h, "<b>{}</b>", escape(lead));
                }
                h.push_str(&escape(text));
                h.push_str("</p>\n");
            }
        }
    }
    // Two columns: the recipients or the first of two signers on the left,
    // the last signer on the right.
    let (left, right) = columns(s);
    let signer_head = |x: Option<&Signer>| -> String {
        let Some(x) = x else { return String::new() };
        let mut t = x
            .titles
            .iter()
            .map(|l| format!("<div class=\"b\">{}</div>", escape(l)))
            .collect::<String>();
        if let Some(hint) = &x.hint {
            let _ = write!(t, "<div class=\"i\">{}</div>", escape(hint));
        }
        t
    };
    let left_head = if s.recipients.is_empty() {
        format!("<td>{}</td>", signer_head(left))
    } else {
        let mut t = String::from("<td class=\"to\"><div class=\"b i\">Nơi nhận:</div>");
        for r in &s.recipients {
            let _ = write!(t, "<div>- {}</div>", escape(r));
        }
        t.push_str("</td>");
        t
    };
    let name = |x: Option<&Signer>| x.map(|x| escape(&clean(&x.name))).unwrap_or_default();
    let _ = writeln!(
        h,
        "<table class=\"sign\"><tr>{left_head}<td>{}</td></tr>\
         <tr><td class=\"b\">{}</td><td class=\"b\">{}</td></tr></table>\n</body>\n</html>",
        signer_head(right),
        name(left),
        name(right)
    );
    h
}

/// The signers of the left and right columns.
fn columns(s: &Sheet) -> (Option<&Signer>, Option<&Signer>) {
    let right = s.signers.last();
    let left = if s.signers.len() >= 2 {
        s.signers.first()
    } else {
        None
    };
    (left, right)
}

// ---------------------------------------------------------------------------
// PDF.

/// A4, in points.
pub(crate) const PAGE_W: f32 = 595.28;
pub(crate) const PAGE_H: f32 = 841.89;
/// Decree 30's margins: top and bottom 20 mm, left 30 mm, right 15 mm.
pub(crate) const LEFT: f32 = 85.04;
pub(crate) const RIGHT: f32 = PAGE_W - 42.52;
pub(crate) const TOP: f32 = 56.69;
pub(crate) const BOTTOM: f32 = PAGE_H - 56.69;
pub(crate) const BODY: f32 = 13.0;
pub(crate) const LINE: f32 = 16.5;
/// The issuer's column, from LEFT; the national title's is the rest.
pub(crate) const LEFT_COL: f32 = 185.0;
/// The slant of the synthetic italic (the oblique of the regular face).
pub(crate) const SLANT: f32 = -0.2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Face {
    Regular,
    Bold,
}

/// What is drawn on a page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    /// `text` with its baseline starting at (`x`, `y`), y downwards.
    Text {
        x: f32,
        y: f32,
        size: f32,
        face: Face,
        italic: bool,
        text: String,
    },
    Rule {
        x1: f32,
        x2: f32,
        y: f32,
    },
}

/// Widths of text, shaped as krilla shapes it (rustybuzz).
pub(crate) struct Measure {
    regular: rustybuzz::Face<'static>,
    bold: rustybuzz::Face<'static>,
}

impl Measure {
    fn new() -> std::result::Result<Measure, PdfError> {
        let face = |data: &'static [u8]| {
            rustybuzz::Face::from_slice(data, 0)
                .ok_or_else(|| PdfError("the font cannot be read".into()))
        };
        Ok(Measure {
            regular: face(FONT_REGULAR)?,
            bold: face(FONT_BOLD)?,
        })
    }

    fn width(&self, text: &str, face: Face, size: f32) -> f32 {
        let f = match face {
            Face::Regular => &self.regular,
            Face::Bold => &self.bold,
        };
        let mut buf = rustybuzz::UnicodeBuffer::new();
        buf.push_str(text);
        buf.guess_segment_properties();
        let out = rustybuzz::shape(f, &[], buf);
        let units: i64 = out
            .glyph_positions()
            .iter()
            .map(|p| i64::from(p.x_advance))
            .sum();
        units as f32 * size / f32::from(f.units_per_em().max(1) as u16)
    }
}

/// Whether a line may break before `c` inside a word that does not fit
/// (never before a combining mark).
pub(crate) fn breakable_before(c: char) -> bool {
    !matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

pub(crate) struct Layout<'a> {
    m: &'a Measure,
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl Layout<'_> {
    fn page(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    /// Room for `h` more points below the cursor, else a new page.
    fn ensure(&mut self, h: f32) {
        if self.y + h > BOTTOM {
            self.pages.push(Vec::new());
            self.y = TOP;
        }
    }

    fn text(&mut self, x: f32, size: f32, face: Face, italic: bool, text: &str) {
        let y = self.y;
        self.page().push(Op::Text {
            x,
            y,
            size,
            face,
            italic,
            text: text.to_owned(),
        });
    }

    /// `text` centered on `cx` at the cursor's baseline; returns its width.
    fn centered(&mut self, cx: f32, size: f32, face: Face, italic: bool, text: &str) -> f32 {
        let w = self.m.width(text, face, size);
        self.text(cx - w / 2.0, size, face, italic, text);
        w
    }

    /// Words of `text` wrapped to `width` (each word keeps its face).
    fn wrap(
        &self,
        words: &[(String, Face)],
        size: f32,
        first_width: f32,
        width: f32,
    ) -> Vec<Vec<(String, Face)>> {
        let space = self.m.width(" ", Face::Regular, size);
        let mut lines: Vec<Vec<(String, Face)>> = Vec::new();
        let mut cur: Vec<(String, Face)> = Vec::new();
        let mut cur_w = 0.0;
        let mut queue: std::collections::VecDeque<(String, Face)> = words.iter().cloned().collect();
        while let Some((word, face)) = queue.pop_front() {
            let limit = if lines.is_empty() { first_width } else { width };
            let w = self.m.width(&word, face, size);
            let needed = if cur.is_empty() { w } else { cur_w + space + w };
            if needed <= limit {
                cur_w = needed;
                cur.push((word, face));
                continue;
            }
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
                cur_w = 0.0;
                queue.push_front((word, face));
                continue;
            }
            // A word longer than a line: cut it where it fits.
            let mut cut = 0;
            for (i, c) in word.char_indices().skip(1) {
                if breakable_before(c) && self.m.width(&word[..i], face, size) <= limit {
                    cut = i;
                } else if self.m.width(&word[..i], face, size) > limit {
                    break;
                }
            }
            if cut == 0 {
                cut = word.char_indices().nth(1).map_or(word.len(), |(i, _)| i);
            }
            lines.push(vec![(word[..cut].to_owned(), face)]);
            if cut < word.len() {
                queue.push_front((word[cut..].to_owned(), face));
            }
        }
        if !cur.is_empty() {
            lines.push(cur);
        }
        lines
    }

    /// A paragraph: `lead` in bold then `text`, from `x` to RIGHT, with
    /// `marker` hanging before `x`.
    fn paragraph(&mut self, x: f32, marker: Option<&str>, lead: &str, text: &str, italic: bool) {
        let mut words: Vec<(String, Face)> = lead
            .split_whitespace()
            .map(|w| (w.to_owned(), Face::Bold))
            .collect();
        words.extend(
            text.split_whitespace()
                .map(|w| (w.to_owned(), Face::Regular)),
        );
        let lines = self.wrap(&words, BODY, RIGHT - x, RIGHT - x);
        let space = self.m.width(" ", Face::Regular, BODY);
        for (n, line) in lines.iter().enumerate() {
            self.ensure(LINE);
            self.y += LINE;
            if n == 0 {
                if let Some(m) = marker {
                    self.text(x - 12.0, BODY, Face::Regular, false, m);
                }
            }
            // Runs of one face are drawn as one string, spaces included.
            let mut cx = x;
            let mut i = 0;
            while i < line.len() {
                let face = line[i].1;
                let mut j = i;
                while j < line.len() && line[j].1 == face {
                    j += 1;
                }
                let run = line[i..j]
                    .iter()
                    .map(|(w, _)| w.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let w = self.m.width(&run, face, BODY);
                self.text(cx, BODY, face, italic, &run);
                cx += w + space;
                i = j;
            }
        }
    }

    /// Lines centered on `cx`, wrapped to `width`.
    fn centered_wrapped(&mut self, cx: f32, width: f32, size: f32, face: Face, text: &str) {
        let words: Vec<(String, Face)> = text
            .split_whitespace()
            .map(|w| (w.to_owned(), face))
            .collect();
        for line in self.wrap(&words, size, width, width) {
            let s = line
                .iter()
                .map(|(w, _)| w.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            self.ensure(size * 1.3);
            self.y += size * 1.3;
            self.centered(cx, size, face, false, &s);
        }
    }
}

/// The pages of the document, laid out.
pub(crate) fn layout(s: &Sheet, m: &Measure) -> Vec<Vec<Op>> {
    let mut l = Layout {
        m,
        pages: vec![Vec::new()],
        y: TOP,
    };
    let left_cx = LEFT + LEFT_COL / 2.0;
    let right_w = RIGHT - LEFT - LEFT_COL;
    let right_cx = LEFT + LEFT_COL + right_w / 2.0;
    let head = 12.5;

    // The header: two columns.
    let top = l.y;
    let (parent, issuer) = issuer_lines(&s.header);
    for p in &parent {
        l.y += head * 1.25;
        l.centered(left_cx, head, Face::Regular, false, p);
    }
    let mut issuer_w: f32 = 0.0;
    for i in &issuer {
        l.y += head * 1.25;
        issuer_w = issuer_w.max(l.centered(left_cx, head, Face::Bold, false, i));
    }
    l.y += 6.5;
    // Under the issuer, a rule a third of its width.
    let y = l.y;
    l.page().push(Op::Rule {
        x1: left_cx - issuer_w / 6.0,
        x2: left_cx + issuer_w / 6.0,
        y,
    });
    let left_end = l.y;

    l.y = top;
    let title_size = {
        let w = m.width(NATIONAL_TITLE, Face::Bold, head);
        if w > right_w {
            head * right_w / w
        } else {
            head
        }
    };
    l.y += head * 1.25;
    l.centered(right_cx, title_size, Face::Bold, false, NATIONAL_TITLE);
    l.y += BODY * 1.25;
    let motto_w = l.centered(right_cx, BODY, Face::Bold, false, MOTTO);
    l.y += 4.0;
    let y = l.y;
    l.page().push(Op::Rule {
        x1: right_cx - motto_w / 2.0,
        x2: right_cx + motto_w / 2.0,
        y,
    });

    // Number and symbol, place and date: one row.
    l.y = l.y.max(left_end) + LINE + 2.0;
    l.centered(
        left_cx,
        BODY,
        Face::Regular,
        false,
        &number_line(&s.header, &s.number),
    );
    l.centered(right_cx, BODY, Face::Regular, true, &sheet_date_line(s));

    // The title.
    l.y += 2.0 * LINE;
    l.centered(
        PAGE_W / 2.0 + (LEFT - (PAGE_W - RIGHT)) / 2.0,
        14.0,
        Face::Bold,
        false,
        s.kind,
    );
    let body_cx = (LEFT + RIGHT) / 2.0;
    l.centered_wrapped(body_cx, RIGHT - LEFT, BODY, Face::Bold, &s.subtitle);
    l.y += 8.0;

    for b in &s.blocks {
        match b {
            Block::Section(t) => {
                // Keep a heading with its first lines.
                l.ensure(LINE * 3.0 + 6.0);
                l.y += 6.0;
                l.paragraph(LEFT, None, t, "", false);
            }
            Block::Sub(t) => {
                l.ensure(LINE * 2.0 + 2.0);
                l.y += 2.0;
                l.paragraph(LEFT, None, t, "", false);
            }
            Block::Para {
                indent,
                marker,
                lead,
                text,
                italic,
            } => {
                let x = LEFT + f32::from(*indent) * 22.0;
                l.paragraph(x, marker.as_deref(), lead, text, *italic);
            }
        }
    }

    // The signature block, kept together (the recipients beside it).
    let small = 11.0;
    let small_line = small * 1.25;
    let recipients_h = if s.recipients.is_empty() {
        0.0
    } else {
        LINE + small_line * s.recipients.len() as f32
    };
    l.ensure((LINE * 7.0).max(2.0 * LINE + recipients_h));
    l.y += 2.0 * LINE;
    let sx = [LEFT + (RIGHT - LEFT) * 0.25, LEFT + (RIGHT - LEFT) * 0.75];
    let (left, right) = columns(s);
    let cols: Vec<(f32, &Signer)> = [(sx[0], left), (sx[1], right)]
        .into_iter()
        .filter_map(|(x, p)| p.map(|p| (x, p)))
        .collect();
    let top = l.y;
    let rows = cols.iter().map(|(_, p)| p.titles.len()).max().unwrap_or(0);
    for row in 0..rows {
        if row > 0 {
            l.y += LINE;
        }
        for (x, p) in &cols {
            if let Some(t) = p.titles.get(row) {
                l.centered(*x, BODY, Face::Bold, false, &clean(t));
            }
        }
    }
    l.y += LINE;
    for (x, p) in &cols {
        if let Some(hint) = &p.hint {
            l.centered(*x, BODY, Face::Regular, true, hint);
        }
    }
    l.y += 4.0 * LINE;
    for (x, p) in &cols {
        let name = clean(&p.name);
        if !name.is_empty() {
            l.centered(*x, BODY, Face::Bold, false, &name);
        }
    }
    if !s.recipients.is_empty() {
        // Decree 30: "Nơi nhận:" bold italic 12 pt, the list 11 pt.
        let end = l.y;
        l.y = top;
        l.text(LEFT, 12.0, Face::Bold, true, "Nơi nhận:");
        for r in &s.recipients {
            l.y += small_line;
            l.text(
                LEFT,
                small,
                Face::Regular,
                false,
                &format!("- {}", clean(r)),
            );
        }
        l.y = l.y.max(end);
    }

    // Page numbers from the second page, centered in the top margin.
    let count = l.pages.len();
    for n in 1..count {
        let label = (n + 1).to_string();
        let w = m.width(&label, Face::Regular, BODY);
        l.pages[n].push(Op::Text {
            x: (LEFT + RIGHT) / 2.0 - w / 2.0,
            y: TOP - 20.0,
            size: BODY,
            face: Face::Regular,
            italic: false,
            text: label,
        });
    }
    l.pages
}

/// The document as PDF bytes (A4, the fonts embedded as subsets). The same
/// sheet gives the same bytes.
pub(crate) fn pdf(s: &Sheet) -> std::result::Result<Vec<u8>, PdfError> {
    let m = Measure::new()?;
    let pages = layout(s, &m);
    let font = |data: &'static [u8]| {
        Font::new(data.into(), 0).ok_or_else(|| PdfError("the font cannot be read".into()))
    };
    let (regular, bold) = (font(FONT_REGULAR)?, font(FONT_BOLD)?);

    let mut doc = Document::new();
    doc.set_metadata(
        Metadata::new()
            .title(s.title.clone())
            .language("vi".into())
            .creator("giaoban".into())
            .document_id(s.document_id.clone()),
    );
    let size =
        PageSettings::from_wh(PAGE_W, PAGE_H).ok_or_else(|| PdfError("bad page size".into()))?;
    for ops in pages {
        let mut page = doc.start_page_with(size.clone());
        let mut surface = page.surface();
        for op in ops {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    face,
                    italic,
                    text,
                } => {
                    let f = match face {
                        Face::Regular => regular.clone(),
                        Face::Bold => bold.clone(),
                    };
                    if italic {
                        surface.push_transform(&Transform::from_row(1.0, 0.0, SLANT, 1.0, x, y));
                        surface.draw_text(
                            Point::from_xy(0.0, 0.0),
                            f,
                            size,
                            &text,
                            false,
                            TextDirection::LeftToRight,
                        );
                        surface.pop();
                    } else {
                        surface.draw_text(
                            Point::from_xy(x, y),
                            f,
                            size,
                            &text,
                            false,
                            TextDirection::LeftToRight,
                        );
                    }
                }
                Op::Rule { x1, x2, y } => {
                    let mut pb = PathBuilder::new();
                    pb.move_to(x1, y);
                    pb.line_to(x2, y);
                    if let Some(path) = pb.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            width: 0.6,
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                        surface.set_stroke(None);
                        surface.set_fill(Some(krilla::paint::Fill::default()));
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    doc.finish().map_err(|e| PdfError(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docfmt_wrap_cuts_overlong_words_between_letters() {
        let m = Measure::new().expect("fonts");
        let l = Layout {
            m: &m,
            pages: Vec::new(),
            y: TOP,
        };
        let word = "ế".repeat(200);
        let lines = l.wrap(&[(word.clone(), Face::Regular)], BODY, 100.0, 100.0);
        assert!(lines.len() > 1);
        let joined: String = lines.iter().flatten().map(|(w, _)| w.as_str()).collect();
        assert_eq!(joined, word);
        for line in &lines {
            assert!(m.width(&line[0].0, Face::Regular, BODY) <= 100.0);
        }
    }

    /// The secretariat's page shows the HTML documents in a sandboxed
    /// frame, where the page's Content-Security-Policy forbids the inline
    /// style sheet: it links `web/assets/document.css` instead, which must
    /// stay the same.
    #[test]
    fn docfmt_style_sheet_matches_the_web_asset() {
        let asset = include_str!("../../web/assets/document.css");
        assert_eq!(asset.trim_end(), HTML_STYLE);
    }

    #[test]
    fn docfmt_number_line() {
        let h = MinutesHeader::default();
        assert_eq!(number_line(&h, ""), "Số:       /BB-UBND");
        assert_eq!(number_line(&h, " 12 "), "Số: 12/BB-UBND");
    }
}
