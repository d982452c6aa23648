"""Peak memory of loading huge images and masks (issue 12, item 5): each case must stay under 1.5 GB.

    python bench/bench_memory.py            # all cases; files are made in a temp dir and removed after
    python bench/bench_memory.py --cases png16 mask

Each case runs `load_image` / `load_mask` / the dataset readers' `mask_array` in a fresh subprocess
(so one case's memory never counts towards another) and reports that process's peak RSS
(VmHWM; `ru_maxrss` would include the parent's peak, which it keeps across exec). A guard (`--guard-gb`, RLIMIT_AS) stops a runaway case with MemoryError instead of
starving the machine. The inputs are small files with huge dimensions, written row by row
(PNG with a streaming zlib), so making them needs little memory either.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

LIMIT_MB = 1500


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path: Path, width: int, height: int, bit_depth: int, color_type: int, rows: Callable[[int], bytes],
              level: int = 9) -> Path:
    """A PNG written row by row: `rows(y)` gives the raw row bytes (without the filter byte).

    A row that is the same object as the one above is stored with PNG's "Up" filter (all zeros), and runs
    of those are compressed in large blocks, so the file stays small (level 9: ~2 MB, as in the issue;
    level 1 is 3x faster and 4x larger, for tests).
    """
    comp = zlib.compressobj(level)
    row_bytes = 1 + len(rows(0))
    same = b"\x02" + bytes(row_bytes - 1)
    per_block = max(1, (16 << 20) // row_bytes)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)))
        previous, run = None, 0

        def flush_run() -> None:
            nonlocal run
            while run:
                k = min(run, per_block)
                fh.write(_chunk(b"IDAT", comp.compress(same * k)))
                run -= k

        for y in range(height):
            row = rows(y)
            if row is previous:
                run += 1
                continue
            flush_run()
            fh.write(_chunk(b"IDAT", comp.compress(b"\x00" + row)))
            previous = row
        flush_run()
        fh.write(_chunk(b"IDAT", comp.flush()))
        fh.write(_chunk(b"IEND", b""))
    return path


def png16_rgba(path: Path, side: int = 15500, level: int = 9) -> Path:
    """16-bit RGBA: a few distinct row patterns (colour bands, half transparent), repeated."""
    import numpy as np

    x = np.arange(side, dtype=np.uint32)
    patterns = []
    for k in range(4):
        px = np.zeros((side, 4), dtype=">u2")
        px[:, 0] = np.where((x // 512) % 2 == 0, 60000, 1000 * k)
        px[:, 1] = 20000 + 100 * k
        px[:, 2] = np.where((x // 1024) % 2 == 0, 30000, 50000)
        px[:, 3] = np.where((x // 2048) % 2 == 0, 65535, 32768)
        patterns.append(px.tobytes())
    return write_png(path, side, side, 16, 6, lambda y: patterns[(y // 64) % 4], level)


def mask_png(path: Path, side: int = 40000, level: int = 9) -> Path:
    """An 8-bit greyscale mask, black but for a white band."""
    black, band = bytes(side), bytes(side // 2) + b"\xff" * (side - side // 2)
    return write_png(path, side, side, 8, 0, lambda y: band if side // 3 <= y < side // 2 else black, level)


def jpeg(path: Path, side: int = 8000) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (side // 16, side // 16, 3), dtype=np.uint8)
    Image.fromarray(small).resize((side, side), Image.Resampling.BILINEAR).save(path, quality=90)
    return path


def float_tiff(path: Path, side: int = 15500) -> Path:
    """A 32-bit float TIFF (deflate); made in a subprocess because Pillow writes it from memory."""
    code = (
        "import numpy as np, sys; from PIL import Image; s=int(sys.argv[2]);"
        "a=np.empty((s,s),np.float32); a[:]=np.where(np.arange(s)//512%2==0,-3.0,7.0).astype(np.float32);"
        "Image.fromarray(a,mode='F').save(sys.argv[1],compression='tiff_adobe_deflate')"
    )
    subprocess.run([sys.executable, "-c", code, str(path), str(side)], check=True)
    return path


CASES: dict[str, tuple[str, Callable[[Path], Path], str]] = {
    # name: (what, file maker, call in the measured process)
    "png16": ("15500x15500 16-bit RGBA PNG, load_image", lambda d: png16_rgba(d / "big16.png"), "load_image"),
    "jpeg": ("8000x8000 JPEG, load_image", lambda d: jpeg(d / "big.jpg"), "load_image"),
    "mask": ("40000x40000 mask PNG, load_mask", lambda d: mask_png(d / "big_mask.png"), "load_mask"),
    "mask_dataset": ("40000x40000 mask PNG, data.mask_array", lambda d: d / "big_mask.png", "mask_array"),
    "tiff_float": ("15500x15500 float32 TIFF, load_image", lambda d: float_tiff(d / "bigf.tif"), "load_image"),
}

MEASURE = r"""
import json, resource, sys
guard = int(float(sys.argv[3]) * 2**30)
resource.setrlimit(resource.RLIMIT_AS, (guard, guard))
from iapas.errors import InputError
call, path = sys.argv[1], sys.argv[2]
try:
    if call == "load_image":
        from iapas.io.images import load_image
        im = load_image(path)
        result = "loaded %dx%d%s" % (im.size[0], im.size[1], " (" + im.note + ")" if im.note else "")
    elif call == "load_mask":
        from iapas.io.images import load_mask
        result = "loaded %s" % (load_mask(path).shape,)
    else:
        from iapas.data import mask_array
        result = "loaded %s" % (mask_array(path).shape,)
except InputError as exc:
    result = "refused: " + exc.reason
except MemoryError:
    result = "MemoryError at the guard"
# VmHWM is this process's own peak: ru_maxrss would carry over the parent's peak across exec
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak_mb": int(hwm.split()[1]) / 1024, "result": result}))
"""


def measure(call: str, path: Path, guard_gb: float) -> dict[str, object]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", MEASURE, call, str(path), str(guard_gb)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        return {"peak_mb": float("nan"), "result": f"crashed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(names: list[str], guard_gb: float) -> Iterator[tuple[str, str, dict[str, object], int]]:
    with tempfile.TemporaryDirectory(prefix="iapas-bench-memory-") as tmp:
        folder = Path(tmp)
        for name in names:
            what, make, call = CASES[name]
            path = make(folder)
            yield name, what, measure(call, path, guard_gb), path.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--guard-gb", type=float, default=4.0, help="address-space cap of each measured process")
    args = ap.parse_args()
    names = list(args.cases)
    if "mask_dataset" in names and "mask" not in names:
        names.insert(names.index("mask_dataset"), "mask")
    over = 0
    print(f"{'case':<44} {'file MB':>8} {'peak RSS MB':>12}  result")
    for name, what, res, size in run(names, args.guard_gb):
        peak = float(res["peak_mb"])  # type: ignore[arg-type]
        ok = peak < LIMIT_MB
        over += not ok
        print(f"{what:<44} {size / 1e6:>8.2f} {peak:>12.0f}  {'ok' if ok else 'OVER'} {res['result']}")
    print(f"limit: {LIMIT_MB} MB per case; {'all under' if not over else f'{over} over'}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
