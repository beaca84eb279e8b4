# Call 3: `autoquant profile` at the scale users run: a Llama-3-8B-shaped model (random weights,
# SmolLM2's tokenizer: ids < 49152 are valid for its 128256-token vocabulary), every pair measured.
source bench/device/setup.sh
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .raypkg/*.whl && tar -xJf .raypkg/ray-slim.tar.xz -C /tmp/site || exit 1
nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader -lms 500 > $OUT/gpu-memory.csv &
timeout 540 python3 bench/profile_scaling.py --random-from .device-model/llama-3-8b --workers 1 --measure all --out $OUT/profile-scaling-h200-llama-3-8b.json 2>&1 | tee $OUT/profile-scaling.log | tail -30
kill %1; sort -t, -k2 -n $OUT/gpu-memory.csv | tail -1
