"""gRPC transports: thin servicers over the data plane, and the server that hosts them."""
