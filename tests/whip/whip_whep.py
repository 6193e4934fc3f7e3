#!/usr/bin/env python3
"""WHIP and WHEP against giaoban with aiortc, an independent WebRTC stack.

Driven by tests/tests/whip_whep.rs, inside the test's network namespace.

1. Publishes a synthetic camera (a moving grey-scale test pattern, VP8) and a
   440 Hz tone (Opus) with WHIP, as the participant its token names.
2. Optionally plays the meeting's main view with WHEP and counts what it
   decodes: video frames (and their size) and audio samples. The player also
   records the server's RTCP sender reports (each against the RTP packets it
   received before it) and, with --drop-every N, drops every Nth video packet
   on arrival (before its jitter buffer, so it NACKs it) and counts which of
   them come back (RTX or plain retransmission).
3. Ends both sessions with DELETE.

With --h264-whip-token, a second publisher sends its video in H.264 alone
(as an encoder would) as a participant that is not the chair; after the
player's first phase the first publisher leaves, the main view moves to the
H.264 one, and the player counts again (`whep_switched`): the same outgoing
video track now carries H.264, and its retransmissions must name H.264.

Every step prints one JSON line on stdout (`{"event": ...}`); the Rust test
reads them. Needs `aiortc` (scripts/test installs the pinned version).
No ICE servers are used: the network is closed.
"""

import argparse
import asyncio
import json
import math
import struct
import sys
import time
import urllib.error
import urllib.request
from fractions import Fraction

import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtcpSrPacket

# The test network namespace has loopback alone, and aioice leaves 127.0.0.1
# out of its host candidates: put it back (as Chromium's
# --allow-loopback-in-peer-connection does for the browser tests).
_host_addresses = aioice.ice.get_host_addresses


def _with_loopback(use_ipv4, use_ipv6):
    addrs = _host_addresses(use_ipv4, use_ipv6)
    if use_ipv4 and "127.0.0.1" not in addrs:
        addrs.append("127.0.0.1")
    return addrs


aioice.ice.get_host_addresses = _with_loopback

WIDTH, HEIGHT = 320, 240
SAMPLE_RATE = 48000
PTIME = 0.02


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


class PatternTrack(VideoStreamTrack):
    """A moving diagonal grey-scale pattern, WIDTH x HEIGHT at 30 fps."""

    def __init__(self):
        super().__init__()
        self.n = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        shift = self.n * 4
        self.n += 1
        row = bytes(((x + shift) * 2) & 0xFF for x in range(WIDTH + HEIGHT))
        luma = b"".join(row[y : y + WIDTH] for y in range(HEIGHT))
        frame.planes[0].update(luma)
        frame.planes[1].update(bytes([128]) * (frame.planes[1].buffer_size))
        frame.planes[2].update(bytes([128]) * (frame.planes[2].buffer_size))
        frame.pts = pts
        frame.time_base = time_base
        return frame


class ToneTrack(MediaStreamTrack):
    """A 440 Hz sine tone, 48 kHz mono, in 20 ms frames."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.start = None
        self.sent = 0

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        samples = int(SAMPLE_RATE * PTIME)
        if self.start is None:
            self.start = time.time()
        else:
            wait = self.start + self.sent / SAMPLE_RATE - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        pcm = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * (self.sent + i) / SAMPLE_RATE)))
            for i in range(samples)
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(pcm)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self.sent
        frame.time_base = Fraction(1, SAMPLE_RATE)
        self.sent += samples
        return frame


def http(method, url, body=None, token=None, content_type=None):
    """(status, headers, body text) of one request; errors are answers too."""
    req = urllib.request.Request(url, data=body.encode() if body is not None else None, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


async def negotiate(pc, url, token):
    """Offers (with every candidate gathered), posts, applies the answer."""
    await pc.setLocalDescription(await pc.createOffer())
    status, headers, body = await asyncio.to_thread(
        http, "POST", url, pc.localDescription.sdp, token, "application/sdp"
    )
    if status != 201:
        raise RuntimeError(f"POST {url}: {status} {body}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    location = headers.get("Location") or headers.get("location")
    return location, headers.get("ETag") or headers.get("etag")


async def wait_connected(pc, timeout):
    deadline = time.monotonic() + timeout
    while pc.connectionState != "connected":
        if pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
            raise RuntimeError(f"connection {pc.connectionState}")
        await asyncio.sleep(0.05)


NTP_UNIX_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
CLOCK_RATE = {"audio": 48000, "video": 90000}


def wrap32(v):
    """A 32-bit RTP timestamp difference as a signed number."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


class RtcpProbe:
    """What the player sees of the server's RTCP, recorded by wrapping
    aiortc's receiver (only the WHEP player receives in this script).

    Per SSRC: every sender report, with what the player had received of that
    stream when it arrived (packets, payload octets, and the arrival of the
    first packet of the latest RTP timestamp). With `drop_every`, every Nth
    video packet is dropped on its first arrival, before aiortc's NACK
    generator and jitter buffer see it; a later arrival of that sequence
    number (plain, or RTX carrying it as its original sequence number)
    counts as repaired.
    """

    def __init__(self, drop_every):
        self.drop_every = drop_every
        self.kinds = {}
        self.received = {}
        self.latest = {}
        self.reports = {}
        self.video_packets = 0
        # Dropped sequence number -> the codec of the dropped packet.
        self.dropped = {}
        self.repaired = set()
        self.repaired_rtx = 0
        self.repaired_plain = 0
        # RTX repairs whose apt= named another codec than the original's.
        self.rtx_codec_mismatch = 0
        # Video packets received, by codec name (reset per phase).
        self.video_codecs = {}

    def install(self):
        handle_rtp = RTCRtpReceiver._handle_rtp_packet
        handle_rtcp = RTCRtpReceiver._handle_rtcp_packet
        probe = self

        async def on_rtp(receiver, packet, arrival_time_ms):
            if not probe.on_rtp(receiver, packet):
                return None
            return await handle_rtp(receiver, packet, arrival_time_ms)

        async def on_rtcp(receiver, packet):
            if isinstance(packet, RtcpSrPacket):
                probe.on_sr(packet)
            return await handle_rtcp(receiver, packet)

        RTCRtpReceiver._handle_rtp_packet = on_rtp
        RTCRtpReceiver._handle_rtcp_packet = on_rtcp

    def on_rtp(self, receiver, packet):
        """Records a packet; False to drop it."""
        kind = receiver._RTCRtpReceiver__kind
        codec = receiver._RTCRtpReceiver__codecs.get(packet.payload_type)
        if codec is not None and is_rtx(codec):
            if len(packet.payload) >= 2:
                osn = struct.unpack("!H", packet.payload[:2])[0]
                if osn in self.dropped and osn not in self.repaired:
                    self.repaired.add(osn)
                    self.repaired_rtx += 1
                    apt = receiver._RTCRtpReceiver__codecs.get(codec.parameters.get("apt"))
                    if apt is None or apt.name != self.dropped[osn]:
                        self.rtx_codec_mismatch += 1
            return True
        seq = packet.sequence_number
        if kind == "video" and seq in self.dropped:
            if seq not in self.repaired:
                self.repaired.add(seq)
                self.repaired_plain += 1
            return True
        ssrc = packet.ssrc
        self.kinds[ssrc] = kind
        got = self.received.setdefault(ssrc, [0, 0])
        got[0] += 1
        got[1] += len(packet.payload)
        latest = self.latest.get(ssrc)
        if latest is None or latest[1] != packet.timestamp:
            self.latest[ssrc] = (time.time(), packet.timestamp)
        if kind == "video":
            name = codec.name if codec is not None else str(packet.payload_type)
            self.video_codecs[name] = self.video_codecs.get(name, 0) + 1
        if kind == "video" and self.drop_every:
            self.video_packets += 1
            if self.video_packets % self.drop_every == 0 and codec is not None:
                self.dropped[seq] = codec.name
                return False
        return True

    def repair(self):
        return {
            "dropped": len(self.dropped),
            "repaired": len(self.repaired),
            "rtx": self.repaired_rtx,
            "plain": self.repaired_plain,
            "rtx_codec_mismatch": self.rtx_codec_mismatch,
            "dropped_codecs": sorted(set(self.dropped.values())),
            "video_packets": self.video_packets,
        }

    def on_sr(self, packet):
        info = packet.sender_info
        got = self.received.get(packet.ssrc, [0, 0])
        self.reports.setdefault(packet.ssrc, []).append({
            "at": time.time(),
            "ntp": info.ntp_timestamp / 2**32 - NTP_UNIX_OFFSET,
            "rtp": info.rtp_timestamp,
            "packets": info.packet_count,
            "octets": info.octet_count,
            "received_packets": got[0],
            "received_octets": got[1],
            "latest": self.latest.get(packet.ssrc),
        })

    def summary(self, kind):
        """The sender reports of the stream of `kind`, checked against what
        arrived: the worst gap between the report's NTP time and the
        player's clock when it got the report (same machine), between its
        RTP timestamp and the one the player's latest packet implies at the
        report's NTP time, and between its packet and octet counts and what
        the player had received."""
        ssrcs = [s for s, k in self.kinds.items() if k == kind]
        if not ssrcs:
            return {"ssrc": None, "reports": 0}
        ssrc = ssrcs[0]
        rate = CLOCK_RATE[kind]
        reports = self.reports.get(ssrc, [])
        out = {"ssrc": ssrc, "reports": len(reports)}
        if not reports:
            return out
        out["ntp_vs_clock_ms"] = max(abs(r["ntp"] - r["at"]) * 1000 for r in reports)
        rtp_errors = []
        for r in reports:
            if r["latest"] is None:
                continue
            at, ts = r["latest"]
            expected = ts + (r["ntp"] - at) * rate
            rtp_errors.append(abs(wrap32(r["rtp"] - int(expected))) / rate * 1000)
        out["rtp_vs_arrivals_ms"] = max(rtp_errors) if rtp_errors else None
        out["packets_vs_received"] = max(abs(r["packets"] - r["received_packets"]) for r in reports)
        out["octets_vs_received"] = max(abs(r["octets"] - r["received_octets"]) for r in reports)
        first, last = reports[0], reports[-1]
        if last["ntp"] > first["ntp"]:
            # RTP clock against NTP clock between the first and last report.
            out["rtp_rate_vs_ntp"] = wrap32(last["rtp"] - first["rtp"]) / rate / (last["ntp"] - first["ntp"])
        out["last"] = {k: last[k] for k in ("packets", "octets", "received_packets", "received_octets")}
        return out


async def receiver_stats(pc):
    """The remote-outbound-rtp (from sender reports) and inbound-rtp stats of
    each receiver, by kind."""
    out = {}
    for r in pc.getReceivers():
        report = await r.getStats()
        entry = {}
        for s in report.values():
            if s.type == "remote-outbound-rtp":
                entry["remote_outbound"] = {
                    "ssrc": s.ssrc,
                    "packets_sent": s.packetsSent,
                    "bytes_sent": s.bytesSent,
                    "remote_timestamp": s.remoteTimestamp.timestamp(),
                }
            elif s.type == "inbound-rtp":
                entry["inbound"] = {"ssrc": s.ssrc, "packets_received": s.packetsReceived}
        out[r.track.kind if r.track else "unknown"] = entry
    return out


async def play(base, meeting, token, seconds, drop_every=0, switch=None, switch_seconds=0.0):
    """WHEP: receives the main view for `seconds` and counts what decodes.

    With `switch` (an async function that changes the main view), calls it
    afterwards and plays `switch_seconds` more, counting again."""
    probe = RtcpProbe(drop_every)
    probe.install()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    stats = {"video_frames": 0, "audio_samples": 0, "width": 0, "height": 0, "audio_rate": 0}
    consumers = []

    async def consume(track):
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    stats["video_frames"] += 1
                    stats["width"], stats["height"] = frame.width, frame.height
                else:
                    stats["audio_samples"] += frame.samples
                    stats["audio_rate"] = frame.sample_rate
        except MediaStreamError:
            pass

    @pc.on("track")
    def on_track(track):
        consumers.append(asyncio.ensure_future(consume(track)))

    started = time.monotonic()
    location, etag = await negotiate(pc, f"{base}/whep/{meeting}", token)
    emit("whep_created", location=location, etag=etag)
    await wait_connected(pc, 15)
    emit("whep_connected", after_ms=int((time.monotonic() - started) * 1000))
    await asyncio.sleep(seconds)
    emit("whep_result", video_codecs=probe.video_codecs, **stats)
    if switch is not None:
        await switch()
        for k in ("video_frames", "audio_samples"):
            stats[k] = 0
        probe.video_codecs = {}
        await asyncio.sleep(switch_seconds)
        emit("whep_switched", video_codecs=probe.video_codecs, **stats)
    emit(
        "whep_rtcp",
        audio=probe.summary("audio"),
        video=probe.summary("video"),
        stats=await receiver_stats(pc),
        repair=probe.repair(),
    )
    status, _, _ = await asyncio.to_thread(http, "DELETE", base + location)
    emit("whep_deleted", status=status)
    await pc.close()
    for c in consumers:
        c.cancel()


async def publish(base, meeting, token, video_codec=None):
    """WHIP: publishes the pattern and the tone, in `video_codec` alone if
    given (else aiortc's preference, VP8). Returns (pc, location, etag,
    milliseconds to connect)."""
    pub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    video = pub.addTransceiver(PatternTrack(), direction="sendonly")
    if video_codec:
        caps = RTCRtpSender.getCapabilities("video").codecs
        video.setCodecPreferences([c for c in caps if c.mimeType in (video_codec, "video/rtx")])
    pub.addTransceiver(ToneTrack(), direction="sendonly")
    started = time.monotonic()
    location, etag = await negotiate(pub, f"{base}/whip/{meeting}", token)
    await wait_connected(pub, 15)
    return pub, location, etag, int((time.monotonic() - started) * 1000)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="http://host:port of the server")
    ap.add_argument("--meeting", required=True)
    ap.add_argument("--whip-token", required=True)
    ap.add_argument("--whep-token", help="also play the main view with this token")
    ap.add_argument("--play-seconds", type=float, default=5.0)
    ap.add_argument("--drop-every", type=int, default=0,
                    help="the player drops every Nth video packet on arrival (NACK repair)")
    ap.add_argument("--h264-whip-token",
                    help="also publish an H.264-only camera with this token; the first "
                         "publisher (the chair) then leaves while the player plays")
    ap.add_argument("--switch-seconds", type=float, default=3.0,
                    help="how long the player plays after the first publisher left")
    ap.add_argument("--hold-seconds", type=float, default=0.0,
                    help="keep publishing this long after playing")
    args = ap.parse_args()

    pub, location, etag, after_ms = await publish(args.base, args.meeting, args.whip_token)
    emit("whip_created", location=location, etag=etag)
    emit("whip_connected", after_ms=after_ms)

    # Trickle ICE: a candidate in a fragment is accepted (204).
    frag = "a=ice-ufrag:{}\r\na=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n".format(
        next(l.split(":", 1)[1].strip() for l in pub.localDescription.sdp.splitlines()
             if l.startswith("a=ice-ufrag:")))
    status, _, _ = await asyncio.to_thread(
        http, "PATCH", args.base + location, frag, None, "application/trickle-ice-sdpfrag")
    emit("whip_patched", status=status)

    second = None
    if args.h264_whip_token:
        second = await publish(args.base, args.meeting, args.h264_whip_token, "video/H264")
        emit("whip_h264_connected", location=second[1], after_ms=second[3])

    deleted = False

    async def end_first():
        nonlocal deleted
        status, _, _ = await asyncio.to_thread(http, "DELETE", args.base + location)
        emit("whip_deleted", status=status)
        deleted = True

    if args.whep_token:
        await play(args.base, args.meeting, args.whep_token, args.play_seconds, args.drop_every,
                   end_first if second else None, args.switch_seconds)
    if args.hold_seconds > 0:
        await asyncio.sleep(args.hold_seconds)

    if not deleted:
        await end_first()
    await pub.close()
    if second:
        status, _, _ = await asyncio.to_thread(http, "DELETE", args.base + second[1])
        emit("whip_h264_deleted", status=status)
        await second[0].close()
    emit("done")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # the test prints it with the rest of the output
        emit("error", message=f"{type(e).__name__}: {e}")
        sys.exit(1)
