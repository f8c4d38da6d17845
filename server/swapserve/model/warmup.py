"""Warming a loaded version up before it serves, so the first real request does not pay for
TensorFlow's lazy initialisation: TF Serving's warm-up records if the export has them
(``assets.extra/tf_serving_warmup_requests``), else one zero batch per signature that allows it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

from swapserve.errors import InvalidArgument, LoadError, ModelRunError, SwapserveError
from swapserve.model.session_calls import zero_inputs

if TYPE_CHECKING:
    from swapserve.model.loaded_version import LoadedVersion

log = logging.getLogger(__name__)

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
_MAX_WARMUP_RECORDS = 1000  # TF Serving's limit


def warm_up(version: LoadedVersion) -> None:
    """Runs the warm-up records, or zeros through every signature that takes them.

    Raises:
        LoadError: a record failed, or a zero run failed for another reason than bad input.
    """
    records_path = version.path / WARMUP_FILE
    if records_path.exists():
        count = _run_records(version, records_path)
        log.info("version %d: replayed %d warm-up records", version.version, count)
        return
    for sig in version.signatures.values():
        feeds = zero_inputs(sig)
        if feeds is None:
            continue
        try:
            version.run(sig.name, feeds)
        except (InvalidArgument, ModelRunError) as err:
            if err.status != "INVALID_ARGUMENT":
                raise LoadError(f"warm-up of signature '{sig.name}' failed: {err}") from err
            # Zeros are not valid data for every model; that alone does not make it unservable.
            log.info("version %d: zero warm-up of '%s' skipped: %s", version.version, sig.name, err)


def _run_records(version: LoadedVersion, path: Path) -> int:
    from swapserve.apis import tfserving  # noqa: PLC0415 (rarely used)

    count = 0
    for raw in tf.compat.v1.io.tf_record_iterator(str(path)):
        if count >= _MAX_WARMUP_RECORDS:
            break
        record = tfserving.PredictionLog.FromString(raw)
        kind = record.WhichOneof("log_type")
        count += 1
        if kind != "predict_log":
            log.warning(
                "version %d: warm-up record %d is a %s; skipped", version.version, count, kind
            )
            continue
        request = record.predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        try:
            version.run(request.model_spec.signature_name, inputs, list(request.output_filter))
        except SwapserveError as err:
            raise LoadError(f"warm-up record {count} failed: {err}") from err
    return count
