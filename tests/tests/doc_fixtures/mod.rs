//! Real document files for the tests that upload: a small valid PDF,
//! ZIP-based office files (DOCX, ODT...) and OLE2 compound files (DOC,
//! XLS), built byte by byte so the tests need no office suite.

#![allow(dead_code)]

/// A small valid PDF (one empty page).
pub fn pdf(tag: &str) -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>".to_owned(),
    ];
    pdf_of(format!("%PDF-1.4\n% {tag}\n").into_bytes(), &objects)
}

/// A PDF of `pages` A4 pages, each with its number in large type
/// ("Trang N") and a frame, for the viewer's tests.
pub fn pdf_pages(pages: usize) -> Vec<u8> {
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        String::new(), // the page tree, below
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut kids = Vec::new();
    for p in 1..=pages {
        let content = format!("BT /F1 72 Tf 150 420 Td (Trang {p}) Tj ET 4 w 40 40 515 762 re S");
        let content_id = objects.len() + 1;
        objects.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
        let page_id = objects.len() + 1;
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] \
             /Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
        ));
        kids.push(format!("{page_id} 0 R"));
    }
    objects[1] = format!(
        "<< /Type /Pages /Kids [{}] /Count {pages} >>",
        kids.join(" ")
    );
    pdf_of(b"%PDF-1.4\n".to_vec(), &objects)
}

/// `header`, then the objects numbered from 1 (the first is the catalog),
/// the cross-reference table and the trailer.
fn pdf_of(header: Vec<u8>, objects: &[String]) -> Vec<u8> {
    let mut out = header;
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A ZIP (entries stored, with CRCs) as office suites write them.
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // flags, method (stored), time
            v.extend_from_slice(&[0x21, 0x00]); // date
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
        };
        out.extend_from_slice(b"PK\x03\x04\x14\x00");
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        cd.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00");
        common(&mut cd);
        cd.extend_from_slice(&[0; 10]); // comment, disk, attributes
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

pub const CONTENT_TYPES: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>"#;

pub fn docx(text: &str) -> Vec<u8> {
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>"#
    );
    zip(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", b"<Relationships/>"),
        ("word/document.xml", body.as_bytes()),
    ])
}

/// An OLE2 compound file (512-byte sectors) with these streams.
pub fn ole2(names: &[&str]) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
    h[0x18..0x1A].copy_from_slice(&0x3Eu16.to_le_bytes());
    h[0x1A..0x1C].copy_from_slice(&3u16.to_le_bytes());
    h[0x1C..0x1E].copy_from_slice(&0xFFFEu16.to_le_bytes());
    h[0x1E..0x20].copy_from_slice(&9u16.to_le_bytes());
    h[0x20..0x22].copy_from_slice(&6u16.to_le_bytes());
    h[0x2C..0x30].copy_from_slice(&1u32.to_le_bytes());
    h[0x30..0x34].copy_from_slice(&1u32.to_le_bytes());
    h[0x38..0x3C].copy_from_slice(&4096u32.to_le_bytes());
    h[0x3C..0x40].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
    h[0x44..0x48].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
    for k in 0..109 {
        h[0x4C + 4 * k..0x50 + 4 * k].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    }
    h[0x4C..0x50].copy_from_slice(&0u32.to_le_bytes());
    let mut fat = vec![0xFFu8; 512];
    fat[0..4].copy_from_slice(&0xFFFF_FFFDu32.to_le_bytes());
    fat[4..8].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
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
