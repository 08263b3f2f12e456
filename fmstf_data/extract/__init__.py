"""The per-pair pass: align two files, then decode both once, in lockstep, into samples.

- :mod:`~fmstf_data.extract.options`: :class:`ExtractOptions` (both phases' settings) and
  :class:`ExtractionStats` (what the pass measured, stored in the pair's record).
- :mod:`~fmstf_data.extract.pair_aligner`: the alignment phase (:class:`PairAligner`): picture areas, the
  offset search over a buffered prefix, registration; its result is an :class:`Alignment`.
- :mod:`~fmstf_data.extract.lockstep`: :class:`PairExtractor`, which runs the alignment phase and then the
  lockstep pass (verification, shots, triplet selection) yielding :class:`fmstf_data.store.Sample` records.
"""

from fmstf_data.extract.lockstep import FramePair, PairExtractor
from fmstf_data.extract.options import FRAMES_SCHEMA, STATUS_CODES, ExtractionStats, ExtractOptions
from fmstf_data.extract.pair_aligner import Alignment, PairAligner

__all__ = ["FRAMES_SCHEMA", "STATUS_CODES", "Alignment", "ExtractOptions", "ExtractionStats", "FramePair", "PairAligner",
           "PairExtractor"]
