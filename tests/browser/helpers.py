"""Sending traffic through the gateway and waiting for it to settle, for the browser tests."""

from __future__ import annotations

from notigate_client import AsyncNotificationClient, pb
from tests.conftest import wait_for

FINAL = {pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}
# A permanent refusal that does not suppress the chat: the job fails, the chat stays
# reachable once the simulator serves it again.
PERMANENT = "Bad Request: message is too long"


async def send(client: AsyncNotificationClient, chat_id: str, *texts: str) -> list[str]:
    ids = []
    for text in texts:
        sent = await client.send(chat_id, text)
        assert isinstance(sent, pb.SendResponse)
        ids.append(sent.job_id)
    return ids


async def wait_states(client: AsyncNotificationClient, job_ids: list[str], state: int) -> None:
    async def reached() -> bool:
        return all([(await client.get_job(j)).state == state for j in job_ids])

    await wait_for(reached)


async def wait_final(client: AsyncNotificationClient, job_ids: list[str]) -> None:
    async def settled() -> bool:
        return all([(await client.get_job(j)).state in FINAL for j in job_ids])

    await wait_for(settled)
