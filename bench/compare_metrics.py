"""Compare the figures of two runs: `bench/suite.py`'s suite.json, `iapas demo`'s or `iapas evaluate`'s metrics.json.

    python bench/compare_metrics.py BEFORE.json AFTER.json [--tolerance 0] [--ignore KEY ...]

Why: a change that should not change behaviour (a refactor) must leave every figure identical. Both files are
flattened into `path -> value`; numbers are compared with the tolerance (0: exactly equal), everything else
for equality. Keys that measure time (images/s, seconds, timestamps) and the output folders are ignored.
Prints each difference and exits 1 when there is one, 0 when the runs agree.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

# Keys that differ from run to run without any change of behaviour: time, speed, where the outputs went.
VOLATILE = ("images_per_second", "seconds", "elapsed", "time", "timestamp", "created", "started", "finished",
            "duration", "out", "path", "root", "cache", "version", "git")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a JSON value keyed by its path (`rows.0.pixel_ap`)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {prefix: value}


def is_volatile(path: str, ignore: tuple[str, ...]) -> bool:
    """True for a key that measures time or names a folder (see VOLATILE) or is in `ignore`."""
    last = path.rsplit(".", 1)[-1].lower()
    return any(last == k or last.endswith("_" + k) or last.startswith(k + "_") for k in (*VOLATILE, *ignore))


def differences(before: Any, after: Any, tolerance: float = 0.0, ignore: tuple[str, ...] = ()) -> list[str]:
    """One line per figure that is missing on one side or differs by more than `tolerance`."""
    a, b = flatten(before), flatten(after)
    lines: list[str] = []
    for key in sorted(set(a) | set(b)):
        if is_volatile(key, ignore):
            continue
        if key not in a or key not in b:
            lines.append(f"{key}: only in {'after' if key in b else 'before'}")
            continue
        x, y = a[key], b[key]
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            if (math.isnan(x) and math.isnan(y)) or abs(x - y) <= tolerance:
                continue
            lines.append(f"{key}: {x} -> {y} (diff {y - x:+.6g})")
        elif x != y:
            lines.append(f"{key}: {x!r} -> {y!r}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--tolerance", type=float, default=0.0, help="largest allowed absolute difference (0: identical)")
    ap.add_argument("--ignore", nargs="*", default=[], help="more keys to skip")
    args = ap.parse_args(argv)
    lines = differences(json.loads(args.before.read_text(encoding="utf-8")),
                        json.loads(args.after.read_text(encoding="utf-8")), args.tolerance, tuple(args.ignore))
    for line in lines:
        print(line)
    print(f"{len(lines)} difference(s) between {args.before} and {args.after}")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
