"""A local Telegram Bot API simulator for tests, sandbox mode and benchmarks."""

from notigate.simulator.app import BotApiSimulator, build_app, run_simulator
from notigate.simulator.config import SimulatorConfig
from notigate.simulator.records import MessageRecord, RequestRecord, SentMessage, UploadTally

__all__ = [
    "BotApiSimulator",
    "MessageRecord",
    "RequestRecord",
    "SentMessage",
    "SimulatorConfig",
    "UploadTally",
    "build_app",
    "run_simulator",
]
