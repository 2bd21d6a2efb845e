"""The proto's parse modes and the Bot API's names for them.

Validation parses a text in its mode by name (:func:`notigate.formatting.check_message_text`)
and the sender passes the name to Telegram, so both read this one table. It is not in
:mod:`notigate.formatting`, which knows modes only by name: the Bot API simulator uses that
module and stays free of the proto.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from notigate_client import pb

__all__ = ["PARSE_MODE_NAMES"]

# Every ParseMode but PARSE_MODE_UNSPECIFIED (plain text: no parse_mode at all).
PARSE_MODE_NAMES: Mapping[int, str] = MappingProxyType(
    {
        pb.PARSE_MODE_HTML: "HTML",
        pb.PARSE_MODE_MARKDOWN_V2: "MarkdownV2",
        pb.PARSE_MODE_MARKDOWN: "Markdown",
    }
)
