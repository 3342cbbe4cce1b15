"""The Rust example guests and the finish fixture, in Python, in one component.

The behaviour is picked by the last segment of the request path: ``hello``, ``echo``,
``headers``, ``seed-a``, ``seed-a2``, ``seed-b`` and ``finish`` do what ``guest/examples/*.rs``
and ``guest/fixtures/finish.rs`` do, with the same query parameters, output and log lines
(Rust's ``{:?}`` of a result or an option is spelt out where a line shows one). Any other path
gets a 404. Build: ``scripts/build-langs python``.
"""

import sys
import time
from typing import Callable, Dict, Optional

import tether
from tether import request, response


def debug_str(text: str) -> str:
    """Rust's ``{:?}`` of a string (the escapes ``char::escape_debug`` makes for ASCII and
    control characters)."""
    out = []
    for c in text:
        if c in "\\\"":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0:
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def debug_option(value: Optional[str]) -> str:
    """Rust's ``{:?}`` of an ``Option<String>``."""
    return "None" if value is None else "Some(" + debug_str(value) + ")"


def outcome(call: Callable[[], None]) -> str:
    """Rust's ``{:?}`` of ``result.map_err(|e| e.name())``: ``Ok(())`` or ``Err("aborted")``."""
    try:
        call()
        return "Ok(())"
    except tether.OutputError as error:
        return "Err(" + debug_str(error.reason) + ")"


def sleep_ms(ms: int) -> None:
    time.sleep(ms / 1000)


def abort_settings_as_asked() -> None:
    """``iua=1``: ignore user aborts; ``report=1``: have an aborted write reported, not trapped."""
    if request.query_u64("iua", 0) == 1:
        tether.ignore_user_abort(True)
    if request.query_u64("report", 0) == 1:
        tether.report_aborted_writes()


def hello() -> None:
    """Answers ``hello``: the smallest useful guest, used for throughput figures."""
    try:
        response.set_header("content-type", "text/plain")
    except tether.HeadError:
        pass
    tether.echo("hello\n")


def echo() -> None:
    """Sends the request body back, with the request's content type."""
    content_type = request.header("content-type")
    if content_type is not None:
        try:
            response.set_header("content-type", content_type)
        except tether.HeadError:
            pass
    while True:
        try:
            chunk = request.read_body(64 * 1024)
        except tether.BodyError as error:
            tether.log(f"body error: {error.reason}")
            try:
                response.set_status(400)
            except tether.HeadError:
                pass
            break
        if not chunk:
            break
        tether.echo(chunk)


def parse_u16(text: str) -> Optional[int]:
    digits = text[1:] if text.startswith("+") else text
    if not digits or not all("0" <= c <= "9" for c in digits) or int(digits) > 0xFFFF:
        return None
    return int(digits)


def headers() -> None:
    """Lists the request line and headers as text; ``?status=N``, ``?flush=1``, ``?vars=1``,
    ``?param=NAME``, ``?header=NAME``, ``?var=NAME`` as ``headers.rs``."""
    for header, value in (("content-type", "text/plain"), ("x-tether-guest", "headers")):
        try:
            response.set_header(header, value)
        except tether.HeadError:
            pass
    status = request.query_param("status")
    code = parse_u16(status) if status is not None else None
    if code is not None:
        try:
            response.set_status(code)
        except tether.HeadError:
            pass
    if request.query_param("flush") is not None:
        outcome(tether.flush)
    tether.echo(f"{request.method()} {request.target()} {request.protocol()}\n")
    for field, raw in request.headers():
        tether.echo(f"{field}: {raw.decode('utf-8', errors='replace')}\n")
    tether.echo(f"remote {debug_option(request.remote_addr())}\n")
    tether.echo(f"scheme {request.scheme()}\n")
    if request.query_param("vars") is not None:
        for var, raw in request.server_vars():
            tether.echo(f"var {var}={raw.decode('utf-8', errors='replace')}\n")
    name = request.query_param("param")
    if name is not None:
        tether.echo(f"param {debug_str(name)} = {debug_option(request.query_param(name))}\n")
    name = request.query_param("header")
    if name is not None:
        tether.echo(f"header {debug_str(name)} = {debug_option(request.header(name))}\n")
    name = request.query_param("var")
    if name is not None:
        tether.echo(f"server var {debug_str(name)} = {debug_option(request.server_var(name))}\n")


def seed_a() -> None:
    """Seed A: log, sleep (``ms``, default 3000), log: a request that produces no output."""
    abort_settings_as_asked()
    ms = request.query_u64("ms", 3000)
    tether.log(f"start cs={tether.connection_status()}")
    sleep_ms(ms)
    tether.log(f"end cs={tether.connection_status()}")


def seed_a2() -> None:
    """Seed A2: ``n`` times { write "22222"; flush; log; sleep; log the status }."""
    abort_settings_as_asked()
    n = request.query_u64("n", 6)
    ms = request.query_u64("ms", 1000)
    first_ms = request.query_u64("first_ms", ms)
    tether.log(f"start cs={tether.connection_status()}")
    for i in range(1, n + 1):
        tether.echo("22222")
        flushed = outcome(tether.flush)
        tether.log(f"w {i} cs={tether.connection_status()} flush={flushed}")
        sleep_ms(first_ms if i == 1 else ms)
        tether.log(f"iter {i} cs={tether.connection_status()}")
    tether.log(f"end cs={tether.connection_status()}")


def seed_b() -> None:
    """Seed B: 6 times { sleep; write 4096 bytes; log the status; flush }; ``outk`` limits
    the iterations that write."""
    abort_settings_as_asked()
    ms = request.query_u64("ms", 2000)
    first_ms = request.query_u64("first_ms", ms)
    outk = request.query_u64("outk", 6)
    tether.log(f"start cs={tether.connection_status()}")
    for i in range(6):
        sleep_ms(first_ms if i == 0 else ms)
        if i < outk:
            tether.echo(b"a" * 4096)
        tether.log(f"iter {i} cs={tether.connection_status()}")
        if tether.connection_aborted():
            tether.log(f"stop {i}")
        if i < outk:
            flushed = outcome(tether.flush)
            tether.log(f"w {i} cs={tether.connection_status()} flush={flushed}")
    tether.log(f"done cs={tether.connection_status()}")


def finish() -> None:
    """Answers, calls ``finish_request``, keeps working: ``ms`` (default 2000),
    ``post_echo=1``, ``stderr=1``, ``iua=1``, ``report=1``."""
    abort_settings_as_asked()
    tether.echo("response-body\n")
    finished = tether.finish_request()
    tether.log(f"finished {str(finished).lower()} cs={tether.connection_status()}")
    sleep_ms(request.query_u64("ms", 2000))
    if request.query_u64("stderr", 0) == 1:
        print("late stderr", file=sys.stderr, flush=True)
    tether.log(f"after_sleep cs={tether.connection_status()}")
    if request.query_u64("post_echo", 0) == 1:
        wrote = outcome(lambda: tether.write("late output\n"))
        flushed = outcome(tether.flush)
        tether.log(f"post_echo write={wrote} flush={flushed} cs={tether.connection_status()}")
    tether.log(f"end cs={tether.connection_status()}")


BEHAVIOURS: Dict[str, Callable[[], None]] = {
    "hello": hello,
    "echo": echo,
    "headers": headers,
    "seed-a": seed_a,
    "seed-a2": seed_a2,
    "seed-b": seed_b,
    "finish": finish,
}


def handle() -> None:
    behaviour = BEHAVIOURS.get(request.path().rstrip("/").rsplit("/", 1)[-1])
    if behaviour is None:
        response.set_status(404)
        tether.echo("no such behaviour: " + " ".join(BEHAVIOURS) + "\n")
        return
    behaviour()


WitWorld = tether.export_handler(handle)
