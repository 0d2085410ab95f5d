"""Wire format shared by the shim and its client (see docs/internals.md, "shim/").

Control: one JSON request line per connection, one JSON response line. After ``attach``/``exec``
answer ok the connection carries frames shim→client ``[stream u8][0 0 0][len u32 BE][data]`` and raw
stdin bytes client→shim (half-close = stdin EOF).
"""

from __future__ import annotations

import struct

from dockyard.runtime import jsonio  # not ``json``: its re/enum imports cost the shim ~8 ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STDOUT = 1
STDERR = 2
EXIT = 3  # JSON {"exit_code": N}; ends an exec stream

HEADER = struct.Struct(">BxxxI")

READY_FILE = "ready"
EXIT_FILE = "exit"
SOCKET_FILE = "shim.sock"
LOG_FILE = "shim.log"
PID_FILE = "shim.pid"


def frame(stream: int, data: bytes) -> bytes:
    return HEADER.pack(stream, len(data)) + data


def encode(obj: dict[str, Any]) -> bytes:
    return jsonio.dumps(obj).encode() + b"\n"


def encode_list(items: list[str]) -> bytes:
    return jsonio.dumps(items).encode() + b"\n"
