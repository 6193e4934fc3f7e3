#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets (docs/fuzzing.md).

Usage: fuzz/make_seeds.py [FUZZ_DIR]   (default: the folder of this script)

Seeds go to FUZZ_DIR/seeds/<target>/ (not the corpus: `cargo fuzz run` is
given both folders, and `cargo fuzz cmin` keeps what adds coverage in
fuzz/corpus/<target>). The SDP seeds made by our own peers come from
`GIAOBAN_FUZZ_SEED_DIR=fuzz/seeds/sdp cargo test -p giaoban-sfu example_sdps`,
the signed PDFs from cabinet/tests/fixtures/make_signed_pdfs.py.
"""

import hashlib
import json
import os
import struct
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(ROOT, "seeds", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ------------------------------------------------------ client messages ----
OFFER = ("v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
         "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
         "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n"
         "a=setup:actpass\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n")
TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
for m in [
    {"type": "hello", "id": 0, "version": 1},
    {"type": "hello", "version": 2},
    {"type": "join", "id": 1, "token": TOKEN, "meeting_id": "9b0c4c3e-3a8e-4e7a-9d59-6a4d2b3f7f10"},
    {"type": "join", "id": "j", "token": "not.a.token"},
    {"type": "publish", "id": 2, "sdp": OFFER},
    {"type": "subscriber_answer", "id": 3, "sdp": OFFER},
    {"type": "candidate", "pc": "publisher", "candidate": {
        "candidate": "candidate:1 1 udp 2122260223 192.168.1.20 51234 typ host",
        "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "xY1z"}},
    {"type": "candidate", "pc": "subscriber", "candidate": {"candidate": ""}},
    {"type": "set_quality", "id": 4, "track_id": "t-1", "quality": "low"},
    {"type": "set_quality", "id": 5, "track_id": "t-1", "quality": "ultra"},
    {"type": "mute", "id": 6, "kind": "audio", "muted": True},
    {"type": "mute", "kind": "screen", "muted": False},
    {"type": "ping", "id": 7, "ts": 1700000000000},
    {"type": "leave", "id": 8},
    {"type": "dance", "id": [1]},
    {"type": "raise_hand", "id": 9, "kind": "point_of_order"},
    {"type": "raise_hand", "kind": "sing"},
    {"type": "give_floor", "id": 10, "participant_id": "p-4f1c2a"},
    {"type": "mute_participant", "participant_id": "p-1", "kind": "audio", "muted": True},
    {"type": "remove_participant", "participant_id": "p-1", "reason": ""},
    {"type": "set_current_item", "item_id": None},
    {"type": "declare_attendance", "leader": "Ông Nguyễn Văn A", "attendees": 4294967296},
    {"type": "open_vote", "question": "Thông qua?", "rule": "two_thirds_all", "voters": ["member", "bridge"]},
    {"type": "open_vote", "question": "x", "voters": []},
    {"type": "cast_vote", "poll_id": "c1f0", "choice": "for"},
    {"type": "close_vote", "poll_id": 7},
]:
    put("client_message", json.dumps(m))
for raw in ["", "{", "[1,2]", "null", '{"type":"ping","id":"' + "x" * 70 + '"}',
            '{"type":"hello","version":1e400}', '{"type":"join","token":5}']:
    put("client_message", raw)

# ------------------------------------------------------------ datagrams ----


def stun(msg_type, attrs):
    body = b""
    for t, v in attrs:
        body += struct.pack(">HH", t, len(v)) + v + b"\0" * (-len(v) % 4)
    return struct.pack(">HHI", msg_type, len(body), 0x2112A442) + b"\x07" * 12 + body


STUN_REQ = stun(0x0001, [(0x0006, b"serverufrag:clientufrag"), (0x0024, b"\x6e\x7f\x1e\xff"),
                         (0x8029, b"\x00" * 8), (0x0008, b"\x00" * 20), (0x8028, b"\x00" * 4)])
STUN_RESP = stun(0x0101, [(0x0020, b"\x00\x01\x12\x34\x5e\x12\xa4\x43")])


def rtp(pt, seq, ts, ssrc, payload, marker=False, ext=None):
    b0 = 0x80 | (0x10 if ext else 0)
    h = struct.pack(">BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    if ext:
        # one-byte header extensions (RFC 8285)
        data = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in ext)
        data += b"\0" * (-len(data) % 4)
        h += struct.pack(">HH", 0xBEDE, len(data) // 4) + data
    return h + payload


VP8_KEY = bytes([0x90, 0xE0, 0x80, 0x01, 0x05, 0x20, 0x10, 0x02, 0x9D, 0x01, 0x2A])
VP8_DELTA = bytes([0x90, 0x80, 0x05, 0x21])
H264_IDR = bytes([0x65, 0x88, 0x84])
H264_STAPA = bytes([0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE])
H264_FUA = bytes([0x7C, 0x85, 0x00])
PLI = struct.pack(">BBHII", 0x81, 206, 2, 1, 0x1234)
FIR = struct.pack(">BBHIIIBBH", 0x84, 206, 4, 1, 0, 0x1234, 7, 0, 0)
SR = struct.pack(">BBHIIIIII", 0x80, 200, 6, 0x1234, 1, 2, 3, 4, 5)
RR = struct.pack(">BBHI", 0x81, 201, 7, 0x1) + struct.pack(">IIIIII", 0x1234, 0, 1, 2, 3, 4)
TWCC = struct.pack(">BBHIIHHIHH", 0x8F, 205, 4, 1, 0x1234, 1, 2, 0x000001, 0x2001, 0x0400)
BYE = struct.pack(">BBHI", 0x81, 203, 1, 0x1234)
SDES = struct.pack(">BBHIBB", 0x81, 202, 2, 0x1234, 1, 2) + b"ab"
DTLS_HELLO = bytes([22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 1, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 4, 0xFE, 0xFD, 0, 0])

for d in [STUN_REQ, STUN_RESP, VP8_KEY, VP8_DELTA, H264_IDR, H264_STAPA, H264_FUA,
          PLI, FIR, SR, RR, TWCC, BYE, SDES, SR + PLI, RR + SDES + BYE, DTLS_HELLO,
          rtp(96, 1, 3000, 0x1234, VP8_KEY, True, [(1, b"\x01\x02"), (4, b"q")]),
          rtp(111, 2, 960, 0x4321, b"\xfc\xff\xfe", False, [(1, b"\x90")]),
          rtp(102, 3, 90000, 0x1111, H264_STAPA)]:
    put("datagram", d)
    put("datagram", struct.pack(">H", len(d)) + d)

# ------------------------------------------------------------ peer input ----


def frames(*ds):
    return b"".join(struct.pack(">H", len(d)) + d for d in ds)


for proto in (0, 1):
    put("peer_input", bytes([proto]) + frames(STUN_REQ))
    put("peer_input", bytes([proto]) + frames(STUN_REQ, DTLS_HELLO))
    put("peer_input", bytes([proto]) + frames(STUN_REQ, rtp(96, 1, 1, 0x1234, VP8_KEY), SR + PLI))
    put("peer_input", bytes([proto]) + frames(DTLS_HELLO, STUN_RESP))

# --------------------------------------------------------------- uploads ----
B = "giaobanfuzz"


def form(*parts):
    out = b""
    for headers, body in parts:
        out += ("--%s\r\n" % B).encode()
        for h in headers:
            out += h.encode("utf-8") + b"\r\n"
        out += b"\r\n" + body + b"\r\n"
    return out + ("--%s--\r\n" % B).encode()


PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
put("upload", form((['Content-Disposition: form-data; name="file"; filename="to trinh.pdf"',
                     "Content-Type: application/pdf"], PDF),
                   (['Content-Disposition: form-data; name="title"'], "Tờ trình số 1".encode()),
                   (['Content-Disposition: form-data; name="access"'], b"named"),
                   (['Content-Disposition: form-data; name="participant_ids"'], b'["p-1","p-2"]')))
put("upload", form((['Content-Disposition: form-data; name="file"; filename="../../etc/pa\\ss\x01wd"'], b"hello")))
put("upload", form((["Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''T%E1%BB%9D.docx",
                     "Content-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document"], b"PK\x03\x04")))
put("upload", form((['Content-Disposition: form-data; name="title"'], b"no file")))
put("upload", form((['Content-Disposition: form-data; name="file"; filename="empty.txt"'], b"")))
put("upload", form((['Content-Disposition: form-data; name="file"; filename="a"'], b"a"),
                   (['Content-Disposition: form-data; name="file"; filename="b"'], b"b")))
put("upload", form((['Content-Disposition: form-data; name="other"'], b"x" * 100),
                   (['Content-Disposition: form-data; name="access"'], b"bogus")))
put("upload", form((['Content-Disposition: form-data; name="file"; filename="big.bin"'], b"\0" * 70000)))
put("upload", b"--" + B.encode() + b"\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ntruncated")
print("seeds written under", os.path.join(ROOT, "seeds"))
