#!/usr/bin/env bash
# Checks the warehouse with the tools analysts use (Python's sqlite3, pandas, Datasette 0.65),
# installed from PyPI into .build-venv/ (ignored by git). Uses the segment-loader that
# `swift build` (or `swift test`) built. CI runs it after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.build-venv
if [ ! -x "$venv/bin/datasette" ] || ! "$venv/bin/python" -c "import pandas" 2>/dev/null; then
    python3 -m venv "$venv"
    timeout 600 "$venv/bin/pip" install -q "datasette>=0.65,<0.66" pandas
fi
bin="$(swift build --show-bin-path)/segment-loader"
[ -x "$bin" ] || swift build --product segment-loader
timeout 600 "$venv/bin/python" scripts/analyst_tools_check.py "$bin" "$venv/bin/datasette"
