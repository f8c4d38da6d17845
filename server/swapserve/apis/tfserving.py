"""TensorFlow Serving's API messages by short name: ``tfserving.PredictRequest``.

Names resolve in ``tensorflow.serving``, then ``tensorflow`` (``TensorProto``, ``Example``),
then ``google.protobuf`` (``Int64Value``). Every class comes from the private pool
(:mod:`swapserve.apis.pool`), so fields accept only messages built from this module.


Classes resolve on first use (a TF Serving message pulls in TensorFlow's own files); their
types are the generated stubs ``tfserving.pyi`` and ``_typing/`` (``make protos``), so mypy and
editors see each message class and its fields, never ``Any``.
"""

from __future__ import annotations

import typing

from swapserve.apis import pool

PACKAGES = ("tensorflow.serving.", "tensorflow.", "google.protobuf.")
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"


def __getattr__(name: str) -> typing.Any:
    if name.startswith("_"):  # module dunders (importlib, inspect) are not messages
        raise AttributeError(name)
    for package in PACKAGES:
        try:
            cls = pool.message_class(package + name, imported=package != PACKAGES[0])
        except KeyError:
            continue
        globals()[name] = cls
        return cls
    raise AttributeError(f"no message {name!r} in {', '.join(PACKAGES)}")
