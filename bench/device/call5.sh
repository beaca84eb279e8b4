# Call 5: gptq's column loop before/after on the GPU (bench/gptq_loop.py), then the gptq tests.
source bench/device/setup.sh
timeout 400 python3 bench/gptq_loop.py --before bench/device/gptq_before.py --out $OUT 2>&1 | tee $OUT/gptq_loop.log | tail -15
timeout 120 python3 -m pytest tests/quantizers/test_gptq.py tests/quantizers/test_quantizers_gpu.py -q -p no:cacheprovider 2>&1 | tail -3
