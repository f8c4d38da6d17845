"""Process-level start-up concerns: a quiet TensorFlow start, the frozen heap."""
