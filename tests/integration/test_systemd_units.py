# SPDX-License-Identifier: MIT
"""The systemd units pass `systemd-analyze verify`: the service generated
from recyclerd.service.in (with the built daemon standing in for the
installed one) and the example socket, in a private root."""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SRC = Path(os.environ.get("RECYCLERD_SRCDIR",
                          Path(__file__).resolve().parents[2]))
UNITS = SRC / "packaging" / "systemd"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze not installed "
                                "(Debian package systemd)")


def test_units_pass_systemd_analyze_verify():
    with tempfile.TemporaryDirectory(prefix="rd-units-") as tmp:
        root = Path(tmp)
        for d in ("usr/sbin", "bin", "usr/lib/systemd", "etc/systemd/system",
                  "etc/recyclerd"):
            (root / d).mkdir(parents=True)
        shutil.copytree("/usr/lib/systemd/system",
                        root / "usr/lib/systemd/system", symlinks=True)
        shutil.copy("/bin/kill", root / "bin/kill")
        shutil.copy(os.environ.get("RECYCLERD_BIN", "/bin/true"),
                    root / "usr/sbin/recyclerd")
        service = (UNITS / "recyclerd.service.in").read_text()
        service = service.replace("@sbindir@", "/usr/sbin")
        service = service.replace("@sysconfdir@", "/etc")
        assert "@" not in re.sub(r"#.*", "", service), \
            "an unsubstituted @variable@ left in the unit"
        unit_dir = root / "etc/systemd/system"
        (unit_dir / "recyclerd.service").write_text(service)
        shutil.copy(UNITS / "recyclerd.socket", unit_dir)
        run = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", f"--root={root}",
             str(unit_dir / "recyclerd.service"),
             str(unit_dir / "recyclerd.socket")],
            capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        # verify also reports problems it does not fail on
        assert not re.search(r"(?i)unknown|failed|not found|error",
                             run.stderr), run.stderr
