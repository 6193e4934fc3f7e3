#!/usr/bin/env python3
"""WHIP and WHEP against giaoban with aiortc, an independent WebRTC stack.

Driven by tests/tests/whip_whep.rs, inside the test's network namespace.

1. Publishes a synthetic camera (a moving grey-scale test pattern, VP8) and a
   440 Hz tone (Opus) with WHIP, as the participant its token names.
2. Optionally plays the meeting's main view with WHEP and counts what it
   decodes: video frames (and their size) and audio samples.
3. Ends both sessions with DELETE.

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
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError

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


async def play(base, meeting, token, seconds):
    """WHEP: receives the main view for `seconds` and counts what decodes."""
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
    emit("whep_result", **stats)
    status, _, _ = await asyncio.to_thread(http, "DELETE", base + location)
    emit("whep_deleted", status=status)
    await pc.close()
    for c in consumers:
        c.cancel()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="http://host:port of the server")
    ap.add_argument("--meeting", required=True)
    ap.add_argument("--whip-token", required=True)
    ap.add_argument("--whep-token", help="also play the main view with this token")
    ap.add_argument("--play-seconds", type=float, default=5.0)
    ap.add_argument("--hold-seconds", type=float, default=0.0,
                    help="keep publishing this long after playing")
    args = ap.parse_args()

    pub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pub.addTransceiver(PatternTrack(), direction="sendonly")
    pub.addTransceiver(ToneTrack(), direction="sendonly")
    started = time.monotonic()
    location, etag = await negotiate(pub, f"{args.base}/whip/{args.meeting}", args.whip_token)
    emit("whip_created", location=location, etag=etag)
    await wait_connected(pub, 15)
    emit("whip_connected", after_ms=int((time.monotonic() - started) * 1000))

    # Trickle ICE: a candidate in a fragment is accepted (204).
    frag = "a=ice-ufrag:{}\r\na=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n".format(
        next(l.split(":", 1)[1].strip() for l in pub.localDescription.sdp.splitlines()
             if l.startswith("a=ice-ufrag:")))
    status, _, _ = await asyncio.to_thread(
        http, "PATCH", args.base + location, frag, None, "application/trickle-ice-sdpfrag")
    emit("whip_patched", status=status)

    if args.whep_token:
        await play(args.base, args.meeting, args.whep_token, args.play_seconds)
    if args.hold_seconds > 0:
        await asyncio.sleep(args.hold_seconds)

    status, _, _ = await asyncio.to_thread(http, "DELETE", args.base + location)
    emit("whip_deleted", status=status)
    await pub.close()
    emit("done")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # the test prints it with the rest of the output
        emit("error", message=f"{type(e).__name__}: {e}")
        sys.exit(1)
