#!/usr/bin/env bash
# Real Segment client libraries (segment-analytics-python, rudder-sdk-python from PyPI, in
# .build-venv-clients/, ignored by git) against the built segment-collector on 127.0.0.1; the
# archives it writes are loaded by the built segment-loader and checked (issue 13).
# CI runs it after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.build-venv-clients
if ! "$venv/bin/python" -c "import segment.analytics, rudderstack.analytics" 2>/dev/null; then
    python3 -m venv "$venv"
    timeout 600 "$venv/bin/pip" install -q segment-analytics-python rudder-sdk-python
fi
bin="$(swift build --show-bin-path)"
[ -x "$bin/segment-collector" ] || swift build --product segment-collector
[ -x "$bin/segment-loader" ] || swift build --product segment-loader
timeout 600 "$venv/bin/python" scripts/collector_clients_check.py "$bin/segment-collector" "$bin/segment-loader"
