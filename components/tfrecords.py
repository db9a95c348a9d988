"""An artifact's TFRecord files as a dataset, gzipped (TFX's default) or plain.

Told apart by the ".gz" suffix, as TFX's own readers do (Beam's TFRecord source with
``CompressionTypes.AUTO``, tfx_bsl's ``detect_compression_type``). Our ExampleGens write either
(``COMPRESSIONS``), and so does our Transform (``components.transform``).
"""

from __future__ import annotations

from typing import Sequence

GZIP_SUFFIX = ".gz"
# How our components may write TFRecords: name -> file suffix. TFX writes gzip.
COMPRESSIONS = {"none": "", "gzip": GZIP_SUFFIX}
DEFAULT_COMPRESSION = "gzip"


def compression_suffix(compression: str, setting: str) -> str:
    """The file suffix of ``compression`` (a key of ``COMPRESSIONS``); ``setting`` names where it was set.

    Raises:
        ValueError: an unknown compression, with the setting and the known ones.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"Unknown examples compression {compression!r} ({setting}). Fix: "
                         f"use one of {', '.join(COMPRESSIONS)}.")
    return COMPRESSIONS[compression]


def compression_type(paths: Sequence[str]) -> str:
    """``"GZIP"`` when every file ends in ".gz", ``""`` when none does.

    Raises:
        ValueError: some are gzipped and some are not (one dataset reads them all one way).
    """
    gzipped = [str(p).endswith(GZIP_SUFFIX) for p in paths]
    if all(gzipped):
        return "GZIP"
    if not any(gzipped):
        return ""
    raise ValueError(f"The TFRecord files {', '.join(map(str, paths[:4]))}{', ...' if len(paths) > 4 else ''} mix "
                     "gzipped ('.gz') and plain files; one split's files must be written one way. Fix: re-run the "
                     "component that wrote them.")


def record_dataset(paths: Sequence[str]):
    """The records of ``paths``, in that order, as a ``tf.data.TFRecordDataset``."""
    import tensorflow as tf

    return tf.data.TFRecordDataset(list(paths), compression_type=compression_type(paths))
