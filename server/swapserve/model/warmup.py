"""Warming a loaded version up before it serves, so the first real request does not pay for
TensorFlow's lazy initialisation: TF Serving's warm-up records if the export has them
(``assets.extra/tf_serving_warmup_requests``), else one zero batch per signature that allows it.

The records are TFRecords of TF Serving's ``PredictionLog``; decoding one is protocol knowledge,
so the core is handed a ``RecordDecoder`` (``swapserve.codecs.tfserving.warmup_request``) and
never imports the API's messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

from swapserve.errors import InvalidArgument, LoadError, ModelRunError, SwapserveError
from swapserve.model.outcomes import WarmupRequest
from swapserve.model.session_calls import zero_inputs

if TYPE_CHECKING:
    from swapserve.model.loaded_version import LoadedVersion

log = logging.getLogger(__name__)

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
_MAX_WARMUP_RECORDS = 1000  # TF Serving's limit

RecordDecoder = Callable[[bytes], WarmupRequest | str]
"""One serialized warm-up record -> its request, or the kind of record it is when it holds no
predict request (skipped)."""


def warm_up(version: LoadedVersion, decode: RecordDecoder | None) -> list[WarmupRequest]:
    """Runs the warm-up records, or zeros through every signature that takes them; returns
    the requests that ran (the gates replay them).

    Raises:
        LoadError: a record failed, the export has records but no decoder was given, or a zero
            run failed for another reason than bad input.
    """
    records_path = version.path / WARMUP_FILE
    if records_path.exists():
        if decode is None:
            raise LoadError(f"{WARMUP_FILE} is present but this loader reads no warm-up records")
        ran = _run_records(version, records_path, decode)
        log.info("version %d: replayed %d warm-up records", version.version, len(ran))
        return ran
    ran = []
    for sig in version.signatures.values():
        feeds = zero_inputs(sig)
        if feeds is None:
            continue
        try:
            version.run(sig.name, feeds)
            ran.append(WarmupRequest(sig.name, feeds))
        except (InvalidArgument, ModelRunError) as err:
            if err.status != "INVALID_ARGUMENT":
                raise LoadError(f"warm-up of signature '{sig.name}' failed: {err}") from err
            # Zeros are not valid data for every model; that alone does not make it unservable.
            log.info("version %d: zero warm-up of '%s' skipped: %s", version.version, sig.name, err)
    return ran


def _run_records(version: LoadedVersion, path: Path, decode: RecordDecoder) -> list[WarmupRequest]:
    count = 0
    ran = []
    for raw in tf.compat.v1.io.tf_record_iterator(str(path)):
        if count >= _MAX_WARMUP_RECORDS:
            break
        count += 1
        try:
            request = decode(raw)
            if isinstance(request, str):
                log.warning(
                    "version %d: warm-up record %d is a %s; skipped",
                    version.version,
                    count,
                    request,
                )
                continue
            version.run(request.signature, request.inputs, list(request.output_filter))
            ran.append(request)
        except SwapserveError as err:
            raise LoadError(f"warm-up record {count} failed: {err}") from err
    return ran
