"""How much the upload store holds, and for how long."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """The upload store's limits. The defaults:

    - ``max_file_bytes`` 50 MB: Telegram's limit for a multipart upload (any media but
      photos, whose 10 MB limit is the sender's to check: the kind is chosen per send).
    - ``budget_bytes`` 512 MiB held at once, complete and partial uploads together. The
      uploads live in the queue's Redis, in memory, beside the jobs, and a fork for
      persistence may copy them all (copy-on-write) at the worst moment; 512 MiB is ten
      files of the largest size or thousands of photos, and leaves a 2 GiB host room.
      Past it uploads are refused (RESOURCE_EXHAUSTED) until some expire.
    - ``ttl_s`` 24 h: an upload no unfinished job uses is kept this long (after its
      upload, or after its last job finished) for further sends.
    - ``partial_ttl_s`` 10 min: an upload whose stream sends nothing for this long is
      trimmed (its client died without a word).
    - ``chunk_bytes`` 1 MiB: the largest piece stored; bigger gRPC chunks are cut.
    - ``sweep_batch`` 20: expired uploads trimmed per script call at most, so no call
      runs long after a pile-up.
    - ``file_id_ttl_s`` 30 days: Telegram's file_ids last but may be revoked; each use
      renews it.
    """

    max_file_bytes: int = 50_000_000
    budget_bytes: int = 512 * MIB
    ttl_s: float = 24 * 3600.0
    partial_ttl_s: float = 600.0
    chunk_bytes: int = MIB
    sweep_batch: int = 20
    file_id_ttl_s: int = 30 * 24 * 3600

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) <= 0:
                raise ValueError(f"UploadLimits.{field.name} must be positive")
        if self.max_file_bytes > self.budget_bytes:
            raise ValueError("UploadLimits.max_file_bytes exceeds budget_bytes")

    @property
    def ttl_ms(self) -> int:
        return round(self.ttl_s * 1000)

    @property
    def partial_ttl_ms(self) -> int:
        return round(self.partial_ttl_s * 1000)

    def packed(self) -> str:
        """What the scripts read (ARGV[2], as ``cfg`` in Lua)."""
        return json.dumps(
            {
                "budget_bytes": self.budget_bytes,
                "ttl_ms": self.ttl_ms,
                "partial_ttl_ms": self.partial_ttl_ms,
                "sweep_batch": self.sweep_batch,
            },
            separators=(",", ":"),
        )
