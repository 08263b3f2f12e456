"""Exception classes of fmstf-data.

Every error the library raises on purpose derives from :class:`FmstfError`, so callers (the CLI, the build
pipeline that turns failures into per-pair status rows) can catch ours without catching programming errors.
Messages say what was wrong, with the offending value, and what to do about it.
"""

from __future__ import annotations


class FmstfError(Exception):
    """Base class of every error fmstf-data raises deliberately."""


class ManifestError(FmstfError):
    """A manifest that cannot be used; the message names the file, the line and the field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, field: str | None = None):
        self.path = path
        self.line = line  # 1-based line number in the YAML file, when known
        self.field = field  # dotted path such as "pairs[2].split"
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        elif line is not None:
            where = f"line {line}: "
        what = f"{field}: " if field else ""
        super().__init__(f"{where}{what}{message}")
        self.message = message


class InvalidValueError(FmstfError, ValueError):
    """A value outside what a record, option or argument accepts (a dataclass's own check, a bad argument); the
    message names the field, shows the value and says what is allowed."""


class UnknownKeyError(FmstfError, KeyError):
    """A lookup of something that is not there: a pair ID not in the manifest, a frame no longer buffered."""

    def __str__(self) -> str:  # KeyError quotes its argument; ours is a sentence
        return str(self.args[0]) if self.args else ""


class SynthError(FmstfError, ValueError):
    """An impossible synthetic clip or pair specification (fmstf_data.synth); the message shows the value."""


class FetchError(FmstfError):
    """A source could not be fetched (missing file, download failure, bot check, ...)."""


class ProbeError(FmstfError):
    """A file could not be opened or read as a video."""


class SourceMismatchError(FmstfError):
    """A readable video that cannot serve in the role the manifest gives it (e.g. HLG given as HDR10)."""


class AlignmentError(FmstfError):
    """Two versions could not be aligned (different videos, unmappable geometry, frame-rate mismatch)."""


class ExtractError(FmstfError):
    """A pair's extraction could not finish (a chunk failed: its reason is in the message)."""


class SampleFormatError(FmstfError):
    """A stored sample that does not decode as the sample format says (corrupt bytes, wrong shapes)."""


class ColorError(FmstfError):
    """Invalid arguments to a colour conversion (unknown matrix, bit depth, range)."""


class ModelError(FmstfError, ValueError):
    """An unusable FMSTFnet configuration, input tensor or weights file (fmstf_model); the message shows the value."""


class LoaderError(FmstfError, ValueError):
    """Unusable loader options, source, split or resume state (fmstf_data.loader); the message shows the value."""


class DamagedShardError(FmstfError):
    """A shard that is missing, truncated or corrupt, met by the loader under ``on_damage="raise"``."""
