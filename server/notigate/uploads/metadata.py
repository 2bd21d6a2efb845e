"""What an upload's metadata must be before anything of it is stored."""

from __future__ import annotations

import re
import unicodedata

from notigate.uploads.errors import RefusalKind, UploadRefused, violation
from notigate.uploads.limits import UploadLimits
from notigate.validation import FieldViolation
from notigate_client import pb

MAX_FILENAME_CHARS = 255
MAX_CONTENT_TYPE_CHARS = 255

# RFC 6838 restricted names for type and subtype, then RFC 9110 parameters
# (`; name=token` or a quoted string). ASCII classes on purpose.
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_PARAM = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_QUOTED = r'"(?:[^"\\\x00-\x1f\x7f]|\\[\x20-\x7e])*"'
_CONTENT_TYPE = re.compile(rf"{_NAME}/{_NAME}(?:[ \t]*;[ \t]*{_PARAM}=(?:{_PARAM}|{_QUOTED}))*")
# Bidirectional overrides and isolates: they make "cod.exe\u202efdp" read as a PDF.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _filename_problem(name: str) -> str | None:
    if not name:
        return "required"
    if len(name) > MAX_FILENAME_CHARS:
        return f"at most {MAX_FILENAME_CHARS} characters"
    if "/" in name or "\\" in name:
        return "a name, not a path: no '/' or '\\'"
    if name in (".", ".."):
        return "a name, not '.' or '..'"
    if any(unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS for c in name):
        return "no control characters"
    if not name.strip():
        return "not only white space"
    return None


def metadata_violations(metadata: pb.UploadMetadata, limits: UploadLimits) -> list[FieldViolation]:
    """Every problem of ``metadata``; empty when it may be stored."""
    out: list[FieldViolation] = []
    problem = _filename_problem(metadata.filename)
    if problem:
        out.append(violation("metadata.filename", problem))
    content_type = metadata.content_type
    if content_type and (
        len(content_type) > MAX_CONTENT_TYPE_CHARS or not _CONTENT_TYPE.fullmatch(content_type)
    ):
        out.append(violation("metadata.content_type", "a MIME type such as 'application/pdf'"))
    if metadata.size <= 0:
        out.append(violation("metadata.size", "the file's size in bytes, at least 1"))
    elif metadata.size > limits.max_file_bytes:
        out.append(violation("metadata.size", f"at most {limits.max_file_bytes} bytes"))
    return out


def check_metadata(metadata: pb.UploadMetadata, limits: UploadLimits) -> None:
    """Raise UploadRefused (TOO_LARGE when the size alone is wrong by being too large,
    else INVALID) unless ``metadata`` may be stored."""
    out = metadata_violations(metadata, limits)
    if not out:
        return
    too_large = metadata.size > limits.max_file_bytes and len(out) == 1
    kind = RefusalKind.TOO_LARGE if too_large else RefusalKind.INVALID
    first = out[0]
    message = f"invalid upload: {first.field}: {first.description}"
    if len(out) > 1:
        message += f" (and {len(out) - 1} more)"
    raise UploadRefused(kind, message, out)
