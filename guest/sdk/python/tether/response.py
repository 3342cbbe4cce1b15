"""The response head (PHP: ``http_response_code()``, ``header()``, ``header_remove()``,
``headers_list()``, ``headers_sent()``). Changes raise ``HeadError`` once the head is sent."""

from __future__ import annotations

from typing import List, Tuple

from componentize_py_types import Err
from wit_world.imports import response as _raw

from ._errors import HeadError

__all__ = ["set_status", "set_header", "append_header", "remove_header", "headers_sent", "status", "headers"]


def set_status(code: int) -> None:
    """Sets the status code, 200 by default (PHP: ``http_response_code($code)``)."""
    try:
        _raw.set_status(code)
    except Err as e:
        raise HeadError(e.value) from None


def set_header(name: str, value: str) -> None:
    """Sets a header, replacing earlier ones of the same name (PHP: ``header("Name: value")``)."""
    try:
        _raw.set_header(name, value)
    except Err as e:
        raise HeadError(e.value) from None


def append_header(name: str, value: str) -> None:
    """Adds a header, keeping earlier ones of the same name
    (PHP: ``header("Name: value", false)``)."""
    try:
        _raw.append_header(name, value)
    except Err as e:
        raise HeadError(e.value) from None


def remove_header(name: str) -> None:
    """Removes every header called ``name`` (PHP: ``header_remove($name)``)."""
    try:
        _raw.remove_header(name)
    except Err as e:
        raise HeadError(e.value) from None


def headers_sent() -> bool:
    """Whether the head has been sent (PHP: ``headers_sent()``)."""
    return _raw.headers_sent()


def status() -> int:
    """The status code set so far, or sent (PHP: ``http_response_code()``)."""
    return _raw.status()


def headers() -> List[Tuple[str, str]]:
    """The headers set so far, or sent, names lowercased (PHP: ``headers_list()``)."""
    return _raw.headers()
