"""Dataset readers, one module per publisher layout; `get_reader(name)` picks one.

    from iapas.data import get_reader
    reader = get_reader("mtd")
    split = reader.load(root, reader.categories(root)[0])
"""
from iapas.data import btad, dagm, folder, ksdd1, ksdd2, mtd, mvtec, visa  # noqa: F401  (registration)
from iapas.data.base import DatasetReader, DatasetSplit, Sample, mask_array, reader_for, registered_names


def dataset_names() -> list[str]:
    """Every dataset name a reader is registered under (the readers are imported above)."""
    return registered_names()


def get_reader(name: str) -> DatasetReader:
    """The reader for NAME; unknown names list the allowed ones."""
    return reader_for(name)


__all__ = ["DatasetReader", "DatasetSplit", "Sample", "dataset_names", "get_reader", "mask_array"]
