"""Whether the client of a connection that sent a FIN read the answers written after it.

A FIN says either "I have sent everything" (a half-close: the client still reads, as ``nc -N``
and many scripts do) or "I have gone" (a full close). Which one shows only once an answer is
written: the kernel of a client that has gone answers the data with a reset. So the answers a
connection writes after its FIN are reported once that reset has had time to come back
(``GONE_CHECK_S``): with the status written, or as 499 when the peer reset the connection.
"""

from __future__ import annotations

import asyncio
import socket

# How long after the last answer a connection that sent a FIN waits for a reset before it closes
# and reports its answers as delivered: a round trip on any network a tweet classifier serves
# (on one host a reset is back in microseconds).
GONE_CHECK_S = 0.2

_TCP_CLOSE = 7  # linux/tcp_states.h: the state a reset leaves a connected socket in


def peer_reset(transport: asyncio.BaseTransport) -> bool:
    """True when the peer reset the connection (its kernel refused what was written). False
    when it did not, and where the socket's TCP state cannot be read (not Linux, not TCP)."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    sock = transport.get_extra_info("socket")
    if tcp_info is None or sock is None:
        return False
    try:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 1)[0] == _TCP_CLOSE)
    except OSError:
        return False
