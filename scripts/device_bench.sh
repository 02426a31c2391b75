# The GPU benchmark batches behind docs/benchmarks.md, run through the device tool with the xformers,
# nvidia-cuda-runtime-cu12 and diffusers wheels in .whlb/ and .whlc/:
#   bash scripts/device_bench.sh <batch>      batches: tests attention attention-20s stream-eager stream-compiled stream-graphs profile replay
# Output lines are copied to $OUT/<batch>.log when $OUT is set.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whlb/*.whl .whlc/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site LD_LIBRARY_PATH=/tmp/site/nvidia/cuda_runtime/lib:${LD_LIBRARY_PATH:-} PYTHONUNBUFFERED=1
WAN="python3 scripts/bench_stream.py --preset wan-1.3b --dtype bf16"
LOG=${OUT:-/tmp}/$1.log
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$LOG"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$LOG"
set -x
case $1 in
  tests) python3 -m pytest -q -p no:warnings tests/test_graphs.py tests/test_attention.py tests/test_model.py tests/test_memory.py -x 2>&1 | tail -5 ;;
  attention) python3 scripts/bench_attention.py --seconds 20; python3 scripts/bench_attention.py --seconds 120 ;;
  attention-20s) python3 scripts/bench_attention.py --seconds 20 ;;
  stream-eager) $WAN --modes eager --variants compressed+h90,compressed ;;
  stream-compiled) $WAN --modes compiled --variants compressed+h90,window,compressed+h90+fp8,full@0.34 ;;
  stream-graphs) $WAN --modes compiled+graphs --variants compressed+h90 ;;
  profile) python3 scripts/profile_step.py --seconds 25; python3 scripts/profile_step.py --compile --seconds 25 ;;
  replay) python3 scripts/bench_replay_memory.py --preset small --lengths 1,2,4 ;;
  *) echo "unknown batch $1"; exit 2 ;;
esac 2>&1 | tee -a "$LOG"
