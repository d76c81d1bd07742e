"""Real local receivers for the notification tests: an SMTP server (aiosmtpd) and an HTTP
server (http.server), both on 127.0.0.1, recording what they receive."""

from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SMTPServer:
    """aiosmtpd on 127.0.0.1:port; ``messages`` holds (envelope recipients, parsed message)."""

    def __init__(self, port: int, *, tls_context=None, login: tuple[str, str] | None = None) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.port, self.messages, self.logins = port, [], []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                outer.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = login is not None and (auth_data.login.decode(), auth_data.password.decode()) == login
            if ok:
                outer.logins.append(auth_data.login.decode())
            return AuthResult(success=ok)

        kw = {}
        if tls_context is not None:  # STARTTLS offered and required before AUTH
            kw = {"tls_context": tls_context, "require_starttls": True, "authenticator": authenticator,
                  "auth_required": True}
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kw)

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


class HTTPReceiver:
    """A webhook receiver on 127.0.0.1:port; ``posts`` holds (path, JSON body)."""

    def __init__(self, port: int) -> None:
        self.port, self.posts = port, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.posts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HTTPReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(smtp_port: int, http_port: int, out: str) -> None:
    """Run both receivers until killed, appending what arrives to ``out`` as JSON lines (for a
    test that needs them inside a network namespace: ``ip netns exec ... python -c``)."""
    import time

    def dump(kind: str, item) -> None:
        with open(out, "a") as f:
            f.write(json.dumps({"kind": kind, "t": time.time(), **item}) + "\n")

    class LoggingSMTP(SMTPServer):
        def __init__(self, port: int) -> None:
            super().__init__(port)
            self.messages = _Sink(lambda m: dump("smtp", {"to": m[0], "subject": " ".join(str(m[1]["Subject"]).split()),
                                                           "body": m[1].get_payload(decode=True).decode()}))

    class LoggingHTTP(HTTPReceiver):
        def __init__(self, port: int) -> None:
            super().__init__(port)
            self.posts = _Sink(lambda p: dump("webhook", {"path": p[0], "body": p[1]}))

    with LoggingSMTP(smtp_port), LoggingHTTP(http_port):
        dump("ready", {})
        while True:
            time.sleep(1)


class _Sink(list):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def append(self, item) -> None:
        super().append(item)
        self.fn(item)
