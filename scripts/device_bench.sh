# The GPU benchmark batch behind docs/benchmarks.md (run through the device tool with xformers,
# nvidia-cuda-runtime-cu12 and diffusers wheels in .whlb/ and .whlc/).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whlb/*.whl .whlc/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site LD_LIBRARY_PATH=/tmp/site/nvidia/cuda_runtime/lib:${LD_LIBRARY_PATH:-} PYTHONUNBUFFERED=1
set -x
python3 -m pytest -q tests/test_attention.py tests/test_model.py tests/test_memory.py -x 2>&1 | tail -3
python3 scripts/bench_attention.py --seconds 20
python3 scripts/bench_attention.py --seconds 120
python3 scripts/bench_stream.py --preset wan-1.3b --dtype bf16 --minutes 2 --policies compressed,window
python3 scripts/bench_stream.py --preset wan-1.3b --dtype bf16 --minutes 0.34 --policies full,compressed
python3 scripts/bench_replay_memory.py --preset small --lengths 1,2,4
python3 scripts/bench_stream.py --preset tiny --dtype fp32 --minutes 2 --policies compressed,full
