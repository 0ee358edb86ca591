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

Each websocket's kernel send buffer is capped (``SO_SNDBUF``, the ``ws_send_buffer_bytes``
setting, see :func:`frame_writer_protocol`). Left to the kernel's autotuning it grew to megabytes
for a client that reads slowly (tests/faults/test_slow_clients.py: one that never reads took
about 5,000 track messages, 1.7 MB, before its connection stopped taking frames). Until then the
hub keeps writing it small frames, and a slow reader works through seconds of stale ones; with the
cap it soon stops taking frames, the hub keeps its pointer, and its next frame carries each track's
latest state at once.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from asyncio import BaseTransport
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

    send_buffer_bytes = 0
    """``SO_SNDBUF`` of each connection (Linux doubles it); 0 leaves the kernel's autotuning."""

    def connection_made(self, transport: BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if self.send_buffer_bytes and sock is not None:
            with contextlib.suppress(OSError):  # a socket that is already gone: nothing to cap
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)

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


def frame_writer_protocol(send_buffer_bytes: int) -> type[FrameWriterProtocol]:
    """:class:`FrameWriterProtocol` with each connection's send buffer capped at
    ``send_buffer_bytes`` (0: not capped), for uvicorn's ``ws`` setting."""
    return type("FrameWriterProtocol", (FrameWriterProtocol,), {"send_buffer_bytes": send_buffer_bytes})
