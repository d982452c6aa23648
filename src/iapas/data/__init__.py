"""Dataset readers, one module per publisher layout; `get_reader(name)` picks one.

    from iapas.data import get_reader
    reader = get_reader("mtd")
    split = reader.load(root, reader.categories(root)[0])
"""
from iapas.data import btad, dagm, folder, ksdd1, ksdd2, mtd, mvtec, visa  # noqa: F401  (registration)
from iapas.data.base import DatasetReader, DatasetSplit, Sample, mask_array
from iapas.data.base import reader_for as get_reader  # the reader for NAME; unknown names list the allowed ones
from iapas.data.base import registered_names as dataset_names  # every name a reader is registered under


__all__ = ["DatasetReader", "DatasetSplit", "Sample", "dataset_names", "get_reader", "mask_array"]
