#!/usr/bin/env bash
# Quick start: install dependencies, build, and run mailbridged in the
# foreground on its embedded default (one local account, no upstream).
# Extra arguments go to mailbridged (e.g. --state-dir /tmp/mb).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAILBRIDGE_TESTS=OFF >/dev/null
cmake --build build --target mailbridged
exec ./build/mailbridged "$@"
