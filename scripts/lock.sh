#!/usr/bin/env bash
# Refresh requirements-lock.txt, the tested set of exact versions scripts/setup.sh installs:
#   bash scripts/lock.sh            re-resolve from pyproject.toml, keeping today's pins where allowed
#   bash scripts/lock.sh --upgrade  take the newest releases pyproject.toml allows
# Resolved by uv (installed into .cache/uv-venv on first use) for every platform and Python >= 3.10.
# torch itself is left out: setup.sh installs it first (the CPU build by default), so the lock
# must not pin torch's CUDA libraries either. They are found from the resolution's "via" notes
# (packages needed only by torch) and dropped with a never-true marker, then resolved again.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=.cache/uv-venv/bin/uv
if [[ ! -x $uv ]]; then
    python3 -m venv .cache/uv-venv
    .cache/uv-venv/bin/python -m pip install -q --disable-pip-version-check uv
fi
# Resolved against the torch setup.sh installs by default, so triton matches that torch's CUDA build.
torch_spec=$(sed -n 's/^default_torch="\(.*\)"$/\1/p' scripts/setup.sh)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
compile=("$uv" pip compile pyproject.toml --extra test --universal --python-version 3.10
         --no-emit-package torch --no-header --quiet "$@")
echo "$torch_spec" > "$tmp/torch.txt"
# 1: resolve with torch's own dependencies, to see which packages only torch needs.
"${compile[@]}" --override "$tmp/torch.txt" -o "$tmp/with-torch.txt"
python3 - "$tmp/with-torch.txt" > "$tmp/overrides.txt" <<'PY'
import re, sys
via, pkg = {}, None
for line in open(sys.argv[1]):
    if m := re.match(r"^([A-Za-z0-9_.-]+)==", line):
        pkg = m.group(1).lower(); via[pkg] = set()
    elif pkg and (m := re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9_.-]+)\s*$", line)):
        via[pkg].add(m.group(1).lower())
only_torch, changed = {"torch"}, True
while changed:  # packages needed by torch, or by packages only torch needs
    changed = False
    for p, parents in via.items():
        if p not in only_torch and parents and parents <= only_torch:
            only_torch.add(p); changed = True
for p in sorted(only_torch - {"torch"}):
    print(f'{p} ; sys_platform == "never"')
PY
# 2: resolve again without them.
cat "$tmp/torch.txt" >> "$tmp/overrides.txt"
"${compile[@]}" --override "$tmp/overrides.txt" -o requirements-lock.txt
# Drop the never-installed entries and the temporary override file from the notes.
python3 - requirements-lock.txt <<'PY'
import re, sys
blocks, out = re.split(r"(?m)^(?=\S)", open(sys.argv[1]).read()), []
for b in blocks:
    if "sys_platform == 'never'" in b.split("\n", 1)[0]:
        continue
    b = re.sub(r"(?m)^\s+#\s+--override .*\n", "", b)
    b = re.sub(r"# via\n\s+#\s+([^\n]+)\n(?!\s+#)", r"# via \1\n", b)  # one parent left: one line
    out.append(b)
open(sys.argv[1], "w").write("".join(out))
PY
{ echo "# The tested set of exact versions, made by 'bash scripts/lock.sh' from pyproject.toml."
  echo "# Resolved for $torch_spec, which scripts/setup.sh installs first (CPU build by default); torch is not pinned here."
  echo "# Dropped as needed only by torch: $(grep never "$tmp/overrides.txt" | sed 's/ ;.*//' | tr '\n' ' ')"
  cat requirements-lock.txt; } > "$tmp/lock.txt"
mv "$tmp/lock.txt" requirements-lock.txt
echo "requirements-lock.txt: $(grep -c '^[a-zA-Z]' requirements-lock.txt) packages"
