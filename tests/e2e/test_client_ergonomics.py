"""Client ergonomics (issue 16): ``cast=True`` from cached metadata that follows the served
version, and the asyncio client with the same calls (TLS paths: test_tls)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from helpers import estimator_version, serving
from swapserve_client import Client, SwapserveError, aio


def test_cast_follows_the_served_version(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    with (
        serving(tmp_path, poll_seconds=600) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        with pytest.raises(SwapserveError) as err:  # float64 and ints are refused as they are
            client.predict("m", {"number": [[100]]})
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert client.predict("m", {"number": [[100]]}, cast=True)["output"].tolist() == [[200.0]]
        estimator_version(tmp_path, 2, weight=2.0)
        client.reload("m")
        result = client.predict_full("m", {"number": [[1]]}, cast=True)
        assert (result.version, result.outputs["output"].tolist()) == (2, [[4.0]])
        assert client._signatures == {}  # another version answered: fetched again next time
        client.predict("m", {"number": [[1]]}, cast=True)
        assert client._signatures[("m", 0, "")].version == 2
        with pytest.raises(ValueError, match="input number: cannot convert to DT_FLOAT"):
            client.predict("m", {"number": [["x"]]}, cast=True)


def test_the_asyncio_client(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)

    async def calls(target: str) -> None:
        async with aio.Client(target) as client:
            outs = await asyncio.gather(
                *(client.predict("m", {"number": [[float(i)]]}, cast=True) for i in range(20))
            )
            assert [o["output"][0, 0] for o in outs] == [2.0 * i for i in range(20)]
            estimator_version(tmp_path, 2, weight=2.0)
            reloaded = await client.reload("m")
            assert (reloaded.previous_version, reloaded.version) == (1, 2)
            status = await client.wait_for_version("m", 2, timeout=30)
            assert status.serving_version == 2
            assert (await client.metadata("m")).version == 2
            assert [v.version for v in await client.status("m")][:1] == [2]
            with pytest.raises(SwapserveError) as err:
                await client.predict("nope", {"number": [[1.0]]})
            assert err.value.code == grpc.StatusCode.NOT_FOUND

    with serving(tmp_path, poll_seconds=600) as server:
        asyncio.run(calls(f"127.0.0.1:{server.port}"))
