"""``swapserve`` / ``python -m swapserve`` (and ``tensorflow_model_server``, ``tritonserver``):
parse the flags,
then serve in one process or as ``--workers`` processes. The flags themselves are declared with
the settings (``swapserve.config.flags``)."""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Sequence

from swapserve.config import tfserving_flags, triton_flags
from swapserve.config.flags import build_parser
from swapserve.config.from_flags import settings_from_args
from swapserve.config.model_settings import SettingsError
from swapserve.observability import logs
from swapserve.runtime import quiet

__all__ = ["main", "triton_main"]

log = logging.getLogger("swapserve")


def triton_main(argv: Sequence[str] | None = None) -> None:
    """``tritonserver``: Triton's command line (``config.triton_flags``), then ``main``."""
    try:
        translated, ignored = triton_flags.translate(sys.argv[1:] if argv is None else argv)
    except SettingsError as err:
        build_parser().error(f"tritonserver: {err}")
    main(translated, ignored)


def main(argv: Sequence[str] | None = None, warnings: Sequence[str] = ()) -> None:
    """Parses flags, serves until SIGTERM/SIGINT, then shuts down gracefully."""
    parser = build_parser()
    argv, ignored = tfserving_flags.parse_argv(parser, sys.argv[1:] if argv is None else argv)
    ignored = [*warnings, *ignored]
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    for warning in ignored:
        log.warning("%s", warning)
    try:
        settings = settings_from_args(args, parser)
    except SettingsError as err:
        parser.error(str(err))

    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.workers > 1 and settings.startup_models is not None:
        parser.error("--startup-models (Triton's explicit mode) needs --workers 1: a load "
                     "re-reads the repository in the worker it reaches")  # fmt: skip
    if importlib.util.find_spec("tensorflow") is None:
        log.error(
            "TensorFlow is not installed: install swapserve with an extra, "
            "'swapserve[cpu]' (tensorflow-cpu) or 'swapserve[gpu]' (tensorflow with CUDA)"
        )
        sys.exit(1)
    if args.workers > 1:
        from swapserve.cluster.supervisor import run_workers  # noqa: PLC0415

        sys.exit(run_workers(settings, args.workers, args.log_level, args.log_format))

    # Imported after flag checks: TensorFlow takes seconds to import.
    with quiet.loading_tensorflow(args.log_level == "DEBUG"):
        import tensorflow  # noqa: F401, PLC0415 (its first import, held quiet)

        from swapserve.app import create_app, serve  # noqa: PLC0415

    try:
        app = create_app(settings)
    except SettingsError as err:
        log.error("%s", err)
        sys.exit(1)
    serve(app)
