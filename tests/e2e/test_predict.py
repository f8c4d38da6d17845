"""Predict, metadata and status over a real gRPC channel, on real exports."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from helpers import (
    COUNTER,
    HALF_PLUS_THREE,
    HALF_PLUS_TWO,
    HALF_PLUS_TWO_TF2,
    copy_version,
    estimator_version,
    serving,
    serving_process,
)
from swapserve_client import Client, SwapserveError
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb
from swapserve_client._proto.swapserve.v1 import prediction_pb2_grpc as pb_grpc


@pytest.fixture(scope="module")
def hp2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    root = tmp_path_factory.mktemp("hp2")
    copy_version(HALF_PLUS_TWO, root, 123)
    with (
        serving_process(root, "hp2") as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        yield client


@pytest.mark.parametrize("batch", [1, 64])
def test_half_plus_two_tf1(hp2: Client, batch: int) -> None:
    x = np.linspace(-1, 1, batch, dtype=np.float32).reshape(batch, 1)
    result = hp2.predict_full("hp2", {"x": x})
    assert result.version == 123
    assert result.signature == "serving_default"
    np.testing.assert_allclose(result.outputs["y"], 0.5 * x + 2, rtol=1e-6)
    assert result.outputs["y"].dtype == np.float32
    assert result.outputs["y"].shape == (batch, 1)


def test_explicit_version_and_signature(hp2: Client) -> None:
    x = np.array([[1.0], [2.0]], np.float32)
    out = hp2.predict("hp2", {"inputs": x}, version=123, signature="regress_x2_to_y3")
    np.testing.assert_allclose(out["outputs"], 0.5 * x + 3, rtol=1e-6)


def _examples(xs: Iterable[float]) -> np.ndarray:
    import tensorflow as tf

    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[v]))}
            )
        ).SerializeToString()
        for v in xs
    ]
    return np.array(examples, dtype=object)


def test_string_inputs_tf_example(hp2: Client) -> None:
    out = hp2.predict("hp2", {"inputs": _examples([1.0, 4.0])}, signature="regress_x_to_y")
    np.testing.assert_allclose(out["outputs"], [[2.5], [4.0]], rtol=1e-6)


def test_metadata(hp2: Client) -> None:
    meta = hp2.metadata("hp2")
    assert meta.version == 123
    assert set(meta.signatures) == {
        "serving_default",
        "classify_x_to_y",
        "regress_x_to_y",
        "regress_x_to_y2",
        "regress_x2_to_y3",
    }
    sig = meta.signatures["serving_default"]
    assert sig.method_name == "tensorflow/serving/predict"
    assert sig.inputs["x"].dtype == "DT_FLOAT"
    assert sig.inputs["x"].shape == (-1, 1)
    assert sig.outputs["y"].shape == (-1, 1)
    assert meta.signatures["regress_x_to_y"].inputs["inputs"].dtype == "DT_STRING"


def test_status(hp2: Client) -> None:
    [status] = hp2.status("hp2")
    assert (status.version, status.state, status.serving) == (123, "AVAILABLE", True)
    assert status.load_seconds > 0


def test_half_plus_two_tf2(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO_TF2, tmp_path, 123)
    with serving(tmp_path) as server, Client(f"127.0.0.1:{server.port}") as client:
        # The TF2 export's serving_default takes shape [1]: one element per request.
        out = client.predict("m", {"x": np.array([3.0], np.float32)})
        np.testing.assert_allclose(out["y"], [3.5], rtol=1e-6)
        # Its tf.Example signatures take a batch: 64 serialized examples at once.
        xs = np.linspace(-1, 1, 64, dtype=np.float32)
        out = client.predict(
            "m", {"inputs": _examples(xs)}, signature="regress_x_to_y", output_filter=["outputs"]
        )
        np.testing.assert_allclose(out["outputs"], 0.5 * xs.reshape(64, 1) + 2, rtol=1e-6)
        with pytest.raises(SwapserveError) as exc:
            client.predict("m", {"x": np.zeros([64], np.float32)})
        assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "dimension 0 is 64 but 1 is expected" in exc.value.message


def test_half_plus_three_batches(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_THREE, tmp_path, 7)
    with serving(tmp_path) as server, Client(f"127.0.0.1:{server.port}") as client:
        for batch in (1, 64):
            x = np.arange(batch, dtype=np.float32).reshape(batch, 1)
            out = client.predict_full("m", {"x": x})
            assert out.version == 7
            np.testing.assert_allclose(out.outputs["y"], 0.5 * x + 3, rtol=1e-6)


def test_estimator_style_export(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1795300968, weight=1.0)  # y = 2x, the seed model
    with serving(tmp_path) as server, Client(f"127.0.0.1:{server.port}") as client:
        for batch in (1, 64):
            x = np.linspace(-50, 100, batch, dtype=np.float32).reshape(batch, 1)
            out = client.predict_full("m", {"number": x})
            assert out.version == 1795300968
            np.testing.assert_allclose(out.outputs["output"], 2 * x, rtol=1e-6)
        out = client.predict("m", {"number": np.array([[100.0]], np.float32)}, signature="predict")
        np.testing.assert_allclose(out["output"], [[200.0]], rtol=1e-6)
        # A left-out dimension of size 1 reaches the graph (as in TF Serving); this graph
        # refuses it, and the message says what was fed.
        with pytest.raises(SwapserveError) as exc:
            client.predict("m", {"number": np.float32([100.0])})
        assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert exc.value.message.startswith(
            "input 'number' was fed as shape [1] (the signature declares [-1, 1]; a dimension of "
            "size 1 may be left out, as in TF Serving, but only if the model accepts it), and the "
            "model refused it: "
        )


@pytest.mark.parametrize("run_thread", ["pool", "caller", "auto"])
@pytest.mark.parametrize("cpp_callable", [True, False])
def test_callable_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_thread: str, cpp_callable: bool
) -> None:
    """The C++ callable and the public make_callable fallback (a TensorFlow without the private
    API) give the same answers, in the inter-op pool or in the caller's thread."""
    import tensorflow as tf

    from swapserve.config.model_settings import SessionSettings
    from swapserve.errors import ModelRunError
    from swapserve.model.loaded_version import LoadedVersion

    if not cpp_callable:
        session_class = type(tf.compat.v1.Session())
        for cls in session_class.__mro__:
            if "_make_callable_from_options" in vars(cls):
                monkeypatch.delattr(cls, "_make_callable_from_options")
    path = estimator_version(tmp_path, 1, weight=1.0)
    loaded = LoadedVersion.load(1, path, SessionSettings(run_thread=run_thread))
    try:
        if run_thread != "auto":
            assert loaded.run_thread == run_thread
        for batch in (1, 64):
            x = np.linspace(-5, 5, batch, dtype=np.float32).reshape(batch, 1)
            _, out = loaded.run("", {"number": x}, ["output"])
            np.testing.assert_allclose(out["output"], 2 * x, rtol=1e-6)
        if not cpp_callable:
            return  # Session.run casts the dtype itself
        # A TensorFlow run error (here a dtype that validation would have refused) keeps its
        # TensorFlow status and message.
        sig = loaded.signatures["serving_default"]
        with pytest.raises(ModelRunError) as exc:
            loaded.execute(sig, ("output",), {"number": np.zeros((1, 1), np.float64)})
        assert exc.value.status == "INVALID_ARGUMENT"
        assert "double" in exc.value.message
    finally:
        loaded.close()


@pytest.mark.parametrize("slower", ["caller", "pool"])
def test_auto_run_thread_keeps_the_faster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slower: str
) -> None:
    """``auto`` times both places at load and keeps the faster for every signature."""
    import time

    from swapserve.config.model_settings import SessionSettings
    from swapserve.model import loaded_version as loaded_module
    from swapserve.model import session_calls

    real = session_calls.make_callable

    def make(session, feeds, fetches, run_options):  # type: ignore[no-untyped-def]
        fn = real(session, feeds, fetches, run_options)
        if (slower == "caller") != (run_options is not None):
            return fn

        def slowed(*args):  # type: ignore[no-untyped-def]
            time.sleep(0.005)
            return fn(*args)

        slowed.slowed = True  # type: ignore[attr-defined]
        return slowed

    monkeypatch.setattr(session_calls, "make_callable", make)
    path = estimator_version(tmp_path, 1, weight=1.0)
    loaded = loaded_module.LoadedVersion.load(1, path, SessionSettings(run_thread="auto"))
    try:
        kept = "pool" if slower == "caller" else "caller"
        assert loaded.run_thread == kept
        assert loaded.run_thread_timing is not None
        pool, caller = loaded.run_thread_timing
        assert (pool > caller) == (slower == "pool")
        # Every signature's callable was rebuilt where the version runs: none is a slowed one.
        assert len(loaded._callables) == len(loaded.signatures)
        assert not any(getattr(fn, "slowed", False) for fn in loaded._callables.values())
        x = np.array([[3.0]], np.float32)
        for sig in ("serving_default", "predict"):
            np.testing.assert_allclose(loaded.run(sig, {"number": x})[1]["output"], 2 * x)
    finally:
        loaded.close()


def test_auto_run_thread_times_the_batch_the_model_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With batching the timing runs full batches (a wide graph can win in the pool at 64
    rows and lose at 1); the manager passes max_batch_size, and 1 row without batching."""
    from swapserve.config.model_settings import BatchingSettings, ModelSettings, SessionSettings
    from swapserve.model import loaded_version as loaded_module
    from swapserve.model import session_calls
    from swapserve.model.manager import ModelManager

    real = session_calls.make_callable
    timed_rows: list[int] = []

    def make(session, feeds, fetches, run_options):  # type: ignore[no-untyped-def]
        fn = real(session, feeds, fetches, run_options)

        def recording(*args):  # type: ignore[no-untyped-def]
            timed_rows.append(args[0].shape[0])
            return fn(*args)

        return recording

    estimator_version(tmp_path / "root", 1, weight=1.0)
    calls: list[int] = []

    def loader(*args):  # type: ignore[no-untyped-def]
        calls.append(args[4])
        timed_rows.clear()
        monkeypatch.setattr(session_calls, "make_callable", make)
        try:
            return loaded_module.LoadedVersion.load(*args)
        finally:
            monkeypatch.setattr(session_calls, "make_callable", real)

    for batching, rows in ((BatchingSettings(), 1), (BatchingSettings(True, 16), 16)):
        settings = ModelSettings("m", tmp_path / "root", batching=batching)
        manager = ModelManager(settings, SessionSettings(run_thread="auto"), loader=loader)
        try:
            manager.reload(0)
            assert calls[-1] == rows
            # Warm-up runs one row; the timing runs >= 3 calls per place at ``rows``.
            assert max(timed_rows) == rows and timed_rows.count(rows) >= 6
        finally:
            manager.close()


def test_auto_run_thread_leaves_stateful_graphs_alone(tmp_path: Path) -> None:
    """A graph that writes state is never run just to time it: the counter stays at 0."""
    from swapserve.config.model_settings import SessionSettings
    from swapserve.model.loaded_version import LoadedVersion

    copy_version(COUNTER, tmp_path, 1)
    loaded = LoadedVersion.load(1, tmp_path / "1", SessionSettings(run_thread="auto"))
    try:
        assert (loaded.run_thread, loaded.run_thread_timing) == ("pool", None)
        _, out = loaded.run("get_counter", {})
        assert float(out["output"]) == 0.0
    finally:
        loaded.close()


def test_stateful_counter_signatures_without_inputs(tmp_path: Path) -> None:
    copy_version(COUNTER, tmp_path, 1)
    with serving(tmp_path) as server, Client(f"127.0.0.1:{server.port}") as client:
        # The zero-batch warm-up must not have run the stateful signatures.
        assert client.predict("m", {}, signature="get_counter")["output"] == 0
        client.predict("m", {}, signature="incr_counter")
        client.predict("m", {"delta": np.float32(3)}, signature="incr_counter_by")
        assert client.predict("m", {}, signature="get_counter")["output"] == 4


# ---- output_filter ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    import tensorflow as tf

    class TwoOut(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="a")])
        def serve(self, a: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"sum": tf.reduce_sum(a, axis=1), "label": tf.strings.as_string(a[:, 0])}

    from swapserve.export import export_model

    root = tmp_path_factory.mktemp("two")
    module = TwoOut()
    export_model(module, root, signatures={"serving_default": module.serve}, version=5)
    with serving(root) as server, Client(f"127.0.0.1:{server.port}") as client:
        yield client


def test_output_filter(two_outputs: Client) -> None:
    a = np.array([[1, 2], [3, 4]], np.float32)
    assert set(two_outputs.predict("m", {"a": a})) == {"sum", "label"}
    out = two_outputs.predict("m", {"a": a}, output_filter=["sum"])
    assert set(out) == {"sum"}
    np.testing.assert_allclose(out["sum"], [3, 7])
    out = two_outputs.predict("m", {"a": a}, output_filter=["label"])
    assert list(out["label"]) == [b"1.000000", b"3.000000"]


# ---- bad requests ----------------------------------------------------------------------------


def _err(client: Client, *args: object, **kwargs: object) -> SwapserveError:
    with pytest.raises(SwapserveError) as exc:
        client.predict(*args, **kwargs)  # type: ignore[arg-type]
    return exc.value


X = np.zeros([2, 1], np.float32)


@pytest.mark.parametrize(
    ("inputs", "kwargs", "code", "message"),
    [
        (
            {"z": X},
            {},
            "INVALID_ARGUMENT",
            "unknown input 'z' for signature 'serving_default'; its inputs are 'x'",
        ),
        (
            {},
            {},
            "INVALID_ARGUMENT",
            "missing input 'x' for signature 'serving_default' ('x' expects DT_FLOAT [-1, 1])",
        ),
        (
            {"x": X.astype(np.int32)},
            {},
            "INVALID_ARGUMENT",
            "input 'x' of signature 'serving_default' has dtype DT_INT32 but DT_FLOAT is expected",
        ),
        (
            {"x": np.zeros([2, 1, 1], np.float32)},
            {},
            "INVALID_ARGUMENT",
            "input 'x' of signature 'serving_default' has shape [2, 1, 1] (rank 3) but shape [-1, 1] (rank 2) is expected",
        ),
        (
            {"x": np.zeros([2, 3], np.float32)},
            {},
            "INVALID_ARGUMENT",
            "dimension 1 is 3 but 1 is expected",
        ),
        (
            {"x": np.array([[b"a"]], dtype=object)},
            {},
            "INVALID_ARGUMENT",
            "has dtype DT_STRING but DT_FLOAT is expected",
        ),
        (
            {"x": X},
            {"output_filter": ["nope"]},
            "INVALID_ARGUMENT",
            "output_filter names unknown output 'nope' of signature 'serving_default'; its outputs are 'y'",
        ),
        (
            {"x": X},
            {"output_filter": ["y", "y"]},
            "INVALID_ARGUMENT",
            "output_filter names output 'y' twice",
        ),
        (
            {"x": X},
            {"signature": "nope"},
            "FAILED_PRECONDITION",
            "signature 'nope' not found; this model version has 'classify_x_to_y', ",
        ),
        (
            {"x": X},
            {"version": 5},
            "NOT_FOUND",
            "version 5 of model 'hp2' is not loaded (loaded: [123]; serving 123)",
        ),
        ({"x": X}, {"version": -1}, "INVALID_ARGUMENT", "version must be from 0"),
    ],
)
def test_bad_requests(
    hp2: Client, inputs: dict[str, np.ndarray], kwargs: dict[str, object], code: str, message: str
) -> None:
    err = _err(hp2, "hp2", inputs, **kwargs)
    assert err.code.name == code
    assert message in err.message


def test_unknown_model(hp2: Client) -> None:
    err = _err(hp2, "nope", {"x": X})
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.message == "model 'nope' is not served here (models: 'hp2')"
    err = _err(hp2, "", {"x": X})
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.message == "model_name is required"


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (
            pb.Tensor(dtype=pb.DT_FLOAT, shape=[2, 1], tensor_content=b"\0" * 7),
            "input 'x': tensor_content has 7 bytes but shape [2, 1] of DT_FLOAT needs 8 (2 x 4)",
        ),
        (
            pb.Tensor(dtype=pb.DT_FLOAT, shape=[-2, 1]),
            "input 'x': shape [-2, 1] has a negative dimension",
        ),
        (
            pb.Tensor(dtype=pb.DT_STRING, shape=[2], string_val=[b"a"]),
            "input 'x': shape [2] needs 2 string_val entries, got 1",
        ),
        (pb.Tensor(dtype=pb.DT_INVALID, shape=[1]), "input 'x': unsupported dtype DT_INVALID"),
        (pb.Tensor(dtype=77, shape=[1]), "input 'x': unsupported dtype DT_77"),
        (pb.Tensor(dtype=pb.DT_FLOAT, shape=[1 << 30, 1 << 30, 1 << 30]), "has too many elements"),
        (
            pb.Tensor(dtype=pb.DT_FLOAT, shape=[1], string_val=[b"x"]),
            "input 'x': DT_FLOAT values go in tensor_content, not string_val",
        ),
    ],
)
def test_malformed_tensors(hp2: Client, tensor: pb.Tensor, message: str) -> None:
    stub_channel = hp2._channel  # the raw stub: the client library would not build these
    stub = pb_grpc.PredictionServiceStub(stub_channel)
    request = pb.PredictRequest(model_name="hp2")
    request.inputs["x"].CopyFrom(tensor)
    with pytest.raises(grpc.RpcError) as exc:
        stub.Predict(request, timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in exc.value.details()


def test_graph_level_error_is_invalid_argument(tmp_path: Path) -> None:
    import tensorflow as tf

    from swapserve.export import export_model

    class Checked(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="v")])
        def serve(self, v: tf.Tensor) -> dict[str, tf.Tensor]:
            tf.debugging.assert_non_negative(v, message="v must be >= 0")
            return {"r": tf.sqrt(v)}

    module = Checked()
    export_model(module, tmp_path, signatures={"serving_default": module.serve}, version=1)
    with serving(tmp_path) as server, Client(f"127.0.0.1:{server.port}") as client:
        np.testing.assert_allclose(client.predict("m", {"v": np.float32([4])})["r"], [2])
        err = _err(client, "m", {"v": np.float32([-1])})
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "v must be >= 0" in err.message
        assert "Traceback" not in err.message
        # The server is unharmed.
        np.testing.assert_allclose(client.predict("m", {"v": np.float32([9])})["r"], [3])


def test_no_version_yet_is_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "not-yet"
    with serving(root, wait=False) as server, Client(f"127.0.0.1:{server.port}") as client:
        err = _err(client, "m", {"x": X})
        assert err.code == grpc.StatusCode.UNAVAILABLE
        assert "has no version loaded yet" in err.message
        with pytest.raises(SwapserveError) as exc:
            client.metadata("m")
        assert exc.value.code == grpc.StatusCode.UNAVAILABLE
        # The root appears later: the server picks it up (as TF Serving waits for it).
        copy_version(HALF_PLUS_TWO, root, 1)
        from helpers import wait_for

        wait_for(lambda: client.status("m") and client.status("m")[0].state == "AVAILABLE")
        np.testing.assert_allclose(client.predict("m", {"x": X})["y"], X + 2)
