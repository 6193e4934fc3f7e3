//! What an uploaded file is, decided from its bytes alone (never from the
//! uploader's `Content-Type` or the file name), and the formats a
//! secretariat may upload: PDF, the Office formats (DOCX, XLSX, PPTX and
//! the legacy DOC, XLS, PPT) and OpenDocument (ODT, ODS, ODP). Anything
//! else is refused. Macro-enabled Office files (a `vbaProject.bin` part, a
//! `Macros`, `VBA` or `_VBA_PROJECT_CUR` storage) are refused too.
//!
//! - PDF: the file starts with `%PDF-`.
//! - DOCX/XLSX/PPTX: a ZIP whose central directory names
//!   `[Content_Types].xml` and parts under `word/`, `xl/` or `ppt/`.
//! - ODT/ODS/ODP: a ZIP whose first entry is `mimetype`, stored, holding the
//!   OpenDocument media type.
//! - DOC/XLS/PPT: an OLE2 compound file (`D0 CF 11 E0 A1 B1 1A E1`) whose
//!   directory holds a `WordDocument`, `Workbook`/`Book` or
//!   `PowerPoint Document` stream.
//!
//! The readers are bounded (how much of the central directory, how many
//! directory sectors) and never panic on hostile input.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A document format we accept, as verified from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    Pdf,
    Docx,
    Xlsx,
    Pptx,
    Doc,
    Xls,
    Ppt,
    Odt,
    Ods,
    Odp,
}

impl FileType {
    /// Every accepted format, in a stable order.
    pub const ALL: &'static [FileType] = &[
        FileType::Pdf,
        FileType::Docx,
        FileType::Xlsx,
        FileType::Pptx,
        FileType::Doc,
        FileType::Xls,
        FileType::Ppt,
        FileType::Odt,
        FileType::Ods,
        FileType::Odp,
    ];

    /// `pdf`, `docx`... (also the usual file extension).
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Pdf => "pdf",
            FileType::Docx => "docx",
            FileType::Xlsx => "xlsx",
            FileType::Pptx => "pptx",
            FileType::Doc => "doc",
            FileType::Xls => "xls",
            FileType::Ppt => "ppt",
            FileType::Odt => "odt",
            FileType::Ods => "ods",
            FileType::Odp => "odp",
        }
    }

    /// The media type it is stored and served as.
    pub fn mime(self) -> &'static str {
        match self {
            FileType::Pdf => "application/pdf",
            FileType::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            FileType::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            FileType::Pptx => {
                "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            }
            FileType::Doc => "application/msword",
            FileType::Xls => "application/vnd.ms-excel",
            FileType::Ppt => "application/vnd.ms-powerpoint",
            FileType::Odt => "application/vnd.oasis.opendocument.text",
            FileType::Ods => "application/vnd.oasis.opendocument.spreadsheet",
            FileType::Odp => "application/vnd.oasis.opendocument.presentation",
        }
    }

    /// `name` with this type's extension: unchanged when it already ends
    /// with it (any case), else with `.ext` appended (`bao-cao.pdf` that is
    /// a Word file becomes `bao-cao.pdf.docx`), so a download never opens
    /// in a program for another type.
    pub fn fix_extension(self, name: &str) -> String {
        let ext = self.as_str();
        let lower = name.to_lowercase();
        if lower.len() > ext.len()
            && lower.ends_with(ext)
            && lower[..lower.len() - ext.len()].ends_with('.')
        {
            name.to_owned()
        } else {
            format!("{name}.{ext}")
        }
    }

    /// The format of the file at `path` (blocking reads), `None` when it is
    /// none we accept.
    pub fn of_path(path: &Path) -> std::io::Result<Option<FileType>> {
        let mut f = std::fs::File::open(path)?;
        FileType::detect(&mut f)
    }

    /// The format of a readable, seekable content, `None` when it is none
    /// we accept. Only I/O errors of `r` are errors; bad content is `None`.
    pub fn detect<R: Read + Seek>(r: &mut R) -> std::io::Result<Option<FileType>> {
        let len = r.seek(SeekFrom::End(0))?;
        r.seek(SeekFrom::Start(0))?;
        let mut head = [0u8; 8];
        let n = read_up_to(r, &mut head)?;
        let head = &head[..n];
        if head.starts_with(b"%PDF-") {
            return Ok(Some(FileType::Pdf));
        }
        if head.starts_with(b"PK\x03\x04") {
            return zip_type(r, len);
        }
        if head == OLE2_MAGIC {
            return ole2_type(r, len);
        }
        Ok(None)
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FileType {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<FileType> {
        FileType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| crate::Error::Corrupt(format!("file type {s:?}")))
    }
}

const OLE2_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Largest ZIP central directory read (a DOCX with thousands of parts has
/// well under a megabyte).
const MAX_CENTRAL_DIRECTORY: u64 = 8 * 1024 * 1024;
/// Most OLE2 directory sectors followed.
const MAX_DIR_SECTORS: usize = 4096;
/// Most OLE2 DIFAT sectors followed.
const MAX_DIFAT_SECTORS: usize = 4096;

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads exactly `len` bytes at `at`, or `None` when the file is shorter.
fn read_at<R: Read + Seek>(r: &mut R, at: u64, len: usize) -> std::io::Result<Option<Vec<u8>>> {
    r.seek(SeekFrom::Start(at))?;
    let mut buf = vec![0u8; len];
    let n = read_up_to(r, &mut buf)?;
    Ok((n == len).then_some(buf))
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// OOXML or OpenDocument, by the ZIP's entries.
fn zip_type<R: Read + Seek>(r: &mut R, len: u64) -> std::io::Result<Option<FileType>> {
    // OpenDocument: the first local entry is `mimetype`, stored.
    if let Some(local) = read_at(r, 0, 30 + 8)? {
        let method = u16_at(&local, 8).unwrap_or(u16::MAX);
        let csize = u32_at(&local, 18).unwrap_or(0) as usize;
        let name_len = usize::from(u16_at(&local, 26).unwrap_or(0));
        let extra_len = usize::from(u16_at(&local, 28).unwrap_or(0));
        if name_len == 8 && &local[30..38] == b"mimetype" && method == 0 && csize <= 100 {
            let at = 30 + 8 + extra_len as u64;
            if let Some(m) = read_at(r, at, csize)? {
                let t = match m.as_slice() {
                    b"application/vnd.oasis.opendocument.text" => Some(FileType::Odt),
                    b"application/vnd.oasis.opendocument.spreadsheet" => Some(FileType::Ods),
                    b"application/vnd.oasis.opendocument.presentation" => Some(FileType::Odp),
                    _ => None,
                };
                if let Some(t) = t {
                    // Still a real ZIP with a readable directory.
                    return Ok(zip_names(r, len)?.map(|_| t));
                }
            }
        }
    }
    let Some(names) = zip_names(r, len)? else {
        return Ok(None);
    };
    if names.iter().any(|n| {
        let l = n.to_ascii_lowercase();
        l.ends_with("vbaproject.bin") || l.ends_with("vbadata.xml")
    }) {
        return Ok(None); // macro-enabled
    }
    if !names.iter().any(|n| n == "[Content_Types].xml") {
        return Ok(None);
    }
    let has = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
    Ok(if has("word/") {
        Some(FileType::Docx)
    } else if has("xl/") {
        Some(FileType::Xlsx)
    } else if has("ppt/") {
        Some(FileType::Pptx)
    } else {
        None
    })
}

/// The entry names of a ZIP's central directory (`None`: not a ZIP we can
/// read, ZIP64 included).
fn zip_names<R: Read + Seek>(r: &mut R, len: u64) -> std::io::Result<Option<Vec<String>>> {
    // The end of central directory record: 22 bytes and a comment of at
    // most 65535.
    let tail_len = len.min(22 + 65535);
    let Some(tail) = read_at(r, len - tail_len, tail_len as usize)? else {
        return Ok(None);
    };
    let Some(eocd) = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
    else {
        return Ok(None);
    };
    let (Some(entries), Some(cd_size), Some(cd_offset)) = (
        u16_at(&tail, eocd + 10),
        u32_at(&tail, eocd + 12),
        u32_at(&tail, eocd + 16),
    ) else {
        return Ok(None);
    };
    if cd_offset == u32::MAX || cd_size == u32::MAX || entries == u16::MAX {
        return Ok(None); // ZIP64
    }
    let (cd_size, cd_offset) = (u64::from(cd_size), u64::from(cd_offset));
    if cd_size > MAX_CENTRAL_DIRECTORY || cd_offset + cd_size > len {
        return Ok(None);
    }
    let Some(cd) = read_at(r, cd_offset, cd_size as usize)? else {
        return Ok(None);
    };
    let mut names = Vec::with_capacity(usize::from(entries));
    let mut i = 0usize;
    for _ in 0..entries {
        if !cd.get(i..).is_some_and(|s| s.starts_with(b"PK\x01\x02")) {
            return Ok(None);
        }
        let (Some(n), Some(e), Some(c)) = (
            u16_at(&cd, i + 28),
            u16_at(&cd, i + 30),
            u16_at(&cd, i + 32),
        ) else {
            return Ok(None);
        };
        let Some(name) = cd.get(i + 46..i + 46 + usize::from(n)) else {
            return Ok(None);
        };
        names.push(String::from_utf8_lossy(name).into_owned());
        i += 46 + usize::from(n) + usize::from(e) + usize::from(c);
    }
    Ok(Some(names))
}

/// DOC, XLS or PPT, by the streams of an OLE2 compound file.
fn ole2_type<R: Read + Seek>(r: &mut R, len: u64) -> std::io::Result<Option<FileType>> {
    let Some(names) = ole2_names(r, len)? else {
        return Ok(None);
    };
    let has = |n: &str| names.iter().any(|x| x.eq_ignore_ascii_case(n));
    if has("Macros") || has("_VBA_PROJECT_CUR") || has("VBA") {
        return Ok(None);
    }
    Ok(if has("WordDocument") {
        Some(FileType::Doc)
    } else if has("Workbook") || has("Book") {
        Some(FileType::Xls)
    } else if has("PowerPoint Document") {
        Some(FileType::Ppt)
    } else {
        None
    })
}

const FREESECT: u32 = 0xFFFF_FFFF;
const ENDOFCHAIN: u32 = 0xFFFF_FFFE;

/// The names in an OLE2 compound file's directory (`None`: unreadable).
fn ole2_names<R: Read + Seek>(r: &mut R, len: u64) -> std::io::Result<Option<Vec<String>>> {
    let Some(header) = read_at(r, 0, 512)? else {
        return Ok(None);
    };
    let shift = u16_at(&header, 0x1E).unwrap_or(0);
    if shift != 9 && shift != 12 {
        return Ok(None);
    }
    let ss = 1usize << shift;
    let per_sector = ss / 4;
    let (Some(first_dir), Some(first_difat), Some(n_difat)) = (
        u32_at(&header, 0x30),
        u32_at(&header, 0x44),
        u32_at(&header, 0x48),
    ) else {
        return Ok(None);
    };
    // The FAT's own sectors: 109 in the header, then the DIFAT chain.
    let mut fat_sectors: Vec<u32> = (0..109)
        .filter_map(|k| u32_at(&header, 0x4C + 4 * k))
        .filter(|&s| s != FREESECT)
        .collect();
    let mut next = first_difat;
    let mut seen = 0usize;
    while next != ENDOFCHAIN && next != FREESECT && seen < n_difat as usize {
        seen += 1;
        if seen > MAX_DIFAT_SECTORS {
            return Ok(None);
        }
        let Some(sec) = sector(r, len, ss, next)? else {
            return Ok(None);
        };
        for k in 0..per_sector - 1 {
            match u32_at(&sec, 4 * k) {
                Some(s) if s != FREESECT => fat_sectors.push(s),
                _ => {}
            }
        }
        next = u32_at(&sec, ss - 4).unwrap_or(ENDOFCHAIN);
    }
    let mut names = Vec::new();
    let mut cur = first_dir;
    let mut count = 0usize;
    while cur != ENDOFCHAIN {
        count += 1;
        if count > MAX_DIR_SECTORS {
            return Ok(None);
        }
        let Some(sec) = sector(r, len, ss, cur)? else {
            return Ok(None);
        };
        for entry in sec.chunks_exact(128) {
            let name_len = usize::from(u16_at(entry, 0x40).unwrap_or(0)).min(64);
            let kind = entry[0x42];
            if name_len < 2 || !(1..=5).contains(&kind) {
                continue;
            }
            let units: Vec<u16> = entry[..name_len - 2]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            names.push(String::from_utf16_lossy(&units));
        }
        // The next directory sector, from the FAT.
        let idx = cur as usize;
        let Some(&fat_sec) = fat_sectors.get(idx / per_sector) else {
            return Ok(None);
        };
        let Some(fat) = sector(r, len, ss, fat_sec)? else {
            return Ok(None);
        };
        cur = u32_at(&fat, 4 * (idx % per_sector)).unwrap_or(ENDOFCHAIN);
        if cur == FREESECT {
            return Ok(None);
        }
    }
    Ok(Some(names))
}

/// Sector `n` of an OLE2 file (after the 512-byte header, or a 4096-byte
/// first sector for version 4 files).
fn sector<R: Read + Seek>(
    r: &mut R,
    len: u64,
    ss: usize,
    n: u32,
) -> std::io::Result<Option<Vec<u8>>> {
    if n >= 0xFFFF_FFFA {
        return Ok(None);
    }
    let at = (u64::from(n) + 1) * ss as u64;
    if at + ss as u64 > len {
        return Ok(None);
    }
    read_at(r, at, ss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn detect(bytes: &[u8]) -> Option<FileType> {
        FileType::detect(&mut Cursor::new(bytes)).expect("in memory")
    }

    /// A stored (uncompressed) ZIP with these entries.
    pub(crate) fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for (name, data) in entries {
            let offset = out.len() as u32;
            let crc = 0u32; // not checked by the detector
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            cd.extend_from_slice(b"PK\x01\x02");
            cd.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            cd.extend_from_slice(&crc.to_le_bytes());
            cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
            cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
            cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
            cd.extend_from_slice(&[0; 12]);
            cd.extend_from_slice(&offset.to_le_bytes());
            cd.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&cd);
        out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    /// A minimal OLE2 file (512-byte sectors): sector 0 is the FAT, sector 1
    /// the directory with these stream names.
    pub(crate) fn ole2(names: &[&str]) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(OLE2_MAGIC);
        h[0x18..0x1A].copy_from_slice(&0x3Eu16.to_le_bytes());
        h[0x1A..0x1C].copy_from_slice(&3u16.to_le_bytes());
        h[0x1C..0x1E].copy_from_slice(&0xFFFEu16.to_le_bytes());
        h[0x1E..0x20].copy_from_slice(&9u16.to_le_bytes());
        h[0x20..0x22].copy_from_slice(&6u16.to_le_bytes());
        h[0x2C..0x30].copy_from_slice(&1u32.to_le_bytes());
        h[0x30..0x34].copy_from_slice(&1u32.to_le_bytes());
        h[0x44..0x48].copy_from_slice(&ENDOFCHAIN.to_le_bytes());
        for k in 0..109 {
            h[0x4C + 4 * k..0x50 + 4 * k].copy_from_slice(&FREESECT.to_le_bytes());
        }
        h[0x4C..0x50].copy_from_slice(&0u32.to_le_bytes());
        let mut fat = vec![0xFFu8; 512];
        fat[0..4].copy_from_slice(&0xFFFF_FFFDu32.to_le_bytes()); // FATSECT
        fat[4..8].copy_from_slice(&ENDOFCHAIN.to_le_bytes());
        let mut dir = vec![0u8; 512];
        let all: Vec<&str> = std::iter::once("Root Entry")
            .chain(names.iter().copied())
            .collect();
        for (i, name) in all.iter().take(4).enumerate() {
            let e = &mut dir[i * 128..(i + 1) * 128];
            let units: Vec<u16> = name.encode_utf16().collect();
            for (k, u) in units.iter().enumerate() {
                e[2 * k..2 * k + 2].copy_from_slice(&u.to_le_bytes());
            }
            e[0x40..0x42].copy_from_slice(&((units.len() as u16 + 1) * 2).to_le_bytes());
            e[0x42] = if i == 0 { 5 } else { 2 };
        }
        [h, fat, dir].concat()
    }

    #[test]
    fn accepted_formats_by_their_bytes() {
        assert_eq!(detect(b"%PDF-1.7\n..."), Some(FileType::Pdf));
        let docx = zip(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("word/document.xml", b"<w/>"),
        ]);
        assert_eq!(detect(&docx), Some(FileType::Docx));
        let xlsx = zip(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("xl/workbook.xml", b"<x/>"),
        ]);
        assert_eq!(detect(&xlsx), Some(FileType::Xlsx));
        let pptx = zip(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("ppt/presentation.xml", b"<p/>"),
        ]);
        assert_eq!(detect(&pptx), Some(FileType::Pptx));
        let odt = zip(&[
            ("mimetype", b"application/vnd.oasis.opendocument.text"),
            ("content.xml", b"<x/>"),
        ]);
        assert_eq!(detect(&odt), Some(FileType::Odt));
        let ods = zip(&[(
            "mimetype",
            b"application/vnd.oasis.opendocument.spreadsheet",
        )]);
        assert_eq!(detect(&ods), Some(FileType::Ods));
        assert_eq!(
            detect(&ole2(&["WordDocument", "1Table"])),
            Some(FileType::Doc)
        );
        assert_eq!(detect(&ole2(&["Workbook"])), Some(FileType::Xls));
        assert_eq!(detect(&ole2(&["PowerPoint Document"])), Some(FileType::Ppt));
    }

    #[test]
    fn everything_else_is_refused() {
        assert_eq!(detect(b""), None);
        assert_eq!(detect(b"<html><script>alert(1)</script>"), None);
        assert_eq!(detect(b"MZ\x90\0\x03\0\0\0"), None, "a Windows executable");
        assert_eq!(detect(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), None);
        assert_eq!(detect(b" %PDF-1.4"), None);
        // A ZIP that is no office document, a macro-enabled one, a broken one.
        assert_eq!(detect(&zip(&[("a.html", b"<html>")])), None);
        let docm = zip(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("word/document.xml", b"<w/>"),
            ("word/vbaProject.bin", b"x"),
        ]);
        assert_eq!(detect(&docm), None);
        let mut cut = zip(&[
            ("[Content_Types].xml", b"<T/>"),
            ("word/document.xml", b"<w/>"),
        ]);
        cut.truncate(cut.len() - 10);
        assert_eq!(detect(&cut), None);
        assert_eq!(detect(b"PK\x03\x04"), None);
        // OLE2: an installer, macros, a truncated file.
        assert_eq!(detect(&ole2(&["\u{4840}SummaryInformation"])), None);
        assert_eq!(detect(&ole2(&["WordDocument", "Macros"])), None);
        let mut short = ole2(&["WordDocument"]);
        short.truncate(700);
        assert_eq!(detect(&short), None);
        assert_eq!(detect(OLE2_MAGIC), None);
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        // Every prefix of valid files, and some mutations.
        let samples = [
            zip(&[
                ("[Content_Types].xml", b"<T/>"),
                ("xl/workbook.xml", b"<x/>"),
            ]),
            zip(&[("mimetype", b"application/vnd.oasis.opendocument.text")]),
            ole2(&["WordDocument"]),
        ];
        for s in &samples {
            for n in 0..s.len() {
                let _ = detect(&s[..n]);
            }
            for i in 0..s.len() {
                let mut m = s.clone();
                m[i] ^= 0xFF;
                let _ = detect(&m);
            }
        }
        // A directory chain that loops on itself ends.
        let mut looped = ole2(&["Workbook"]);
        looped[512 + 4..512 + 8].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(detect(&looped), None);
    }

    #[test]
    fn extensions_follow_the_type() {
        assert_eq!(FileType::Pdf.fix_extension("Tờ trình.PDF"), "Tờ trình.PDF");
        assert_eq!(
            FileType::Docx.fix_extension("bao-cao.pdf"),
            "bao-cao.pdf.docx"
        );
        assert_eq!(FileType::Pdf.fix_extension("pdf"), "pdf.pdf");
        assert_eq!(FileType::Doc.fix_extension("x.docx"), "x.docx.doc");
        assert_eq!("xlsx".parse::<FileType>().ok(), Some(FileType::Xlsx));
        assert_eq!(
            serde_json::to_value(FileType::Pptx).ok(),
            Some(serde_json::json!("pptx"))
        );
    }
}
