"""swapserve: a gRPC prediction server that hot-swaps TensorFlow SavedModel exports."""

__version__ = "0.1.0"
