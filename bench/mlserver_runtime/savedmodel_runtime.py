"""A small MLServer runtime serving a TensorFlow SavedModel's ``serving_default`` (the peer in
``bench/suite.py``). Runs inside the MLServer virtualenv (``make bench-setup``)."""

from __future__ import annotations

import tensorflow as tf
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class SavedModelRuntime(MLModel):
    """Loads the SavedModel once; each request calls its serving signature."""

    async def load(self) -> bool:
        self._model = tf.saved_model.load(self.settings.parameters.uri)
        self._fn = self._model.signatures["serving_default"]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = {i.name: tf.constant(NumpyCodec.decode_input(i)) for i in payload.inputs}
        outputs = self._fn(**inputs)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output(name, value.numpy()) for name, value in outputs.items()
            ],
        )
