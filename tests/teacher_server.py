"""Real HTTP servers for teacher tests: a fault-injecting OpenAI-compatible server and `transformers serve`.

`FaultServer` is a small stdlib HTTP server in a thread that answers
`/v1/chat/completions` like an OpenAI endpoint, but follows a script of
behaviours per request (garbage or empty body, timeout, dropped connection,
429, 500, 503, unparseable content, or a good reply) and can add a fixed
latency — the benchmark uses it to make the server the bottleneck. It counts
the requests it is handling at once (`max_in_flight`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

Reply = Callable[[dict[str, Any]], str]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def completion_body(content: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


class _Server(ThreadingHTTPServer):
    # The stdlib's listen backlog is 5: with more clients connecting at once, the kernel drops
    # the extra SYNs and the client retries after a second, which a 1 s teacher timeout counts
    # as a timeout fault that no script injected.
    request_queue_size = 128
    daemon_threads = True


class LocalServer:
    """A stdlib HTTP server on a free local port, serving `_handler()` from a thread while in a `with` block."""

    def __init__(self, *, port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class FaultServer(LocalServer):
    """An OpenAI-compatible server whose n-th request gets the n-th scripted behaviour.

    Behaviours: "ok", "garbage" (200 with a non-JSON body), "empty" (200 with
    an empty body), "bad-content" (a valid envelope whose message is not the
    JSON asked for), "timeout" (answers after `hang_s`), "dropped" (closes the
    connection without a reply), "429", "500", "503". After the script, "ok".
    `GET /v1/models` (the run's health check) answers `models_status`, outside the script.
    429 and 5xx replies carry `retry-after-ms: retry_after_ms` (the header
    OpenAI sends; the client waits that long instead of its own backoff).
    """

    def __init__(self, reply: Reply, *, script: list[str] | None = None, latency_s: float = 0.0,
                 hang_s: float = 3.0, retry_after_ms: int = 10, model: str = "fault-model",
                 models_status: int = 200, port: int = 0) -> None:
        self.reply = reply
        self.script = list(script or [])
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.retry_after_ms = retry_after_ms
        self.model = model
        self.models_status = models_status
        self.model_list_requests = 0
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self.behaviours: list[str] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        super().__init__(port=port)

    def _next(self, body: dict[str, Any], authorization: str) -> str:
        with self._lock:
            self.requests.append(body)
            self.authorizations.append(authorization)
            self.arrivals.append(time.monotonic())
            behaviour = self.script.pop(0) if self.script else "ok"
            self.behaviours.append(behaviour)
            return behaviour

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
                # Counted out before the reply leaves: the client cannot send its next request any earlier.
                server._leave()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                if status == 429 or status >= 500:
                    self.send_header("retry-after-ms", str(server.retry_after_ms))
                self.end_headers()
                # the client may give up waiting (the timeout fault): that is the point
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            def do_GET(self) -> None:
                """The model list (a health check): `models_status`, outside the script of chat replies."""
                server._enter()
                with server._lock:
                    server.model_list_requests += 1
                if server.models_status != 200:
                    self._send(server.models_status, b'{"error": {"message": "scripted model-list failure"}}')
                else:
                    self._send(200, json.dumps({"object": "list", "data": [{"id": server.model, "object": "model"}]})
                               .encode())

            def do_POST(self) -> None:
                server._enter()
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                behaviour = server._next(body, self.headers.get("Authorization", ""))
                time.sleep(server.latency_s)
                if behaviour == "timeout":
                    time.sleep(server.hang_s)
                    behaviour = "ok"
                if behaviour == "dropped":
                    server._leave()
                    self.close_connection = True  # no status line, no body: the client sees the connection close
                elif behaviour == "429":
                    self._send(429, b'{"error": {"message": "rate limited", "type": "rate_limit"}}')
                elif behaviour in ("500", "503"):
                    self._send(int(behaviour), b'{"error": {"message": "internal error"}}')
                elif behaviour == "garbage":
                    self._send(200, b"<html>502 Bad Gateway</html> \x00\xff", "text/html")
                elif behaviour == "empty":
                    self._send(200, b"")
                else:
                    content = "Sure! I think it is fine." if behaviour == "bad-content" else server.reply(body)
                    self._send(200, json.dumps(completion_body(content, server.model)).encode())

        return Handler


@contextmanager
def transformers_serve(model_dir: Path, *, startup_timeout_s: float = 240.0) -> Iterator[str]:
    """Start `transformers serve` on a free port with `model_dir` preloaded; yields the base URL."""
    executable = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if executable is None:
        raise RuntimeError("the `transformers` CLI is missing: pip install 'transformers[serving]'")
    port = free_port()
    log = open(Path(model_dir).parent / f"serve-{port}.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [executable, "serve", str(model_dir), "--port", str(port), "--host", "127.0.0.1", "--device", "cpu"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {process.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"transformers serve did not start within {startup_timeout_s}s; see {log.name}"
                    ) from error
                time.sleep(0.5)
        yield f"{base}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def scripted_reply(body: dict[str, Any]) -> str:
    """A competent teacher: answers whichever role's prompt it was sent."""
    prompt = json.dumps(body["messages"])
    if "Which candidate" in prompt:
        return json.dumps({"best": 2, "reason": "candidate 2 names the miscount"})
    if "Name the skills" in prompt:
        return 'Here you go: {"sample_id": "x", "skills": ["Counting", "comparison",]}'
    if "Name the ONE skill" in prompt:
        return json.dumps({"missing_skill": "spatial relation", "explanation": "left and right were swapped"})
    return '```json\n{"wrong_step": 1, "missing_skill": "Counting", "explanation": "there is 1 yellow object"}\n```'
