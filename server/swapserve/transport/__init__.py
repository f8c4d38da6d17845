"""gRPC transports: thin servicers over the model registry."""
