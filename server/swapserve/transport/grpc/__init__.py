"""The gRPC port: server, interceptors, health, one servicer per API."""
