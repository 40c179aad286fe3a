# SPDX-License-Identifier: MIT
"""conftest.py - fixtures and hooks shared by the integration tests.

- `recyclerd`: a fresh Recyclerd (temp dir, marker, config writer) per test;
  its teardown always stops the daemon and fails the test if any process
  of the test is left behind.
- A per-test time limit with SIGALRM (pytest-timeout is not installed on
  Debian by default): RECYCLERD_TEST_TIMEOUT seconds, 120 by default.
- On failure, the daemon's log (and valgrind's report) is added to the
  test report.
"""

import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recyclerd as rd  # noqa: E402

TEST_TIMEOUT = float(os.environ.get("RECYCLERD_TEST_TIMEOUT") or 120) * rd.SLOW


class TimeLimitExceeded(Exception):
    pass


def _on_alarm(signum, frame):
    raise TimeLimitExceeded(f"test took longer than {TEST_TIMEOUT:.0f}s "
                      "(RECYCLERD_TEST_TIMEOUT)")


def pytest_collection_modifyitems(config, items):
    if not os.access(rd.RECYCLERD_BIN, os.X_OK):
        skip = pytest.mark.skip(reason=f"no recyclerd binary at "
                                f"{rd.RECYCLERD_BIN} (set RECYCLERD_BIN)")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def time_limit():
    """Fail a test that hangs instead of hanging the suite. The alarm
    stays armed through the daemon's teardown, which disarms it itself
    before its own (bounded) cleanup."""
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def recyclerd(request):
    """A Recyclerd for this test; write_config() then start() it."""
    d = rd.Recyclerd()
    request.node._recyclerd = d
    yield d
    # Teardown must run to the end: it is bounded by its own deadlines.
    signal.setitimer(signal.ITIMER_REAL, 0)
    problems = d.cleanup()
    if problems:
        pytest.fail("teardown: " + "\n".join(problems), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    d = getattr(item, "_recyclerd", None)
    if d is None or not rep.failed:
        return
    text = d.log_text()
    if len(text) > 60000:
        text = "[... head cut ...]\n" + text[-60000:]
    rep.sections.append((f"recyclerd log ({d.dir})", text or "(empty)"))
    vg = d.valgrind_text() if rd.VALGRIND else ""
    if vg:
        rep.sections.append(("valgrind", vg))
