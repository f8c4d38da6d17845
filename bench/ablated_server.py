"""swapserve with one layer of its Predict path taken out, to measure what each layer costs.

The floor scenario (``bench/eager.py``) runs these beside swapserve and the minimal server in
one alternating load, so the differences between neighbours are what each layer adds per
request:

    bookkeeping  -- no metrics, statistics, access or request log for a call
                    (``CallRecorder.observe`` and ``Metrics.ran`` do nothing)
    call-record  -- also no call record and no error mapping: the swapserve.v1 Predict handler
                    is the servicer's own method, so only the data plane remains (the shutdown
                    gate, model and version resolution, in-flight counting, validation)

Never a way to serve: a request that fails here is not answered with swapserve's statuses.

    python bench/ablated_server.py LAYER [swapserve flags...]
"""

from __future__ import annotations

import sys
from typing import Any

LAYERS = ("bookkeeping", "call-record")


def ablate(layer: str) -> None:
    """Replaces ``layer`` (and the ones it contains) in the running interpreter."""
    from swapserve.observability.metrics import Metrics
    from swapserve.observability.recorder import CallRecorder
    from swapserve.transport.grpc.swapserve_v1 import PredictionServicer

    def nothing(*_: Any, **__: Any) -> None:
        return None

    CallRecorder.observe = nothing  # type: ignore[method-assign]
    Metrics.ran = nothing  # type: ignore[method-assign]
    if layer == "call-record":
        PredictionServicer.Predict = PredictionServicer.Predict.__wrapped__  # type: ignore[attr-defined,method-assign]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in LAYERS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(LAYERS)}}} [swapserve flags...]")
    ablate(sys.argv[1])
    from swapserve.cli import main as serve

    serve(sys.argv[2:])


if __name__ == "__main__":
    main()
