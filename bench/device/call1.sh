# Call 1: the kernel tests on the GPU, then the kernel benchmark (issue 28).
source bench/device/setup.sh
timeout 210 python3 -m pytest tests/kernels -q -p no:cacheprovider --timeout 150 -rfEs --junitxml=$OUT/gpu-tests.xml 2>&1 | tee $OUT/gpu-tests.log | tail -60
timeout 340 python3 bench/kernel_bench.py --out $OUT 2>&1 | tee $OUT/kernel_bench.log | tail -40
ls -la $OUT
