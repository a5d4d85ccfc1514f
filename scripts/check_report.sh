#!/usr/bin/env bash
# Renders an Ember report in headless Chromium and saves a full-page screenshot, to check by eye
# that it draws in a real browser with the network off (the page must need nothing external).
#   bash scripts/check_report.sh runs/pipeline/sft/report.html /tmp/report.png
# Needs Chromium (Debian: apt-get install chromium).
set -euo pipefail
html=$(realpath "${1:?report.html}")
png=${2:-/tmp/ember-report.png}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "no Chromium found (Debian: apt-get install chromium)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" \
  --window-size=1100,6000 --screenshot="$png" "file://$html" 2>/dev/null
echo "screenshot: $png ($(stat -c %s "$png") bytes)"
