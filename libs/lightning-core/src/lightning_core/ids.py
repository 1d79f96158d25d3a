from __future__ import annotations

import os
import secrets
import time


def new_id() -> str:
    """A UUIDv7 (RFC 9562): the millisecond, then 74 random bits; it appends to B-tree indexes."""
    octets = bytearray(os.urandom(16))
    octets[:6] = (time.time_ns() // 1_000_000).to_bytes(6)
    octets[6] = 0x70 | octets[6] & 0x0F  # version 7
    octets[8] = 0x80 | octets[8] & 0x3F  # variant 0b10 (RFC 9562)
    digits = octets.hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def new_token() -> str:
    """128 random bits as hex: an etag or a write's token."""
    return secrets.token_hex(16)
