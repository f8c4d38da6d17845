"""Predicts on the demo model back to back for SECONDS and prints the answers per version, the
answers holding NaN and the failed calls: the client of the README's rollout walkthrough.

    python examples/seed/predict_loop.py 70 --target localhost:8500
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np

from swapserve_client import Client, SwapserveError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", type=float)
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--model", default="seed")
    args = parser.parse_args()
    seen: Counter[int] = Counter()
    nan = failed = 0
    x = {"number": np.array([[100.0]], np.float32)}
    end = time.monotonic() + args.seconds
    with Client(args.target) as client:
        while time.monotonic() < end:
            try:
                answer = client.predict_full(args.model, x)
            except SwapserveError:
                failed += 1
                continue
            seen[answer.version] += 1
            nan += int(not np.isfinite(answer.outputs["output"]).all())
    print(json.dumps({"answers": dict(seen), "nan": nan, "failed": failed}))  # noqa: T201


if __name__ == "__main__":
    main()
