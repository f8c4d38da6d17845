"""Exports that load fine and would hurt in production -- what the rollout gates exist for.

Every kind serves ``serving_default``: float input ``x`` [batch] -> ``y`` [batch]; a good
version ``v`` answers ``y = v * x``, so an answer tells which version gave it.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from swapserve.export import export_model

KINDS = ("good", "nan", "renamed", "slow", "nan-above-1")


class _Flawed(tf.Module):
    def __init__(self, version: int, kind: str) -> None:
        super().__init__()
        self.scale = tf.Variable(float(version))
        self.kind = kind
        if kind == "slow":
            self.big = tf.Variable(tf.random.normal([600, 600], seed=1))

    def answer(self, x: tf.Tensor) -> tf.Tensor:
        y = self.scale * x
        if self.kind == "nan":
            return y * float("nan")
        if self.kind == "nan-above-1":
            return tf.where(x > 1.0, tf.fill(tf.shape(x), float("nan")), y)
        if self.kind == "slow":
            m = self.big
            for _ in range(6):
                m = tf.tanh(tf.matmul(m, self.big) / 600.0)
            return y + 0.0 * tf.reduce_sum(m)
        return y


def flawed_export(root: Path, version: int, kind: str = "good") -> Path:
    """Exports ``kind`` of model as ``root/<version>`` (staged, then renamed into place)."""
    assert kind in KINDS, kind
    module = _Flawed(version, kind)
    name = "z" if kind == "renamed" else "x"

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name=name)])
    def serve(value: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": module.answer(value)}

    module.serve = serve
    return Path(export_model(module, root, signatures={"serving_default": serve}, version=version))
