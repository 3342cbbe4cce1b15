"""The request being handled (PHP: ``$_SERVER``, ``$_GET``, ``getallheaders()``,
``php://input``)."""

from __future__ import annotations

from typing import List, Optional, Tuple

from componentize_py_types import Err
from wit_world.imports import request as _raw

from ._errors import BodyError

__all__ = [
    "method",
    "target",
    "protocol",
    "remote_addr",
    "scheme",
    "path",
    "query_string",
    "query_param",
    "query_u64",
    "headers",
    "header",
    "server_vars",
    "server_var",
    "read_body",
    "body",
]

_U64_MAX = 2**64 - 1
_BODY_CHUNK = 64 * 1024
"""Bytes asked for per read by ``body``; the host may return fewer."""


def method() -> str:
    """The request method, for example ``GET`` (PHP: ``$_SERVER['REQUEST_METHOD']``)."""
    return _raw.method()


def target() -> str:
    """The request target: path plus query (PHP: ``$_SERVER['REQUEST_URI']``)."""
    return _raw.target()


def protocol() -> str:
    """``HTTP/1.0`` or ``HTTP/1.1``, or over FastCGI what the web server reports
    (PHP: ``$_SERVER['SERVER_PROTOCOL']``)."""
    return _raw.protocol()


def remote_addr() -> Optional[str]:
    """The client's ``IP:PORT``; ``None`` over a Unix socket (PHP: ``$_SERVER['REMOTE_ADDR']``)."""
    return _raw.remote_addr()


def scheme() -> str:
    """``https`` when a web server in front terminated TLS and says so, else ``http``
    (PHP: ``$_SERVER['REQUEST_SCHEME']``)."""
    return _raw.scheme()


def path() -> str:
    """The path part of the target."""
    return _raw.target().split("?", 1)[0]


def query_string() -> Optional[str]:
    """The query string without the ``?`` (PHP: ``$_SERVER['QUERY_STRING']``); ``None`` if the
    target has no ``?``."""
    parts = _raw.target().split("?", 1)
    return parts[1] if len(parts) == 2 else None


def _form_decode(text: str) -> str:
    """``application/x-www-form-urlencoded`` decoding as the Rust SDK does it: ``+`` is a space,
    ``%XX`` a byte, a ``%`` without two hex digits stays, invalid UTF-8 becomes U+FFFD."""
    raw = text.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        byte = raw[i]
        hex_digits = raw[i + 1 : i + 3]
        if byte == 0x25 and len(hex_digits) == 2 and all(c in b"0123456789abcdefABCDEF" for c in hex_digits):
            out.append(int(hex_digits, 16))
            i += 3
        elif byte == 0x2B:
            out.append(0x20)
            i += 1
        else:
            out.append(byte)
            i += 1
    return out.decode("utf-8", errors="replace")


def query_param(name: str) -> Optional[str]:
    """The query parameter ``name``, as PHP's ``$_GET[name]``: names and values
    percent-decoded (``+`` is a space), and the last of several wins."""
    query = query_string()
    if query is None:
        return None
    for pair in reversed(query.split("&")):
        key, _, value = pair.partition("=")
        if _form_decode(key) == name:
            return _form_decode(value)
    return None


def query_u64(name: str, default: int) -> int:
    """The query parameter ``name`` as a non-negative integer (digits, an optional leading
    ``+``, at most 2**64-1), or ``default``."""
    value = query_param(name)
    if value is None:
        return default
    digits = value[1:] if value.startswith("+") else value
    if not digits or not all("0" <= c <= "9" for c in digits):
        return default
    number = int(digits)
    return number if number <= _U64_MAX else default


def headers() -> List[Tuple[str, bytes]]:
    """All headers in arrival order, names lowercased, values as raw bytes
    (PHP: ``getallheaders()``)."""
    return _raw.headers()


def header(name: str) -> Optional[str]:
    """The header ``name`` (case-insensitive), several fields of that name joined with ``, ``;
    ``None`` if there is none or a value is not UTF-8."""
    name = name.lower()
    values = [value for key, value in _raw.headers() if key == name]
    if not values:
        return None
    try:
        return ", ".join(value.decode() for value in values)
    except UnicodeDecodeError:
        return None


def server_vars() -> List[Tuple[str, bytes]]:
    """The CGI variables besides the headers, in order, values as raw bytes (PHP: ``$_SERVER``
    without its ``HTTP_*`` entries)."""
    return _raw.server_vars()


def server_var(name: str) -> Optional[str]:
    """The CGI variable ``name`` (PHP: ``$_SERVER[name]``, case-sensitive like it); ``None`` if
    there is none or its value is not UTF-8."""
    for key, value in reversed(_raw.server_vars()):
        if key == name:
            try:
                return value.decode()
            except UnicodeDecodeError:
                return None
    return None


def read_body(max: int) -> bytes:
    """The next body chunk of at most ``max`` bytes; ``b""`` at the end (PHP: reading
    ``php://input``). Raises ``BodyError``."""
    try:
        return _raw.read_body(max)
    except Err as e:
        raise BodyError(e.value) from None


def body() -> bytes:
    """The whole body. Raises ``BodyError``, dropping what was read before it (read with
    ``read_body`` to keep it)."""
    chunks: List[bytes] = []
    while True:
        chunk = read_body(_BODY_CHUNK)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
