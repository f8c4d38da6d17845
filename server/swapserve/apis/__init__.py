"""The TF Serving and KServe V2 wire APIs, as message classes from a private descriptor pool.

Built from our own ``.proto`` files (``protos/``, compiled by ``make protos`` into the
``descriptors/`` package data). See :mod:`swapserve.apis.pool` for why the pool is private.
"""
