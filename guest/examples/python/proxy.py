"""A wasi:http proxy component in Python (``wasi:http/proxy`` 0.2, built with componentize-py,
as a component for ``wasmtime serve`` or Spin is), which also imports Tether's ``conn`` and
``lifecycle`` for its connection status and ``finish-request``: the world ``tether:proxy/proxy``
in ``wit/wasi-http/proxy.wit``. It calls wasi:http's blocking functions directly, with no event
loop.

The behaviour is picked by the last segment of the request path, and does what the Rust proxy
fixture's (``guest/fixtures/proxy.rs``) of the same name does, with the same query parameters,
output and log lines: ``hello``, ``stream``, ``echo``, ``flood``, ``sleep``, ``spin``, and the
seeds of the abort table, ``seed-a``, ``seed-a2``, ``seed-b``, ``finish`` (ignore-user-abort is
the route's setting, not the guest's call). Any other path gets a 404. Build:
``scripts/build-langs python``.
"""

from typing import Callable, Dict, Iterable, Tuple
from urllib.parse import parse_qsl

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import conn, lifecycle, monotonic_clock
from wit_world.imports.streams import OutputStream
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

# The most bytes one `blocking-write-and-flush` or `write` may take (wasi:io's streams allow
# 4096 for the blocking calls).
CHUNK = 4096
# The most bytes one body read asks for.
READ_SIZE = 64 * 1024
NANOS_PER_MS = 1_000_000


class Query:
    """The request's query parameters, as numbers."""

    def __init__(self, target: str) -> None:
        self.params = dict(parse_qsl(target.partition("?")[2]))

    def number(self, name: str, default: int) -> int:
        value = self.params.get(name, "")
        return int(value) if value.isdigit() else default


def log(line: str) -> None:
    """A line on stdout, which the host copies into its log tagged with the request."""
    print(line, flush=True)


def cs() -> int:
    """The connection status, as the Tether seeds log it (PHP's ``connection_status()``)."""
    return conn.status()


def sleep_ms(ms: int) -> None:
    """Sleeps in a pollable."""
    with monotonic_clock.subscribe_duration(ms * NANOS_PER_MS) as timer:
        timer.block()


def outcome(call: Callable[[], None]) -> str:
    """How a write or flush went, as the Tether seeds log it: ``Ok(())`` or ``Err("aborted")``."""
    try:
        call()
        return "Ok(())"
    except Err:
        return 'Err("aborted")'


def respond(out: ResponseOutparam, status: int, headers: Iterable[Tuple[str, str]] = ()) -> Tuple[OutgoingBody, OutputStream]:
    """A response with ``headers``, set on ``out``, and its body and body stream."""
    response = OutgoingResponse(Fields.from_list([(name, value.encode()) for name, value in headers]))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(out, Ok(response))
    return body, body.write()


def write(stream: OutputStream, data: bytes) -> None:
    """Writes ``data`` without flushing, as ``echo`` does under an output buffer."""
    for start in range(0, len(data), CHUNK):
        with stream.subscribe() as ready:
            ready.block()
        stream.check_write()
        stream.write(data[start : start + CHUNK])


def finish(body: OutgoingBody, stream: OutputStream) -> None:
    """Ends the body."""
    stream.__exit__(None, None, None)
    try:
        OutgoingBody.finish(body, None)
    except Err as error:
        log(f"finish failed: {error.value}")


def hello(request: IncomingRequest, out: ResponseOutparam, query: Query) -> None:
    """``hello\\n`` with ``content-length: 6``."""
    body, stream = respond(out, 200, [("content-type", "text/plain"), ("content-length", "6")])
    outcome(lambda: stream.blocking_write_and_flush(b"hello\n"))
    finish(body, stream)


def streamed(request: IncomingRequest, out: ResponseOutparam, query: Query) -> None:
    """``n`` chunks (default 3), each written and flushed, ``ms`` apart (default 300)."""
    body, output = respond(out, 200, [("content-type", "text/plain")])
    for i in range(1, query.number("n", 3) + 1):
        outcome(lambda: output.blocking_write_and_flush(f"chunk {i}\n".encode()))
        log(f"flushed {i}")
        sleep_ms(query.number("ms", 300))
    finish(body, output)


def echo(request: IncomingRequest, out: ResponseOutparam, query: Query) -> None:
    """Logs ``reading``, then sends the request body back."""
    log("reading")
    incoming = request.consume()
    received = bytearray()
    with incoming.stream() as body_stream:
        while True:
            try:
                received += body_stream.blocking_read(READ_SIZE)
            except Err:
                break
    body, stream = respond(out, 200)
    outcome(lambda: write(stream, bytes(received)))
    finish(body, stream)


def flood(request: IncomingRequest, out: ResponseOutparam, query: Query) -> None:
    """Logs ``writing``, then writes and flushes ``mb`` MiB (default 32), then logs ``wrote``."""
    body, stream = respond(out, 200)
    log("writing")
    chunk = b"f" * CHUNK
    for _ in range((query.number("mb", 32) << 20) // CHUNK):
        try:
            stream.blocking_write_and_flush(chunk)
        except Err:
            break
    log("wrote")
    finish(body, stream)


def sleep(request: IncomingRequest, out: ResponseOutparam, query: Query) -> None:
    """Logs ``sleeping``, then blocks in a pollable for ``ms`` (default 10 s), then answers."""
    log("sleeping")
    sleep_ms(query.number("ms", 10_000))
    finish(*respond(out, 200))


def spin(request: IncomingRequest, out: ResponseOutparam, query: Query) -> None:
    """Logs ``spinning``, then loops for ever."""
    log("spinning")
    n = 0
    while True:
        n += 1


def seed_a(request: IncomingRequest, out: ResponseOutparam, query: Query) -> None:
    """Seed A: log, sleep (``ms``, default 3000), log: a request that produces no output."""
    body, stream = respond(out, 200)
    log(f"start cs={cs()}")
    sleep_ms(query.number("ms", 3000))
    log(f"end cs={cs()}")
    finish(body, stream)


def seed_a2(request: IncomingRequest, out: ResponseOutparam, query: Query) -> None:
    """Seed A2: ``n`` times { write and flush "22222"; log; sleep; log the status }."""
    body, stream = respond(out, 200)
    n, ms = query.number("n", 6), query.number("ms", 1000)
    first_ms = query.number("first_ms", ms)
    log(f"start cs={cs()}")
    for i in range(1, n + 1):
        result = outcome(lambda: stream.blocking_write_and_flush(b"22222"))
        log(f"w {i} cs={cs()} flush={result}")
        sleep_ms(first_ms if i == 1 else ms)
        log(f"iter {i} cs={cs()}")
    log(f"end cs={cs()}")
    finish(body, stream)


def seed_b(request: IncomingRequest, out: ResponseOutparam, query: Query) -> None:
    """Seed B: 6 times { sleep; write 4096 bytes; log the status; flush }."""
    body, stream = respond(out, 200)
    ms = query.number("ms", 2000)
    first_ms = query.number("first_ms", ms)
    log(f"start cs={cs()}")
    for i in range(6):
        sleep_ms(first_ms if i == 0 else ms)
        outcome(lambda: write(stream, b"a" * CHUNK))
        log(f"iter {i} cs={cs()}")
        if conn.aborted():
            log(f"stop {i}")
        result = outcome(stream.blocking_flush)
        log(f"w {i} cs={cs()} flush={result}")
    log(f"done cs={cs()}")
    finish(body, stream)


def finish_request(request: IncomingRequest, out: ResponseOutparam, query: Query) -> None:
    """Answers, calls ``finish-request``, sleeps ``ms`` (default 2000), logs."""
    body, stream = respond(out, 200)
    outcome(lambda: write(stream, b"response-body\n"))
    stream.__exit__(None, None, None)
    finished = lifecycle.finish_request()
    log(f"finished {str(finished).lower()} cs={cs()}")
    sleep_ms(query.number("ms", 2000))
    log(f"after_sleep cs={cs()}")
    log(f"end cs={cs()}")
    try:
        OutgoingBody.finish(body, None)
    except Err:
        pass


BEHAVIOURS: Dict[str, Callable[[IncomingRequest, ResponseOutparam, Query], None]] = {
    "hello": hello,
    "stream": streamed,
    "echo": echo,
    "flood": flood,
    "sleep": sleep,
    "spin": spin,
    "seed-a": seed_a,
    "seed-a2": seed_a2,
    "seed-b": seed_b,
    "finish": finish_request,
}


class IncomingHandler(exports.IncomingHandler):
    """The export ``wasi:http/incoming-handler``: one request per fresh instance."""

    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        target = request.path_with_query() or "/"
        behaviour = BEHAVIOURS.get(target.partition("?")[0].rsplit("/", 1)[-1])
        if behaviour is None:
            body, stream = respond(response_out, 404)
            outcome(lambda: write(stream, b"no such behaviour\n"))
            finish(body, stream)
            return
        behaviour(request, response_out, Query(target))
