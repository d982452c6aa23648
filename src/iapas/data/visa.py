"""VisA, read through its split file (the publisher's split, not a folder convention).

    ROOT/split_csv/1cls.csv with columns object,split,label,image,mask (paths relative to ROOT),
    e.g. candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png

Rule: the normal pool is the object's `train` rows; the test set its `test` rows. VisA masks are
palette/index masks, so any value > 0 is a defect.
"""
from __future__ import annotations

import csv
from pathlib import Path

from iapas.data.base import DatasetReader, DatasetSplit, Sample, register
from iapas.errors import DatasetError

SPLIT_FILE = Path("split_csv") / "1cls.csv"
COLUMNS = ("object", "split", "label", "image", "mask")


@register("visa")
class VisA(DatasetReader):
    layout = "split_csv/1cls.csv (columns object,split,label,image,mask) and the files it names"
    def _rows(self, root: Path) -> list[dict[str, str]]:
        root = self.check_root(root)
        path = root / SPLIT_FILE
        if not path.is_file():
            raise DatasetError(f"visa: split file {path} is missing (VisA ships split_csv/1cls.csv)")
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"visa: {path} lacks columns {', '.join(missing)}")
            return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]

    def categories(self, root: Path) -> list[str]:
        return sorted({r["object"] for r in self._rows(root)})

    def load(self, root: Path, category: str) -> DatasetSplit:
        self.check_category(root, category)
        root = Path(root)
        pool: list[Path] = []
        test: list[Sample] = []
        for r in self._rows(root):
            if r["object"] != category:
                continue
            img = root / r["image"]
            anomalous = r["label"].lower() not in ("normal", "good", "0")
            if r["split"] == "train":
                if not anomalous:
                    pool.append(img)
            elif r["split"] == "test":
                mask = root / r["mask"] if r["mask"] else None
                test.append(Sample(img, mask, int(anomalous), category, "anomaly" if anomalous else "good"))
        return DatasetSplit(
            "visa", category, test, sorted(pool), "split_csv/1cls.csv train rows", paper_test=list(test),
            paper_rule="every test image, Normal included (the official loop only skips folders named `good`)",
        )
