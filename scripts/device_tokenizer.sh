# One tokenizer campaign run on a lent GPU (device tool), in phases that fit its 10-minute commands:
#   bash scripts/device_tokenizer.sh launch   wheels, training data, held-out clips, step benchmark, then the
#                                             layouts' training jobs in the background (setsid), all on one GPU
#   bash scripts/device_tokenizer.sh wait N   sleep up to N seconds while jobs run, then show the logs' tails
#   bash scripts/device_tokenizer.sh collect  each layout's tokenizer (fp16, split; a Wan decoder over 15 MiB in
#                                             int8), logs, reports, strips -> $OUT; of a run still going, its newest
#                                             checkpoint (relickit.train_tokenizer.newest_tokenizer)
# The budget: a call's limit is the device time left, less the machine's start; the last call's wait N leaves about
# 60 s of the budget_left_s the previous call reported for collect (2026-12-03: a wait past it brought home nothing).
# Carry .gpu (python scripts/pack_gpu_wheels.py: ViZDoom trimmed, diffusers, importlib_metadata; or .whl of wheels).
# Settings come from the environment: LAYOUTS (the jobs, side by side: a layout, or LAYOUT-WxB for a VAE of base width W
# and B residual blocks per stage, e.g. "f4c16 f4c16-48x1"; a job continues INIT_DIR/JOB.safetensors where that exists,
# else starts from scratch; wait and collect take the launch's), EPISODES, BATCH (clips of 17 frames per step, default
# 16; the launch's step benchmark times 16, 32 and 64; two f4c16/f4c32 VAE jobs at 32 need an H200, on an H100 they ran
# out of memory at 44 + 35 GB, at 16 they take 40 GB together: 2026-12-06; on a GPU under 100 GB launch lowers BATCH to
# 32 clips over all jobs), VAE_MIN, TINY_MIN, GAN_START, GAN_RAMP, GRAD_WEIGHT, GAN_WEIGHT, TEXTURE_SIGMA (the
# discriminators see texture only: relickit.adversarial), VAE_LR, COOLDOWN (the last fraction of each stage's minutes
# over which the learning rate decays to zero), INIT_DIR (committed state to resume: data/weights/tokenizer),
# DECODER_ONLY=1 (fine-tune the decoders of INIT_DIR's state: the latents a world model trained on stay), VAE_STEPS (0
# with DECODER_ONLY=1: the tiny play decoder alone trains, against INIT_DIR's Wan decoder), TRAIN_DATA (train on an
# existing dataset, e.g. the one a world-model run beside this one generated, instead of generating EPISODES; skips the
# step benchmark), NO_BENCH=1 (skip the step benchmark), CHANNELS_LAST=0 (train in contiguous memory; by default weights
# and clips are channels-last, 4-9% faster on an H200: docs/runs/campaign.md, 2026-12-03).
set -u
# A machine goes back 30 s after a call: issue the phases' calls back to back, edit nothing in between.
source scripts/device_site.sh || exit 1
RUNS=/tmp/runs DATA=${DATA:-/tmp/tokdata}
LAYOUTS=${LAYOUTS:-$(cat $RUNS/layouts 2>/dev/null || echo f4c16)}  # wait and collect: the launch's jobs
TRAIN=${TRAIN_DATA:-$DATA/train}
EVAL_MAPS=MAP21,MAP22,MAP23,MAP24,MAP25,MAP26,MAP27,MAP28,MAP29,MAP30,MAP31,MAP32  # freedoom1 is not carried
mkdir -p $RUNS

case $1 in
launch)
  echo "$LAYOUTS" > $RUNS/layouts
  nvidia-smi --query-gpu=name,driver_version,memory.used --format=csv,noheader
  python3 -c "import torch, diffusers, vizdoom; print('torch', torch.__version__, 'diffusers', diffusers.__version__)"
  # clips in flight over all jobs: 32 at base width 32 take about 40 GB (64: over 79 GB, out of memory on an H100)
  jobs=$(echo $LAYOUTS | wc -w) gpu_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
  if [ "$gpu_mib" -lt 100000 ] && [ $((jobs * ${BATCH:-16})) -gt 32 ]; then
    BATCH=$((32 / jobs)); echo "BATCH lowered to $BATCH: $jobs jobs at the asked batch do not fit $gpu_mib MiB"
  fi
  if [ -z "${TRAIN_DATA:-}" ]; then
    python3 -c "
from relickit.dataset import generate; from relickit.doom import map_names
generate('$TRAIN', map_names('train'), episodes=${EPISODES:-300}, frames_per_episode=600, seed=7, workers=14,
         progress=False)" &
    [ "${NO_BENCH:-0}" = 1 ] || python3 scripts/bench_tokenizer_step.py --jobs "$(echo $LAYOUTS | tr ' ' ,)" \
      --batch 16 32 64 --frames 17 --steps 10 --variants whole,channels_last | tee $RUNS/bench.log
    wait
  fi
  python3 -m relickit.evaluate.tokenizer --tokenizer "" --data $DATA/eval --maps $EVAL_MAPS --workers 12
  du -sh $TRAIN $DATA/eval
  for J in $LAYOUTS; do  # J: the job's name, L its layout, W x B its width
    L=${J%%-*}; W=${J#$L}; W=${W#-}
    init=""; [ -n "$W" ] && init="--base-dim ${W%x*} --res-blocks ${W#*x}"
    [ -n "${INIT_DIR:-}" ] && [ -e "$INIT_DIR/$J.safetensors" ] && init="$init --init $INIT_DIR/$J.safetensors"
    [ -n "${DECODER_ONLY:-}" ] && init="$init --decoder-only"
    setsid nohup bash -c "python3 -m relickit.train_tokenizer --data $TRAIN --bank --layout $L $init \
      --frames 17 --lengths 17 33 65 --batch-size ${BATCH:-16} --mixed-precision bf16 --gan-start ${GAN_START:-1200 300} \
      $([ "${CHANNELS_LAST:-1}" = 1 ] && echo --channels-last) \
      ${GAN_RAMP:+--gan-ramp $GAN_RAMP} ${GRAD_WEIGHT:+--grad-weight $GRAD_WEIGHT} ${VAE_LR:+--vae-lr $VAE_LR} \
      ${GAN_WEIGHT:+--gan-weight $GAN_WEIGHT} ${TEXTURE_SIGMA:+--texture-sigma $TEXTURE_SIGMA} \
      --vae-minutes ${VAE_MIN:-11} --tiny-minutes ${TINY_MIN:-3} --vae-steps ${VAE_STEPS:-100000} --tiny-steps 100000 \
      ${COOLDOWN:+--cooldown $COOLDOWN} \
      --run-dir $RUNS/$J --out $RUNS/$J/tokenizer.safetensors && \
      python3 -m relickit.evaluate.tokenizer --tokenizer $RUNS/$J/tokenizer.safetensors --data $DATA/eval --maps $EVAL_MAPS \
      --out $RUNS/$J/eval && echo DONE" > $RUNS/$J.log 2>&1 < /dev/null &
    sleep 20  # the jobs load their frame banks one after the other
  done
  sleep 30; tail -n 3 $RUNS/*.log ;;
wait)
  ls $RUNS/*.log >/dev/null 2>&1 || { echo "no training jobs on this machine: it is a fresh one (the last went back)"; exit 1; }
  end=$((SECONDS + $2))
  while [ $SECONDS -lt $end ] && [ "$(grep -l DONE $RUNS/*.log 2>/dev/null | wc -l)" -lt "$(echo $LAYOUTS | wc -w)" ]; do
    sleep 15
  done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
  for J in $LAYOUTS; do echo "== $J"; tail -c 600 $RUNS/$J.log; echo; done ;;
collect)
  for J in $LAYOUTS; do
    python3 -c "
import sys
from relickit.checkpoint import save_int8
from relickit.train_tokenizer import newest_tokenizer
from relickit.vae import wan_decoder_part
found = newest_tokenizer('$RUNS/$J')  # the saved tokenizer, or the newest checkpoint of a run still going
if found is None:
    sys.exit('$J: no tokenizer (a fresh machine, or the run had not reached a stage checkpoint)')
tok, source = found
print('$J:', source)
tok.save('$OUT/$J.safetensors', split=True, half=True)
part = wan_decoder_part('$OUT/$J.safetensors')  # a wide VAE's decoder passes \$OUT's 16 MiB a file in fp16
if part.stat().st_size > 15 * 2**20:
    save_int8(part, part)"
  done
  tar czf $OUT/runs.tgz -C $RUNS --exclude='checkpoints' --exclude='*.safetensors' --exclude='latest' . ;;
esac
