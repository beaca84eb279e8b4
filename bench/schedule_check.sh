#!/usr/bin/env bash
# Issue 23's check, by hand (minutes on a CPU): the issue's fleet spec (SmolLM2 x h100, l4,
# rtx4090 x two budgets = 6 targets). Run 1 searches all six; run 2 is a no-op; adding h200
# searches only its two targets and CHANGES.md says so; `schedule status` after each step.
#   bash bench/schedule_check.sh [WORKDIR]   > bench/results/schedule-check-smollm2.log
# Uses a fresh AUTOQUANT_CACHE under WORKDIR, so run 1 includes profiling SmolLM2, unless
# SEED_PROFILE names a sensitivity cache file of SmolLM2 to start from (the log says which).
set -u
cd "$(dirname "$0")/.."
W=${1:-/tmp/autoquant-schedule-check}
rm -rf "$W"; mkdir -p "$W"
export AUTOQUANT_CACHE="$W/cache"
if [ -n "${SEED_PROFILE:-}" ]; then
  mkdir -p "$W/cache/sensitivity" && cp "$SEED_PROFILE" "$W/cache/sensitivity/"
  echo "profile seeded from $SEED_PROFILE ($(wc -l < "$SEED_PROFILE") cached results): run 1 searches only"
fi
echo "start $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
cat > "$W/fleet.yaml" <<'YAML'
models: [default]                  # hub ids, model dirs, .gguf files, or default (the embedded model)
hardware: [h100, l4, rtx4090]      # names from `autoquant hardware list`, profile JSON paths, or all
workloads: [{batch: 1, context: 4096}]
budgets: [{memory: 0.82GB}, {memory: 0.85GB, quality: "kl=0.05"}]
space: default
trials: 300
YAML
AQ="nice -n 10 .venv/bin/autoquant"
t() { local s; s=$(date +%s.%N); "$@"; local rc=$?; echo "TIME $(echo "$(date +%s.%N) - $s" | bc) s rc=$rc: $*"; }
t $AQ schedule status "$W/fleet.yaml" --catalog "$W/cat"
t $AQ schedule run "$W/fleet.yaml" --catalog "$W/cat"
t $AQ schedule status "$W/fleet.yaml" --catalog "$W/cat"
t $AQ schedule run "$W/fleet.yaml" --catalog "$W/cat"
sed -i 's/hardware: \[h100, l4, rtx4090\]/hardware: [h100, l4, rtx4090, h200]/' "$W/fleet.yaml"
t $AQ schedule status "$W/fleet.yaml" --catalog "$W/cat"
t $AQ schedule run "$W/fleet.yaml" --catalog "$W/cat"
t $AQ schedule status "$W/fleet.yaml" --catalog "$W/cat"
cat "$W/cat/CHANGES.md"
echo "end $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
