# Call 5: gptq's column loop before/after on the GPU (bench/gptq_loop.py; its "same codes" column
# checks the new loop on the GPU against the old one).
source bench/device/setup.sh
timeout 300 python3 bench/gptq_loop.py --before bench/device/gptq_before.py --out $OUT 2>&1 | tee $OUT/gptq_loop.log | tail -15
