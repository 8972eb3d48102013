#!/usr/bin/env bash
# Renders a run's report.html and a sweep's comparison.html in headless Chromium (Debian: apt-get install
# chromium) and writes PNG screenshots to OUT (default ./report-screenshots), to look at them as a user would.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="$(realpath -m "${1:-report-screenshots}")"
BROWSER="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$BROWSER" ] || { echo "no chromium on PATH (apt-get install -y chromium)" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
node bin/run.js run experiments/quickstart.yaml --set N_EPOCHS=6 --cache-dir "$WORK/cache" --runs-dir "$WORK/runs" > /dev/null 2>&1
node bin/run.js sweep experiments/sweeps/quickstart-grid.yaml --cache-dir "$WORK/cache" --runs-dir "$WORK/runs" > /dev/null 2>&1
RUN="$(ls -d "$WORK"/runs/quickstart/*/ | head -1)"
SWEEP="$(ls -d "$WORK"/runs/quickstart-grid/sweeps/*/ | head -1)"
"$BROWSER" --headless --no-sandbox --disable-gpu --window-size=1300,1400 --screenshot="$OUT/report.png" "file://${RUN}report.html" 2>/dev/null
"$BROWSER" --headless --no-sandbox --disable-gpu --window-size=1300,1400 --screenshot="$OUT/comparison.png" "file://${SWEEP}comparison.html" 2>/dev/null
echo "$OUT/report.png $OUT/comparison.png"
