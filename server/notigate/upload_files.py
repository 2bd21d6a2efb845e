"""The uploads a media send references, resolved for one attempt.

Telegram takes a file's bytes once: its answer names a file_id that this bot may send
again without uploading. So each upload resolves to Telegram's file_id for its content
(per bot and media kind, remembered by :class:`~notigate.uploads.UploadStore`) when there
is one, else to its bytes. While one worker hands an upload's bytes to Telegram, the
others that need them wait and then reuse its file_id, which is stored before the
first sender lets them go: one file sent to a thousand chats is uploaded once, not once
per worker in flight. The file_id an upload resolved to is kept in this process for a
minute (an upload's content never changes), so a broadcast reads Redis once a minute
for it, not once per send.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from notigate.errors import StoreError
from notigate.outcomes import Delivered, Outcome, PermanentError, Postponed, TransientError
from notigate.queue import Lease
from notigate.telegram_media import Content
from notigate.uploads import UploadInfo, UploadStore

__all__ = ["CLAIM_WAIT_S", "UploadFiles", "bot_id"]

log = logging.getLogger(__name__)

# A job whose upload another worker is sending looks for its file_id this often, for
# this long at most (an upload of 50 MB to Telegram takes seconds), then is postponed.
CLAIM_POLL_S = 0.1
CLAIM_WAIT_MAX_S = 30.0
CLAIM_WAIT_S = 0.5
# How long this process trusts a file_id it resolved an upload to, and how many it keeps.
KNOWN_FOR_S = 60.0
_KNOWN_MAX = 10_000
# Telegram's answers to a file_id it does not take (any more, or for this kind).
_FILE_REFUSED = re.compile(r"wrong file identifier|can't use file of type|wrong remote file", re.I)


def bot_id(token: str) -> int:
    """The bot's id, the part of its token before the colon (file_ids are per bot)."""
    head = token.partition(":")[0]
    return int(head) if head.isdigit() else 0


class UploadFiles:
    """Resolve, and after the send remember, the uploads of one bot's media sends."""

    def __init__(self, store: UploadStore, bot_id: int, *, claim_ms: int, ttl_s: int) -> None:
        self.store = store
        self.bot_id = bot_id
        # A claim outlives a stuck sender no longer than a lease does.
        self._claim_ms = claim_ms
        self._ttl_s = ttl_s
        # (upload id, media kind) -> (Telegram's file_id, time.monotonic() when read).
        self._known: dict[tuple[str, int], tuple[str, float]] = {}

    async def send_with(
        self,
        lease: Lease,
        uploads: Sequence[tuple[str, int]],
        send: Callable[[Mapping[str, str | Content]], Awaitable[Outcome]],
    ) -> Outcome:
        """Resolve ``uploads``, ``send`` with them, keep the file_ids Telegram answers;
        the claims on uploads sent as bytes end only after that, so a job that waited
        for them finds the file_id and does not upload the bytes a second time."""
        resolved = await self.resolve(lease, uploads)
        if not isinstance(resolved, Mapping):
            return resolved
        try:
            outcome = await send(resolved)
            if isinstance(outcome, Delivered) and outcome.file_ids:
                await self.remember(outcome.file_ids, resolved)
            if isinstance(outcome, PermanentError) and await self.refused(
                outcome.description, uploads, resolved
            ):
                # Telegram no longer takes a file_id it gave for one of the uploads: it
                # is forgotten, and the next attempt sends the bytes again.
                return TransientError(f"{outcome.description} (a remembered file_id; uploading)")
            return outcome
        finally:
            await self.done(lease, resolved)

    def _cached(self, upload_id: str, kind: int) -> str | None:
        known = self._known.get((upload_id, kind))
        if known is None or time.monotonic() - known[1] > KNOWN_FOR_S:
            return None
        return known[0]

    def _keep(self, upload_id: str, kind: int, file_id: str) -> None:
        if len(self._known) >= _KNOWN_MAX:
            self._known.clear()
        self._known[(upload_id, kind)] = (file_id, time.monotonic())

    async def resolve(
        self, lease: Lease, uploads: Sequence[tuple[str, int]]
    ) -> Mapping[str, str | Content] | PermanentError | Postponed:
        """Each ``(upload id, media kind)`` as a file_id or bytes; or why the send cannot
        go now (the upload is gone, or another worker has been uploading it too long).

        While another worker hands an upload's bytes to Telegram this one waits for the
        file_id, holding its lease but no claim (so two album jobs each holding one
        upload never wait for each other): the rate-limit slot it was leased with then
        carries a send by file_id, not a postponement.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLAIM_WAIT_MAX_S
        while True:
            found = await self._try_resolve(lease, uploads)
            if not isinstance(found, str):
                return found
            if loop.time() >= deadline:
                return Postponed(CLAIM_WAIT_S, f"upload {found} is being sent by another job")
            await asyncio.sleep(CLAIM_POLL_S)

    async def _try_resolve(
        self, lease: Lease, uploads: Sequence[tuple[str, int]]
    ) -> Mapping[str, str | Content] | PermanentError | str:
        """As :meth:`resolve`, or the id of an upload another worker is sending (no
        claim held then)."""
        resolved: dict[str, str | Content] = {}
        for upload_id, kind in uploads:
            known = self._cached(upload_id, kind)
            if known is not None:
                resolved[upload_id] = known
        unknown = [(u, k) for u, k in uploads if u not in resolved]
        if not unknown:
            return resolved
        infos = await self.store.infos([upload_id for upload_id, _ in unknown])
        need_bytes: dict[str, UploadInfo] = {}
        for (upload_id, kind), info in zip(unknown, infos, strict=True):
            if info is None or not info.ready:
                return PermanentError(
                    f"upload {upload_id} is gone: an upload no unfinished job sends is kept "
                    f"{self._ttl_s} s"
                )
            file_id = await self.store.file_id(self.bot_id, kind, info.sha256)
            if file_id is not None:
                self._keep(upload_id, kind, file_id)
                resolved[upload_id] = file_id
            else:
                need_bytes[upload_id] = info
        claimed: list[str] = []
        for upload_id in sorted(need_bytes):
            if not await self.store.claim_first_send(upload_id, lease.token, self._claim_ms):
                await self._release(lease, claimed)
                return upload_id
            claimed.append(upload_id)
        for upload_id, info in need_bytes.items():
            data = await self.store.read(upload_id)
            if data is None:
                await self._release(lease, claimed)
                return PermanentError(f"upload {upload_id} is gone")
            resolved[upload_id] = Content(data, info.filename, info.content_type, info.sha256)
        return resolved

    async def _release(self, lease: Lease, upload_ids: Sequence[str]) -> None:
        for upload_id in upload_ids:
            await self.store.end_first_send(upload_id, lease.token)

    async def done(self, lease: Lease, resolved: Mapping[str, str | Content]) -> None:
        """The send is over: let other jobs of these uploads go."""
        for upload_id, value in resolved.items():
            if isinstance(value, Content):
                try:
                    await self.store.end_first_send(upload_id, lease.token)
                except StoreError:
                    # The claim expires by itself; the others only wait a little longer.
                    log.warning("upload %s: could not end its first send", upload_id)

    async def refused(
        self,
        description: str,
        uploads: Sequence[tuple[str, int]],
        resolved: Mapping[str, str | Content],
    ) -> bool:
        """Telegram refused a file (``description``): if it may have been a file_id
        remembered for one of ``uploads``, forget those, and say so (True)."""
        if not _FILE_REFUSED.search(description):
            return False
        forgot = False
        for upload_id, kind in uploads:
            if not isinstance(resolved.get(upload_id), str):
                continue
            self._known.pop((upload_id, kind), None)
            info = await self.store.info(upload_id)
            if info is not None and info.sha256:
                await self.store.forget_file_id(self.bot_id, kind, info.sha256)
                forgot = True
        return forgot

    async def remember(
        self, file_ids: Sequence[tuple[str, int, str]], resolved: Mapping[str, str | Content]
    ) -> None:
        """Telegram named a file_id for these uploads (sent as the bytes in ``resolved``):
        later sends reuse it. A failure here costs only a second upload later, never the
        delivery."""
        try:
            for upload_id, kind, file_id in file_ids:
                self._keep(upload_id, kind, file_id)
                content = resolved.get(upload_id)
                if isinstance(content, Content) and content.sha256:
                    await self.store.remember_file_id(self.bot_id, kind, content.sha256, file_id)
        except StoreError as exc:
            log.warning("could not remember Telegram's file_id of an upload: %s", exc)
