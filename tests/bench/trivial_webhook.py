"""A trivial admission webhook: what any webhook costs the API server, to measure ours against.

Same stack as `stellar-peers serve` (uvicorn, uvloop, httptools, the TLS
context of `webhook.admission.server` with an ECDSA P-256 pair from
`certs.authority`). `POST /mutate` parses the review with orjson (to echo its
uid) and answers it allowed, with no patch or with the fixed JSONPatch of
`--patch` (a JSON file). It counts what the API server opened: TLS handshakes
(the SNI callback runs once per full or resumed handshake), distinct client
addresses that sent a review (one per TCP connection in a short run) and
reviews; `GET /stats` answers them as JSON, its own handshakes taken off.

    python -m tests.bench.trivial_webhook --port 9443 --cert tls.crt --key tls.key [--patch p.json]
"""

from __future__ import annotations

import argparse
import base64
import ssl
import sys
from collections.abc import Sequence
from typing import Any

import orjson
import uvloop
from starlette.types import Receive, Scope, Send

from tests.bench.baseline_app import serve_app
from webhook.admission.server import tls_context

HEADERS = [(b"content-type", b"application/json")]


class Counts:
    """What the API server opened and sent, as the server sees it."""

    def __init__(self) -> None:
        self.handshakes = 0
        self.stats_asked = 0
        self.reviews = 0
        self.clients: set[tuple[str, int]] = set()

    def on_handshake(self, _sock: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        self.handshakes += 1

    def as_json(self) -> bytes:
        return orjson.dumps(
            {
                "handshakes": self.handshakes - self.stats_asked,
                "connections": len(self.clients),
                "reviews": self.reviews,
            }
        )


def answer_parts(patch: list[dict[str, Any]] | None) -> tuple[bytes, bytes]:
    """The answer's bytes before and after the uid: the same for every review."""
    response: dict[str, Any] = {"uid": "UID", "allowed": True}
    if patch is not None:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(patch)).decode()
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
    before, after = orjson.dumps(review).split(b'"UID"')
    return before, after


def build(counts: Counts, patch: list[dict[str, Any]] | None) -> Any:
    before, after = answer_parts(patch)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/stats":
            counts.stats_asked += 1
            body = counts.as_json()
        else:
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            uid = orjson.loads(b"".join(chunks))["request"]["uid"]
            counts.reviews += 1
            client = scope.get("client")
            if client:
                counts.clients.add((client[0], client[1]))
            body = before + orjson.dumps(uid) + after
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": body})

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--patch", help="JSON file with the JSONPatch ops to answer")
    args = parser.parse_args(argv)
    patch = None
    if args.patch:
        with open(args.patch, "rb") as handle:
            patch = orjson.loads(handle.read())
    counts = Counts()
    context = tls_context(cert_file=args.cert, key_file=args.key)
    context.sni_callback = counts.on_handshake
    uvloop.run(serve_app(build(counts, patch), host=args.host, port=args.port, context=context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
