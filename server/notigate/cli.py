"""The gateway's subcommands of ``notigate``: ``serve`` and ``simulator``.

The ``notigate`` command itself belongs to the client package (:mod:`notigate_client.cli`,
with send, send-file, stats, job, jobs, retry, cancel and health); this package adds
``serve``, ``simulator`` and ``sandbox`` (see :mod:`notigate.sandbox_cli`) through the
``notigate.commands`` entry point, :func:`add_commands`. Exit codes: 0 success, 1 the server
refused or is not serving (for ``serve``: its port or data dir is taken, or the data dir
cannot be written), 2 bad usage or configuration (a setting out of its range, all of them
named).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from notigate import sandbox_cli
from notigate.config import ConfigError, Settings, from_env
from notigate.errors import StartupRefused
from notigate.logs import setup_logging
from notigate_client.cli.registry import Subparsers

log = logging.getLogger("notigate")

SETUP_HELP = """\
notigate: BOT_TOKEN is not set.
  Set BOT_TOKEN to your bot's token (from @BotFather) to deliver to Telegram, or
  run `notigate serve --sandbox` to deliver to the built-in Bot API simulator."""


def _add_serve(sub: Subparsers) -> None:
    p = sub.add_parser("serve", help="run the gateway")
    p.set_defaults(handler=_run_serve)
    p.add_argument("--listen", help="gRPC address host:port (NOTIGATE_LISTEN)")
    p.add_argument(
        "--redis-url",
        help="redis://, rediss:// or unix:// (REDIS_URL; prefer the variable when the URL "
        "has a password: command lines are visible to other users); "
        "default: an embedded Valkey under the data dir",
    )
    p.add_argument("--telegram-api-url", help="Bot API root (TELEGRAM_API_URL)")
    p.add_argument("--data-dir", type=Path, help="embedded Valkey data (NOTIGATE_DATA_DIR)")
    p.add_argument("--global-rate", type=int, help="bot-wide msg/s (NOTIGATE_GLOBAL_RATE)")
    p.add_argument("--concurrency", type=int, help="sends in flight (NOTIGATE_CONCURRENCY)")
    p.add_argument(
        "--sandbox",
        action="store_true",
        default=None,
        help="deliver to the built-in Bot API simulator (no Telegram)",
    )
    p.add_argument(
        "--sandbox-listen",
        help="host:port of the sandbox's Bot API simulator, port 0 for any free one "
        "(NOTIGATE_SANDBOX_LISTEN, default 127.0.0.1:8081)",
    )
    p.add_argument(
        "--metrics-listen",
        help="host:port of the Prometheus /metrics endpoint (NOTIGATE_METRICS_LISTEN)",
    )
    p.add_argument(
        "--dashboard-listen",
        help="host:port of the web dashboard, or off (NOTIGATE_DASHBOARD_LISTEN; "
        "sandbox default 127.0.0.1:8082)",
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="log lines for people or machines (NOTIGATE_LOG_FORMAT)",
    )
    p.add_argument("--log-level", default="info")


def _add_simulator(sub: Subparsers) -> None:
    p = sub.add_parser("simulator", help="run the Bot API simulator")
    p.set_defaults(handler=_run_simulator)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument(
        "--token",
        action="append",
        default=[],
        help="accepted bot token (repeatable); default: the sandbox token",
    )
    p.add_argument("--no-limits", action="store_true", help="do not enforce Telegram's limits")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of 5xx answers")
    p.add_argument("--latency", type=float, default=0.0, help="added latency, seconds")
    p.add_argument("--log-level", default="info")


def add_commands(sub: Subparsers, env: Mapping[str, str]) -> None:
    """Add ``serve`` and ``simulator`` (the ``notigate.commands`` entry point)."""
    _add_serve(sub)
    _add_simulator(sub)
    sandbox_cli.add_commands(sub, env)


async def _serve(settings: Settings) -> None:
    from notigate.app import Gateway

    loop = asyncio.get_running_loop()
    async with Gateway(settings) as gateway:
        # What startup built (each bot's clients, pools, scripts) lives as long as the
        # process: frozen out of the collector's sight, a full collection does not walk it
        # (with a thousand bots, walking it held the event loop long enough to bunch sends).
        gc.freeze()

        def on_signal(sig: signal.Signals) -> None:
            log.info("%s received; shutting down", sig.name)
            stopping.append(asyncio.ensure_future(gateway.stop()))

        stopping: list[asyncio.Future[None]] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        await gateway.wait_stopped()


async def _simulate(args: argparse.Namespace) -> None:
    from notigate.simulator import SimulatorConfig, run_simulator
    from notigate.simulator.config import SANDBOX_TOKEN

    config = SimulatorConfig(
        enforce_limits=not args.no_limits,
        error_rate=args.error_rate,
        latency_s=args.latency,
    )
    await run_simulator(args.host, args.port, args.token or [SANDBOX_TOKEN], config)


def _run_simulator(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    setup_logging(args.log_level)
    try:
        asyncio.run(_simulate(args))
    except OSError as exc:  # the port is taken (sandbox mode uses 8081 too)
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        print(
            f"notigate: simulator cannot listen on {args.host}:{args.port}: {reason}",
            file=sys.stderr,
        )
        return 2
    return 0


def _run_serve(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """``notigate serve``: settings from ``env`` and the flags, then run until a signal."""
    try:
        settings = from_env(
            env,
            listen=args.listen,
            redis_url=args.redis_url,
            telegram_api_url=args.telegram_api_url,
            data_dir=args.data_dir,
            global_rate=args.global_rate,
            concurrency=args.concurrency,
            sandbox=args.sandbox,
            sandbox_listen=args.sandbox_listen,
            metrics_listen=args.metrics_listen,
            dashboard_listen=args.dashboard_listen,
            log_format=args.log_format,
        )
    except ConfigError as exc:
        print(f"notigate: {exc}", file=sys.stderr)
        return 2
    if not settings.bots and not settings.bot_token and not settings.sandbox:
        print(SETUP_HELP, file=sys.stderr)
        return 2
    # Every bot's token is a secret the logs must not show.
    secrets = [bot.token or "" for bot in settings.bot_list()]
    setup_logging(
        args.log_level,
        settings.log_format,
        [*secrets, *settings.api_tokens, *settings.readonly_tokens],
    )
    for notice in settings.notices:
        log.warning("%s", notice)
    try:
        asyncio.run(_serve(settings))
    except StartupRefused as exc:
        print(f"notigate: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:  # found at startup, e.g. the sandbox's port in use
        print(f"notigate: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """``python -m notigate.cli``: the same as the ``notigate`` command."""
    from notigate_client.cli import main as notigate_main

    return notigate_main(argv, env)


if __name__ == "__main__":
    sys.exit(main())
