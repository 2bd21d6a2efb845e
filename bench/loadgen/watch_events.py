"""A WatchEvents reader in a process of its own, so that its CPU and event loop are not
the bench's (which paces the load meanwhile).

    python bench/loadgen/watch_events.py '{"target": "127.0.0.1:PORT", "states": [4],
                                           "completed": N, "timeout": S}'

Prints ``ready`` once the stream's start position is fixed (every later event will be
read), then, after ``completed`` events entering COMPLETED or ``timeout`` s, one JSON
line: ``{"seen": [[job_id, state, event_ms, received_ms], ...], "errors": 0}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.event_watch import EventWatcher
from bench.load import grpc_stub
from bench.loadgen.pydrive import emit
from notigate_client import pb


async def main(o: dict[str, Any]) -> dict[str, Any]:
    channel, stub = await grpc_stub(o["target"])
    async with channel:
        watcher = await EventWatcher(stub, states=tuple(o.get("states", ()))).start()
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        try:
            await watcher.wait_count(pb.JOB_STATE_COMPLETED, o["completed"], o["timeout"])
        finally:
            await watcher.stop()
    seen = [[s.job_id, s.state, s.event_ms, s.received_ms] for s in watcher.seen]
    return {"seen": seen, "errors": 0}


if __name__ == "__main__":
    emit(asyncio.run(main(json.loads(sys.argv[1]))))
