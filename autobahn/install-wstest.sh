#!/usr/bin/env bash
# Installs wstest for CI and for autobahn/run.sh: the venv in
# $WSTEST_PREFIX (default /opt/wstest), $WSTEST_BIN (default
# /usr/local/bin/wstest) pointing at it. The recipe is the one
# `ringwire conformance` embeds: cli/src/install-wstest.sh (run as root).
exec bash "$(dirname "$0")/../cli/src/install-wstest.sh" "$@"
