"""Manifests: which HDR10/SDR pairs a build uses, their splits, segments and per-pair options.

- :mod:`~fmstf_data.manifest.schema`: the records (:class:`Manifest`, :class:`PairSpec`, :class:`SourceSpec`,
  :class:`FormatSpec`) and the rules every field follows.
- :mod:`~fmstf_data.manifest.yaml_lines`: safe YAML with the line of every value, so errors name file:line:field.
- :mod:`~fmstf_data.manifest.load`: parsing and validation (:func:`load_manifest`, :func:`parse_manifest`).

Every problem raises :class:`fmstf_data.errors.ManifestError` naming the file, line and field.
"""

from fmstf_data.manifest.load import load_manifest, parse_manifest, parse_source, selector_syntax_problem
from fmstf_data.manifest.schema import (
    MANIFEST_VERSION,
    PAIR_OPTION_RULES,
    ROLES,
    SOURCE_KINDS,
    SPLITS,
    ExcludedSource,
    FormatSpec,
    Manifest,
    PairSpec,
    SourceSpec,
)

__all__ = [
    "MANIFEST_VERSION", "PAIR_OPTION_RULES", "ROLES", "SOURCE_KINDS", "SPLITS", "ExcludedSource", "FormatSpec",
    "Manifest", "PairSpec", "SourceSpec", "load_manifest", "parse_manifest", "parse_source",
    "selector_syntax_problem",
]
