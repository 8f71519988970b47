"""JSON from outside (request bodies, helpdesk answers, uploaded files), read so that no document can crash us.

`json.loads` raises RecursionError, not a ValueError, for a document nested deeper than the interpreter's
recursion limit (`[[[[...` a few thousand times): code that turns malformed JSON into a clear 400 or a
transient helpdesk error would let that one through as an unexpected error (a 500, a traceback). Here it
is a `json.JSONDecodeError` like any other malformed document.
"""

from __future__ import annotations

import json
from typing import Any

TOO_DEEP = "nested too deeply (more levels of arrays and objects than ticketd reads)"


def loads(data: str | bytes | bytearray) -> Any:
    """`json.loads`, with a document nested too deeply reported as malformed JSON."""
    try:
        return json.loads(data)
    except RecursionError:
        text = data if isinstance(data, str) else ""
        start = len(text) - len(text.lstrip())  # where the document begins: its line is the culprit's
        raise json.JSONDecodeError(TOO_DEEP, text, start) from None
