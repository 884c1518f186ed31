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

mkdir -p var
"$bin" serve 2> >(tee var/demo.log >&2) &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
if [ "$seconds" = 0 ]; then
  wait $pid
  exit
fi
bold "running for ${seconds}s (DEMO_SECONDS=0 keeps it running) ..."
half=$((seconds / 2))
sleep "$half"
# Change five customers in company 1001, as a user of Business NXT would:
# the next associates run imports exactly those rows.
sandbox=$(grep -o 'sandbox listening[^h]*http://127\.0\.0\.1:[0-9]*' var/demo.log | grep -o 'http://.*' | head -n 1)
if [ -n "$sandbox" ]; then
  bold "changing 5 associates of company 1001 in the sandbox: $(curl -s -X POST "$sandbox/sandbox/touch" \
    -H 'Content-Type: application/json' -d '{"company": 1001, "table": "associate", "count": 5}' | tr -d ' \n')"
fi
sleep $((seconds - half))
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
bold "a row from the first associates file (later incremental runs read only changed rows):"
f=$(find out/associates -type f -name '*.ndjson' -size +0 2>/dev/null | sort | head -n 1)
[ -n "$f" ] && echo "$f" && head -n 1 "$f" | head -c 600 && echo
echo
echo "Run it for longer with 'DEMO_SECONDS=0 make demo'; reset with 'make clean'."
