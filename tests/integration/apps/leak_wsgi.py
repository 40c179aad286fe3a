# SPDX-License-Identifier: MIT
"""leak_wsgi.py - a WSGI application that leaks LEAK_KB (environment,
default 512) KiB per request, for the prefork servers under
recycle_scope = children (tests/integration/test_children.py, bench/).

Each response names the process that served it and its leak so far:
"pid 1234 leaked 2048K\n".
"""

import os

LEAK = int(os.environ.get("LEAK_KB", "512")) * 1024
_kept = []


def application(environ, start_response):
    # Written, not just allocated: the pages are resident and private.
    _kept.append(b"x" * LEAK)
    body = f"pid {os.getpid()} leaked {len(_kept) * LEAK // 1024}K\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body.encode()]
