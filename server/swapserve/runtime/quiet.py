"""A quiet start on a CPU machine: TensorFlow's C++ libraries print an absl preamble ("All log
messages before absl::InitializeLog() ...") and INFO lines (oneDNN, CUDA driver probes, CPU
features) while they load, before any log level applies, and a CUDA probe error at the first
session. At the default log level swapserve holds file descriptor 2 while TensorFlow is
imported and lets through only what is not that chatter; ``--log-level DEBUG`` shows all.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

_CHATTER = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} \d\d:\d\d:\d\d"  # absl INFO/WARNING lines
    r"|To enable the following instructions:.*rebuild TensorFlow)"
)


def configure(debug: bool) -> None:
    """TensorFlow's C++ log level: everything with DEBUG, else nothing below FATAL (errors
    surface as Python exceptions with swapserve's messages); an explicit
    ``TF_CPP_MIN_LOG_LEVEL`` wins."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "3")


@contextmanager
def loading_tensorflow(debug: bool) -> Iterator[None]:
    """Wraps the first ``import tensorflow`` of a process (see the module docstring)."""
    if debug:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines() if line and not _CHATTER.match(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()
