# Call 2: the H200 latency profile of Llama-3-8B's shapes (rest fitted for graphs and eager) and
# its validation against timed forwards, then end-to-end decode (issue 28).
source bench/device/setup.sh
FMTS=fp16,int8-pc-sym,int8-pc-asym,int4-g32-asym,int4-g64-asym,int4-g128-asym,int4-g64-sym,int4-g128-sym
timeout 320 python3 bench/latency_validation.py --model bench/configs/llama-3-8b --formats $FMTS --out $OUT 2>&1 | tee $OUT/latency-validation.log | tail -45
timeout 230 python3 bench/e2e_decode.py --model bench/configs/llama-3-8b --out $OUT 2>&1 | tee $OUT/e2e-decode.log | tail -40
ls -la $OUT
