# Sourced by the device scripts: put the packages the GPU machine lacks on PYTHONPATH, once per machine.
# Carry .gpu (site.tar.xz from scripts/pack_gpu_wheels.py: trimmed ViZDoom, diffusers, importlib_metadata) or a
# folder of wheels named by $WHEELS (installed as they are). Where both import already, nothing is installed.
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if ! python3 -c "import diffusers, vizdoom" 2>/dev/null; then
  if [ ! -e /tmp/site/.ready ]; then
    mkdir -p /tmp/site
    if [ -e .gpu/site.tar.xz ]; then
      tar xJf .gpu/site.tar.xz -C /tmp/site || return 1
    elif compgen -G "${WHEELS:-.whl}/*.whl" >/dev/null; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "${WHEELS:-.whl}"/*.whl || return 1
    else
      echo "no packages to install: carry .gpu (python scripts/pack_gpu_wheels.py) or .whl" >&2; return 1
    fi
    touch /tmp/site/.ready
  fi
  export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
