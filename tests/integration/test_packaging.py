# SPDX-License-Identifier: MIT
"""test_packaging.py - what `make install` and the Debian package install.

- `make install DESTDIR=...` in the build directory (RECYCLERD_BUILDDIR, or
  the directory above RECYCLERD_BIN's src/) puts every file where configure
  said, keeps an edited recyclerd.conf on a second install and on
  uninstall, and the installed programs run: --version, --help, and -t on
  the installed recyclerd.conf with pools_dir in DESTDIR holding the
  installed example pool.
- packaging/build-deb.sh builds the .deb (a minute or two: autoreconf,
  configure, build, without the unit tests and the debug package), whose
  file list, conffiles, maintainer scripts and unit are checked, and
  lintian finds no error in it. Skipped without dpkg-buildpackage,
  debhelper or lintian.

Package builds take longer than the suite's per-test limit: these tests
have limits of their own (RECYCLERD_PACKAGING_TIMEOUT, 600s by default).
"""

import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from recyclerd import RECYCLERD_BIN, SLOW, SRCDIR

TIMEOUT = float(os.environ.get("RECYCLERD_PACKAGING_TIMEOUT") or 600) * SLOW
BUILDDIR = Path(os.environ.get("RECYCLERD_BUILDDIR")
                or Path(RECYCLERD_BIN).resolve().parents[1])
VERSION_RE = re.compile(r"^recyclerd \d+\.\d+\.\d+\S*$")


@pytest.fixture(autouse=True)
def time_limit():
    """Replaces conftest's SIGALRM limit: every command below has a
    timeout, and a package build needs more than that limit."""
    yield


def run(cmd, **kw):
    """Run cmd, return its CompletedProcess; fail the test with its output
    when it exits non-zero (check=False to look at the status oneself)."""
    check = kw.pop("check", True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=kw.pop("timeout", TIMEOUT), **kw)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))}: exit status "
                    f"{p.returncode}\n{p.stdout[-20000:]}", pytrace=False)
    return p


def make_env():
    """The environment for a make of our own: without the jobserver and
    flags of the `make check` that runs this suite."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
              "DESTDIR"):
        env.pop(k, None)
    return env


def make_vars(names):
    """The values of Makefile variables of BUILDDIR, fully expanded."""
    rules = "".join(f"print-{n}:\n\t@echo '{n}=$({n})'\n" for n in names)
    p = run(["make", "-s", "-C", str(BUILDDIR), "-f", "Makefile", "-f", "-",
             *(f"print-{n}" for n in names)], input=rules, env=make_env())
    got = dict(line.split("=", 1) for line in p.stdout.splitlines()
               if "=" in line)
    assert set(got) == set(names), p.stdout
    return got


# ---- make install ----------------------------------------------------------

needs_builddir = pytest.mark.skipif(
    not (BUILDDIR / "Makefile").is_file() or shutil.which("make") is None,
    reason=f"no configured build directory at {BUILDDIR} (set "
    "RECYCLERD_BUILDDIR) or no make")

DIRS = ("bindir", "sbindir", "sysconfdir", "mandir", "docdir",
        "systemdsystemunitdir", "sysusersdir", "tmpfilesdir", "VERSION")
# Installed unless configure was given --with-DIR=no.
SYSTEMD_FILES = {"systemdsystemunitdir": "recyclerd.service",
                 "sysusersdir": "recyclerd.conf",
                 "tmpfilesdir": "recyclerd.conf"}


def installed(destdir, d, where):
    """DESTDIR/$(dir)/name for where = (dir, name)."""
    return Path(str(destdir) + d[where[0]]) / where[1]


@needs_builddir
def test_make_install_destdir_installs_runnable_programs(tmp_path):
    dest = tmp_path / "dest"
    d = make_vars(DIRS)
    relative = [f"{k}={v}" for k, v in d.items()
                if k != "VERSION" and v != "no" and not v.startswith("/")]
    assert not relative, f"installation directories not absolute: {relative}"
    run(["make", "-C", str(BUILDDIR), "install", f"DESTDIR={dest}"],
        env=make_env())

    expect = [("sbindir", "recyclerd"), ("bindir", "recyclerctl"),
              ("sysconfdir", "recyclerd/recyclerd.conf"),
              ("mandir", "man8/recyclerd.8"), ("mandir", "man1/recyclerctl.1"),
              ("mandir", "man5/recyclerd.conf.5"),
              ("mandir", "man7/recyclerd-protocol.7"),
              ("docdir", "README.md"), ("docdir", "operators-guide.md"),
              ("docdir", "examples/pools.d/example.conf"),
              ("docdir", "examples/recyclerd.socket")]
    for key, name in SYSTEMD_FILES.items():
        if d[key] != "no":
            expect.append((key, name))
    missing = [str(installed(dest, d, e)) for e in expect
               if not installed(dest, d, e).is_file()]
    assert not missing, "not installed: " + ", ".join(missing)
    pools = installed(dest, d, ("sysconfdir", "recyclerd/pools.d"))
    assert pools.is_dir() and not any(pools.iterdir())

    # The unit starts the installed daemon on the installed file.
    if d["systemdsystemunitdir"] != "no":
        unit = installed(dest, d, ("systemdsystemunitdir",
                                   "recyclerd.service")).read_text()
        assert (f"\nExecStart={d['sbindir']}/recyclerd -c "
                f"{d['sysconfdir']}/recyclerd/recyclerd.conf\n") in unit
        assert not re.search(r"@\w+@", unit), "unsubstituted @VAR@"

    daemon = installed(dest, d, ("sbindir", "recyclerd"))
    ctl = installed(dest, d, ("bindir", "recyclerctl"))
    p = run([daemon, "--version"], timeout=30)
    assert p.stdout.strip() == f"recyclerd {d['VERSION']}"
    assert VERSION_RE.match(p.stdout.strip())
    p = run([ctl, "--help"], timeout=30)
    assert "usage: recyclerctl" in p.stdout

    # The installed configuration, with pools_dir in DESTDIR holding the
    # installed example pool, passes the check.
    conf = installed(dest, d, ("sysconfdir", "recyclerd/recyclerd.conf"))
    text = conf.read_text()
    assert re.search(r"(?m)^\[recyclerd\]$", text), "no [recyclerd] section"
    edited = re.sub(r"(?m)^\[recyclerd\]$",
                    f"[recyclerd]\npools_dir = {pools}", text, count=1)
    conf.write_text(edited)
    shutil.copy(installed(dest, d, ("docdir", "examples/pools.d/example.conf")),
                pools / "example.conf")
    p = run([daemon, "-t", "-c", conf], timeout=30)
    assert p.stdout.strip() == f"{conf}: configuration ok (1 pool)"

    # An operator's edited file survives a second install and uninstall.
    run(["make", "-C", str(BUILDDIR), "install", f"DESTDIR={dest}"],
        env=make_env())
    assert conf.read_text() == edited
    run(["make", "-C", str(BUILDDIR), "uninstall", f"DESTDIR={dest}"],
        env=make_env())
    left = sorted(str(p.relative_to(dest)) for p in dest.rglob("*")
                  if not p.is_dir())
    assert left == sorted(str(p.relative_to(dest))
                          for p in (conf, pools / "example.conf")), left


# ---- Debian package --------------------------------------------------------

DEB_TOOLS = ("dpkg-buildpackage", "dpkg-deb", "dh", "dh_installsysusers",
             "dh_autoreconf")
needs_deb_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in DEB_TOOLS),
    reason="building the .deb needs " + ", ".join(DEB_TOOLS) +
    " (packages dpkg-dev, debhelper, dh-autoreconf)")


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """The .deb built by packaging/build-deb.sh from this source tree."""
    out = tmp_path_factory.mktemp("deb")
    env = make_env()
    # The unit tests ran in `make check` already; no -dbgsym package.
    env["DEB_BUILD_OPTIONS"] = "nocheck noddebs"
    env["TMPDIR"] = str(out)
    run(["sh", str(SRCDIR / "packaging/build-deb.sh"), str(out)], env=env)
    debs = list(out.glob("recyclerd_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


def deb_member(deb, name):
    """The text of file NAME (./path) of the package's data."""
    p = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb],
                       stdout=subprocess.PIPE, check=True, timeout=60)
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as t:
        return t.extractfile(name).read().decode()


@needs_deb_tools
def test_deb_holds_programs_config_units_and_man_pages(deb):
    listing = run(["dpkg-deb", "-c", deb], timeout=60).stdout
    files = {line.split()[5] for line in listing.splitlines()}
    unitdir = "./usr/lib" if "./usr/lib/systemd/system/" in files else "./lib"
    want = ["./usr/sbin/recyclerd", "./usr/bin/recyclerctl",
            "./etc/recyclerd/recyclerd.conf", "./etc/recyclerd/pools.d/",
            f"{unitdir}/systemd/system/recyclerd.service",
            "./usr/lib/sysusers.d/recyclerd.conf",
            "./usr/lib/tmpfiles.d/recyclerd.conf",
            "./usr/share/man/man8/recyclerd.8.gz",
            "./usr/share/man/man1/recyclerctl.1.gz",
            "./usr/share/man/man5/recyclerd.conf.5.gz",
            "./usr/share/man/man7/recyclerd-protocol.7.gz",
            "./usr/share/doc/recyclerd/copyright",
            "./usr/share/doc/recyclerd/operators-guide.md.gz",
            "./usr/share/doc/recyclerd/examples/pools.d/example.conf",
            "./usr/share/doc/recyclerd/examples/recyclerd.socket"]
    missing = [f for f in want if f not in files]
    assert not missing, f"missing from {deb.name}: {missing}\n{listing}"
    # An example, not a unit to enable at install (it binds port 8080).
    assert f"{unitdir}/systemd/system/recyclerd.socket" not in files

    conffiles = run(["dpkg-deb", "-I", deb, "conffiles"], timeout=60).stdout
    assert "/etc/recyclerd/recyclerd.conf" in conffiles.split()

    unit = deb_member(deb, f"{unitdir}/systemd/system/recyclerd.service")
    assert ("\nExecStart=/usr/sbin/recyclerd -c "
            "/etc/recyclerd/recyclerd.conf\n") in unit

    # The group comes from the sysusers.d entry; the unit is enabled, and
    # started only where systemd runs (dpkg -i works without it).
    postinst = run(["dpkg-deb", "-I", deb, "postinst"], timeout=60).stdout
    assert "systemd-sysusers" in postinst
    assert "deb-systemd-helper enable 'recyclerd.service'" in postinst
    start = postinst.index("deb-systemd-invoke")
    assert "if [ -d /run/systemd/system ]" in postinst[:start]
    depends = run(["dpkg-deb", "-f", deb, "Depends"], timeout=60).stdout
    assert "libev" in depends and "systemd-sysusers" in depends


@needs_deb_tools
@pytest.mark.skipif(shutil.which("lintian") is None,
                    reason="no lintian (package lintian)")
def test_deb_has_no_lintian_errors(deb):
    p = run(["lintian", "--fail-on", "error", deb], check=False)
    errors = [line for line in p.stdout.splitlines()
              if line.startswith("E: ")]
    assert p.returncode == 0 and not errors, p.stdout
