"""The process's file descriptors: raise the soft limit, and share what is left between the
ports so that no port can starve the rest.

An fd table full of idle HTTP sockets stops *everything* that opens a file: gRPC's listener
cannot accept, the watcher cannot list the export root, a log file cannot rotate. So each port
gets a connection cap, and a reserve stays free for everything else: with the caps at their
defaults, connections alone can never fill the table.
"""

from __future__ import annotations

import logging
import os
import resource
from dataclasses import dataclass

log = logging.getLogger(__name__)

MIN_RESERVE = 128
"""Descriptors always left for files, the watcher, TensorFlow, logs and storage clients."""

MAX_BACKLOG = 511
"""The longest HTTP accept queue (nginx's default on Linux)."""

_CEILING = 1 << 20
"""Where an unlimited hard limit is taken to end (the kernel's default nr_open)."""


@dataclass(frozen=True)
class FdBudget:
    """Connection caps per port, from the descriptor limit."""

    limit: int
    """The soft limit after raising it."""
    in_use: int
    """Descriptors open when the budget was made (TensorFlow, logs, listeners)."""
    reserve: int
    """Kept free for everything that is not a client connection."""
    http: int
    """Most HTTP connections at once."""
    http_backlog: int
    """The HTTP listener's accept queue. The event loop accepts what is queued in one burst and
    closes what is over the cap a moment later, so the queue counts against the budget too."""
    grpc: int
    """Most gRPC connections at once."""


def raise_soft_limit() -> int:
    """Raises the soft RLIMIT_NOFILE to the hard limit (as nginx's worker_rlimit_nofile and Go's
    runtime do) and returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            log.debug("raised the open-file limit from %d to %d", soft, target)
            soft = target
        except (ValueError, OSError) as err:
            log.debug("could not raise the open-file limit from %d: %s", soft, err)
    return _CEILING if soft == resource.RLIM_INFINITY else soft


def open_count() -> int:
    """Descriptors open in this process now (0 where /proc is absent)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def budget(limit: int, in_use: int, http: int | None, grpc: int | None) -> FdBudget:
    """Caps for the two ports: a reserve of ``max(MIN_RESERVE, limit / 8)`` plus what is open
    now stays free; what remains is split evenly between the ports whose cap is not given (a
    given cap is taken as it is). The HTTP share holds its connections and its accept queue
    (a third of it, at most 511, nginx's default).

    Args:
        limit: the soft descriptor limit.
        in_use: descriptors open now.
        http: the HTTP cap given (``--max-http-connections``), or None for the default.
        grpc: the gRPC cap given (``--max-grpc-connections``), or None for the default.
    """
    reserve = max(MIN_RESERVE, limit // 8)
    free = max(2, limit - in_use - reserve)
    taken = (http or 0) + (grpc or 0)
    open_ports = (http is None) + (grpc is None)
    share = max(3, (free - taken) // open_ports) if open_ports else 0
    backlog = min(MAX_BACKLOG, max(1, (http if http is not None else share) // 3))
    return FdBudget(
        limit=limit,
        in_use=in_use,
        reserve=reserve,
        http=http if http is not None else share - backlog,
        http_backlog=backlog,
        grpc=grpc if grpc is not None else share,
    )
