"""Which servicer model suits this workload: a sync thread pool or ``grpc.aio``?

Each variant is a minimal server process whose one method runs the seed model's signature
(``LoadedVersion.run``) and echoes the request bytes back, so only the servicer model differs:
  sync       -- ``grpc.server`` with a thread pool (what swapserve uses);
  aio-inline -- ``grpc.aio`` running the model call on the event loop (blocks it);
  aio-thread -- ``grpc.aio`` handing the call to a thread (``asyncio.to_thread``);
  aio-migration -- ``grpc.aio`` running a plain (sync) handler on its ``migration_thread_pool``.

    python bench/servicer_models.py serve MODE EXPORT_DIR   # prints its port, serves until killed
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np

MODES = ("sync", "aio-inline", "aio-thread", "aio-migration")
X = {"number": np.array([[100.0]], np.float32)}


def _load(path: Path):  # type: ignore[no-untyped-def]
    from swapserve.config.model_settings import SessionSettings
    from swapserve.model.loaded_version import LoadedVersion

    return LoadedVersion.load(1, path, SessionSettings())


def serve_sync(path: Path) -> None:
    loaded = _load(path)

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        loaded.run("", X)
        return request

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(16))
    server.add_generic_rpc_handlers((handler,))
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    server.start()
    server.wait_for_termination()


async def serve_aio(path: Path, mode: str) -> None:
    loaded = _load(path)
    inline = mode == "aio-inline"

    def sync_echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        loaded.run("", X)
        return request

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if inline:
            loaded.run("", X)
        else:
            await asyncio.to_thread(loaded.run, "", X)
        return request

    method = sync_echo if mode == "aio-migration" else echo
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(method)}
    )
    server = grpc.aio.server(migration_thread_pool=futures.ThreadPoolExecutor(16))
    server.add_generic_rpc_handlers((handler,))
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    await server.start()
    await server.wait_for_termination()


def measure(export_dir: Path, seconds: float, warmup: float) -> list[dict[str, object]]:
    """Runs each variant in its own process and loads it with 1 and 16 clients."""
    import subprocess

    import loadgen

    payload = loadgen.build_request("echo", "seed", X)
    rows = []
    for mode in MODES:
        proc = subprocess.Popen(
            [sys.executable, __file__, "serve", mode, str(export_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            time.sleep(0.5)
            for clients in (1, 16):
                r = loadgen.run(loadgen.Load(f"127.0.0.1:{port}", "echo", payload, clients=clients,
                                             processes=min(2, clients), duration=seconds,
                                             warmup=warmup)).summary()  # fmt: skip
                rows.append({"servicer": mode, "clients": clients, **r})
        finally:
            proc.kill()
            proc.wait()
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve" and sys.argv[2] in MODES:
        mode, export = sys.argv[2], Path(sys.argv[3])
        if mode == "sync":
            serve_sync(export)
        else:
            asyncio.run(serve_aio(export, mode))
    else:
        sys.exit(f"usage: {sys.argv[0]} serve {{{','.join(MODES)}}} EXPORT_DIR")
