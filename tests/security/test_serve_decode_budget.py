"""Uploads decode under a pixel budget: concurrent requests for large images never decode all at once."""
from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from serve_support import app_client, png_bytes

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fastapi") is None, reason="no serve extra")


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_concurrent_decodes_stay_within_the_pixel_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import iapas.serve.app as app_module

    real = app_module.decode_upload
    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def counting_decode(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.3)  # a large image takes a while to decode
            return real(*args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(app_module, "decode_upload", counting_decode)
    image = png_bytes(80, 80)  # 6400 px: two do not fit a budget of 10000
    with app_client(tmp_path, monkeypatch, decode_pixels=10_000, queue_size=8) as client:
        def post(_: int) -> int:
            return client.post("/v1/inspect?line=tile", files={"file": ("a.png", image)}).status_code

        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(post, range(4)))
    assert codes == [200] * 4
    assert state["most"] == 1


def test_budget_waits_then_refuses_with_503() -> None:
    from iapas.serve.guard import PixelBudget
    from iapas.serve.limits import ApiError

    async def scenario() -> list[str]:
        budget = PixelBudget(100)
        events: list[str] = []

        async def holder(name: str, pixels: int, hold: float, timeout: float) -> None:
            try:
                async with budget.hold(pixels, timeout):
                    events.append(f"{name}+")
                    await asyncio.sleep(hold)
                    events.append(f"{name}-")
            except ApiError as exc:
                events.append(f"{name}:{exc.status}")

        await asyncio.gather(holder("a", 80, 0.2, 1), holder("b", 80, 0.0, 1), holder("c", 80, 0.0, 0.05),
                             holder("huge", 10**9, 0.0, 2))
        return events

    events = asyncio.run(scenario())
    assert events.index("a-") < events.index("b+")  # b waited for a
    assert "c:503" in events  # c gave up: busy
    assert "huge+" in events  # larger than the whole budget: decodes alone
