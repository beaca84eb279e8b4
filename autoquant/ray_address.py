"""`--address` / RAY_ADDRESS checked in seconds, before Ray (or torch) is imported.

Ray itself retries an address where no Ray head answers for minutes; this module only
needs the standard library, so the CLI calls it first.
"""

from __future__ import annotations

import socket

from autoquant.errors import UserError


def check_address(address: str) -> None:
    """Fail fast when nothing at a host:port speaks gRPC, as a Ray head (or Ray Client) does:
    a TCP connection, then HTTP/2's client preface, which a gRPC server answers with a
    SETTINGS frame. Ray itself would retry such an address for minutes."""
    hostport = address.removeprefix("ray://")
    if address in ("auto", "local") or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
    except ValueError:
        raise UserError(f"--address {address}: expected HOST:PORT (e.g. 10.0.0.5:6379) or ray://HOST:PORT") from None
    except OSError as e:
        raise UserError(
            f"cannot reach a Ray cluster at {address}: {e.strerror or e} "
            "(start one there with `ray start --head`, or fix --address / RAY_ADDRESS)"
        ) from None
    try:
        with conn:
            conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
            header = conn.recv(9)
    except OSError:
        header = b""
    if len(header) < 4 or header[3] != 0x4:  # frame type 4: SETTINGS
        raise UserError(
            f"no Ray cluster answered at {address}: something else listens there "
            "(is it the head's GCS port, 6379 by default?)"
        )
