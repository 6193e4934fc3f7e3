#!/usr/bin/python3
"""WHIP publisher and WHEP player on GStreamer's webrtcbin (libnice ICE).

Driven by tests/tests/whip_gstreamer.rs inside the test's network namespace;
run with the system python3 (Debian's python3-gi and python3-gst-1.0).

The publisher sends a live test pattern (videotestsrc, vp8enc, 320x240 at
15 fps) and a tone (audiotestsrc, opusenc) by WHIP: one POST with the offer
carrying every gathered candidate (webrtcbin does not trickle over HTTP
here), the Location header kept, the answer applied. Once it is connected,
the player POSTs a receive-only offer (VP8 and Opus) to the meeting's WHEP
endpoint, decodes what arrives (decodebin) and counts decoded video frames
and audio time. After --seconds of playing, it DELETEs the player, then
(--tail-seconds later) the publisher, and reports the HTTP status of each DELETE (200 only if the
server still had the session: a session the server dropped answers 404).

Output: one JSON object per line on stdout, each with an "event" and "t"
(seconds since start).
"""

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

START = time.monotonic()


def emit(event, **kw):
    kw = {"event": event, "t": round(time.monotonic() - START, 2), **kw}
    print(json.dumps(kw), flush=True)


def http(method, url, body=None, token=None, ctype="application/sdp"):
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode(errors="replace")


def candidate_summary(sdp):
    """The candidate lines of an SDP, shortened (transport, type, tcptype)."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            f = line.split()
            extra = f[f.index("tcptype") + 1] if "tcptype" in f else ""
            out.append(" ".join([f[2].lower(), f[4], f[5], f[7], extra]).strip())
    return out


local_ip = None


class Endpoint:
    """One webrtcbin doing one WHIP or WHEP exchange."""

    def __init__(self, name, pipeline, webrtc, url, token, on_connected):
        self.name = name
        self.pipeline = pipeline
        self.webrtc = webrtc
        self.url = url
        self.token = token
        self.on_connected = on_connected
        self.location = None
        self.posted = False
        self.connected_at = None
        self.states = []
        # libnice skips loopback interfaces when it gathers; the test runs in
        # a namespace that has only `lo`, so name its address explicitly.
        # (The agent object is kept: dropping the Python wrapper of a
        # GObject property read releases a reference webrtcbin still needs.)
        self.ice = webrtc.get_property("ice-agent")
        if local_ip:
            self.ice.emit("add-local-ip-address", local_ip)
        webrtc.connect("on-negotiation-needed", self._negotiate)
        webrtc.connect("notify::ice-gathering-state", self._gathering)
        webrtc.connect("notify::ice-connection-state", self._ice_state)
        webrtc.connect("notify::connection-state", self._pc_state)

    def _negotiate(self, webrtc):
        promise = Gst.Promise.new_with_change_func(self._offer_created, None)
        webrtc.emit("create-offer", None, promise)

    def _offer_created(self, promise, _data):
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def _gathering(self, webrtc, _pspec):
        state = webrtc.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE and not self.posted:
            self.posted = True
            sdp = webrtc.get_property("local-description").sdp.as_text()
            # The HTTP exchange off the main loop: media keeps flowing.
            threading.Thread(target=self._post, args=(sdp,), daemon=True).start()

    def _post(self, sdp):
        try:
            status, headers, body = http("POST", self.url, sdp.encode(), self.token)
        except OSError as e:
            emit("error", where=self.name, error=repr(e))
            GLib.idle_add(loop.quit)
            return
        location = headers.get("Location") or headers.get("location")
        emit(
            f"{self.name}_created",
            status=status,
            location=location,
            offer_candidates=candidate_summary(sdp),
            answer_candidates=candidate_summary(body) if status == 201 else [],
            rtcp_mux_only="a=rtcp:" not in sdp,
        )
        if status != 201:
            emit("error", where=self.name, status=status, body=body[:500])
            GLib.idle_add(loop.quit)
            return
        self.location = location
        res, msg = GstSdp.SDPMessage.new_from_text(body)
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)

        def apply():
            self.webrtc.emit("set-remote-description", answer, Gst.Promise.new())
            return False

        GLib.idle_add(apply)

    def _ice_state(self, webrtc, _pspec):
        s = webrtc.get_property("ice-connection-state").value_nick
        self.states.append(("ice", s, round(time.monotonic() - START, 2)))
        emit(f"{self.name}_ice_state", state=s)

    def _pc_state(self, webrtc, _pspec):
        s = webrtc.get_property("connection-state").value_nick
        self.states.append(("pc", s, round(time.monotonic() - START, 2)))
        emit(f"{self.name}_state", state=s)
        if s == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
            emit(f"{self.name}_connected")
            if self.on_connected:
                GLib.idle_add(self.on_connected)
        if s == "failed":
            emit("error", where=self.name, state=s)

    def delete(self):
        if not self.location:
            return None
        status, _, _ = http("DELETE", base + self.location, None, self.token)
        return status


def make_publisher(url, token, on_connected):
    pipe = Gst.parse_launch(
        "webrtcbin name=w bundle-policy=max-bundle "
        "videotestsrc is-live=true pattern=ball "
        "! video/x-raw,width=320,height=240,framerate=15/1 ! videoconvert "
        "! vp8enc deadline=1 cpu-used=8 target-bitrate=300000 keyframe-max-dist=60 "
        "! rtpvp8pay pt=96 picture-id-mode=15-bit "
        "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! w. "
        "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample "
        "! opusenc ! rtpopuspay pt=111 "
        "! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w."
    )
    webrtc = pipe.get_by_name("w")
    ep = Endpoint("whip", pipe, webrtc, url, token, on_connected)
    # Send only: a WHIP publisher receives nothing.
    i = 0
    while True:
        t = webrtc.emit("get-transceiver", i)
        if t is None:
            break
        t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        i += 1
    return ep


class Counts:
    def __init__(self):
        self.video_frames = 0
        self.audio_ns = 0
        self.width = None
        self.height = None
        self.lock = threading.Lock()


def make_player(url, token, counts):
    pipe = Gst.Pipeline.new("player")
    webrtc = Gst.ElementFactory.make("webrtcbin", "p")
    webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
    pipe.add(webrtc)
    recv = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
    webrtc.emit(
        "add-transceiver",
        recv,
        Gst.Caps.from_string(
            "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000,"
            "rtcp-fb-nack-pli=(boolean)true"
        ),
    )
    webrtc.emit(
        "add-transceiver",
        recv,
        Gst.Caps.from_string(
            "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,"
            "encoding-params=(string)2"
        ),
    )

    def count(pad, info, kind):
        buf = info.get_buffer()
        with counts.lock:
            if kind == "video":
                counts.video_frames += 1
                if counts.width is None:
                    s = pad.get_current_caps().get_structure(0)
                    counts.width = s.get_value("width")
                    counts.height = s.get_value("height")
            elif buf.duration != Gst.CLOCK_TIME_NONE:
                counts.audio_ns += buf.duration
        return Gst.PadProbeReturn.OK

    def decoded(_dbin, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        kind = "video" if caps.get_structure(0).get_name().startswith("video") else "audio"
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)
        pipe.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))
        pad.add_probe(Gst.PadProbeType.BUFFER, count, kind)

    def incoming(_webrtc, pad):
        if pad.direction != Gst.PadDirection.SRC:
            return
        dbin = Gst.ElementFactory.make("decodebin")
        dbin.connect("pad-added", decoded)
        pipe.add(dbin)
        dbin.sync_state_with_parent()
        pad.link(dbin.get_static_pad("sink"))

    webrtc.connect("pad-added", incoming)
    return Endpoint("whep", pipe, webrtc, url, token, None)


def main():
    global base, loop, local_ip
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--meeting", required=True)
    ap.add_argument("--whip-token", required=True)
    ap.add_argument("--whep-token", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--connect-timeout", type=float, default=30)
    ap.add_argument("--tail-seconds", type=float, default=0, help="publishing after the player ends")
    ap.add_argument("--local-ip", default="127.0.0.1", help="address libnice gathers on ('' for its own choice)")
    args = ap.parse_args()
    base = args.base
    local_ip = args.local_ip
    Gst.init(None)
    emit("versions", gstreamer=Gst.version_string())
    loop = GLib.MainLoop()
    counts = Counts()
    player = make_player(f"{base}/whep/{args.meeting}", args.whep_token, counts)
    last = {"frames": 0, "audio_ns": 0, "playing": True}

    def progress():
        if not last["playing"]:
            return False
        with counts.lock:
            f, a = counts.video_frames, counts.audio_ns
        emit(
            "whep_progress",
            video_frames=f,
            audio_ms=a // 1_000_000,
            new_frames=f - last["frames"],
            new_audio_ms=(a - last["audio_ns"]) // 1_000_000,
        )
        last["frames"], last["audio_ns"] = f, a
        return True

    def finish():
        last["playing"] = False
        with counts.lock:
            emit(
                "whep_result",
                video_frames=counts.video_frames,
                audio_ms=counts.audio_ns // 1_000_000,
                width=counts.width,
                height=counts.height,
                seconds=args.seconds,
            )
        emit("whep_deleted", status=player.delete())
        player.pipeline.set_state(Gst.State.NULL)
        GLib.timeout_add(int(args.tail_seconds * 1000), unpublish)
        return False

    def unpublish():
        emit("whip_deleted", status=publisher.delete(), states=publisher.states)
        publisher.pipeline.set_state(Gst.State.NULL)
        loop.quit()
        return False

    def player_connected():
        emit("whep_playing")
        GLib.timeout_add(10_000, progress)
        GLib.timeout_add(int(args.seconds * 1000), finish)
        return False

    def publisher_connected():
        # Start the player once the publisher is up (its main view is the
        # chair, the publisher).
        player.on_connected = player_connected
        player.pipeline.set_state(Gst.State.PLAYING)
        return False

    publisher = make_publisher(f"{base}/whip/{args.meeting}", args.whip_token, publisher_connected)

    def too_slow():
        if publisher.connected_at is None or player.connected_at is None:
            emit(
                "error",
                where="connect",
                whip_states=publisher.states,
                whep_states=player.states,
            )
            loop.quit()
        return False

    GLib.timeout_add(int(args.connect_timeout * 1000), too_slow)
    publisher.pipeline.set_state(Gst.State.PLAYING)
    loop.run()
    for p in (player.pipeline, publisher.pipeline):
        p.set_state(Gst.State.NULL)
    emit("done")


base = ""
loop = None

if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        emit("error", where="exception", error=repr(e))
        sys.exit(1)
