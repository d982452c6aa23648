"""Issue 12, item 8: a billion-laughs YAML config is refused quickly in bounded memory, oversized config
files are refused, and error messages repeat at most a few hundred characters of what the user wrote."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from iapas.config import build_config
from iapas.errors import SettingsError

MAX_QUOTE_CHARS = 200  # "a few hundred characters" of user input per quoted value

BOMB = textwrap.dedent(
    """\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    tagger: *i
    """
)

# run in a child process under a 1.5 GB address-space limit and a CPU-time limit, so the old code's
# blow-up (9 GB in 60 s) ends as a failed test instead of taking the machine down
CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
resource.setrlimit(resource.RLIMIT_CPU, (20, 20))
from iapas.cli.app import main
sys.argv = ["iapas", "doctor", "--json", "--config", sys.argv[1]]
main()
"""


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_item08_billion_laughs_rejected_fast_in_bounded_memory(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(bomb)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "alias" in proc.stderr and str(bomb) in proc.stderr.replace("\n", "")
    assert len(proc.stderr) < 2000 and "Traceback" not in proc.stderr


def test_item08_config_file_size_capped(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 << 20) + "\nseed: 1\n")
    with pytest.raises(SettingsError, match="larger than"):
        build_config(big)


def test_item08_error_quotes_bounded_user_input(tmp_path: Path) -> None:
    cfg = tmp_path / "long.yaml"
    cfg.write_text("seed: " + "9" * 100 + "x" * 50_000 + "\nnum_normal: [" + ", ".join(["1"] * 5000) + "]\n")
    with pytest.raises(SettingsError) as info:
        build_config(cfg)
    for line in str(info.value).splitlines():
        assert len(line) < 2 * MAX_QUOTE_CHARS + 200, line[:100]
    assert "seed" in str(info.value) and "num_normal" in str(info.value)
