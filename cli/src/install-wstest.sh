#!/usr/bin/env bash
# Installs the real Autobahn|Testsuite (`wstest`, autobahntestsuite 25.10.1,
# Python 2.7 only) on Debian 12. The one recipe: `ringwire conformance`
# embeds it (include_str!) to install into its cache directory
# (WSTEST_PREFIX=~/.cache/ringwire/wstest, WSTEST_BIN empty), and
# autobahn/install-wstest.sh runs it for CI (/opt/wstest, /usr/local/bin).
# Root is needed only for the apt steps (when python2.7 or gcc are
# missing). Idempotent: when everything is in place a run takes about a
# second and only prints the version.
#
#   1. Debian bullseye as an apt source pinned low (priority 100): only what
#      bookworm lacks (python2.7 and its libraries) comes from it.
#   2. python2.7, python2.7-dev, gcc (wsaccel is built from source).
#   3. A Python 2.7 virtualenv in $WSTEST_PREFIX (default /opt/wstest) made
#      with virtualenv 16.7.12 (last py2 release), fetched by python3's pip
#      with a pinned hash.
#   4. autobahntestsuite with every dependency pinned.
#   5. A patch so the fuzzingserver (and its report web server) listen on
#      the spec's host (127.0.0.1) instead of all interfaces.
#   6. $WSTEST_BIN (default /usr/local/bin/wstest; empty: none) -> the
#      venv's wstest.
set -euo pipefail

VERSION=25.10.1
PREFIX=${WSTEST_PREFIX:-/opt/wstest}
BIN=${WSTEST_BIN-/usr/local/bin/wstest}
PY2=/usr/bin/python2.7
VENV_WHL=virtualenv-16.7.12-py2.py3-none-any.whl
VENV_SHA256=9180ce4102c388073bac71ecd041f7f31f9ef8c528edb205d75ae6144d08106e

# The versions pip 20.3.4 resolves on Python 2.7 (the last py2 releases).
PINS='autobahntestsuite==25.10.1
autobahn==0.10.9
txaio==2.1.0
Twisted==19.10.0
zope.interface==4.6.0
incremental==16.10.1
constantly==15.1.0
Automat==22.10.0
attrs==21.4.0
hyperlink==21.0.0
idna==2.10
PyHamcrest==1.10.1
typing==3.10.0.0
pyOpenSSL==19.1.0
cryptography==3.3.2
cffi==1.15.1
pycparser==2.21
enum34==1.1.10
ipaddress==1.0.23
service-identity==18.1.0
pyasn1==0.5.1
pyasn1-modules==0.3.0
klein==17.10.0
Werkzeug==1.0.1
Jinja2==2.11.3
MarkupSafe==1.1.1
unittest2==1.1.0
linecache2==1.0.0
traceback2==1.4.0
six==1.16.0
setuptools==44.0.0
wsaccel==0.6.6
ujson==2.0.3'

say() { printf '[install-wstest] %s\n' "$*" >&2; }
root=0
[[ $(id -u) -eq 0 ]] && root=1
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1
# pip 20.3.4 carries 2020's CA roots: use the system bundle.
[[ -n ${PIP_CERT:-} || ! -r /etc/ssl/certs/ca-certificates.crt ]] || export PIP_CERT=/etc/ssl/certs/ca-certificates.crt

# Writes FILE only when its content differs; returns 0 when it wrote.
put() { [[ -f $1 && "$(cat "$1")" == "$2" ]] && return 1; printf '%s\n' "$2" >"$1"; }

# 1 + 2: python2.7 from bullseye, pinned low.
pkgs=(python2.7 python2.7-dev gcc libc6-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if (( ! root )); then
  if (( ${#missing[@]} )) || [[ ! -x $PY2 ]]; then
    say "missing ${missing[*]}: run this as root (apt-get from Debian bullseye), or install them yourself"
    exit 1
  fi
else
  changed=0
  put /etc/apt/sources.list.d/bullseye.sources 'Types: deb
URIs: http://deb.debian.org/debian
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' && changed=1
  put /etc/apt/preferences.d/bullseye-low-priority 'Explanation: bullseye only for python2.7 (Autobahn|Testsuite)
Package: *
Pin: release n=bullseye
Pin-Priority: 100' && changed=1
  if (( ${#missing[@]} )) || [[ ! -x $PY2 ]]; then
    say "apt-get install ${missing[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${pkgs[@]}"
  elif (( changed )); then
    apt-get update -q
  fi
fi

# 3: the virtualenv.
if ! "$PREFIX/bin/python" -m pip --version >/dev/null 2>&1; then
  say "creating the Python 2.7 virtualenv in $PREFIX"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  python3 -m pip --version >/dev/null 2>&1 || {
    (( root )) || { say "python3's pip is missing: run as root or install python3-pip"; exit 1; }
    apt-get install -y -q --no-install-recommends python3-pip
  }
  printf 'virtualenv==16.7.12 --hash=sha256:%s\n' "$VENV_SHA256" >"$tmp/req.txt"
  python3 -m pip download -q --no-deps --only-binary=:all: --require-hashes -r "$tmp/req.txt" -d "$tmp"
  $PY2 -m zipfile -e "$tmp/$VENV_WHL" "$tmp/venvtool"
  rm -rf "$PREFIX"
  PYTHONPATH="$tmp/venvtool" $PY2 -m virtualenv --no-download -p $PY2 "$PREFIX" >/dev/null
fi

# 4: autobahntestsuite, every dependency pinned.
installed() {
  "$PREFIX/bin/python" - "$VERSION" >/dev/null 2>&1 <<'PY'
import sys, pkg_resources
pkg_resources.require('autobahntestsuite==' + sys.argv[1])
import autobahntestsuite.wstest, wsaccel
PY
}
if ! installed; then
  say "pip install autobahntestsuite==$VERSION"
  pins=$(mktemp); printf '%s\n' "$PINS" >"$pins"
  "$PREFIX/bin/pip" install -q --no-cache-dir -c "$pins" "autobahntestsuite==$VERSION"
  rm -f "$pins"
  installed || { say "autobahntestsuite does not import"; exit 1; }
fi

# 5: loopback only.
fz=$("$PREFIX/bin/python" -c 'import autobahntestsuite.fuzzing as m; print(m.__file__.replace(".pyc", ".py"))')
if ! grep -q 'interface=factory.host' "$fz"; then
  say "patching $fz to listen on the spec's host"
  "$PREFIX/bin/python" - "$fz" <<'PY'
import re, sys
path = sys.argv[1]
src = open(path, "rb").read()
for pat, rep in [
    (r"listenWS\(factory, sslContext\)", "listenWS(factory, sslContext, interface=factory.host)  # ringwire-loopback"),
    (r"reactor\.listenSSL\(webport, web, sslContext\)", "reactor.listenSSL(webport, web, sslContext, interface=factory.host)  # ringwire-loopback"),
    (r"reactor\.listenTCP\(webport, web\)", "reactor.listenTCP(webport, web, interface=factory.host)  # ringwire-loopback"),
]:
    src, n = re.subn(pat, rep, src)
    if n != 1:
        sys.exit("patch anchor not found exactly once: %r" % pat)
open(path, "wb").write(src)
PY
  rm -f "${fz}c"
fi

# 6: a fixed path.
if [[ -n $BIN ]]; then
  [[ "$(readlink "$BIN" 2>/dev/null || true)" == "$PREFIX/bin/wstest" ]] || { mkdir -p "$(dirname "$BIN")"; ln -sfn "$PREFIX/bin/wstest" "$BIN"; }
fi
"$PREFIX/bin/wstest" --autobahnversion
