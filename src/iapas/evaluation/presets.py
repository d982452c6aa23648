"""Detection threshold preset (object 0.2 / texture 0.1) of a benchmark category, as Table 1 of the paper sets it.

The paper gives one preset per dataset: MVTec-AD is an object dataset (0.2 on all its categories, its
five textures included); KSDD1, MTD, DTD-Synthetic and DAGM are texture datasets (0.1). The per-category
choice (MVTec's carpet, grid, leather, tile and wood at 0.1) is
`texture_preset: per-category` (`--texture-preset per-category`). The evaluation harness asks this
module for each category's kind; readers keep describing what a category is (`DatasetReader.kind_of`).
"""
from __future__ import annotations

# Datasets whose categories all use the object preset under the paper's Table 1, whatever the reader says.
PAPER_OBJECT_DATASETS: frozenset[str] = frozenset({"mvtec"})


def category_kind(dataset: str, reader_kind: str, preset: str = "paper") -> str:
    """'object' or 'texture' for a category of `dataset` whose reader calls it `reader_kind`.

    Args:
        dataset: reader name (mvtec, mpdd, mtd, ...).
        reader_kind: the reader's own kind for the category (DatasetSplit.kind).
        preset: "paper" (Table 1, dataset level) or "per-category" (the reader's kind as is).
    Returns:
        The kind whose thresholds (iapas.settings.KIND_THRESHOLDS) the category is detected with.
    """
    if preset == "paper" and dataset.lower() in PAPER_OBJECT_DATASETS:
        return "object"
    return reader_kind
