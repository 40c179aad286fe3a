# SPDX-License-Identifier: MIT
"""Shell completion of recyclerctl (contrib/completion): the scripts load in
bash and zsh without error, and complete commands, the pool names of the
running daemon and their slots."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from recyclerd import RECYCLERCTL_BIN

SRC = Path(os.environ.get("RECYCLERD_SRCDIR",
                          Path(__file__).resolve().parents[2]))
BASH = SRC / "contrib/completion/bash/recyclerctl"
ZSH = SRC / "contrib/completion/zsh/_recyclerctl"


def env():
    e = dict(os.environ)
    e["PATH"] = f"{Path(RECYCLERCTL_BIN).resolve().parent}:{e['PATH']}"
    e.pop("RECYCLERD_SOCKET", None)
    return e


def bash_complete(words):
    """COMPREPLY for the command line words, the last being completed."""
    line = " ".join(f"'{w}'" for w in words)
    script = (f"set -u; source '{BASH}' || exit 9\n"
              f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
              "_recyclerctl; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script],
                       capture_output=True, text=True, env=env(),
                       timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return sorted(x for x in r.stdout.splitlines() if x)


def test_bash_completes_commands_pools_and_slots(recyclerd):
    recyclerd.write_config(pools={"web": {"workers": 2},
                                  "api": {"workers": 1}})
    recyclerd.start()
    recyclerd.wait_ready_workers(2)
    sock = str(recyclerd.control_path)
    assert bash_complete(["recyclerctl", "st"]) == ["start", "status", "stop"]
    assert bash_complete(["recyclerctl", "-s", sock, "status", ""]) == \
        ["api", "web"]
    assert bash_complete(["recyclerctl", "-s", sock, "recycle", "w"]) == \
        ["web"]
    assert bash_complete(["recyclerctl", "-s", sock, "recycle", "web",
                          ""]) == ["0", "1", "all"]
    assert bash_complete(["recyclerctl", "-s", sock, "events", "--pool",
                          "a"]) == ["api"]
    assert "--follow" in bash_complete(["recyclerctl", "logs", "--f"])
    # No daemon: no pool names, and no error either.
    assert bash_complete(["recyclerctl", "-s", sock + ".none", "stop",
                          ""]) == []


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh")
def test_zsh_loads_the_completion_and_finds_pools(recyclerd):
    recyclerd.write_config(pools={"web": {"workers": 1}})
    recyclerd.start()
    recyclerd.wait_ready_workers(1)
    # Loaded as compinit does (autoload from fpath), then its helper asks
    # the running daemon; compdef registers it for recyclerctl.
    script = (f"fpath=('{ZSH.parent}' $fpath)\n"
              "autoload -Uz compinit && compinit -u -D || exit 8\n"
              "[[ $_comps[recyclerctl] == _recyclerctl ]] || exit 7\n"
              f"source <(sed '$d' '{ZSH}') || exit 9\n"
              "typeset -A opt_args\n"
              f"opt_args[-s]='{recyclerd.control_path}'\n"
              "_recyclerctl_ask | grep -o '\"name\":\"[^\"]*\"'\n")
    r = subprocess.run(["zsh", "-f", "-c", script], capture_output=True,
                       text=True, env=env(), timeout=30)
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)
    assert r.stdout.strip() == '"name":"web"'
