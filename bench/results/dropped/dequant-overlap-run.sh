#!/bin/bash
# M = 2048: dequantize + cuBLAS in one pass vs two row halves on two streams (same call)
# On a GPU, from a checkout with bench/results/dropped/dequant-overlap.diff applied; results go to $OUT.
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
export PYTHONPATH=$PWD
timeout 150 python3 -m pytest -q -x -p no:cacheprovider tests/kernels -k "many_tokens or bf16" 2>&1 | tail -1
for run in one two one2 two2; do
  ov=True; case $run in one*) ov=False;; esac
  timeout 120 python3 -c "
import sys, runpy
import kernels.wo_matmul as W
W.DEQUANT_OVERLAP = $ov
sys.argv = ['bench/kernels.py', '--formats', 'int4-g128-sym,int4-g128-asym', '--ms', '2048', '--out', '$OUT/$run']
runpy.run_path('bench/kernels.py', run_name='__main__')
" > $OUT/$run.log 2>&1
  echo "$run rc $?"; grep -i "Traceback\|WRONG" -A3 $OUT/$run.log | head -6
done
python3 - $OUT <<'PY'
import json,sys,glob,statistics as st
for run in ("one","two","one2","two2"):
    fs=glob.glob(f"{sys.argv[1]}/{run}/kernels-*.json")
    if not fs: print(run,"missing"); continue
    d=json.load(open(fs[0]))
    R=[r for r in d["records"] if r["kernel"]=="autoquant" and r["M"]==2048]
    for f in ("int4-g128-sym","int4-g128-asym"):
        v=[r for r in R if r["format"]==f]
        print(run, f, "median %.3fx" % st.median(r["speedup"] for r in v), " ".join("%.0f" % (r["ms"]*1e3) for r in v))
PY
