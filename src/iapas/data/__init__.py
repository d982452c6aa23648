"""Dataset readers, one module per publisher layout; `get_reader(name)` picks one.

    from iapas.data import get_reader
    reader = get_reader("mtd")
    split = reader.load(root, reader.categories(root)[0])
"""
from iapas.data import btad, dagm, folder, ksdd1, ksdd2, mtd, mvtec, visa  # noqa: F401  (registration)
from iapas.data.base import DatasetReader, DatasetSplit, Sample, dataset_names, get_reader, mask_array

__all__ = ["DatasetReader", "DatasetSplit", "Sample", "dataset_names", "get_reader", "mask_array"]
