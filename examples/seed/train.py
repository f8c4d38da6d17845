"""The demo ("seed") model: train y = slope * x and export a new version for swapserve.

The model mirrors the estimator this project started from: the feature vector is [x, x], one
dense unit, and the serving signature takes ``number`` float32 [None, 1] and returns ``output``;
signature ``from_text`` takes the numbers as strings (``text``, [None]), for string-tensor clients.
Trained on y = 2x it answers 200 for 100; retrained with ``--slope 3`` it answers 300, which makes
a hot swap easy to see.

    python examples/seed/train.py --export-root models/seed --slope 2
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import tensorflow as tf

from swapserve.export import export_model

log = logging.getLogger("seed")


class SeedModel(tf.Module):
    """features [x, x] -> Dense(1)."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel = tf.Variable(tf.zeros([2, 1]), name="kernel")
        self.bias = tf.Variable(tf.zeros([1]), name="bias")

    def __call__(self, number: tf.Tensor) -> tf.Tensor:
        features = tf.tile(number, [1, 2])
        return tf.matmul(features, self.kernel) + self.bias

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="number")])
    def serve(self, number: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"output": self(number)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_text(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        """The same model on numbers written as text ("2.5"): the demo's string input."""
        filled = tf.where(tf.equal(text, ""), "0", text)  # the warm-up's zero batch is ""
        number = tf.reshape(tf.strings.to_number(filled, tf.float32), [-1, 1])
        return {"output": self(number)}


def train(slope: float, steps: int = 500, seed: int = 0, learning_rate: float = 0.1) -> SeedModel:
    """Fits y = slope * x on x in [-1, 1] by gradient descent (a learning rate far too large
    diverges to NaN weights: the broken export the rollout gates are there to stop)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(256, 1)).astype(np.float32)
    y = (slope * x).astype(np.float32)
    model = SeedModel()
    opt = tf.keras.optimizers.SGD(learning_rate=learning_rate)
    for step in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - y))
        grads = tape.gradient(loss, [model.kernel, model.bias])
        opt.apply_gradients(zip(grads, [model.kernel, model.bias], strict=True))
        if step % 100 == 0:
            log.info("step %d loss %.6f", step, float(loss))
    log.info(
        "final loss %.8f; f(100) = %.3f",
        float(loss),
        float(model(np.array([[100.0]], np.float32))[0, 0]),
    )
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-root", required=True)
    parser.add_argument("--slope", type=float, default=2.0, help="train on y = slope * x")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument(
        "--learning-rate", type=float, default=0.1, help="SGD step (50 diverges to NaN weights)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model = train(args.slope, args.steps, learning_rate=args.learning_rate)
    signatures = {"serving_default": model.serve, "from_text": model.serve_text}
    path = export_model(model, args.export_root, signatures=signatures)
    print(f"exported {path}")  # noqa: T201 (the demo's one line of output)


if __name__ == "__main__":
    main()
