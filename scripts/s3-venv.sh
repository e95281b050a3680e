#!/usr/bin/env bash
# Installs moto's S3 server (moto[server], with boto3) from PyPI into .build-moto/, for the tests
# of s3:// sources (Tests/SegmentLoaderTests/S3Support.swift uses .build-moto/bin/python3) and
# scripts/s3-bench.sh. scripts/s3-harness.py patches one moto internal (the query string its
# signature check sees), so the version is held to the 5.1/5.2 series it was written against.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.build-moto
if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c "import moto.server, boto3" 2>/dev/null; then
    exit 0
fi
python3 -m venv "$venv"
timeout 600 "$venv/bin/pip" install -q "moto[server]>=5.1,<5.3"
"$venv/bin/python3" -c "import moto; print('moto', moto.__version__, 'in $venv')"
