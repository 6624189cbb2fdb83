#!/usr/bin/env bash
# Everything worth measuring on one GPU, in about 9 minutes, in an order that keeps the timings clean:
#   1. what the machine is;
#   2. bench/run.py alone on the GPU (batch 16 as on the CPU, then batch 256, which is what fills a GPU);
#   3. the CUDA tests (tests/test_cuda.py) next to a sweep of task-1 configs (bench/sweeps/gpu_task1.json),
#      several runs per GPU at once; the sweep stops at its deadline and keeps what it finished.
# Results land in OUTDIR (env.txt, bench.log, pytest.log, sweep.log, results.tar.gz with every JSON and log).
#
#   bash bench/gpu_check.sh OUTDIR [SWEEP_DEADLINE_S=270] [WORKERS=14]
# Needs python3 with torch (CUDA), numpy, scipy, scikit-image, opencv, pillow, matplotlib, tqdm, pytest
# (PYTHON=... to pick another interpreter). The synthetic sets are read from .cache/data when present.
# GRID=<file> replaces the sweep's grid; BENCH_EXTRA="--quick" makes the bench a smoke check (as in tests).
set -u
out=${1:?usage: bash bench/gpu_check.sh OUTDIR [SWEEP_DEADLINE_S] [WORKERS]}
deadline=${2:-270}
workers=${3:-14}
PY=${PYTHON:-python3}
work=$(mktemp -d)
mkdir -p "$out"
export PYTHONPATH="$PWD/lib${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 INDPRIOR_HEADLESS=1
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0)) s] $*"; }

{ nvidia-smi -L; nproc; free -g | head -2
  $PY -c "import sys, torch; print(sys.version); print('torch', torch.__version__, torch.cuda.get_device_name(0))"
  $PY -c "import indprior.task1, indprior.redo, indprior.hoc; print('indprior imports')"; } > "$out/env.txt" 2>&1

stamp "bench, batch 16 (paper-profile networks)" > "$out/bench.log"
timeout 150 $PY bench/run.py ${BENCH_EXTRA:-} --only provider-infer,provider-infer-bf16,prior-train,prior-train-bf16,redo-train \
  --out "$work/bench_b16_paper.json" >> "$out/bench.log" 2>&1
stamp "bench, batch 256 @64 (paper-profile networks)" >> "$out/bench.log"
timeout 70 $PY bench/run.py ${BENCH_EXTRA:-} --train-batch 256 --only prior-train@64,prior-train-bf16@64,redo-train@64 \
  --out "$work/bench_b256_paper.json" >> "$out/bench.log" 2>&1
stamp "bench, batch 256 @64 (cpu-profile networks)" >> "$out/bench.log"
timeout 50 $PY bench/run.py ${BENCH_EXTRA:-} --profile cpu --train-batch 256 --only prior-train@64,prior-train-bf16@64,redo-train@64 \
  --out "$work/bench_b256_cpu.json" >> "$out/bench.log" 2>&1
stamp "bench done" >> "$out/bench.log"

stamp "sweep (deadline ${deadline} s, ${workers} workers) and CUDA tests" > "$out/sweep.log"
$PY bench/sweep.py "${GRID:-bench/sweeps/gpu_task1.json}" --out "$work/sweep" --workers "$workers" --deadline "$deadline" \
  >> "$out/sweep.log" 2>&1 &
sweep=$!
timeout $((deadline - 20)) $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py -rA > "$out/pytest.log" 2>&1
wait $sweep
stamp "sweep done" >> "$out/sweep.log"

(cd "$work" && find sweep -name 'train_log.jsonl' -o -name 'metrics.json' -o -name 'restarts.json' -o -name 'summary.json' \
   | tar czf "$out/results.tar.gz" -T - bench_*.json)
stamp "packed $(du -h "$out/results.tar.gz" | cut -f1)" >> "$out/sweep.log"
