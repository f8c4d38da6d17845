"""TensorFlow Serving's API messages by short name: ``tfserving.PredictRequest``.

Names resolve in ``tensorflow.serving``, then ``tensorflow`` (``TensorProto``, ``Example``),
then ``google.protobuf`` (``Int64Value``). Every class comes from the private pool
(:mod:`swapserve.apis.pool`), so fields accept only messages built from this module.
"""

from __future__ import annotations

from typing import Any

from swapserve.apis import pool

PACKAGES = ("tensorflow.serving.", "tensorflow.", "google.protobuf.")
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"


def __getattr__(name: str) -> Any:
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
