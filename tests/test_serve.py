"""`iapas serve` as a client sees it: a real uvicorn server in a subprocess on a free loopback port.

The offline-profile server must answer exactly what `iapas segment` writes for the same images (score,
boxes, mask), refuse what it must (413, 422, 404, 401/403) and count it all in /metrics; a server on a
deliberately slow tiny profile (tests/fake_cli.py) shows the queue limit (503 + Retry-After), the request
timeout (504) and a SIGTERM that lets the request in flight finish.
"""
from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from corpus import pattern, write_normals
from serve_helpers import Server, start_server

pytestmark = [
    pytest.mark.slow,  # real uvicorn subprocesses
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("fastapi", "uvicorn", "multipart", "prometheus_client")),
        reason="the serve extra is not installed (pip install '.[serve]')",
    ),
]
N_IMAGES = 6


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Normal images, an offline context fitted on them, images to check and two bad files."""
    from iapas.config import build_config
    from iapas.pipeline import Pipeline

    root = tmp_path_factory.mktemp("serve")
    write_normals(root / "normal", n=4, size=(80, 64))
    (root / "imgs").mkdir()
    for i in range(N_IMAGES):
        img = pattern(64, 80, seed=200 + i)
        if i % 2 == 0:
            img[18 + i:30 + i, 25:45] = 255
        Image.fromarray(img).save(root / "imgs" / f"part_{i}.png")
    Pipeline(build_config(profile="offline", num_normal=4, feature_size=128)).fit(root / "normal").save(root / "ctx.json")
    (root / "bad").mkdir()
    (root / "bad" / "notes.png").write_text("shift notes, not a picture\n")
    png = (root / "imgs" / "part_0.png").read_bytes()
    (root / "bad" / "cut.png").write_bytes(png[: len(png) // 2])
    return root


@pytest.fixture(scope="module")
def server(data: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    log = tmp_path_factory.mktemp("serve_log") / "server.log"
    srv = start_server({"tile": data / "ctx.json"}, log, "--max-upload-mb", "1", "--max-pixels", "1000000")
    yield srv
    assert srv.stop() == 0, srv.log_text()[-3000:]


@pytest.fixture(scope="module")
def segmented(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`iapas segment` on the same images (and the bad files), the reference for the server."""
    out = tmp_path_factory.mktemp("segment") / "out"
    cmd = [sys.executable, "-m", "iapas.cli.app", "segment", "--context", str(data / "ctx.json"),
           "--images", str(data / "imgs"), str(data / "bad"), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env())
    assert done.returncode == 3, done.stderr[-3000:]  # the two bad files fail, the rest is processed
    return out


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def _inspect(url: str, path: Path, **params: str) -> httpx.Response:
    with path.open("rb") as fh:
        return httpx.post(f"{url}/v1/inspect", params={"line": "tile", **params}, files={"file": (path.name, fh)},
                          timeout=120)


def test_answers_equal_iapas_segment(server: Server, data: Path, segmented: Path) -> None:
    from iapas.serve.answers import decode_mask

    verdicts = set()
    for path in sorted((data / "imgs").iterdir()):
        res = _inspect(server.url, path, mask="rle")
        assert res.status_code == 200, res.text
        body = res.json()
        ref = json.loads((segmented / f"{path.stem}.json").read_text())
        for box in body["boxes"]:  # the server adds each box's area in pixels
            x0, y0, x1, y1 = box["xyxy"]
            assert box.pop("area") == pytest.approx((x1 - x0) * (y1 - y0), abs=0.01)
        for key in ("verdict", "image_score", "threshold", "largest_region_area", "top_phrase", "profile", "size",
                    "boxes", "phrases", "scores", "removed_boxes", "object_box", "notes"):
            assert body[key] == ref[key], key
        ref_mask = np.asarray(Image.open(segmented / f"{path.stem}_mask.png")) > 0
        assert np.array_equal(decode_mask(body["mask"]), ref_mask)
        assert body["defect_area"] == int(ref_mask.sum()) == sum(r["area"] for r in body["regions"])
        assert body["verdict"] == ("defect" if body["image_score"] >= body["threshold"] else "ok")
        assert body["line"] == "tile" and body["context_id"].startswith("sha256:")
        assert body["timing"]["total_ms"] > 0
        verdicts.add(body["verdict"])
    assert verdicts == {"defect", "ok"}, "the test images should give both verdicts"

    png = _inspect(server.url, data / "imgs" / "part_0.png", mask="png", overlay="true").json()
    ref_mask = np.asarray(Image.open(segmented / "part_0_mask.png")) > 0
    assert np.array_equal(decode_mask(png["mask"]), ref_mask)
    import base64

    overlay = Image.open(io.BytesIO(base64.b64decode(png["overlay"]["data"])))
    assert overlay.size == Image.open(segmented / "part_0_overlay.png").size


def test_bad_images_get_422_with_the_cli_reason(server: Server, data: Path, segmented: Path) -> None:
    summary = json.loads((segmented / "summary.json").read_text())
    cli_reasons = {Path(f["path"]).name: f["error"] for f in summary["failures"]}
    assert set(cli_reasons) == {"notes.png", "cut.png"}
    for path in sorted((data / "bad").iterdir()):
        res = _inspect(server.url, path)
        assert res.status_code == 422
        assert res.json() == {"error": cli_reasons[path.name], "kind": "bad_image", "file": path.name}


def test_size_limits_give_413(server: Server, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(np.random.default_rng(0).integers(0, 256, 1_200_000, dtype=np.uint8).tobytes())
    res = _inspect(server.url, big)
    assert res.status_code == 413 and "1 MB" in res.json()["error"]

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        for _ in range(40):
            yield b"x" * 65536

    res = httpx.post(f"{server.url}/v1/inspect?line=tile", content=chunks(),
                     headers={"content-type": "multipart/form-data; boundary=b"}, timeout=60)
    assert res.status_code == 413

    wide = tmp_path / "wide.png"  # a small file announcing 1.2 million pixels
    Image.new("RGB", (1200, 1000), (90, 90, 90)).save(wide)
    assert wide.stat().st_size < 1_000_000
    res = _inspect(server.url, wide)
    assert res.status_code == 413 and res.json()["kind"] == "too_many_pixels" and "1200x1000" in res.json()["error"]


def test_unknown_line_lines_health_docs(server: Server, data: Path) -> None:
    with (data / "imgs" / "part_1.png").open("rb") as fh:
        res = httpx.post(f"{server.url}/v1/inspect", params={"line": "nope"}, files={"file": ("a.png", fh)})
    assert res.status_code == 404 and "tile" in res.json()["error"]
    lines = httpx.get(f"{server.url}/v1/lines").json()["lines"]
    from iapas.context import Context

    calibrated = Context.load(lines[0]["context_file"]).thresholds.verdict  # the line judges at its context's threshold
    assert [(x["line"], x["profile"], x["threshold"]) for x in lines] == [("tile", "offline", calibrated)]
    assert lines[0]["context_file"].endswith("ctx.json") and lines[0]["normal_images"] == 4
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert "/v1/inspect" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert httpx.get(f"{server.url}/docs").status_code == 200
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and 'id="file"' in page.text and '<option value="tile">' in page.text


def test_single_line_server_needs_no_line_parameter(server: Server, data: Path) -> None:
    """One line served: `?line=` may be left out and the answer is that line's."""
    path = data / "imgs" / "part_0.png"
    with path.open("rb") as fh:
        bare = httpx.post(f"{server.url}/v1/inspect", files={"file": (path.name, fh)}, timeout=120)
    named = _inspect(server.url, path)
    assert bare.status_code == 200, bare.text
    keep = ("verdict", "image_score", "boxes", "profile", "context_id")
    assert {k: bare.json().get(k) for k in keep} == {k: named.json().get(k) for k in keep}


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_count_requests_verdicts_and_errors(server: Server, data: Path) -> None:
    before = _samples(httpx.get(f"{server.url}/metrics").text)
    answers = [_inspect(server.url, p).json()["verdict"] for p in sorted((data / "imgs").iterdir())[:3]]
    assert _inspect(server.url, data / "bad" / "notes.png").status_code == 422
    after = _samples(httpx.get(f"{server.url}/metrics").text)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("iapas_requests_total", route="/v1/inspect", method="POST", status="200") == 3
    assert delta("iapas_requests_total", route="/v1/inspect", method="POST", status="422") == 1
    for verdict in ("defect", "ok"):
        assert delta("iapas_verdicts_total", line="tile", verdict=verdict) == answers.count(verdict)
    assert delta("iapas_errors_total", kind="bad_image") == 1
    assert delta("iapas_request_duration_seconds_count", route="/v1/inspect") == 4
    assert delta("iapas_inference_duration_seconds_count", line="tile") == 3
    assert ("iapas_queue_depth", ()) in after


def test_access_log_is_one_json_object_per_request(server: Server) -> None:
    httpx.get(f"{server.url}/healthz", headers={"user-agent": "log-test"})
    time.sleep(0.3)
    records = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("logger") == "iapas.access"]
    assert access and all({"ts", "request_id", "method", "path", "status", "duration_ms"} <= set(r) for r in access)
    assert any(r["path"] == "/v1/inspect" and r["status"] == 200 and r.get("verdict") for r in access)


# ---- a deliberately slow server: token, queue overflow, timeout, SIGTERM ------------------------------------

DELAY = 2.0


def _fake_context(data: Path) -> Path:
    """A context of the tiny profile that tests/fake_cli.py serves."""
    from fake_profile import mean_diff
    from iapas.config import build_config
    from iapas.io.images import load_image

    path = data / "ctx_fake.json"
    if not path.is_file():
        config = build_config(profile="offline")
        normal = [load_image(p) for p in sorted((data / "normal").iterdir())]
        mean_diff(config, "offline").fit(normal).save(path)
    return path


@pytest.fixture(scope="module")
def slow(data: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    log = tmp_path_factory.mktemp("slow_log") / "server.log"
    srv = start_server({"tile": _fake_context(data)}, log, "--queue-size", "1", "--timeout", "3",
                       "--token-env", "TEST_SERVE_TOKEN", fake_delay=DELAY, env={"TEST_SERVE_TOKEN": "s3cret-token"})
    yield srv
    srv.stop()


def _post(url: str, path: Path, token: str | None = "s3cret-token") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with path.open("rb") as fh:
        return httpx.post(f"{url}/v1/inspect", params={"line": "tile"}, files={"file": (path.name, fh)},
                          headers=headers, timeout=60)


def test_token_is_required_and_checked(slow: Server, data: Path) -> None:
    img = data / "imgs" / "part_1.png"
    missing = _post(slow.url, img, token=None)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert _post(slow.url, img, token="s3cret-tokeN").status_code == 403
    assert httpx.get(f"{slow.url}/v1/lines").status_code == 401
    assert httpx.get(f"{slow.url}/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert httpx.get(f"{slow.url}/healthz").status_code == 200  # probes need no token
    assert _post(slow.url, img).status_code == 200


def test_full_queue_gives_503_and_slow_answers_504(slow: Server, data: Path) -> None:
    img = data / "imgs" / "part_1.png"
    results: dict[str, httpx.Response] = {}

    def send(key: str) -> None:
        results[key] = _post(slow.url, img)

    threads = []
    for key in ("running", "waiting", "refused"):  # 1 worker busy for 2 s, 1 place in the queue
        t = threading.Thread(target=send, args=(key,))
        t.start()
        threads.append(t)
        time.sleep(0.5)
    for t in threads:
        t.join(timeout=60)
    assert results["running"].status_code == 200
    assert results["refused"].status_code == 503
    assert int(results["refused"].headers["retry-after"]) >= 1
    assert results["waiting"].status_code == 504  # waited 2 s, would finish at 4 s > --timeout 3
    assert "--timeout" in results["waiting"].json()["error"]


def test_sigterm_lets_the_request_in_flight_finish(data: Path, tmp_path: Path) -> None:
    srv = start_server({"tile": _fake_context(data)}, tmp_path / "server.log", fake_delay=DELAY)
    answer: dict[str, httpx.Response] = {}
    t = threading.Thread(target=lambda: answer.update(r=_post(srv.url, data / "imgs" / "part_2.png", token=None)))
    t.start()
    time.sleep(0.7)  # the request is being worked on
    code = srv.stop()
    t.join(timeout=30)
    assert code == 0, srv.log_text()[-2000:]
    assert answer["r"].status_code == 200 and answer["r"].json()["verdict"] in ("defect", "ok")
    assert '"msg": "stopped"' in srv.log_text()
