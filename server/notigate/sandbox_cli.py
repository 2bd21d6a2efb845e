"""``notigate sandbox``: look at and steer the Bot API simulator of a sandbox gateway.

``messages`` lists what the simulator accepted (``--follow`` keeps listing), ``fail-chat``
makes a chat's sends fail the way Telegram fails them. Both speak HTTP to the simulator's
``/_sim`` control endpoints (see :mod:`notigate.simulator.control`) with the standard
library only, so they work wherever the server package is installed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from notigate.config import DEFAULT_SANDBOX_LISTEN
from notigate_client.cli.registry import Subparsers

__all__ = [
    "DEFAULT_URL",
    "add_commands",
    "command_hint",
    "default_url",
    "format_message",
    "run",
    "url_for",
]

# Seconds one long poll of --follow waits for a message before asking again.
_POLL_WAIT_S = 25.0
_TEXT_WIDTH = 72
# The simulator's answer header naming its instance (notigate.simulator.control).
_INSTANCE_HEADER = "X-Notigate-Simulator"
# fail-chat --error: (HTTP status, Telegram's description).
CHAT_ERRORS: dict[str, tuple[int, str]] = {
    "blocked": (403, "Forbidden: bot was blocked by the user"),
    "deactivated": (403, "Forbidden: user is deactivated"),
    "not-found": (400, "Bad Request: chat not found"),
}


def url_for(host: str, port: int) -> str:
    """The URL a local client reaches a server bound to ``host:port`` by."""
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):  # a wildcard bind is reached on loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _url_for_listen(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    return url_for(host, int(port))


DEFAULT_URL = _url_for_listen(DEFAULT_SANDBOX_LISTEN)


def default_url(env: Mapping[str, str]) -> str:
    """The simulator of a gateway started with the same ``NOTIGATE_SANDBOX_LISTEN``."""
    listen = env.get("NOTIGATE_SANDBOX_LISTEN", "")
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) == 0:
        # Port 0 is picked at startup: only the gateway's log knows it.
        return DEFAULT_URL
    return url_for(host, int(port))


def _url_arg(raw: str) -> str:
    """``--url``: an http(s) URL; a bare ``host:port`` means http."""
    if "://" not in raw:
        raw = f"http://{raw}"
    if not raw.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must be an http:// URL, got {raw!r}")
    return raw.rstrip("/")


def command_hint(subcommand: str, url: str) -> str:
    """The ``notigate sandbox`` command line that reaches the simulator at ``url``."""
    flag = "" if url == DEFAULT_URL else f" --url {url}"
    return f"notigate sandbox {subcommand}{flag}"


def add_commands(sub: Subparsers, env: Mapping[str, str]) -> None:
    """Add ``sandbox`` and its subcommands to ``sub``; ``--url``'s default comes from ``env``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        type=_url_arg,
        default=default_url(env),
        help="the sandbox simulator's root URL (default: from NOTIGATE_SANDBOX_LISTEN, "
        f"else {DEFAULT_URL}; the gateway logs it at startup)",
    )
    sandbox = sub.add_parser(
        "sandbox",
        help="what the sandbox's Bot API simulator received; make chats fail",
        description="Talk to the Bot API simulator of `notigate serve --sandbox`.",
    )
    sandbox.set_defaults(handler=lambda args, env: run(args))
    commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    p = commands.add_parser(
        "messages",
        parents=[common],
        help="the messages the simulator accepted, oldest first",
        description="One line per accepted message: local time, chat, Telegram message id, "
        "text (shortened). Exit 1 when the simulator cannot be reached.",
    )
    p.add_argument("--chat", help="only this chat id")
    p.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing new messages until Ctrl-C",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per message and line")
    p = commands.add_parser(
        "fail-chat",
        parents=[common],
        help="make sends to a chat fail as Telegram fails them",
        description="Sends to CHAT get Telegram's error answer until --clear: "
        + "; ".join(f"{name}: {status} {text!r}" for name, (status, text) in CHAT_ERRORS.items())
        + ". Such errors are permanent, so the gateway fails the job at once.",
    )
    p.add_argument("chat", help="chat id, e.g. 123456789")
    p.add_argument(
        "--error", choices=list(CHAT_ERRORS), default="blocked", help="which (default: blocked)"
    )
    p.add_argument("--clear", action="store_true", help="deliver to the chat again")


class SimulatorError(Exception):
    """The simulator did not answer, or not as a simulator does (wrong URL, not running)."""


def _request(
    url: str, *, body: Mapping[str, Any] | None = None, timeout_s: float = 10.0
) -> tuple[Any, str]:
    """One call: the decoded JSON answer and the simulator's instance id."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the user's own simulator URL
        url, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return json.loads(response.read()), response.headers.get(_INSTANCE_HEADER, "")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        if exc.code == 404:
            detail = "not a notigate Bot API simulator (no /_sim endpoints)"
        raise SimulatorError(f"HTTP {exc.code}: {detail}") from exc
    except http.client.HTTPException as exc:
        raise SimulatorError("no HTTP answer (is that the simulator's port?)") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, OSError) and reason.strerror:
            reason = reason.strerror
        raise SimulatorError(str(reason)) from exc


def _messages_url(base: str, after: int, chat: str | None, wait_s: float, instance: str) -> str:
    query: dict[str, str] = {"after": str(after)}
    if chat is not None:
        query["chat_id"] = chat
    if wait_s > 0:
        query["wait"] = str(wait_s)
    if instance:
        query["instance"] = instance
    return f"{base.rstrip('/')}/_sim/messages?{urllib.parse.urlencode(query)}"


def _shorten(text: str, width: int = _TEXT_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_message(message: Mapping[str, Any]) -> str:
    """One readable line: local wall-clock time, chat, message id, shortened text."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(message["date"])))
    text = str(message.get("text") or "")
    kind = str(message.get("kind") or "text")
    if kind != "text":
        # A media message: its kind, then its caption (if any).
        text = f"({kind}) {text}".rstrip()
    return f"{when}  chat {message['chat_id']}  #{message['message_id']}  {_shorten(text)}"


def _print(message: Mapping[str, Any], as_json: bool) -> None:
    print(
        json.dumps(message, ensure_ascii=False) if as_json else format_message(message), flush=True
    )


def _unreachable(url: str, exc: SimulatorError) -> None:
    print(
        f"notigate: sandbox simulator at {url}: {exc}\n"
        "  Is `notigate serve --sandbox` running? Its startup log names the simulator's URL "
        "(--url; default from NOTIGATE_SANDBOX_LISTEN).",
        file=sys.stderr,
    )


def _messages(args: argparse.Namespace) -> int:
    after = 0
    instance = ""
    printed = 0
    waiting_for_simulator = False
    while True:
        wait_s = _POLL_WAIT_S if args.follow else 0.0
        try:
            found, seen = _request(
                _messages_url(args.url, after, args.chat, wait_s, instance),
                timeout_s=wait_s + 10.0,
            )
        except SimulatorError as exc:
            if not args.follow:
                _unreachable(args.url, exc)
                return 1
            if not waiting_for_simulator:
                print(
                    f"notigate: sandbox simulator at {args.url}: {exc}; retrying every second",
                    file=sys.stderr,
                    flush=True,
                )
                waiting_for_simulator = True
            time.sleep(1.0)
            continue
        if waiting_for_simulator:
            print("notigate: simulator reachable again", file=sys.stderr, flush=True)
            waiting_for_simulator = False
        if instance and seen != instance:
            # A restarted simulator numbers its messages from 1 again: the cursor of the
            # old one would hide the new one's first messages, so this answer is dropped.
            print("notigate: the simulator was restarted", file=sys.stderr, flush=True)
            instance, after = seen, 0
            continue
        instance = seen
        for message in found:
            _print(message, args.json)
            after = max(after, int(message["seq"]))
        printed += len(found)
        if not args.follow:
            if printed == 0 and not args.json:
                to = f" to chat {args.chat}" if args.chat else ""
                print(f"(no messages{to} received yet)", file=sys.stderr)
            return 0


def _fail_chat(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    try:
        if args.clear:
            answer, _ = _request(f"{base}/_sim/unblock", body={"chat_id": args.chat})
            state = "delivered again" if answer.get("was_blocked") else "was not failing"
            print(f"chat {args.chat}: {state}")
            return 0
        status, description = CHAT_ERRORS[args.error]
        _request(
            f"{base}/_sim/block",
            body={"chat_id": args.chat, "status": status, "description": description},
        )
    except SimulatorError as exc:
        _unreachable(args.url, exc)
        return 1
    print(f"chat {args.chat}: sends now fail with {status} {description!r}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``sandbox`` command; its exit code (Ctrl-C ends --follow with 0)."""
    try:
        if args.sandbox_command == "messages":
            return _messages(args)
        return _fail_chat(args)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (| head): nothing left to say, and no traceback when the
        # interpreter flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
