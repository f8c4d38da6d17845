#!/bin/sh
# The server's run-time dependencies, every one pinned and hash-checked against
# deploy/runtime-hashes.lock: pip refuses a file whose sha256 is not listed, and any dependency
# the lock lacks. The image (deploy/Dockerfile) and `make setup` (so every CI run) run this same
# command; swapserve and its client are installed after it, without dependencies.
#   usage: deploy/install-runtime.sh PYTHON      (from the repository root)
set -eu
"$1" -m pip install --quiet --disable-pip-version-check --require-hashes \
    -r deploy/runtime-hashes.lock
