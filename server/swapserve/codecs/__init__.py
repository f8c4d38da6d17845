"""Conversions between other protocols' messages and numpy. No grpc here either."""
