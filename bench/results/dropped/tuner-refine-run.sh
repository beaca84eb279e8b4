#!/bin/bash
# two-stage autotuner timer: GPU tests, then bench M = 1/4/16 with refinement off / on / on again
# On a GPU, from a checkout with bench/results/dropped/tuner-refine.diff applied; results go to $OUT.
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
export PYTHONPATH=$PWD
timeout 150 python3 -m pytest -q -x -p no:cacheprovider tests/kernels 2>&1 | tail -2
for run in off on on2; do
  refine=0.10; [ $run = off ] && refine=-1
  t0=$(date +%s)
  TRITON_CACHE_DIR=/tmp/tc_$run timeout 200 python3 -c "
import sys, runpy
import kernels.wo_matmul as W
W.REFINE_WITHIN = $refine
sys.argv = ['bench/kernels.py', '--formats', 'int4-g128-sym,int4-g128-asym', '--ms', '1,4,16', '--out', '$OUT/$run']
runpy.run_path('bench/kernels.py', run_name='__main__')
" > $OUT/$run.log 2>&1
  echo "$run rc $? $(( $(date +%s) - t0 ))s"; grep -i "Traceback\|Error" -A3 $OUT/$run.log | head -8
done
python3 - $OUT <<'PY'
import json,sys,glob,statistics as st
for run in ("off","on","on2"):
    fs=glob.glob(f"{sys.argv[1]}/{run}/kernels-*.json")
    if not fs: print(run,"missing"); continue
    d=json.load(open(fs[0]))
    R=[r for r in d["records"] if r["kernel"]=="autoquant"]
    line=[]
    for f in ("int4-g128-sym","int4-g128-asym"):
        for m in (1,4,16):
            v=[r for r in R if r["format"]==f and r["M"]==m]
            line.append(f"{f[-4:]} M{m} {st.median(r['speedup'] for r in v):.3f}x bw {st.median(r['frac_bw'] for r in v):.3f}")
    print(run, "%.0fs" % d["seconds"], " | ".join(line))
    print("   us:", " ".join("%.2f" % (r["ms"]*1e3) for r in R if r["M"]==1 and r["format"].endswith("-sym")))
PY
