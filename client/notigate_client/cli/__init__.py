"""The ``notigate`` command: the client commands, plus those other installed packages add.

Exit codes: 0 success; 1 the server refused or is not serving (for send-file also an invalid
row, or with --wait a failed message); 2 bad usage, configuration, or an unreadable input
file; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version

from notigate_client.cli import commands
from notigate_client.cli.registry import AddCommands, plugins

__all__ = ["main", "parser"]

_GATEWAY_COMMANDS = ("serve", "simulator", "sandbox")


def _version() -> str:
    try:
        return version("notigate-client")
    except PackageNotFoundError:  # running from a source tree
        return "unknown"


def parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The command-line parser; ``env`` supplies the flags' defaults."""
    return _build(env or {})[0]


def _build(env: Mapping[str, str]) -> tuple[argparse.ArgumentParser, set[str]]:
    """The parser and the names of its commands."""
    root = argparse.ArgumentParser(
        prog="notigate",
        description="notigate: a gRPC notification gateway for Telegram.",
        epilog="The client commands talk to a running gateway (exit 0 ok, 1 refused, invalid "
        "or not serving, 2 bad usage or unreadable file). serve and simulator come with the "
        "gateway's package "
        "(pip install notigate).",
    )
    root.add_argument("--version", action="version", version=f"notigate {_version()}")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for plugin in plugins():
        add: AddCommands = plugin.load()
        add(sub, env)
    commands.add_commands(sub, env)
    return root, set(sub.choices)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``notigate`` console script; ``env`` defaults to ``os.environ``.

    The one place of the client package that reads the environment: NOTIGATE_TARGET,
    NOTIGATE_API_TOKEN, NOTIGATE_CA and NOTIGATE_BOT become flag defaults, and commands
    added by other packages get the same mapping.
    """
    env = os.environ if env is None else env
    argv = sys.argv[1:] if argv is None else list(argv)
    root, names = _build(env)
    if argv and argv[0] in _GATEWAY_COMMANDS and argv[0] not in names:
        print(
            f"notigate: {argv[0]} runs the gateway, which this install lacks "
            "(pip install notigate, beside notigate-client)",
            file=sys.stderr,
        )
        return 2
    args = root.parse_args(argv)
    code: int = args.handler(args, env)
    return code


if __name__ == "__main__":
    sys.exit(main())
