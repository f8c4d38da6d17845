"""One loaded SavedModel version: its own graph and session, cached callables, warm-up, close.

Every export is loaded the way TF Serving loads it: the ``serve`` MetaGraph into a private
``tf.Graph`` and ``tf.compat.v1.Session``. That serves TF1 estimator exports (signature_def over a
graph) and TF2/Keras exports alike, and per request it costs one ``Session`` callable (built once
per signature and output set, like TF Serving's Session::Run) with no graph building and no
signature parsing. The graph is finalized after loading so nothing can add to it later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from swapserve.config.model_settings import SessionSettings
from swapserve.errors import LoadError, ModelRunError
from swapserve.model import session_calls, warmup
from swapserve.model.outcomes import WarmupRequest
from swapserve.model.signature import (
    DEFAULT_SIGNATURE,
    SignatureSpec,
    TensorSpec,
    check_example_signature,
    unknown_signature,
)

log = logging.getLogger(__name__)

_MAX_CACHED_CALLABLES = 64  # per version; beyond it, output subsets are cut from a full run
_REF_DTYPE_OFFSET = 100  # DT_FLOAT_REF = 101 etc.: a variable's value, served as its base type
_MAX_ERROR_CHARS = 2000


class _LiveCounter:
    """Open sessions in this process: lets tests prove that swapped-out versions are freed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards count
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
        self._callables_lock = threading.Lock()  # guards _callables
        self.run_thread = run_thread
        """``caller`` or ``pool``: where this version's graph runs (see SessionSettings)."""
        self.run_thread_timing: tuple[float, float] | None = None
        """With ``auto``: the median seconds per call measured (pool, caller)."""
        self._run_options = session_calls.CALLER_THREAD if run_thread == "caller" else None
        self.warmup_requests: list[WarmupRequest] = []
        """The warm-up requests it answered, for the gates to replay (then dropped)."""

    @classmethod
    def load(
        cls,
        version: int,
        path: Path,
        settings: SessionSettings,
        warm_up: bool = True,
        timing_rows: int = 1,
        *,
        decode_record: warmup.RecordDecoder | None = None,
    ) -> LoadedVersion:
        """Loads, validates and warms up one export directory. With ``run_thread`` ``auto``,
        the run thread is timed on ``timing_rows`` rows (the batch size the model will run).
        ``decode_record`` reads the export's warm-up records, if it has any.

        Raises:
            LoadError: anything that makes the export unservable, with a one-paragraph reason.
        """
        start = time.monotonic()
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=_session_config(settings))
        _live.add(1)
        try:
            with graph.as_default():
                meta_graph = tf.compat.v1.saved_model.loader.load(
                    session, _tags(settings.saved_model_tags), str(path)
                )
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
                loaded.warmup_requests = warmup.warm_up(loaded, decode_record)
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
        feeds = [session_calls.feedable(inputs[n]) for n in sig.inputs]
        try:
            values = fn(*feeds)
        except tf.errors.OpError as err:
            message = _run_error_message(err.message)
            if short := _left_out_dimensions(sig, inputs):
                message = f"{short}, and the model refused it: {message}"
            raise ModelRunError(message, err.error_code) from None
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

    def _pick_run_thread(self, rows: int) -> None:
        """``auto``: times the pool and the calling thread on ``rows`` rows (see
        ``session_calls.time_run_threads``) and keeps the faster for every signature, the caller
        thread winning ties within 10%."""
        if self._session is None:
            return
        timing = session_calls.time_run_threads(
            self.version, self._session, self._graph, self.signatures, rows
        )
        if timing is None:
            return
        self.run_thread_timing = timing
        pool, caller = timing
        if caller <= pool * 1.1:
            with self._callables_lock:
                self.run_thread, self._run_options = "caller", session_calls.CALLER_THREAD
                self._callables.clear()
            for s in self.signatures.values():
                self._callable(s, tuple(s.outputs))

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
                fn = session_calls.make_callable(
                    self._session,
                    [sig.inputs[i].tensor_name for i in sig.inputs],
                    [sig.outputs[o].tensor_name for o in outputs],
                    self._run_options,
                )
                self._callables[key] = fn
            return fn


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


def _left_out_dimensions(sig: SignatureSpec, inputs: Mapping[str, np.ndarray]) -> str:
    """Names an input fed with trailing dimensions of size 1 left out (TF Serving's leniency,
    see ``signature``), so a graph that cannot take it fails with a message saying why."""
    for name, spec in sig.inputs.items():
        if spec.shape is not None and inputs[name].ndim < len(spec.shape):
            return (
                f"input '{name}' was fed as shape {list(inputs[name].shape)} (the signature "
                f"declares {list(spec.shape)}; a dimension of size 1 may be left out, as in "
                "TF Serving, but only if the model accepts it)"
            )
    return ""


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


def _tags(text: str) -> list[str]:
    """The tag set of ``--saved-model-tags`` (``serve,gpu`` -> ["serve", "gpu"])."""
    return [tag.strip() for tag in text.split(",") if tag.strip()]
