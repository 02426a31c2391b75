#!/usr/bin/env bash
# Recipe stages on a GPU machine of the device tool, in phases that fit its 10-minute commands:
#
#   bash scripts/device_run.sh launch STAGES        packages, carried state, then the recipe in the background
#   bash scripts/device_run.sh wait N [RUN ...]     up to N seconds while this RUN's recipe (or each named run's)
#                                                   runs, then the logs' tails; fails at once on a fresh machine
#   bash scripts/device_run.sh collect OUTPUT ...   each OUTPUT (a path under the run directory) -> $OUT in fp16
#                                                   (PRECISION=int8: relickit.checkpoint.save_int8, the campaign's
#                                                   continuation format), split into 15 MB parts, with the logs
#                                                   (one archive, $OUT/logs.tgz; a side run's RUN=/tmp/NAME files
#                                                   are named NAME_student..., NAME_logs.tgz)
#   bash scripts/device_run.sh run STAGES OUTPUT ...   all three in one call, for stages that end within it
#   bash scripts/device_run.sh eval-teacher DIR ...  the held-out teacher evaluation of each run directory's last
#                                                   teacher stage (CPU, side by side) -> $OUT/<dir>_teacher.{json,png}
#   bash scripts/device_run.sh collect-teachers DIR ...  each run directory's newest teacher (the last stage, or the
#                                                   running stage's newest checkpoint) -> $OUT/<dir>.int8.safetensors
#                                                   (the campaign's continuation format), the logs -> $OUT/teacher_logs.tgz
#   bash scripts/device_run.sh collect-student      this RUN's newest DMD student (the last stage, or the running
#                                                   stage's newest checkpoint: relickit.recipe.newest_student) ->
#                                                   $OUT/student.int8.safetensors, with the logs
#   bash scripts/device_run.sh stop                 end this RUN's recipe (its checkpoints stay)
#
# RUN (default /tmp/run) names the run directory, so runs can go side by side (a small model leaves most of the GPU
# idle): RUN=/tmp/wide LATENTS_FROM=/tmp/run RECIPE_ARGS="... --size 384x4" ... launch teacher trains another
# teacher on the latents /tmp/run encoded (linked, not copied), once that run's latents stage is done.
#
# A machine goes back 30 s after a call: issue the phases' calls back to back, edit nothing in between.
# In: .gpu (scripts/device_site.sh), earlier stage outputs in .carry/run/ (fp16, split in *.partNN), committed state
# in the tree (data/weights/). RECIPE_ARGS: more arguments of relickit.recipe, e.g.
#   RECIPE_ARGS="--tokenizer data/weights/tokenizer/f4c16.safetensors --size 192x8 --episodes 500 --clips 8192
#                --minutes teacher=12 hybrid=3 dmd=3"
# BENCH_ARGS: arguments of a step benchmark run beside the recipe's data stage (CPU-bound, GPU idle), its output
#   collected as bench.log: BENCH_SCRIPT (default scripts/bench_train_step.py, e.g. BENCH_ARGS="--sizes 192x8
#   --latent-frames 13 25 --batch 64 --steps 5"), or scripts/bench_tokenizer_step.py to time tokenizer jobs for a
#   later tokenizer run (BENCH_ARGS="--jobs f4c16,f4c16-64x2 --batch 16 32 64 --variants whole,channels_last")
set -uo pipefail
source scripts/device_site.sh || exit 1
export TQDM_MININTERVAL=20
RUN=${RUN:-/tmp/run} DATA=${DATA:-/tmp/data} LOG=${RUN}.log
RECIPE_OF_RUN="relickit.recipe --out $RUN --data"  # the command line of this RUN's recipe (pgrep, pkill)
PREFIX=$([ "$RUN" = /tmp/run ] || echo "$(basename "$RUN")_")  # what a side run's collected files are named by
phase=$1; shift

launch() {
  mkdir -p "$RUN"
  if [ -n "${LATENTS_FROM:-}" ]; then
    for f in latents.safetensors starts.safetensors; do
      [ -e "$LATENTS_FROM/$f" ] || { echo "LATENTS_FROM=$LATENTS_FROM has no $f yet: wait for its latents stage"; return 1; }
      ln -sf "$LATENTS_FROM/$f" "$RUN/$f"
    done
  fi
  if [ -d .carry/run ]; then
    (cd .carry/run && find . -name '*.part*' | sed 's/\.part[0-9]*$//' | sort -u | while read -r f; do
       mkdir -p "$RUN/$(dirname "$f")" && cat "$f".part* > "$RUN/$f"; done)
  fi
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  # an earlier recipe of this RUN still writing its log (its last stage's file is out before it exits) would write on
  # into the emptied log at its old offset, and its DONE would end the next wait at once (run 7 lost a call so)
  for _ in $(seq 60); do pgrep -f -- "$RECIPE_OF_RUN" >/dev/null || break; sleep 2; done
  pgrep -f -- "$RECIPE_OF_RUN" >/dev/null && { echo "a recipe of $RUN is still running: wait for it, or stop it"; return 1; }
  [ -s "$LOG" ] && cat "$LOG" >> "$RUN.earlier.log"  # an earlier launch's log (its DONE would end a wait at once)
  : > "$LOG"
  setsid nohup bash -c "python3 -m relickit.recipe --out $RUN --data $DATA --stages $1 ${RECIPE_ARGS:-} && echo DONE \
    || echo FAILED" > "$LOG" 2>&1 < /dev/null &
  if [ -n "${BENCH_ARGS:-}" ]; then  # the data stage keeps the CPUs busy and leaves the GPU idle: time steps then
    setsid nohup python3 ${BENCH_SCRIPT:-scripts/bench_train_step.py} $BENCH_ARGS > "$RUN.bench.log" 2>&1 < /dev/null &
  fi
}

last_stage() { ls "$1"/teacher/stage*.safetensors 2>/dev/null | sort | tail -n 1; }

wait_for() {  # wait_for SECONDS [RUN ...]: until every run's recipe has ended or the time is up
  local end=$((SECONDS + $1)) logs=() r; shift
  for r in "${@:-$RUN}"; do
    [ -e "$r.log" ] || { echo "no recipe $r on this machine: it is a fresh one (the last went back)"; return 1; }
    logs+=("$r.log")
  done
  while [ $SECONDS -lt $end ] && [ "$(grep -lxE 'DONE|FAILED' "${logs[@]}" | wc -l)" -lt ${#logs[@]} ]; do sleep 10; done
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
  for r in "${logs[@]}"; do echo "== $r"; tail -c $((1500 / ${#logs[@]})) "$r" | tr '\r' '\n' | tail -n 3; done
  ! grep -qx FAILED "${logs[@]}"
}

collect_teachers() {  # each run directory's newest teacher in int8 (relickit.teacher.newest_teacher: the last stage,
  mkdir -p "$OUT"      # or the running stage's newest checkpoint), and every run's logs
  local dir
  for dir in "$@"; do
    save_newest teacher "$dir" "$OUT/$(basename "$dir").int8.safetensors" ||
      echo "$dir: no teacher stage or checkpoint (a fresh machine, or the run had not reached one)"
  done
  tar czf "$OUT/teacher_logs.tgz" $(for dir in "$@"; do ls "$dir".*log* 2>/dev/null; find "$dir" -name log.jsonl -o -name held_out.jsonl; done) \
    2>/dev/null || true
  ls -la "$OUT"
}

collect() {
  mkdir -p /tmp/half "$OUT"
  for f in "$@"; do
    [ -e "$RUN/$f" ] || { echo "$f: not in $RUN"; continue; }
    mkdir -p "/tmp/half/$(dirname "$f")"
    python3 -c "import sys; from relickit import checkpoint; getattr(checkpoint, 'save_' + sys.argv[3])(*sys.argv[1:3])" \
      "$RUN/$f" "/tmp/half/$f" "${PRECISION:-half}"
    split -b 15m -d "/tmp/half/$f" "$OUT/$(echo "$f" | tr / _).part"
  done
  collect_logs
}

collect_logs() {  # this RUN's recipe log, its step benchmark's and every training run's log.jsonl, one archive
  local parent name
  parent=$(dirname "$RUN") name=$(basename "$RUN")
  tar czf "$OUT/${PREFIX}logs.tgz" -C "$parent" "$name.log" $(cd "$parent" && ls "$name.bench.log" 2>/dev/null
    find "$name" -name log.jsonl -o -name held_out.jsonl) || true
  ls -la "$OUT"
}

collect_student() {
  mkdir -p "$OUT"
  save_newest student "$RUN" "$OUT/${PREFIX}student.int8.safetensors" ||
    echo "$RUN: no DMD stage or checkpoint (a fresh machine, or none yet)"
  collect_logs
}

save_newest() {  # save_newest teacher|student RUN DST: a run directory's newest teacher (relickit.teacher.newest_teacher
  # of RUN/teacher) or DMD student (relickit.recipe.newest_student of RUN), in int8;
  # a file over the 16 MiB that comes back a file (a teacher past ~16M parameters) in 15 MB parts: cat DST.part* > DST
  python3 - "$@" <<'PY' || return 1
import sys, tempfile
from relickit.checkpoint import save_int8
from relickit.recipe import newest_student
from relickit.teacher import newest_teacher
kind, run, dst = sys.argv[1:]
found = newest_teacher(f"{run}/teacher") if kind == "teacher" else newest_student(run)
if found is None:
    sys.exit(1)
model, origin = found
with tempfile.TemporaryDirectory() as tmp:
    save_int8(model.save(f"{tmp}/{kind}.safetensors"), dst)
print(f"{run}: {origin}")
PY
  if [ "$(stat -c %s "$3")" -gt $((15 * 2**20)) ]; then split -b 15m -d "$3" "$3.part" && rm "$3"; fi
}

eval_teacher() {  # the last teacher stage of each run directory, evaluated side by side on the CPUs
  mkdir -p "$OUT"
  for dir in "$@"; do
    local name last
    name=$(basename "$dir") last=$(last_stage "$dir")
    [ -n "$last" ] || { echo "$dir: no teacher stage yet"; continue; }
    (python3 -m relickit.evaluate.teacher --teacher "$last" --tokenizer "$dir/tokenizer.safetensors" --no-figures \
       --threads 4 --out "/tmp/eval_$name/teacher.json" > "/tmp/eval_$name.log" 2>&1 || tail -n 5 "/tmp/eval_$name.log"
     cp "/tmp/eval_$name/teacher.json" "$OUT/${name}_teacher.json"
     cp "/tmp/eval_$name/teacher_strip.png" "$OUT/${name}_teacher.png"; echo "$name: $last") &
  done
  wait
}

case $phase in
  launch) launch "$1" && { sleep 20; tail -c 800 "$LOG"; } ;;
  wait) wait_for "$@" ;;
  collect-teachers) collect_teachers "$@" ;;
  collect) collect "$@" ;;
  collect-student) collect_student ;;
  run) stages=$1; shift; launch "$stages" && wait_for 100000 && collect "$@" ;;
  eval-teacher) eval_teacher "$@" ;;
  stop) pkill -f -- "$RECIPE_OF_RUN" && echo "stopped the recipe in $RUN" ;;
  *) echo "usage: $0 launch STAGES | wait SECONDS [RUN ...] | collect OUTPUT ... | run STAGES OUTPUT ... |" \
       "eval-teacher DIR ... | collect-teachers DIR ... | collect-student | stop" >&2
     exit 2 ;;
esac
