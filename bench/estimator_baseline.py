"""The seed's way: ``estimator.predict`` with a one-example input_fn per request.

Runs in its own virtualenv (``make bench-setup``: tensorflow-cpu 2.15.1 + tensorflow-estimator
2.15.0, the last releases with ``tf.estimator``). Trains the seed model -- features [x, x], one
dense unit, y = 2x -- then times ``calls`` predictions, each of which rebuilds the graph and
restores the checkpoint, and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import tensorflow as tf


def model_fn(features, labels, mode):  # type: ignore[no-untyped-def]
    x = tf.tile(features["number"], [1, 2])
    output = tf.compat.v1.layers.dense(x, 1, name="dense")
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode, predictions={"output": output})
    loss = tf.compat.v1.losses.mean_squared_error(labels, output)
    step = tf.compat.v1.train.get_or_create_global_step()
    train_op = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=step)
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_args()
    tf.get_logger().setLevel(logging.ERROR)

    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, size=(256, 1)).astype(np.float32)

    def train_input() -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(({"number": xs}, 2 * xs)).repeat().batch(32)

    estimator = tf.estimator.Estimator(model_fn, model_dir=args.model_dir)
    estimator.train(train_input, steps=300)

    def one_example() -> tf.data.Dataset:
        return tf.data.Dataset.from_tensors({"number": np.array([[100.0]], np.float32)})

    next(estimator.predict(one_example))  # first call pays one-off costs; not counted
    latencies = []
    for _ in range(args.calls):
        t0 = time.perf_counter()
        result = next(estimator.predict(one_example))
        latencies.append(time.perf_counter() - t0)
    ms = np.array(latencies) * 1000
    print(json.dumps({
        "calls": args.calls,
        "p50_ms": round(float(np.median(ms)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "output": float(result["output"][0]),
        "tensorflow": tf.__version__,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
