#!/usr/bin/env python3
"""Writes a "scanned report": a PDF whose pages are only images, as a
province's scanner makes them (for the document viewer's benchmark,
tests/src/bin/viewerbench.rs and tests/e2e/viewer_bench.mjs).

Usage: scanned_report.py OUT.pdf [--pages 50] [--dpi 200] [--jpx N]
                                 [--jbig2 N] [--seed 1]

Each page is A4 scanned at --dpi (200: 1654 x 2339 pixels), grey paper with
scanner noise, a heading, lines of "words", a table and a signature block;
page 1 is in colour with a red seal. Pages are JPEG (DCTDecode, quality 75),
except page --jpx N, a JPEG 2000 one (JPXDecode), and page --jbig2 N, a
black-and-white JBIG2 one (JBIG2Decode, an MMR-coded generic region written
here, see jbig2_page). pdf.js decodes JPEG 2000 and JBIG2 with the decoders
in web/vendor/pdfjs/wasm (their JavaScript fallbacks: useWasm is off).
Prints one JSON line: {"pages", "bytes", "jpx_page", "jbig2_page"}.

Needs: pip install pillow==13.0.0 (with its OpenJPEG, for --jpx).
"""

import argparse
import io
import json
import random
import sys

try:
    from PIL import Image, ImageDraw, ImageFont
except ImportError as e:  # pragma: no cover
    sys.stderr.write(
        f"scanned_report.py: missing Python package ({e}); install with:\n"
        "    pip install pillow==13.0.0\n"
    )
    sys.exit(3)

A4_PT = (595, 842)


def font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # an old Pillow without sizes
        return ImageFont.load_default()


def scanned_page(n, pages, w, h, rng, colour):
    """One page as a scanner gives it: an 'L' (or 'RGB') image."""
    paper = Image.effect_noise((w, h), 9).point(lambda v: min(255, 232 + v // 10))
    img = paper.convert("RGB") if colour else paper
    d = ImageDraw.Draw(img)
    ink = (25, 25, 30) if colour else 30
    s = w / 1654
    d.text((w * 0.30, h * 0.05), "UY BAN NHAN DAN TINH", fill=ink, font=font(int(38 * s)))
    d.text((w * 0.22, h * 0.09), f"BAO CAO KINH TE - XA HOI  (trang {n}/{pages})", fill=ink, font=font(int(44 * s)))
    y = h * 0.15
    margin = w * 0.09
    # Lines of words: dark blocks of varying width, a little skewed like a scan.
    while y < h * 0.55:
        x = margin + (w * 0.04 if rng.random() < 0.15 else 0)
        end = w - margin - (rng.random() * w * 0.3 if rng.random() < 0.2 else 0)
        while x < end:
            ww = rng.randint(int(30 * s), int(140 * s))
            tone = rng.randint(20, 70)
            d.rectangle([x, y + rng.random() * 2, min(x + ww, end), y + 20 * s], fill=(tone, tone, tone + 5) if colour else tone)
            x += ww + 14 * s
        y += 40 * s
    # A table with figures.
    top, left, right = h * 0.58, margin, w - margin
    rows, cols = 8, 5
    rh = (h * 0.22) / rows
    for r in range(rows + 1):
        d.line([left, top + r * rh, right, top + r * rh], fill=ink, width=max(1, int(3 * s)))
    for c in range(cols + 1):
        x = left + c * (right - left) / cols
        d.line([x, top, x, top + rows * rh], fill=ink, width=max(1, int(3 * s)))
    for r in range(rows):
        for c in range(cols):
            d.text((left + c * (right - left) / cols + 12 * s, top + r * rh + 10 * s), f"{rng.randint(10, 99999):,}", fill=ink, font=font(int(28 * s)))
    # The signature block.
    d.text((w * 0.60, h * 0.84), "TM. UY BAN NHAN DAN", fill=ink, font=font(int(32 * s)))
    d.line([w * 0.60, h * 0.90, w * 0.85, h * 0.88], fill=ink, width=max(1, int(4 * s)))
    if colour:
        cx, cy, r = w * 0.66, h * 0.88, w * 0.08
        for k in range(6):
            d.ellipse([cx - r + k, cy - r + k, cx + r - k, cy + r - k], outline=(200, 30, 35))
        d.text((cx - r * 0.6, cy - 14 * s), "CON DAU", fill=(200, 30, 35), font=font(int(30 * s)))
    return img


# ---- JBIG2: an MMR-coded (ITU-T T.6) generic region -------------------------
#
# The encoder below codes any bitmap whose horizontal-mode runs fit the few
# run-length codes it knows (up to 11 white / 9 black pixels, WHITE and
# BLACK): narrow strokes close together ("hatched text lines") and shapes
# whose edges move at most 3 pixels a row (vertical mode). Enough to see
# that the page renders: a blank page means it did not.

V_CODES = {0: "1", 1: "011", 2: "000011", 3: "0000011", -1: "010", -2: "000010", -3: "0000010"}
PASS = "0001"
HORIZONTAL = "001"
WHITE = {0: "00110101", 1: "000111", 2: "0111", 3: "1000", 4: "1011", 5: "1100", 6: "1110", 7: "1111",
         8: "10011", 9: "10100", 10: "00111", 11: "01000"}
BLACK = {0: "0000110111", 1: "010", 2: "11", 3: "10", 4: "011", 5: "0011", 6: "0010", 7: "00011",
         8: "000101", 9: "000100"}
EOFB = "000000000001" * 2


def find_diff(row, start, width, colour):
    """The first position at or after `start` whose pixel is not `colour` (or `width`)."""
    x = start
    while x < width and row[x] == colour:
        x += 1
    return x


def mmr(bitmap, width):
    """T.6 (MMR) code of `bitmap` (rows of 0 white / 1 black), ending in EOFB:
    the two-dimensional coding of ITU-T T.4 4.2.1.3, line by line against
    the previous one (an all-white line above the first)."""
    bits = []
    ref = [0] * width
    for row in bitmap:
        def pixel(r, x):
            return r[x] if x < width else 0

        a0 = 0
        a1 = 0 if row[0] else find_diff(row, 0, width, 0)
        b1 = 0 if ref[0] else find_diff(ref, 0, width, 0)
        while True:
            b2 = find_diff(ref, b1, width, pixel(ref, b1)) if b1 < width else width
            if b2 >= a1:
                d = a1 - b1
                if -3 <= d <= 3:
                    bits.append(V_CODES[d])
                    a0 = a1
                else:
                    a2 = find_diff(row, a1, width, pixel(row, a1)) if a1 < width else width
                    white_first = a0 + a1 == 0 or pixel(row, a0) == 0
                    first, second = (WHITE, BLACK) if white_first else (BLACK, WHITE)
                    if a1 - a0 not in first or a2 - a1 not in second:
                        raise ValueError(f"runs {a1 - a0}/{a2 - a1} have no short code here")
                    bits.append(HORIZONTAL + first[a1 - a0] + second[a2 - a1])
                    a0 = a2
            else:
                bits.append(PASS)
                a0 = b2
            if a0 >= width:
                break
            colour = pixel(row, a0)
            a1 = find_diff(row, a0, width, colour)
            b1 = find_diff(ref, a0, width, 1 - colour)
            b1 = find_diff(ref, b1, width, colour)
        ref = row
    bits.append(EOFB)
    s = "".join(bits)
    s += "0" * (-len(s) % 8)
    return bytes(int(s[i:i + 8], 2) for i in range(0, len(s), 8))


def segment(number, kind, data, page=1):
    """A JBIG2 segment header and its data (no referred-to segments)."""
    return (number.to_bytes(4, "big") + bytes([kind, 0, page]) + len(data).to_bytes(4, "big") + data)


def hatched_region(width, height, rng):
    """Rows of short diagonal strokes: 'text lines' that MMR codes with the short codes."""
    bitmap = []
    for y in range(height):
        line = (y // 24) % 2 == 0 and (y % 24) < 16
        row = [0] * width
        if line:
            period = 8
            shift = (y % 24) % period
            for x in range(4, width - 12, period):
                for k in range(3):
                    row[x + (shift + k) % period] = 1
        bitmap.append(row)
    return bitmap


def wedge_region(width, height):
    """A solid black shape whose right edge moves 3 pixels a row (vertical
    mode codes only), then stays: a wedge over a bar."""
    bitmap = []
    for y in range(height):
        right = min(4 + 3 + 3 * y, width - 12)
        bitmap.append([1 if 4 <= x < right else 0 for x in range(width)])
    return bitmap


def jbig2_page(w, h, rng):
    """The embedded JBIG2 stream of a page: page information, then
    immediate lossless generic regions (MMR): hatched "text lines" and
    solid wedges."""
    out = segment(0, 48, w.to_bytes(4, "big") + h.to_bytes(4, "big") + (0).to_bytes(4, "big") * 2 + bytes([0]) + (0).to_bytes(2, "big"))
    number = 1

    def region(bitmap, x, y):
        nonlocal out, number
        rw, rh = len(bitmap[0]), len(bitmap)
        info = rw.to_bytes(4, "big") + rh.to_bytes(4, "big") + x.to_bytes(4, "big") + y.to_bytes(4, "big") + bytes([0])
        out += segment(number, 39, info + bytes([1]) + mmr(bitmap, rw))
        number += 1

    rw, rh = 1000, 120
    for i in range(int(h * 0.45) // (rh + 40)):
        region(hatched_region(rw, rh, rng), int(w * 0.12), int(h * 0.10) + i * (rh + 40))
    for i in range(3):
        region(wedge_region(600, 260), int(w * 0.12) + i * 420, int(h * 0.62))
    out += segment(number, 49, b"")
    return out


def write_pdf(path, pages):
    """`pages`: (image bytes, filter, width, height, colour space or None, bits)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None]
    kids = []
    streams = {}
    for data, filt, w, h, cs, bpc in pages:
        img_id = len(objects) + 1
        cs_part = f" /ColorSpace /{cs}" if cs else ""
        objects.append(f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h}{cs_part} /BitsPerComponent {bpc} /Filter /{filt} /Length {len(data)} >>")
        streams[img_id] = data
        content = f"q {A4_PT[0]} 0 0 {A4_PT[1]} 0 0 cm /Im0 Do Q".encode()
        content_id = len(objects) + 1
        objects.append(f"<< /Length {len(content)} >>")
        streams[content_id] = content
        page_id = len(objects) + 1
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {A4_PT[0]} {A4_PT[1]}] /Resources << /XObject << /Im0 {img_id} 0 R >> >> /Contents {content_id} 0 R >>")
        kids.append(f"{page_id} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, o in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\n".encode()
        if i in streams:
            out += b"stream\n" + streams[i] + b"\nendstream\n"
        out += b"endobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    with open(path, "wb") as f:
        f.write(out)
    return len(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--pages", type=int, default=50)
    ap.add_argument("--dpi", type=int, default=200)
    ap.add_argument("--jpx", type=int, default=0, help="the page (1-based) in JPEG 2000; 0: none")
    ap.add_argument("--jbig2", type=int, default=0, help="the page (1-based) in JBIG2; 0: none")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    w, h = round(8.27 * a.dpi), round(11.69 * a.dpi)
    pages = []
    for n in range(1, a.pages + 1):
        if n == a.jbig2:
            pages.append((jbig2_page(w, h, rng), "JBIG2Decode", w, h, "DeviceGray", 1))
            continue
        img = scanned_page(n, a.pages, w, h, rng, colour=(n == 1))
        buf = io.BytesIO()
        if n == a.jpx:
            img.save(buf, "JPEG2000", irreversible=True, quality_mode="rates", quality_layers=[40])
            pages.append((buf.getvalue(), "JPXDecode", w, h, None, 8))
        else:
            img.save(buf, "JPEG", quality=75)
            pages.append((buf.getvalue(), "DCTDecode", w, h, "DeviceRGB" if img.mode == "RGB" else "DeviceGray", 8))
    size = write_pdf(a.out, pages)
    print(json.dumps({"pages": a.pages, "bytes": size, "jpx_page": a.jpx or None, "jbig2_page": a.jbig2 or None}))


if __name__ == "__main__":
    main()
