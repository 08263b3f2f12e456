"""What a build writes: the sample codec, the WebDataset shard writer, and storage (local or object store).

- :mod:`~fmstf_data.store.samples`: a sample's members (exact code planes as zstd'd ``.npy``, JSON metadata) and
  :func:`encode_sample` / :func:`decode_sample` (design contract 2).
- :mod:`~fmstf_data.store.shards`: :class:`ShardWriter`, deterministic tars staged and renamed into place.
- :mod:`~fmstf_data.store.storage`: :class:`Storage` over ``pyarrow.fs`` (local paths, ``s3://``), atomic writes, and
  :func:`redact_uri` (a location as it may be shown: no secrets).
"""

from fmstf_data.store.samples import (
    DEFAULT_ZSTD_LEVEL,
    KEY_PATTERN,
    MEMBER_SUFFIXES,
    SAMPLE_FORMAT_VERSION,
    Sample,
    decode_metadata,
    decode_sample,
    encode_sample,
    sample_key,
)
from fmstf_data.store.shards import DEFAULT_MAX_SHARD_BYTES, ShardError, ShardInfo, ShardWriter
from fmstf_data.store.storage import Storage, StorageError, open_storage, redact_uri

__all__ = [
    "DEFAULT_MAX_SHARD_BYTES", "DEFAULT_ZSTD_LEVEL", "KEY_PATTERN", "MEMBER_SUFFIXES", "SAMPLE_FORMAT_VERSION",
    "Sample", "ShardError", "ShardInfo", "ShardWriter", "Storage", "StorageError", "decode_metadata",
    "decode_sample", "encode_sample", "open_storage", "redact_uri", "sample_key",
]
