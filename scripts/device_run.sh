#!/usr/bin/env bash
# Run recipe stages on a GPU machine of the device tool, carrying stage outputs in and out.
#
#   bash scripts/device_run.sh STAGES [OUTPUT ...]
#
# In: .gpu/site.tar.xz or wheels in .whl/ or $WHEELS (scripts/device_site.sh), earlier stage outputs in .carry/run/
# (fp16, split in *.partNN).
# RECIPE_ARGS: extra arguments of relickit.recipe (e.g. --warm-start PATH).
# Out ($OUT): each OUTPUT (a path under the run directory) in fp16, split into 15 MB parts; all training logs.
set -euo pipefail
stages=$1; shift
source scripts/device_site.sh
export TQDM_MININTERVAL=20
run=/tmp/run
mkdir -p "$run"
if [ -d .carry/run ]; then
  (cd .carry/run && find . -name '*.part*' | sed 's/\.part[0-9]*$//' | sort -u | while read -r f; do
     mkdir -p "$run/$(dirname "$f")" && cat "$f".part* > "$run/$f"; done)
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m relickit.recipe --out "$run" --data /tmp/data --stages "$stages" ${RECIPE_ARGS:-}
mkdir -p /tmp/half
for f in "$@"; do
  mkdir -p "/tmp/half/$(dirname "$f")"
  python3 -c "import sys; from relickit.checkpoint import save_half; save_half(sys.argv[1], sys.argv[2])" "$run/$f" "/tmp/half/$f"
  split -b 15m -d "/tmp/half/$f" "$OUT/$(echo "$f" | tr / _).part"
done
(cd "$run" && find . -name log.jsonl | tar czf "$OUT/logs.tgz" -T -) || true
ls -la "$OUT"
