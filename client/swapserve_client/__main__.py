"""``python -m swapserve_client``: the same as ``swapserve-client``."""

from swapserve_client.cli import main

main()
