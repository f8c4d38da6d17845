"""The transport-free core: loading, validating, running and swapping model versions."""
