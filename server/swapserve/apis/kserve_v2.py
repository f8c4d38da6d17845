"""KServe V2 / Open Inference Protocol messages (package ``inference``) by short name:
``kserve_v2.ModelInferRequest``, ``kserve_v2.ModelConfig``. Classes come from the private pool
(:mod:`swapserve.apis.pool`).

Classes resolve on first use (a TF Serving message pulls in TensorFlow's own files); their
types are the generated stubs ``kserve_v2.pyi`` and ``_typing/`` (``make protos``), so mypy and
editors see each message class and its fields, never ``Any``.
"""

from __future__ import annotations

import typing

from swapserve.apis import pool

PACKAGE = "inference."
SERVICE = "inference.GRPCInferenceService"


def __getattr__(name: str) -> typing.Any:
    if name.startswith("_"):  # module dunders (importlib, inspect) are not messages
        raise AttributeError(name)
    try:
        cls = pool.message_class(PACKAGE + name)
    except KeyError:
        raise AttributeError(f"no message {PACKAGE}{name}") from None
    globals()[name] = cls
    return cls
