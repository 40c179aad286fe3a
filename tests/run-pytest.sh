#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/run-pytest.sh - the integration suite under `make check`.
#
# Runs pytest on tests/integration with the paths Makefile.am exports
# (RECYCLERD_BIN, RECYCLERCTL_BIN, RECYCLERD_HELPERS, RECYCLERD_SRCDIR,
# PYTHON3); extra arguments go to pytest (e.g. -k reload, -x, -v).
# Exit 77 tells automake the suite was skipped: no pytest for PYTHON3.
# Debian's /usr/bin/python3 has pytest; a pyenv python3 first in PATH
# usually does not, hence the default.

PYTHON3=${PYTHON3:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)

if ! "$PYTHON3" -c 'import pytest' 2>/dev/null; then
  echo "run-pytest.sh: $PYTHON3 has no pytest module; skipping" >&2
  exit 77
fi

: "${RECYCLERD_SRCDIR:=$(dirname "$here")}"
export RECYCLERD_SRCDIR
# A source tree may be read-only (make distcheck): no bytecode, no cache.
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE

exec "$PYTHON3" -m pytest -q -p no:cacheprovider "$here/integration" "$@"
