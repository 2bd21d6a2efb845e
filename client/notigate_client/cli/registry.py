"""How packages add subcommands to ``notigate``.

The ``notigate`` command belongs to the client package, so a backend that installs only
the client gets the client commands. Another installed distribution (the gateway's adds
``serve`` and ``simulator``) contributes its own through the entry point group
``notigate.commands``: each entry point names a function ``add_commands(sub, env)`` that
adds parsers to ``sub`` and sets a ``handler(args, env) -> exit code`` default on each.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import TypeAlias

GROUP = "notigate.commands"

# A string: argparse's class is generic only to type checkers.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace, Mapping[str, str]], int]
AddCommands = Callable[[Subparsers, Mapping[str, str]], None]


def plugins() -> list[EntryPoint]:
    """The installed contributions, in a stable order."""
    return sorted(entry_points(group=GROUP), key=lambda ep: ep.name)
