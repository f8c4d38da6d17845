"""KServe V2 / Open Inference Protocol messages (package ``inference``) by short name:
``kserve_v2.ModelInferRequest``, ``kserve_v2.ModelConfig``. Classes come from the private pool
(:mod:`swapserve.apis.pool`)."""

from __future__ import annotations

from typing import Any

from swapserve.apis import pool

PACKAGE = "inference."
SERVICE = "inference.GRPCInferenceService"


def __getattr__(name: str) -> Any:
    if name.startswith("_"):  # module dunders (importlib, inspect) are not messages
        raise AttributeError(name)
    try:
        cls = pool.message_class(PACKAGE + name)
    except KeyError:
        raise AttributeError(f"no message {PACKAGE}{name}") from None
    globals()[name] = cls
    return cls
