"""The HTTP port: the aiohttp host and the protocol handlers behind it."""
