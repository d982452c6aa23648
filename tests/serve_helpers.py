"""Start a real `iapas serve` (uvicorn, in a subprocess) on a free loopback port for the serve tests and
the bench, and stop it with SIGTERM."""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

TESTS = Path(__file__).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait; the exit status (0 after a clean shutdown)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_server(contexts: dict[str, Path], log: Path, *extra: str, fake_delay: float | None = None,
                 env: dict[str, str] | None = None, timeout: float = 180.0) -> Server:
    """`iapas serve --context NAME=PATH ...` on a free port; the real CLI, or with FAKE_PROFILE_DELAY the
    CLI of tests/fake_cli.py (a tiny profile slowed down per image, to fill the queue on purpose)."""
    port = free_port()
    cli = [sys.executable, str(TESTS / "fake_cli.py")] if fake_delay is not None else [sys.executable, "-m", "iapas.cli.app"]
    cmd = [*cli, "serve", *[a for n, p in contexts.items() for a in ("--context", f"{n}={p}")],
           "--host", "127.0.0.1", "--port", str(port), *extra]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    if fake_delay is not None:
        full_env["FAKE_PROFILE_DELAY"] = str(fake_delay)
    fh = open(log, "wb")  # noqa: SIM115 - the server writes to it until it stops
    proc = subprocess.Popen(cmd, env=full_env, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return Server(proc, url, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server not ready within {timeout} s:\n{log.read_text()[-3000:]}")


CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
BROWSER_MARKS = [  # a module that drives uvicorn + headless Chromium
    pytest.mark.slow,
    pytest.mark.skipif(CHROMEDRIVER is None, reason="chromedriver is not installed (apt-get install chromium-driver)"),
    pytest.mark.skipif(importlib.util.find_spec("selenium") is None, reason="selenium is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("fastapi") is None, reason="the serve extra is not installed"),
]


def chrome(flags: list[str], profile_dir: Path, script_timeout: float | None = None):  # type: ignore[no-untyped-def]
    """A headless Chromium driven by selenium, with `flags` and its own profile folder (the caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in flags:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    if script_timeout is not None:
        driver.set_script_timeout(script_timeout)
    return driver
