"""A fake OpenAI-compatible embeddings server on 127.0.0.1 for tests (no internet).

Vectors are the hashing embedder's, so results can be compared (or, for benchmarks, rows of one
fixed block, so that the server's own work stays out of the measurement). Faults are injected by
setting attributes on `FakeEmbeddingServer` while it runs.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import numpy as np

from beam_pipeline.embedders import HashingEmbedder


class FakeEmbeddingServer:
    def __init__(self, dim: int = 64, keep_requests: bool = True, fixed_vectors: bool = False):
        """`keep_requests=False` keeps no record of the inputs (benchmarks: memory stays flat).
        `fixed_vectors=True` answers rows of one precomputed block instead of each text's
        hashing vector: a real server computes on its own machine, and on this one its work
        would take the cores the client under measurement needs (benchmarks only)."""
        self.dim = dim
        self.keep_requests = keep_requests
        self.fixed_block = None
        if fixed_vectors:
            block = np.random.default_rng(0).standard_normal((256, dim)).astype("<f4")
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            self.fixed_block = (block, [base64.b64encode(r.tobytes()).decode("ascii")
                                        for r in block])
        self.embedder = HashingEmbedder(dim)
        self.latency = 0.0
        self.fail_next: list[tuple[int, dict]] = []  # (status, headers) for the next requests
        self.hang_next = 0  # requests that sleep `hang_seconds` before answering
        self.hang_seconds = 2.0
        self.status_always: int | None = None
        self.fail_after: int | None = None  # after this many answered requests, only errors:
        self.fail_after_status = 500  # … of this status
        self.not_embeddings = False  # answer 200 with JSON that holds no vectors
        self.answered = 0
        self.poison = "POISON"  # an input containing it gets a 400
        self.short_by_one_above = None  # batches larger than this get one vector too few
        # encoding_format=base64: "answer" in base64, "ignore" it (lists), "refuse" it (400)
        self.base64 = "answer"
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    if server.keep_requests:
                        server.requests.append({
                            "inputs": body["input"], "model": body["model"],
                            "input_type": body.get("input_type"),
                            "encoding_format": body.get("encoding_format"),
                            "auth": self.headers.get("Authorization"), "at": time.monotonic()})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    fault = server.fail_next.pop(0) if server.fail_next else None
                    if server.fail_after is not None and server.answered >= server.fail_after:
                        fault = fault or (server.fail_after_status, {})
                    server.answered += 1
                    hang = server.hang_next > 0
                    server.hang_next -= hang
                try:
                    self._answer(body, fault, hang)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, body, fault, hang):
                # `latency` is from request to answer, like a real server's: the work of
                # answering happens inside it, so 8 requests in flight overlap their work here
                # instead of queueing it behind the sleep on this process's one GIL.
                deadline = time.monotonic() + server.latency
                if hang:
                    time.sleep(server.hang_seconds)
                status, headers = fault or (server.status_always, {})
                texts = body["input"]
                wants_base64 = body.get("encoding_format") == "base64"
                if status is None and any(server.poison in t for t in texts):
                    status = 400
                if status is None and wants_base64 and server.base64 == "refuse":
                    status = 400
                if status is not None:
                    payload = {"error": {"message": f"fake {status}"}}
                elif server.not_embeddings:
                    payload, status = {"status": "ok", "hint": "not an embeddings API"}, 200
                else:
                    vectors = self._vectors(texts, wants_base64 and server.base64 == "answer")
                    limit = server.short_by_one_above
                    if limit is not None and len(texts) > limit:
                        vectors = vectors[:-1]
                    payload = {"object": "list", "model": body["model"], "data": [
                        {"object": "embedding", "index": i, "embedding": v}
                        for i, v in enumerate(vectors)]}
                    status = 200
                raw = json.dumps(payload).encode()
                time.sleep(max(0.0, deadline - time.monotonic()))
                self._send(status, raw, headers)

            def _vectors(self, texts: list[str], as_base64: bool) -> list:
                if server.fixed_block is not None:
                    block, encoded = server.fixed_block
                    if as_base64:
                        return [encoded[i % len(encoded)] for i in range(len(texts))]
                    return [block[i % len(block)].tolist() for i in range(len(texts))]
                matrix = server.embedder.embed(texts).astype("<f4")
                if as_base64:
                    return [base64.b64encode(row.tobytes()).decode("ascii") for row in matrix]
                return matrix.tolist()

            def _send(self, status, raw: bytes, headers=None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                try:
                    self.wfile.write(raw)
                except BrokenPipeError:
                    pass  # the client timed out first (the timeout test): nothing to answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
