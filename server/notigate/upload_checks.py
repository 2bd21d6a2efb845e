"""What the API says about uploads: a Send's upload ids checked against the store, and
an UploadFile refusal as a gRPC status."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from notigate import rpc_status
from notigate.media import PHOTO_UPLOAD_MAX_BYTES, media_paths
from notigate.uploads import RefusalKind, UploadInfo, UploadRefused, UploadStore
from notigate.validation import FieldViolation
from notigate_client import pb

__all__ = ["refusal_status", "upload_problem", "upload_violations"]


async def upload_violations(
    store: UploadStore | None, requests: Sequence[pb.SendRequest], prefix: str, ttl_s: int
) -> list[FieldViolation]:
    """Every upload the messages send exists, is complete and fits its kind (one round
    trip); ``prefix`` formats a message's index into its field path (``messages[{}].``)."""
    where = [
        (f"{prefix.format(i)}{path}.upload_id", media)
        for i, request in enumerate(requests)
        for path, media in media_paths(request)
        if media.WhichOneof("source") == "upload_id"
    ]
    if not where:
        return []
    if store is None:
        return [
            FieldViolation(field=f, description="this gateway stores no uploads") for f, _ in where
        ]
    infos = await store.infos([media.upload_id for _, media in where])
    violations = []
    for (field, media), info in zip(where, infos, strict=True):
        problem = upload_problem(media, info, ttl_s)
        if problem is not None:
            violations.append(FieldViolation(field=field, description=problem))
    return violations


def upload_problem(media: pb.Media, info: UploadInfo | None, ttl_s: int) -> str | None:
    """Why ``media`` cannot be sent from the upload ``info`` describes (None: it can)."""
    if info is None:
        return (
            f"no upload {media.upload_id}: never uploaded, or trimmed (an upload no "
            f"unfinished job sends is kept {ttl_s} s)"
        )
    if not info.ready:
        return f"upload {media.upload_id} is not complete"
    if media.kind == pb.MEDIA_KIND_PHOTO and info.size > PHOTO_UPLOAD_MAX_BYTES:
        return (
            f"a photo is at most {PHOTO_UPLOAD_MAX_BYTES:,} bytes uploaded, this one is "
            f"{info.size:,}: send it as a document"
        )
    return None


def refusal_status(exc: UploadRefused) -> grpc.Status:
    """The status an UploadFile call refused this way ends with."""
    if exc.kind is RefusalKind.BUDGET_EXHAUSTED:
        return rpc_status.resource_exhausted(
            exc.message,
            reason=rpc_status.Reason.UPLOAD_BUDGET_EXHAUSTED,
            retry_after_s=exc.retry_after_s,
        )
    violations = list(exc.violations) or [FieldViolation(field="chunk", description=exc.message)]
    return rpc_status.invalid_argument(violations, message=exc.message)
