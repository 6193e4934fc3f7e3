#!/usr/bin/env python3
"""Dependency-direction check for the giaoban workspace (DESIGN.md section 1).

    signaling -> {sfu, cabinet};  sfu and cabinet never depend on each other,
    nor on signaling; the WebRTC stack stays inside sfu.

Reads `cargo metadata --format-version 1 --no-deps` (or a saved copy given
with --metadata FILE) and fails loudly, with one line per violation, when:

  * a workspace crate depends (normal, build or dev; directly or through other
    workspace crates) on a workspace crate it is not allowed to know;
  * a crate depends directly on an external crate that belongs to another
    layer (HTTP/websocket/SQL in sfu, WebRTC/HTTP/websocket in cabinet,
    the WebRTC stack anywhere but sfu and the tests);
  * a workspace crate exists that these rules do not mention (a new crate
    must be given its place in the architecture here first).

Only the Python standard library is used (jq may be missing).
"""

import argparse
import json
import os
import subprocess
import sys

SFU = "giaoban-sfu"
CABINET = "giaoban-cabinet"
SIGNALING = "giaoban-signaling"
TESTS = "giaoban-tests"

# Workspace crates each crate may depend on (any dependency kind, transitively).
ALLOWED_WORKSPACE_DEPS = {
    SFU: set(),
    CABINET: set(),
    SIGNALING: {SFU, CABINET},
    # Tests speak the public protocol, but may use any crate's public types.
    TESTS: {SFU, CABINET, SIGNALING},
}

HTTP_AND_WS = {
    "axum", "axum-core", "hyper", "hyper-util", "tower-http", "actix-web",
    "warp", "tokio-tungstenite", "tungstenite",
}
SQL = {"sqlx", "rusqlite", "tokio-postgres", "postgres", "diesel", "sea-orm"}
WEBRTC = {"rtc", "webrtc", "str0m", "webrtc-ice", "webrtc-dtls", "webrtc-srtp"}

# External crates each crate must not depend on directly (any kind).
FORBIDDEN_EXTERNAL = {
    SFU: HTTP_AND_WS | SQL | {"jsonwebtoken", "reqwest"},
    CABINET: HTTP_AND_WS | WEBRTC,
    # The WebRTC stack's types stay behind sfu's API.
    SIGNALING: WEBRTC,
    TESTS: set(),
}


def load_metadata(path):
    if path:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    return json.loads(out)


def check(meta):
    """Return (violations, workspace edges); no violations means all is well."""
    members = set(meta["workspace_members"])
    packages = [p for p in meta["packages"] if p["id"] in members]
    by_dir = {os.path.dirname(p["manifest_path"]): p["name"] for p in packages}
    names = {p["name"] for p in packages}
    errors = []

    for name in sorted(names - ALLOWED_WORKSPACE_DEPS.keys()):
        errors.append(
            f"{name}: workspace crate not covered by the dependency rules; "
            "add it to scripts/check-deps.py (and DESIGN.md) first"
        )
    for name in sorted(ALLOWED_WORKSPACE_DEPS.keys() - names):
        errors.append(f"{name}: expected workspace crate is missing")

    # Direct edges between workspace crates, with the kind that introduced them.
    edges = {p["name"]: [] for p in packages}
    for p in packages:
        for d in p["dependencies"]:
            kind = d.get("kind") or "normal"
            target = None
            if d.get("path"):
                target = by_dir.get(os.path.normpath(d["path"]))
            if target is None and d.get("source") is None and d["name"] in names:
                target = d["name"]
            if target is not None:
                edges[p["name"]].append((target, kind))
            elif d["name"] in FORBIDDEN_EXTERNAL.get(p["name"], set()):
                errors.append(
                    f"{p['name']} -> {d['name']} ({kind} dependency): "
                    f"{d['name']} belongs to another layer (DESIGN.md section 1)"
                )

    # Transitive closure over workspace crates, remembering one path.
    for start in sorted(edges):
        allowed = ALLOWED_WORKSPACE_DEPS.get(start)
        if allowed is None:
            continue
        seen = {start: [start]}
        stack = [start]
        while stack:
            cur = stack.pop()
            for nxt, kind in edges.get(cur, []):
                if nxt in seen:
                    if nxt == start:
                        errors.append(
                            f"{start}: dependency cycle "
                            + " -> ".join(seen[cur] + [nxt])
                        )
                    continue
                seen[nxt] = seen[cur] + [f"({kind}) {nxt}"]
                stack.append(nxt)
                if nxt not in allowed:
                    errors.append(
                        f"{start} must not depend on {nxt}: "
                        + " -> ".join(seen[nxt])
                    )
    return errors, edges


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metadata", help="read cargo metadata JSON from this file")
    args = ap.parse_args()
    try:
        meta = load_metadata(args.metadata)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as e:
        print(f"check-deps: cannot read cargo metadata: {e}", file=sys.stderr)
        return 2
    errors, edges = check(meta)
    if errors:
        print("check-deps: DEPENDENCY DIRECTION VIOLATED", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        print(
            "  rule: signaling -> {sfu, cabinet}; sfu and cabinet never depend "
            "on each other, nor on signaling (DESIGN.md section 1)",
            file=sys.stderr,
        )
        return 1
    crates = "; ".join(
        f"{name} -> {{{', '.join(sorted({t for t, _ in deps}))}}}"
        for name, deps in sorted(edges.items())
    )
    print(f"check-deps: ok ({crates})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
