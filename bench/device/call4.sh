# Call 4 (issue 25): gptq/awq on the GPU: their GPU tests, then what they cost per Llama-3-8B layer.
source bench/device/setup.sh
timeout 200 python3 -m pytest tests/quantizers -q -p no:cacheprovider -rfEs 2>&1 | tee $OUT/gpu-tests-quantizers.log | tail -30
timeout 330 python3 bench/quantizer_seconds.py --model .device-model/llama-3-8b --out $OUT 2>&1 | tee $OUT/quantizer_seconds.log | tail -40
ls -la $OUT
