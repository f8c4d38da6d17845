"""``python -m swapserve``."""

from swapserve.cli import main

main()
