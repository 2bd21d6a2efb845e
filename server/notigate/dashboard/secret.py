"""The key that signs dashboard sessions, shared by every gateway on one store.

Made once by whichever gateway needs it first (SET NX) and read by the others, so a session
opened on one replica is good on all of them. Whoever can read the store can forge a
session; they can also read every job, so the store is the boundary either way. Deleting
the key ends every session (gateways read it again after a restart).
"""

from __future__ import annotations

import secrets

from redis.asyncio import Redis

from notigate.errors import StoreError
from notigate.queue.scripts import store_errors

__all__ = ["shared_key"]

_KEY_BYTES = 32


async def shared_key(redis: Redis, name: str) -> bytes:
    """The signing key stored at ``name``, created when there is none."""
    for _ in range(3):
        async with store_errors():
            await redis.set(name, secrets.token_bytes(_KEY_BYTES), nx=True)
            stored = await redis.get(name)
        # None: the store lost it between the two calls (a flush); make it again.
        if isinstance(stored, bytes) and len(stored) == _KEY_BYTES:
            return stored
    raise StoreError(f"the dashboard's key at {name} keeps vanishing or is not its own")
