# Call 3: end-to-end decode again (fp16 ran out of memory in call 2: grad mode), then `autoquant profile`
# at the scale users run: a Llama-3-8B-shaped model (random weights, SmolLM2's tokenizer: ids < 49152
# are valid for its 128256-token vocabulary), every pair measured; cut at the call's limit, the cache's
# line count every 10 s gives the rate.
source bench/device/setup.sh
timeout 160 python3 bench/e2e_decode.py --model bench/configs/llama-3-8b --out $OUT 2>&1 | grep -v Warn | tail -8 | cut -c1-400
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .raypkg/*.whl && tar -xJf .raypkg/ray-slim.tar.xz -C /tmp/site || exit 1
mkdir -p $OUT/cache
(while sleep 10; do echo "$(date +%s) $(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits) $(cat $OUT/cache/*/*.jsonl 2>/dev/null | grep -c '"kind": "kl"') $(cat $OUT/cache/*/*.jsonl 2>/dev/null | grep -c '"kind": "proxy"')"; done > $OUT/progress.log) &
timeout 100 python3 bench/profile_scaling.py --random-from .device-model/llama-3-8b --workers 1 --measure all --cache-root $OUT/cache --out $OUT/profile-scaling-h200-llama-3-8b.json 2>&1 | tee $OUT/profile-scaling.log | tail -6 | cut -c1-600
kill %1; tail -3 $OUT/progress.log; for f in $OUT/cache/*/*.jsonl; do cp $f $OUT/profile-cache.jsonl; done; rm -rf $OUT/cache
