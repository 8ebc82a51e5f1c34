#!/usr/bin/env bash
# The whole test suite: install dependencies and test peers, then
#   1. a normal build and every test (unit + integration against real servers),
#   2. each libFuzzer target built with clang and run for a bounded time,
#   3. an ASan+UBSan build and every test again.
# FUZZ_SECONDS (default 20) bounds each fuzzer; JOBS defaults to nproc.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}
fuzz_seconds=${FUZZ_SECONDS:-20}

bash scripts/deps.sh --test

echo "== build (RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "== tests"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 300)

echo "== fuzz (${fuzz_seconds}s per target)"
CC=clang-19 CXX=clang++-19 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAILBRIDGE_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs"
for f in build-fuzz/tests/fuzz/fuzz_*; do
  [[ -x "$f" ]] || continue
  name=$(basename "$f")
  corpus="build-fuzz/corpus/$name"
  mkdir -p "$corpus"
  seeds="tests/fuzz/corpus/$name"
  [[ -d "$seeds" ]] || seeds=""
  echo "-- $name"
  log="build-fuzz/$name.log"
  if ! "$f" -max_total_time="$fuzz_seconds" -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
      "$corpus" $seeds >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzzer $name found a failure (reproducer and log above)"
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$log" || true
done

echo "== build (ASan+UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMAILBRIDGE_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests under ASan+UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 600)
