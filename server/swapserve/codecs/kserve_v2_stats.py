"""KServe V2 / Triton ``ModelStatistics`` and ``ModelConfig`` as the protocol's JSON objects
(HTTP answers them as they are; gRPC parses the same objects into its messages), so
``tritonclient``'s ``get_inference_statistics`` and ``get_model_config`` and perf_analyzer-style
tools read swapserve's numbers.

Durations follow Triton's definitions where swapserve measures them: ``success`` is the whole call
(receipt to answer), ``queue`` the wait for a batch, ``compute_infer`` the model run. swapserve
does not time input and output copies apart from the call, so ``compute_input`` and
``compute_output`` carry the call count and 0 ns.
"""

from __future__ import annotations

import json
from typing import Any

from swapserve.codecs.kserve_v2 import datatype_of_spec, shape_of_spec
from swapserve.config.model_settings import ALL_VERSIONS
from swapserve.dataplane.types import Duration, ModelConfigInfo, VersionStatistics

PLATFORM = "tensorflow_savedmodel"


def _duration(d: Duration) -> dict[str, int]:
    return {"count": d.count, "ns": d.ns}


def statistics(entries: list[VersionStatistics]) -> dict[str, Any]:
    """A ``ModelStatisticsResponse`` object."""
    out = []
    for entry in entries:
        s = entry.stats
        untimed = Duration(s.success.count, 0)
        out.append(
            {
                "name": entry.model,
                "version": str(entry.version),
                "last_inference": s.last_inference_ms,
                "inference_count": s.inference_count,
                "execution_count": s.execution_count,
                "inference_stats": {
                    "success": _duration(s.success),
                    "fail": _duration(s.fail),
                    "queue": _duration(s.queue),
                    "compute_input": _duration(untimed),
                    "compute_infer": _duration(s.compute),
                    "compute_output": _duration(untimed),
                },
                "batch_stats": [],
            }
        )
    return {"model_stats": out}


def model_config(info: ModelConfigInfo) -> dict[str, Any]:
    """A ``ModelConfig`` object: the serving signature's tensors (without the batch dimension
    when the model batches, as Triton writes them), batching and version policy."""
    batching = info.batching
    batches = batching.enabled

    def tensor(spec: Any) -> dict[str, Any]:
        dims = shape_of_spec(spec)
        if batches and dims and dims[0] == -1 and spec.shape is not None:
            dims = dims[1:]
        datatype = datatype_of_spec(spec)
        return {
            "name": spec.name,
            "data_type": "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}",
            "dims": dims,
        }

    policy = info.versions
    version_policy: dict[str, Any] = (
        {"specific": {"versions": list(policy.specific)}}
        if policy.specific
        else {"all": {}}
        if policy.latest >= ALL_VERSIONS
        else {"latest": {"num_versions": policy.latest}}
    )
    config: dict[str, Any] = {
        "name": info.name,
        "platform": PLATFORM,
        "backend": "tensorflow",
        "version_policy": version_policy,
        "max_batch_size": batching.max_batch_size if batches else 0,
        "input": [tensor(t) for t in info.signature.inputs.values()],
        "output": [tensor(t) for t in info.signature.outputs.values()],
    }
    if batches:
        config["dynamic_batching"] = {
            "preferred_batch_size": list(batching.preferred_batch_sizes),
            "max_queue_delay_microseconds": batching.batch_timeout_micros,
        }
    if info.declared.as_written:  # what config.pbtxt says, as written
        config.update(json.loads(info.declared.as_written))
    return config
