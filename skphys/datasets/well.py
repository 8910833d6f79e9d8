"""Read and write The Well's HDF5 format.

- :func:`write_well` writes a simulator :class:`~sklearn.utils.Bunch` as a The Well dataset
  (``<root>/datasets/<name>/data/<split>/*.hdf5`` plus ``<root>/datasets/<name>/stats.yaml``) that
  ``the_well.data.WellDataset`` opens.
- :func:`load_well` reads windows of consecutive frames from a The Well dataset (a real one or one
  written by :func:`write_well`) as ``X`` (channels-last) and ``y`` (the constant scalars, i.e. the
  physical parameters).
- :class:`LazyWindows` is the array-like that ``load_well(..., lazy=True)`` returns: it reads
  windows on demand, in fast sorted batches (:meth:`LazyWindows.read`), so scikit-learn's splitters
  and skphys' estimators work on datasets larger than memory. :func:`shard_indices` splits its rows
  between the ranks of a distributed job.

The code lives in :mod:`._well_format` (layout and typed per-file metadata), :mod:`._well_write`,
:mod:`._well_read` and :mod:`._well_lazy`; this module re-exports the public names. See
``docs/the_well.md`` for the file layout and the known quirks of the published datasets.
"""

from ._well_format import WellField, WellFileMetadata, scan_file
from ._well_lazy import LazyWindows, shard_indices
from ._well_read import load_well
from ._well_write import write_well

__all__ = ["write_well", "load_well", "LazyWindows", "shard_indices", "WellField", "WellFileMetadata", "scan_file"]
