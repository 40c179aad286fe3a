# SPDX-License-Identifier: MIT
"""heavy_app.py - the heavy WSGI application of bench/preload.sh (issue 12).

At import: HEAVY_DATA (default 80) MiB of read-only bytes objects, one MiB
each, and HEAVY_BURN (default 1.0) s of CPU, as a large framework and its
models would cost. Each request keeps LEAK_PER_REQUEST bytes (default 64K)
for recycling to contain. `application` is the WSGI callable.
"""

import os
import time

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _size(text):
    t = text.strip().upper()
    return int(float(t[:-1]) * UNITS[t[-1]]) if t[-1:] in UNITS else int(t)


DATA = tuple(os.urandom(1 << 20)
             for _ in range(int(os.environ.get("HEAVY_DATA", "80"))))
_end = time.process_time() + float(os.environ.get("HEAVY_BURN", "1.0"))
while time.process_time() < _end:
    pass
LEAK = _size(os.environ.get("LEAK_PER_REQUEST", "64K"))
_leaked = []


def application(environ, start_response):
    if LEAK:
        buf = bytearray(LEAK)
        buf[::4096] = b"\1" * len(range(0, LEAK, 4096))
        _leaked.append(buf)
    body = b"%d %d\n" % (os.getpid(), DATA[len(_leaked) % len(DATA)][0])
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
