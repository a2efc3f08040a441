"""A real HTTP receiver on 127.0.0.1 for the delivery tests: records every request (time,
headers, JSON body) and answers what the test scripts — a status per request in order, then
a default — like a webhook endpoint that is down for a while, throttles or refuses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default: int = 200
    delay: float = 0.0
    answer: Callable[[Received], tuple[int, dict[str, str]] | None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def then(self, status: int, times: int = 1, **headers: str) -> Receiver:
        self.script.extend([(status, {k.replace("_", "-"): v for k, v in headers.items()})] * times)
        return self

    def accepted_items(self) -> list[dict[str, Any]]:
        """Items of the requests answered 2xx, in arrival order."""
        out = []
        for r in self.requests:
            if 200 <= r.status < 300:
                out.extend(r.json.get("items", []))
        return out

    def wait_for(self, check: Callable[[], bool], timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.05)
        return check()


@contextmanager
def receiver(**options: Any) -> Iterator[Receiver]:
    state = Receiver(**options)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            if state.delay:
                time.sleep(state.delay)
            with state.lock:
                got = Received(
                    time.monotonic(),
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    0,
                )
                scripted = state.answer(got) if state.answer else None
                if scripted is None:
                    scripted = state.script.pop(0) if state.script else (state.default, {})
                got.status = scripted[0]
                state.requests.append(got)
            payload = b'{"ok": true}' if scripted[0] < 300 else b'{"error": "scripted"}'
            self.send_response(scripted[0])
            for name, value in scripted[1].items():
                self.send_header(name, value)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_PUT = do_POST  # noqa: N815
        do_DELETE = do_POST  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
