"""One loaded SavedModel version: its own graph and session, cached callables, warm-up, close.

Every export is loaded the way TF Serving loads it: the ``serve`` MetaGraph into a private
``tf.Graph`` and ``tf.compat.v1.Session``. That serves TF1 estimator exports (signature_def over a
graph) and TF2/Keras exports alike, and per request it costs one ``Session`` callable (built once
per signature and output set, like TF Serving's Session::Run) with no graph building and no
signature parsing. The graph is finalized after loading so nothing can add to it later.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2

from swapserve.errors import InvalidArgument, LoadError, ModelRunError, SwapserveError
from swapserve.model.signature import (
    DEFAULT_SIGNATURE,
    SignatureSpec,
    TensorSpec,
    check_example_signature,
    unknown_signature,
)
from swapserve.settings import SessionSettings

log = logging.getLogger(__name__)

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
_MAX_WARMUP_RECORDS = 1000  # TF Serving's limit
_MAX_CACHED_CALLABLES = 64  # per version; beyond it, output subsets are cut from a full run
_REF_DTYPE_OFFSET = 100  # DT_FLOAT_REF = 101 etc.: a variable's value, served as its base type
_MAX_ERROR_CHARS = 2000
_CALLER_THREAD = tf.compat.v1.RunOptions(inter_op_thread_pool=-1)
# auto run thread: blocks of calls per place (the first call of a block is not timed: it pays
# for switching places), timed calls per block, and a soft time budget.
_PICK_BLOCKS, _PICK_BLOCK_CALLS, _PICK_SECONDS = 6, 5, 0.3
# Op type prefixes that change state that outlives a call (variables, tables, queues): a graph
# with them is not run again just for timing (see _writes_state).
_STATE_WRITING_OPS = (
    "Assign", "ResourceApply", "Apply", "Scatter", "ResourceScatter", "LookupTableInsert",
    "LookupTableRemove", "LookupTableImport", "InitializeTable", "QueueEnqueue", "QueueDequeue",
)  # fmt: skip


class _LiveCounter:
    """Open sessions in this process: lets tests prove that swapped-out versions are freed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self, delta: int) -> None:
        with self._lock:
            self.count += delta


_live = _LiveCounter()


def live_versions() -> int:
    """How many versions are loaded and not yet closed, in this process."""
    return _live.count


class LoadedVersion:
    """A loaded, warmed version. ``run`` is thread-safe; ``close`` must follow the last run."""

    def __init__(
        self,
        version: int,
        path: Path,
        graph: tf.Graph,
        session: tf.compat.v1.Session,
        signatures: Mapping[str, SignatureSpec],
        *,
        signature_defs: Mapping[str, Any] | None = None,
        run_thread: str = "pool",
    ) -> None:
        self.version = version
        self.path = path
        self.signatures = dict(signatures)
        self.signature_defs: dict[str, Any] = dict(signature_defs or {})
        """The MetaGraph's SignatureDef protos, as TF Serving's GetModelMetadata returns them."""
        self.load_seconds = 0.0
        self._graph = graph
        self._session: tf.compat.v1.Session | None = session
        self._callables: dict[tuple[str, tuple[str, ...]], Callable[..., Any]] = {}
        self._callables_lock = threading.Lock()
        self.run_thread = run_thread
        """``caller`` or ``pool``: where this version's graph runs (see SessionSettings)."""
        self.run_thread_timing: tuple[float, float] | None = None
        """With ``auto``: the median seconds per call measured (pool, caller)."""
        self._run_options = _CALLER_THREAD if run_thread == "caller" else None

    @classmethod
    def load(
        cls,
        version: int,
        path: Path,
        settings: SessionSettings,
        warm_up: bool = True,
        timing_rows: int = 1,
    ) -> LoadedVersion:
        """Loads, validates and warms up one export directory. With ``run_thread`` ``auto``,
        the run thread is timed on ``timing_rows`` rows (the batch size the model will run).

        Raises:
            LoadError: anything that makes the export unservable, with a one-paragraph reason.
        """
        start = time.monotonic()
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=_session_config(settings))
        _live.add(1)
        try:
            with graph.as_default():
                meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
            signatures = _read_signatures(meta_graph, graph)
            if not signatures:
                raise LoadError("the SavedModel has no usable signature")
            loaded = cls(
                version,
                path,
                graph,
                session,
                signatures,
                signature_defs=meta_graph.signature_def,
                run_thread="caller" if settings.run_thread == "caller" else "pool",
            )
            for sig in signatures.values():  # every signature must be callable before serving
                loaded._callable(sig, tuple(sig.outputs))
            graph.finalize()
            if warm_up:
                loaded._warm_up()
            if settings.run_thread == "auto":
                loaded._pick_run_thread(timing_rows)
        except Exception as err:
            session.close()
            _live.add(-1)
            if isinstance(err, LoadError):
                raise
            raise LoadError(_short_error(err)) from err
        loaded.load_seconds = time.monotonic() - start
        return loaded

    def run(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
    ) -> tuple[str, dict[str, np.ndarray]]:
        """Validates and runs one request.

        Returns:
            The signature name that ran and its outputs by name.

        Raises:
            SwapserveError: a precise status for a bad request or a failed run.
        """
        sig, wanted = self.prepare(signature_name, inputs, output_filter)
        return sig.name, self.execute(sig, wanted, inputs)

    def prepare(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
    ) -> tuple[SignatureSpec, tuple[str, ...]]:
        """Validates a request; returns its signature and the outputs to fetch."""
        name = signature_name or DEFAULT_SIGNATURE
        sig = self.signatures.get(name)
        if sig is None:
            raise unknown_signature(name, self.signatures)
        sig.validate(inputs)
        return sig, sig.select_outputs(output_filter)

    def execute(
        self, sig: SignatureSpec, wanted: tuple[str, ...], inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Runs validated inputs (see ``prepare``); the batcher calls this with whole batches."""
        fn = self._callables.get((sig.name, wanted))
        fetched = wanted
        if fn is None:
            if len(self._callables) < _MAX_CACHED_CALLABLES:
                fn = self._callable(sig, wanted)
            else:
                fetched = tuple(sig.outputs)
                fn = self._callables[(sig.name, fetched)]
        feeds = [_feedable(inputs[n]) for n in sig.inputs]
        try:
            values = fn(*feeds)
        except tf.errors.OpError as err:
            raise ModelRunError(_run_error_message(err.message), err.error_code) from None
        out = dict(zip(fetched, values, strict=True))
        return {n: np.asarray(out[n]) for n in wanted}

    def run_examples(
        self, signature_name: str, serialized: np.ndarray, method: str
    ) -> tuple[str, dict[str, np.ndarray]]:
        """Runs a classify or regress signature on a 1-D array of serialized tf.Example protos.

        Returns:
            The signature name and the method's outputs (``classes``/``scores`` or ``outputs``).
        """
        name = signature_name or DEFAULT_SIGNATURE
        sig = self.signatures.get(name)
        if sig is None:
            raise unknown_signature(name, self.signatures)
        input_name, outputs = check_example_signature(sig, method)
        return self.run(name, {input_name: serialized}, outputs)

    def close(self) -> None:
        """Closes the session, releasing the variables and graph memory. Idempotent."""
        session, self._session = self._session, None
        if session is None:
            return
        self._callables.clear()
        session.close()
        _live.add(-1)

    @property
    def closed(self) -> bool:
        """True once ``close`` has run."""
        return self._session is None

    def _callable(self, sig: SignatureSpec, outputs: tuple[str, ...]) -> Callable[..., Any]:
        key = (sig.name, outputs)
        with self._callables_lock:
            fn = self._callables.get(key)
            if fn is None:
                if self._session is None:
                    raise LoadError("version is closed")
                fn = _make_callable(
                    self._session,
                    [sig.inputs[i].tensor_name for i in sig.inputs],
                    [sig.outputs[o].tensor_name for o in outputs],
                    self._run_options,
                )
                self._callables[key] = fn
            return fn

    def _pick_run_thread(self, rows: int) -> None:
        """``auto``: times one signature's call on zeros of ``rows`` rows in TensorFlow's
        inter-op pool and in the calling thread, in alternating blocks of calls (single
        alternating calls would time the pool with its threads asleep), and keeps the faster for
        every signature.

        The caller thread saves a thread hand-off and wake-up per call but runs independent
        ops one after another: small graphs gain, wide graphs at large batches lose (the
        run-thread tables of ``make bench``), hence timing at the batch size the model runs.
        Timing back to back understates the hand-off's cost on an idle server, so the caller
        thread wins ties within 10%. Graphs that write state are not run for timing; they stay
        in the pool, as do signatures that cannot take zero inputs. Timing never fails a load:
        on any error the version keeps the pool.
        """
        picked = next(
            (
                (sig, feeds)
                for sig in sorted(
                    self.signatures.values(), key=lambda s: s.name != DEFAULT_SIGNATURE
                )
                if (feeds := _zero_inputs(sig, rows)) is not None
            ),
            None,
        )
        if picked is None or self._session is None or _writes_state(self._graph, picked[0]):
            return
        sig, feeds = picked
        args = [_feedable(feeds[n]) for n in sig.inputs]
        names = ([sig.inputs[i].tensor_name for i in sig.inputs],
                 [sig.outputs[o].tensor_name for o in sig.outputs])  # fmt: skip
        fns = [_make_callable(self._session, *names, None),
               _make_callable(self._session, *names, _CALLER_THREAD)]  # fmt: skip
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
            log.debug("version %d: run thread not timed: %s", self.version, err)
            return
        pool, caller = (float(np.median(t)) for t in seconds)
        self.run_thread_timing = (pool, caller)
        if caller <= pool * 1.1:
            with self._callables_lock:
                self.run_thread, self._run_options = "caller", _CALLER_THREAD
                self._callables.clear()
            for s in self.signatures.values():
                self._callable(s, tuple(s.outputs))

    def _warm_up(self) -> None:
        """Runs TF Serving's warm-up records if the export has them, else one zero batch per
        signature whose inputs allow it, so the first real request does not pay for lazy init."""
        records_path = self.path / WARMUP_FILE
        if records_path.exists():
            count = _run_warmup_records(self, records_path)
            log.info("version %d: replayed %d warm-up records", self.version, count)
            return
        for sig in self.signatures.values():
            feeds = _zero_inputs(sig)
            if feeds is None:
                continue
            try:
                self.run(sig.name, feeds)
            except (InvalidArgument, ModelRunError) as err:
                if err.status != "INVALID_ARGUMENT":
                    raise LoadError(f"warm-up of signature '{sig.name}' failed: {err}") from err
                # Zeros are not valid data for every model; that alone does not make it unservable.
                log.info(
                    "version %d: zero warm-up of '%s' skipped: %s", self.version, sig.name, err
                )


def _writes_state(graph: tf.Graph, sig: SignatureSpec) -> bool:
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


def _session_config(settings: SessionSettings) -> tf.compat.v1.ConfigProto:
    return tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=settings.intra_op_threads,
        inter_op_parallelism_threads=settings.inter_op_threads,
        allow_soft_placement=True,
    )


def _read_signatures(meta_graph: Any, graph: tf.Graph) -> dict[str, SignatureSpec]:
    out: dict[str, SignatureSpec] = {}
    for key in sorted(meta_graph.signature_def):
        if key.startswith("__"):  # e.g. TF2's __saved_model_init_op, not a callable signature
            continue
        sd = meta_graph.signature_def[key]
        try:
            inputs = {n: _tensor_spec(n, sd.inputs[n], graph) for n in sorted(sd.inputs)}
            outputs = {n: _tensor_spec(n, sd.outputs[n], graph) for n in sorted(sd.outputs)}
        except ValueError as err:
            log.warning("signature '%s' is not servable and is skipped: %s", key, err)
            continue
        if not outputs:
            log.warning("signature '%s' has no outputs and is skipped", key)
            continue
        out[key] = SignatureSpec(key, sd.method_name, inputs, outputs)
    return out


def _tensor_spec(name: str, info: Any, graph: tf.Graph) -> TensorSpec:
    if info.WhichOneof("encoding") != "name":
        raise ValueError(f"'{name}' is a {info.WhichOneof('encoding')} tensor (only dense served)")
    try:
        tensor = graph.get_tensor_by_name(info.name)
    except (KeyError, ValueError) as err:
        raise ValueError(f"'{name}' refers to {info.name!r}, not a tensor of the graph") from err
    dtype = info.dtype if info.dtype else tensor.dtype.as_datatype_enum
    if dtype > _REF_DTYPE_OFFSET:
        dtype -= _REF_DTYPE_OFFSET
    shape: tuple[int, ...] | None
    if info.HasField("tensor_shape") and not info.tensor_shape.unknown_rank:
        shape = tuple(int(d.size) for d in info.tensor_shape.dim)
    elif tensor.shape.rank is not None:
        # The signature leaves the shape open; the graph tensor's static shape still binds it.
        shape = tuple(-1 if d is None else int(d) for d in tensor.shape.as_list())
    else:
        shape = None
    return TensorSpec(name=name, tensor_name=info.name, dtype=int(dtype), shape=shape)


def _make_callable(
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


def _feedable(array: np.ndarray) -> np.ndarray:
    # String inputs arrive as object arrays of bytes; numpy bytes arrays are fed the same way.
    if array.dtype.kind == "S":
        return array.astype(object)
    return array


def _zero_inputs(sig: SignatureSpec, rows: int = 1) -> dict[str, np.ndarray] | None:
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


def _run_warmup_records(version: LoadedVersion, path: Path) -> int:
    from tensorflow_serving.apis import prediction_log_pb2  # noqa: PLC0415 (heavy, rarely used)

    count = 0
    for raw in tf.compat.v1.io.tf_record_iterator(str(path)):
        if count >= _MAX_WARMUP_RECORDS:
            break
        record = prediction_log_pb2.PredictionLog.FromString(raw)
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


def _run_error_message(text: str) -> str:
    """The model's own words from a TensorFlow run error, without the generic header, the
    graph-node annotations or the Python stack of where the op was defined."""
    kept = []
    for line in text.splitlines():
        stripped = line.strip()
        if (
            not stripped
            or line[0].isspace()
            or stripped == "Graph execution error:"
            or stripped.startswith(("[[", "Detected at node", "Node:", "File "))
        ):
            continue
        kept.append(stripped)
    return " ".join(kept)[:_MAX_ERROR_CHARS] or "model run failed"


def _short_error(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    if isinstance(err, tf.errors.OpError):
        text = err.message.strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return f"{type(err).__name__}: {' '.join(lines[:3])}"[:_MAX_ERROR_CHARS]
