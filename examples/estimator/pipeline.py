"""A TF 2.15 ``tf.estimator`` training step that hands its export to swapserve.

The seed model as the project's estimator wrote it (features ``[x, x]``, one dense unit, input
``number`` float32 [None, 1], output ``output``). It trains on y = slope * x, runs
``export_saved_model`` into the server's export root, and calls ``Reload`` through
``swapserve_client`` in the same process, so the step ends only when the new version serves. It
runs in the training environment (TF 2.15, numpy 1.26, protobuf 4.25); ``pip install ./client``
there changes nothing else (tests/e2e/test_estimator_example.py).

    python examples/estimator/pipeline.py --export-root models/seed --target localhost:8500 \\
        --model seed --slope 3
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
import tensorflow as tf

from swapserve_client import Client, reload_after_export

log = logging.getLogger("estimator-pipeline")


def model_fn(features, labels, mode):  # type: ignore[no-untyped-def]  # estimator's contract
    tiled = tf.tile(features["number"], [1, 2])  # the feature vector [x, x]
    output = tf.compat.v1.layers.dense(tiled, 1, name="dense")
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(
            mode,
            predictions={"output": output},
            export_outputs={
                "serving_default": tf.estimator.export.PredictOutput({"output": output})
            },
        )
    loss = tf.compat.v1.losses.mean_squared_error(labels, output)
    step = tf.compat.v1.train.get_global_step()
    train_op = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=step)
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def input_fn(slope: float) -> tf.data.Dataset:
    x = np.random.default_rng(0).uniform(-1.0, 1.0, size=(256, 1)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices(({"number": x}, slope * x)).repeat().batch(32)


def serving_input_fn() -> tf.estimator.export.ServingInputReceiver:
    """The serving signature's input: ``number`` float32 [None, 1], fed to the model as is."""
    number = tf.compat.v1.placeholder(tf.float32, [None, 1], name="number")
    return tf.estimator.export.ServingInputReceiver({"number": number}, {"number": number})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-root", required=True, help="the export root the server watches")
    parser.add_argument("--target", default="localhost:8500", help="the swapserve server")
    parser.add_argument("--model", default="seed", help="the model served from --export-root")
    parser.add_argument("--slope", type=float, default=3.0, help="train on y = slope * x")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    tf.get_logger().setLevel(logging.ERROR)  # the estimator's step-by-step chatter

    estimator = tf.estimator.Estimator(model_fn)
    estimator.train(lambda: input_fn(args.slope), steps=args.steps)
    path = estimator.export_saved_model(args.export_root, serving_input_fn).decode()
    log.info("exported %s", path)

    result = reload_after_export(args.target, args.model, path, timeout=120)
    with Client(args.target) as client:
        answer = client.predict(args.model, {"number": np.array([[100.0]], np.float32)})
    sys.stdout.write(
        f"serving version {result.version} of {args.model} (was {result.previous_version}); "
        f"f(100) = {float(answer['output'][0, 0]):.1f}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
