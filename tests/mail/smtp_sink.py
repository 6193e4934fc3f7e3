#!/usr/bin/env python3
"""An SMTP server for the e-mail test (tests/tests/mail.rs): aiosmtpd, an
independent implementation, on 127.0.0.1:PORT. Each message it accepts is
written to DIR as N.eml (as received) and N.json (decoded by Python's email
package: envelope, From, To, Reply-To, Subject, Message-ID, the text body).
Prints "ready" once listening; stops on SIGTERM/SIGINT.

With CERT and KEY (PEM files), it offers STARTTLS with that certificate and
refuses mail before it (require_starttls); with --implicit-tls as well, it
speaks TLS from the first byte instead (SMTPS, port 465 style).

With --auth USER PASSWORD it requires SMTP login (AUTH PLAIN or LOGIN) with
exactly these before it takes mail (auth_required), and offers it only over
TLS.

usage: smtp_sink.py DIR PORT [CERT KEY [--implicit-tls]] [--auth USER PASSWORD]
"""
import email
import email.policy
import json
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.lock = threading.Lock()
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        decoded = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "reply_to": str(msg["Reply-To"]) if msg["Reply-To"] else None,
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "content_type": msg.get_content_type(),
            "charset": msg.get_content_charset(),
            "body": body.get_content() if body is not None else None,
        }
        with self.lock:
            self.n += 1
            n = self.n
        base = os.path.join(self.folder, f"{os.getpid()}-{n:04d}")
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        tmp = base + ".json.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(decoded, f, ensure_ascii=False)
        os.replace(tmp, base + ".json")
        return "250 OK"


class Login:
    """Accepts exactly one user and password."""

    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        # handled=False: aiosmtpd answers 235 or 535 itself.
        return AuthResult(success=ok, handled=False)


def main():
    args = sys.argv[1:]
    implicit = "--implicit-tls" in args
    args = [a for a in args if a != "--implicit-tls"]
    login = None
    if "--auth" in args:
        i = args.index("--auth")
        login = Login(args[i + 1], args[i + 2])
        del args[i : i + 3]
    folder, port = args[0], int(args[1])
    os.makedirs(folder, exist_ok=True)
    params = {}
    if len(args) > 3:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args[2], args[3])
        if implicit:
            params = {"ssl_context": ctx}
        else:
            params = {"tls_context": ctx, "require_starttls": True}
    if login is not None:
        params["authenticator"] = login
        params["auth_required"] = True
        # With implicit TLS the whole connection is encrypted, but aiosmtpd
        # only counts STARTTLS as TLS for auth_require_tls.
        params["auth_require_tls"] = not implicit
    controller = Controller(Sink(folder), hostname="127.0.0.1", port=port, **params)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
