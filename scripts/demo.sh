#!/usr/bin/env bash
# The demo: nxtcron serve on the default config.yaml (SQLite store in var/,
# the built-in sandbox standing in for Visma) with every job on a short
# schedule, for DEMO_SECONDS (default 50; 0 runs until Ctrl-C). Then it shows
# what happened: the slot records and the files the jobs wrote.
set -euo pipefail
bin=${1:-bin/nxtcron}
seconds=${DEMO_SECONDS:-50}
export NXTCRON_DEMO_SCHEDULE=${NXTCRON_DEMO_SCHEDULE:-@every 15s}

bold() { printf '\033[1m%s\033[0m\n' "$*"; }

bold "nxtcron demo: every job runs '$NXTCRON_DEMO_SCHEDULE' against the built-in sandbox"
echo "  config:    config.yaml (store: var/nxtcron.db, jobs: jobs.d/*.yaml)"
echo "  dashboard: http://127.0.0.1:8080/   API: http://127.0.0.1:8080/api/runs"
echo "  output:    out/"
"$bin" validate

"$bin" serve &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
if [ "$seconds" = 0 ]; then
  wait $pid
  exit
fi
bold "running for ${seconds}s (DEMO_SECONDS=0 keeps it running) ..."
sleep "$seconds"
kill -TERM $pid
wait $pid || true
trap - EXIT

echo
bold "slot records (nxtcron runs):"
"$bin" runs --limit 20
echo
bold "watermarks (nxtcron watermarks list):"
"$bin" watermarks list
echo
bold "files written (out/):"
find out -type f 2>/dev/null | sort | tail -n 20
echo
bold "a row from the newest associates file:"
f=$(find out/associates -type f -name '*.ndjson' 2>/dev/null | sort | tail -n 1)
[ -n "$f" ] && head -c 400 "$f" && echo
echo
echo "Run it for longer with 'DEMO_SECONDS=0 make demo'; reset with 'make clean'."
