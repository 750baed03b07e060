"""The baseline server: a bare Starlette app on uvicorn (uvloop + httptools) with the same TLS.

`POST /mutate` reads the request body, parses it with orjson (what any
webhook must do to learn the review's uid) and answers a fixed AdmissionReview
(the bytes our service answered for the same request, JSONPatch included), so
the difference to our service is the work our handler does beyond that. Same
TLS context, socket backlog and uvicorn options as `webhook.admission.server`.

    python -m tests.bench.baseline_app --port 9443 --cert tls.crt --key tls.key --answer a.json
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
from collections.abc import Sequence

import orjson
import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from webhook.admission.server import tls_context


def build(answer: bytes) -> Starlette:
    async def mutate(request: Request) -> Response:
        orjson.loads(await request.body())
        return Response(answer, media_type="application/json")

    return Starlette(routes=[Route("/mutate", mutate, methods=["POST"])])


async def serve(*, host: str, port: int, cert: str, key: str, answer: bytes) -> None:
    await serve_app(
        build(answer), host=host, port=port, context=tls_context(cert_file=cert, key_file=key)
    )


async def serve_app(app: ASGIApp, *, host: str, port: int, context: ssl.SSLContext) -> None:
    """`app` on uvicorn with uvloop and httptools over `context`, as our service runs."""
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        ssl_context_factory=lambda _config, _default: context,
    )
    server = uvicorn.Server(config)
    sock = socket.create_server((host, port), backlog=1024)
    await server.serve(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--answer", required=True, help="file with the fixed answer")
    args = parser.parse_args(argv)
    with open(args.answer, "rb") as handle:
        answer = handle.read()
    uvloop.run(serve(host=args.host, port=args.port, cert=args.cert, key=args.key, answer=answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
