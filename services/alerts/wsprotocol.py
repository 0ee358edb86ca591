"""uvicorn's websockets protocol with one ASGI extension: ``lindero.frames``, synchronous writes.

Through ASGI, every frame to every client is an ``await send({...})`` through Starlette's
wrappers, uvicorn's state checks and websockets' frame objects. With thousands of clients that
per-frame cost, not the bytes, limited the fan-out (py-spy, bench/fanout.py at 5,000 clients: half
of the gateway's time in that path besides the socket write itself). This protocol (the alerts
service's ``ws`` setting, see ``websocket_options``) puts into each websocket scope::

    scope["extensions"]["lindero.frames"] = {"writable": () -> bool, "write": (data, binary) -> None}

``writable()`` says whether the connection takes another message now: False while the
transport's buffer is above its high-water mark (the client is not reading: try later), and it
raises :class:`ConnectionError` once the connection is closing or closed. ``write`` queues one
whole message (UTF-8 JSON as a text message, or as a binary one) on the transport, without
awaiting. Everything else (the handshake, pings, reading, closing) stays uvicorn's. Under any
other server the extension is absent and the hub sends through ASGI as before.
"""

from __future__ import annotations

import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Opcode
from websockets.protocol import State

FRAMES_EXTENSION = "lindero.frames"

_TEXT = 0x80 | Opcode.TEXT.value
_BINARY = 0x80 | Opcode.BINARY.value


def frame_header(length: int, binary: bool) -> bytes:
    """RFC 6455 §5.2 header of one unmasked, final, uncompressed frame of ``length`` bytes."""
    first = _BINARY if binary else _TEXT
    if length < 126:
        return bytes((first, length))
    if length < 65_536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


class FrameWriterProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol plus the ``lindero.frames`` extension."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # only set when the upgrade was accepted
        if scope is not None:
            scope["extensions"][FRAMES_EXTENSION] = {
                "writable": self.frames_writable,
                "write": self.write_frame,
            }

    def frames_writable(self) -> bool:
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.conn.state is not State.OPEN
            or self.transport.is_closing()
        ):
            raise ConnectionError("the websocket is closed")
        return self.writable.is_set()

    def write_frame(self, data: bytes, binary: bool) -> None:
        if self.conn.extensions:  # permessage-deflate: websockets compresses
            if binary:
                self.conn.send_binary(data)
            else:
                self.conn.send_text(data)
            self.transport.write(b"".join(self.conn.data_to_send()))
        else:
            self.transport.writelines((frame_header(len(data), binary), data))
