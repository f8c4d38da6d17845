"""The ``/metrics`` HTTP endpoint on ``--metrics-port``: a small WSGI server on a thread that
serves one registry (and, for Triton's names, text written beside it) and nothing else."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, make_wsgi_app


def serve_registry(
    registry: CollectorRegistry, host: str, port: int, extra: Callable[[], bytes] | None = None
) -> tuple[WSGIServer, threading.Thread, int]:
    """Serves ``registry`` (then ``extra()``, in the text format) at ``http://host:port/metrics``
    (404 on any other path) on a thread; returns the server, its thread, the bound port."""
    metrics = make_wsgi_app(registry)

    def only_metrics(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").rstrip("/") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only /metrics is served here\n"]
        if extra is not None:
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [generate_latest(registry) + extra()]
        return metrics(environ, start_response)

    server = make_server(
        host.strip("[]"), port, only_metrics, _MetricsServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server, thread, int(server.server_port)


class _MetricsServer(ThreadingMixIn, WSGIServer):
    """One thread per scrape; IPv6 when the host is an IPv6 address."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


class _QuietHandler(WSGIRequestHandler):
    """No line on stderr per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
