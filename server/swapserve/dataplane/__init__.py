"""The protocol-neutral API every transport calls: requests, admin, their types."""
