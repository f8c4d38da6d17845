"""Metrics, statistics, call records, access and request logs, log setup, tracing."""
