#!/usr/bin/env bash
# Canary for upstream breakage (not a CI gate): install autoquant into a throw-away venv with the
# NEWEST releases pyproject.toml allows (no lock), then run the fast tests and the main job.
#   bash scripts/check-latest.sh          exit 0: the newest releases work; else what broke is above
# torch stays the build setup.sh installs (AUTOQUANT_TORCH, default the CPU torch==2.13.0): a
# newer torch is a deliberate upgrade of the lock, not a canary question.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
venv="$root/venv"
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
quiet() { "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
quiet "${pip[@]}" install --upgrade pip
quiet "${pip[@]}" install "${AUTOQUANT_TORCH:-torch==2.13.0}"
# A regular (not editable) install: the package as pip users get it, package data included.
quiet "${pip[@]}" install --upgrade --upgrade-strategy eager ".[test]"
bash scripts/default-model.sh "$venv"
"$venv/bin/python" -m pip check --disable-pip-version-check
echo "== newer than requirements-lock.txt:"
"$venv/bin/python" - requirements-lock.txt <<'PY'
import re, sys
from importlib.metadata import distributions
locked = {}
for line in open(sys.argv[1]):
    if m := re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line):
        locked.setdefault(m.group(1).lower().replace("_", "-"), set()).add(m.group(2))
newer = []
for d in distributions():
    name = d.metadata["Name"].lower().replace("_", "-")
    if name in locked and d.version not in locked[name]:
        newer.append(f"  {name} {'/'.join(sorted(locked[name]))} -> {d.version}")
print("\n".join(sorted(newer)) or "  (none: the lock is the newest)")
PY
echo "== fast tests"
status=0
AUTOQUANT_CACHE="$root/cache" "$venv/bin/python" -m pytest -q -m "not slow and not gpu" -p no:cacheprovider || status=1
echo "== main job (from outside the checkout: the installed package)"
(cd "$root" && AUTOQUANT_CACHE="$root/cache" "$venv/bin/autoquant" search --budget 24GB --runs-dir "$root/runs") || status=1
[[ $status == 0 ]] && echo "canary: the newest allowed releases pass" || echo "canary: FAILED with the newest allowed releases (see above)"
exit $status
