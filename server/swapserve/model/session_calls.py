"""How a loaded version's graph is called: a C++ callable per signature, in TensorFlow's inter-op
pool or in the calling thread -- and, for ``--run-thread auto``, timing both to pick one.

The caller thread saves a thread hand-off and wake-up per call but runs independent ops one
after another: small graphs gain, wide graphs at large batches lose (the run-thread tables of
``make bench``), hence timing at the batch size the model runs. Timing back to back understates
the hand-off's cost on an idle server, so the caller thread wins ties within 10%.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2

from swapserve.model.signature import DEFAULT_SIGNATURE, SignatureSpec

log = logging.getLogger(__name__)

CALLER_THREAD = tf.compat.v1.RunOptions(inter_op_thread_pool=-1)
"""Run options that keep a call on the calling thread (no inter-op pool hand-off)."""
# Blocks of calls per place (the first call of a block is not timed: it pays for switching
# places), timed calls per block, and a soft time budget.
_PICK_BLOCKS, _PICK_BLOCK_CALLS, _PICK_SECONDS = 6, 5, 0.3
# Op type prefixes that change state that outlives a call (variables, tables, queues): a graph
# with them is not run again just for timing (see writes_state).
_STATE_WRITING_OPS = (
    "Assign", "ResourceApply", "Apply", "Scatter", "ResourceScatter", "LookupTableInsert",
    "LookupTableRemove", "LookupTableImport", "InitializeTable", "QueueEnqueue", "QueueDequeue",
)  # fmt: skip


def make_callable(
    session: tf.compat.v1.Session,
    feeds: list[str],
    fetches: list[str],
    run_options: Any,
) -> Callable[..., Any]:
    """A per-signature C++ callable (``Session::MakeCallable``, what TF Serving runs).

    ``Session.make_callable`` with a feed list falls back to a full ``Session.run`` per call
    (fetch handlers, feed dict, ~0.1 ms of Python); the C++ callable is ~10x cheaper. It is a
    private TensorFlow API, so a TensorFlow without it gets the public, slower path.
    """
    make = getattr(session, "_make_callable_from_options", None)
    if make is None:
        fn = session.make_callable(fetches, feed_list=feeds, accept_options=run_options is not None)
        return functools.partial(fn, options=run_options) if run_options is not None else fn
    options = config_pb2.CallableOptions(feed=feeds, fetch=fetches)
    if run_options is not None:
        options.run_options.CopyFrom(run_options)
    return make(options)  # type: ignore[no-any-return]


def feedable(array: np.ndarray) -> np.ndarray:
    """String inputs arrive as object arrays of bytes; numpy bytes arrays are fed the same way."""
    if array.dtype.kind == "S":
        return array.astype(object)
    return array


def zero_inputs(sig: SignatureSpec, rows: int = 1) -> dict[str, np.ndarray] | None:
    """Zeros for every input: ``rows`` along a variable first (batch) dimension, 1 along any
    other variable one; None when an input's shape or dtype does not allow it."""
    if not sig.inputs:
        return None  # nothing to vary, and such signatures are often stateful (counters)
    feeds = {}
    for name, spec in sig.inputs.items():
        if spec.shape is None or spec.dtype == tf.string.as_datatype_enum:
            return None
        try:
            dtype = tf.as_dtype(spec.dtype).as_numpy_dtype
        except TypeError:
            return None
        shape = [(rows if i == 0 else 1) if d < 0 else d for i, d in enumerate(spec.shape)]
        feeds[name] = np.zeros(shape, dtype=dtype)
    return feeds


def time_run_threads(
    version: int,
    session: tf.compat.v1.Session,
    graph: tf.Graph,
    signatures: Mapping[str, SignatureSpec],
    rows: int,
) -> tuple[float, float] | None:
    """Median seconds per call of one signature on zeros of ``rows`` rows, in the inter-op pool
    and in the calling thread, timed in alternating blocks of calls (single alternating calls
    would time the pool with its threads asleep). None when no signature may be timed: graphs
    that write state are not run for timing, nor signatures that cannot take zeros; an error
    while timing also gives None (timing never fails a load)."""
    ordered: Sequence[SignatureSpec] = sorted(
        signatures.values(), key=lambda s: s.name != DEFAULT_SIGNATURE
    )
    picked = next(
        ((sig, feeds) for sig in ordered if (feeds := zero_inputs(sig, rows)) is not None), None
    )
    if picked is None or writes_state(graph, picked[0]):
        return None
    sig, feeds = picked
    args = [feedable(feeds[n]) for n in sig.inputs]
    names = ([sig.inputs[i].tensor_name for i in sig.inputs],
             [sig.outputs[o].tensor_name for o in sig.outputs])  # fmt: skip
    fns = [make_callable(session, *names, None), make_callable(session, *names, CALLER_THREAD)]
    seconds: list[list[float]] = [[], []]
    deadline = time.monotonic() + _PICK_SECONDS
    try:
        for _ in range(_PICK_BLOCKS):
            for fn, times in zip(fns, seconds, strict=True):
                fn(*args)
                for _ in range(_PICK_BLOCK_CALLS):
                    t0 = time.perf_counter()
                    fn(*args)
                    times.append(time.perf_counter() - t0)
            if time.monotonic() > deadline:
                break
    except Exception as err:  # zeros are not valid data for every model
        log.debug("version %d: run thread not timed: %s", version, err)
        return None
    pool, caller = (float(np.median(t)) for t in seconds)
    return pool, caller


def writes_state(graph: tf.Graph, sig: SignatureSpec) -> bool:
    """True if running ``sig`` could change the model's state (assignments, table inserts,
    queues): such a graph is not run again just to time it. Follows the functions a TF2
    export calls, whose ops are not graph nodes."""
    graph_def = graph.as_graph_def()
    by_name = {n.name: n for n in graph_def.node}
    functions = {f.signature.name: f for f in graph_def.library.function}
    # Graph nodes the outputs depend on (data and control inputs), then the functions they call.
    pending = [sig.outputs[o].tensor_name.split(":")[0] for o in sig.outputs]
    seen: set[str] = set()
    nodes = []
    while pending:
        name = pending.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        nodes.append(by_name[name])
        pending.extend(i.lstrip("^").split(":")[0] for i in by_name[name].input)
    while nodes:
        node = nodes.pop()
        if node.op.startswith(_STATE_WRITING_OPS):
            return True
        for attr in node.attr.values():
            for fn in (attr.func.name, *(f.name for f in attr.list.func)):
                if fn in functions and fn not in seen:
                    seen.add(fn)
                    nodes.extend(functions[fn].node_def)
    return False
