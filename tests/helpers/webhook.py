"""A webhook receiver on loopback: a real ``http.server`` in a thread of the test.

It answers each call with the next status of ``answers`` (then ``default``), records
every call (headers, body, whether its signature checks out), and can hold its answers
(``hold``) to look like a server that does not answer in time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        """Verify ``X-Snapkeep-Signature`` as a receiver would (docs/hooks.md)."""
        timestamp = self.headers.get("x-snapkeep-timestamp", "")
        expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + self.body,
                                        hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-snapkeep-signature", ""))


class Receiver:
    def __init__(self, answers: list[int] | None = None, default: int = 200) -> None:
        self.answers = list(answers or [])
        self.default = default
        self.calls: list[Call] = []
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.calls.append(Call(self.path, {k.lower(): v for k, v in
                                                           self.headers.items()}, body))
                    status = receiver.answers.pop(0) if receiver.answers else \
                        receiver.default
                receiver.release.wait(timeout=60)  # a held receiver does not answer in time
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def hold(self) -> None:
        self.release.clear()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=30)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def notifications_toml(url: str, *, attempts: int = 5, timeout: float = 10) -> str:
    """A ``[notifications]`` table for ``url``, its secret in ``webhook.secret`` beside the
    config (write ``SECRET`` there)."""
    return (f'[notifications]\nwebhook_url = "{url}"\nwebhook_secret_file = "webhook.secret"\n'
            f"webhook_attempts = {attempts}\nwebhook_timeout = {timeout}\n")


SECRET = "whsec-test-7f3a"
