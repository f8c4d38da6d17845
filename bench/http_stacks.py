"""The HTTP stack choice, measured: one TF Serving-style predict handler on aiohttp and on
uvicorn + Starlette, with the stdlib ``json`` module or ``orjson``.

Both servers do what swapserve's REST port does per request -- parse the JSON body, build a
float32 array, run the "model" (0.5 x + 2) on a thread pool so the event loop never blocks,
encode the answer, set a version header -- and nothing else, so the difference between them is
the stack's own cost. ``bench/suite.py --only http_stack`` runs each in ``.venv-httpstack``
(``make bench-setup``) and drives it with the same closed-loop load generator as every other row.

    python bench/http_stacks.py --stack aiohttp --json json --port 8501
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

STACKS = ("aiohttp", "starlette")
CODECS = ("json", "orjson")
PATH = "/v1/models/{model}:predict"

log = logging.getLogger("http_stacks")


def _codec(name: str) -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    if name == "orjson":
        import orjson

        return orjson.loads, orjson.dumps
    return json.loads, lambda v: json.dumps(v, separators=(",", ":")).encode()


def _work(loads: Callable[[bytes], Any], dumps: Callable[[Any], bytes], body: bytes) -> bytes:
    """The request's whole CPU work, off the event loop as in swapserve."""
    inputs = loads(body)["inputs"]
    if isinstance(inputs, dict):  # named inputs: the one there is
        (inputs,) = inputs.values()
    x = np.asarray(inputs, dtype=np.float32)
    return dumps({"outputs": (0.5 * x + 2).tolist()})


def run_aiohttp(
    port: int, work: Callable[[bytes], bytes], pool: ThreadPoolExecutor, uvloop: bool
) -> None:
    from aiohttp import web

    loop = asyncio.new_event_loop()
    if uvloop:
        import uvloop as uv

        loop = uv.new_event_loop()

    async def predict(request: web.Request) -> web.Response:
        body = await request.read()
        out = await asyncio.get_running_loop().run_in_executor(pool, work, body)
        return web.Response(
            body=out, content_type="application/json", headers={"X-Model-Version": "1"}
        )

    app = web.Application()
    app.router.add_post("/v1/models/{tail}", predict)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=loop)


def run_starlette(
    port: int, work: Callable[[bytes], bytes], pool: ThreadPoolExecutor, uvloop: bool
) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def predict(request: Request) -> Response:
        body = await request.body()
        out = await asyncio.get_running_loop().run_in_executor(pool, work, body)
        return Response(out, media_type="application/json", headers={"X-Model-Version": "1"})

    app = Starlette(routes=[Route("/v1/models/{tail:path}", predict, methods=["POST"])])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop" if uvloop else "asyncio",
        http="httptools",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", choices=STACKS, required=True)
    parser.add_argument("--json", choices=CODECS, default="json")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uvloop", action="store_true", help="run the event loop on uvloop")
    args = parser.parse_args()
    loads, dumps = _codec(args.json)
    pool = ThreadPoolExecutor(16)

    def work(body: bytes) -> bytes:
        return _work(loads, dumps, body)

    (run_aiohttp if args.stack == "aiohttp" else run_starlette)(args.port, work, pool, args.uvloop)


if __name__ == "__main__":
    main()
