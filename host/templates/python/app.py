"""A Tether handler: one request per fresh instance. ``tether build`` makes the component the
manifest serves (componentize-py, its command in tether.toml)."""

import time

import tether
from tether import request, response


def handle() -> None:
    response.set_header("content-type", "text/plain")
    tether.echo("hello from Python\n")
    # ``?sleep=MS`` waits before it finishes: a client that leaves meanwhile stops the guest here.
    ms = request.query_u64("sleep", 0)
    if ms > 0:
        tether.flush()
        time.sleep(ms / 1000)
        tether.echo("slept\n")


WitWorld = tether.export_handler(handle)
