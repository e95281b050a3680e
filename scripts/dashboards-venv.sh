#!/usr/bin/env bash
# Installs Datasette 0.65.1 and datasette-dashboards 0.8.0 from PyPI into .build-dashboards/
# (ignored by git), where Tests/SegmentLoaderTests/SegmentLoader/DashboardBrowserTests.swift
# looks for them (with Debian's chromium) to open the "Product analytics" dashboard (issue 36).
# Pinned: the test reads the marks Vega-Lite draws, which a new release may label otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.build-dashboards
if [ -x "$venv/bin/datasette" ] && "$venv/bin/python3" -c "import datasette_dashboards" 2>/dev/null; then
    exit 0
fi
python3 -m venv "$venv"
timeout 600 "$venv/bin/pip" install -q "datasette==0.65.1" "datasette-dashboards==0.8.0"
"$venv/bin/datasette" --version
