#!/usr/bin/env bash
# Installs the interop peer (python `websockets` 15 from PyPI) and the
# Prometheus text-format parser the metrics test uses (`prometheus_client`)
# into a virtualenv outside the repo; idempotent (a few ms when present).
#
#   tests/interop/install.sh      -> prints the venv's python path
#
# The Rust interop tests find it at $RINGWIRE_INTEROP_PYTHON or, by default,
# ~/.cache/ringwire-interop/venv/bin/python.
set -euo pipefail
venv=${RINGWIRE_INTEROP_VENV:-$HOME/.cache/ringwire-interop/venv}
want=15.0.1
want_prom=0.26.0
py=$venv/bin/python
if [[ -x $py ]] && "$py" -c "
import sys, websockets
from importlib.metadata import version
sys.exit(websockets.__version__ != '$want' or version('prometheus_client') != '$want_prom')
" 2>/dev/null; then
  echo "$py"; exit 0
fi
python3 -m venv "$venv" >/dev/null 2>&1 || {
  # Debian without ensurepip: python3-venv provides it.
  apt-get install -y -qq python3-venv >/dev/null
  python3 -m venv "$venv"
}
"$py" -m pip install -q --disable-pip-version-check "websockets==$want" "prometheus_client==$want_prom" >&2
echo "$py"
