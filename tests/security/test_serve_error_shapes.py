"""Every refusal and failure of the service answers `{"error", "kind"}` and is counted; client-supplied text is
cut short in answers and logs; the log stays JSON; `/` names no line without a token."""
from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pytest

from serve_support import TOKEN, app_client, fake_context, png_bytes

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fastapi") is None, reason="no serve extra")


def errors_total(client, kind: str, token: str | None = None) -> float:  # noqa: ANN001
    from prometheus_client.parser import text_string_to_metric_families

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for fam in text_string_to_metric_families(client.get("/metrics", headers=headers).text):
        for s in fam.samples:
            if s.name == "iapas_errors_total" and s.labels.get("kind") == kind:
                return s.value
    return 0.0


def multipart_with_raw_name(name: bytes, data: bytes) -> tuple[bytes, dict[str, str]]:
    """A multipart body whose file name bytes go on the wire as given (client libraries escape a NUL)."""
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="' + name + b'"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--b--\r\n")
    return body, {"content-type": "multipart/form-data; boundary=b"}


def test_nul_byte_file_name_gets_a_json_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with app_client(tmp_path, monkeypatch) as client:
        body, headers = multipart_with_raw_name(b"a.p\x00ng", png_bytes())
        res = client.post("/v1/inspect?line=tile", content=body, headers=headers)
        assert res.status_code == 200 and res.json()["verdict"] in ("ok", "defect")
        body, headers = multipart_with_raw_name(b"x.p\x00ng", b"not an image")
        bad = client.post("/v1/inspect?line=tile", content=body, headers=headers)
        assert bad.status_code == 422 and bad.json()["kind"] == "bad_image" and "\x00" not in bad.json()["file"]


def test_unexpected_failure_is_json_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import iapas.serve.app as app_module

    def broken(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise ValueError("embedded null byte")

    monkeypatch.setattr(app_module, "decode_upload", broken)
    with app_client(tmp_path, monkeypatch) as client:
        before = errors_total(client, "internal")
        res = client.post("/v1/inspect?line=tile", files={"file": ("a.png", png_bytes())})
        assert res.status_code == 500 and res.json()["kind"] == "internal" and set(res.json()) == {"error", "kind"}
        assert errors_total(client, "internal") == before + 1


def test_validation_and_routing_errors_use_the_documented_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with app_client(tmp_path, monkeypatch) as client:
        before = errors_total(client, "invalid_request")
        missing = client.post("/v1/inspect?line=tile")  # no file
        assert missing.status_code == 422 and missing.json()["kind"] == "invalid_request" and "file" in missing.json()["error"]
        assert "detail" not in missing.json()
        assert errors_total(client, "invalid_request") == before + 1
        nowhere = client.get("/no/such/page")
        assert nowhere.status_code == 404 and nowhere.json()["kind"] == "not_found"
        wrong = client.get("/v1/inspect")
        assert wrong.status_code == 405 and set(wrong.json()) == {"error", "kind"}


def test_long_line_value_is_not_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    long_line = "L" * 60_000  # near the longest query a client library sends
    with app_client(tmp_path, monkeypatch) as client, caplog.at_level(logging.INFO, logger="iapas.access"):
        res = client.post("/v1/inspect", params={"line": long_line}, files={"file": ("a.png", png_bytes())})
    assert res.status_code == 404 and res.json()["kind"] == "unknown_line"
    assert len(res.text) < 600 and "60000 characters" in res.json()["error"]
    logged = [json.dumps(getattr(r, "fields", {})) for r in caplog.records if r.name == "iapas.access"]
    assert logged and max(len(x) for x in logged) < 2000


def test_unauthenticated_clients_learn_no_line_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with app_client(tmp_path, monkeypatch, token=TOKEN) as client:
        page = client.get("/")
        assert page.status_code == 200 and 'value="tile"' not in page.text and 'id="token"' in page.text
        refused = client.post("/v1/inspect", params={"line": "x" * 5000}, files={"file": ("a.png", png_bytes())})
        assert refused.status_code == 401 and "tile" not in refused.text and "xxxx" not in refused.text
        assert client.get("/v1/lines", headers={"Authorization": f"Bearer {TOKEN}"}).json()["lines"][0]["line"] == "tile"
    with app_client(tmp_path, monkeypatch) as client:  # no token at all (loopback): the page lists the lines
        assert 'value="tile"' in client.get("/").text


def test_no_token_warning_is_a_json_log_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    import uvicorn

    from fake_profile import use_mean_diff
    from iapas.cli.serve import run_server
    from iapas.serve.settings import ServeSettings

    use_mean_diff(monkeypatch)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: None)  # no port is opened
    run_server([f"tile={fake_context(tmp_path)}"], "0.0.0.0", 8000, ServeSettings(drain_s=5))
    lines = [x for x in capfd.readouterr().err.splitlines() if x.strip()]
    assert lines and any("no token set" in x for x in lines)
    for x in lines:
        json.loads(x)  # every line of the server's log is one JSON object
