#!/usr/bin/env bash
# Builds (or reuses) the project's virtual environment and links it to .venv at the repo root.
#
# The heavy environment is keyed by a hash of requirements.txt and BUILD_STEPS_VERSION, and kept under
# ${MXREC_VENV_CACHE:-~/.cache/mx_rec/venvs}, so a fresh clone on the same machine reuses it
# and a change to the pins builds a new one. Horovod is built after TensorFlow, with Gloo.
# .venv itself is a small venv of this checkout: it sees the cached packages and this
# checkout's mx_rec_py (nothing of mx_rec is installed in the shared cache, so clones never
# fight over it), and has its own horovodrun and pytest entry points.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null || py=python3
BUILD_STEPS_VERSION=1  # bump when the build steps below change what goes into the environment
key="$( (cat requirements.txt; echo "build-steps-$BUILD_STEPS_VERSION") | sha256sum | cut -c1-16)"
cache="${MXREC_VENV_CACHE:-$HOME/.cache/mx_rec/venvs}"
venv="$cache/$key"
log() { printf '[bootstrap] %s\n' "$*" >&2; }
# pip warns once per package about this machine's optional local indexes; keep real errors visible.
quiet_pip() { "$venv/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

if [ ! -f "$venv/.complete" ]; then
  log "building virtual environment $venv (first run: ~6 min, Horovod compiles)"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$py" -m venv "$venv"
  quiet_pip install --quiet --upgrade "pip<25"
  grep -v '^horovod' requirements.txt > "$venv/requirements-no-horovod.txt"
  quiet_pip install --quiet -r "$venv/requirements-no-horovod.txt"
  hvd="$(grep '^horovod' requirements.txt)"
  log "building $hvd with Gloo (a few minutes)"
  PATH="$venv/bin:$PATH" HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
    HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS="-j$(nproc)" \
    quiet_pip install --quiet --no-build-isolation "$hvd"
  TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/python" -c "import horovod.tensorflow as h; assert h.gloo_built(), 'Horovod built without Gloo'"
  touch "$venv/.complete"
fi

"$venv/bin/python" -m pip uninstall --quiet --yes mx_rec >/dev/null 2>&1 || true  # left by older bootstraps
if [ ! -f .venv/mxrec-cache ] || [ "$(cat .venv/mxrec-cache)" != "$venv" ]; then
  rm -rf .venv
  "$py" -m venv --without-pip .venv
  echo "$venv" > .venv/mxrec-cache
fi
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cached_site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf 'import site; site.addsitedir(%s)\n' "'$cached_site'" > "$site/mxrec_cached_env.pth"
# mx_rec from mx_rec_py, and the checkout root: the zoo (models.common) and the tools (tools.criteo, ...)
# import as packages, and no script edits its own import path
printf '%s\n%s\n' "$repo/mx_rec_py" "$repo" > "$site/mxrec_checkout.pth"
for tool in horovodrun:horovod.runner.launch:run_commandline pytest:pytest:console_main; do
  IFS=: read -r name module func <<< "$tool"
  # the __main__ guard matters: horovodrun's multiprocessing re-imports the main module
  printf '#!%s\nimport sys\nfrom %s import %s\nif __name__ == "__main__":\n    sys.exit(%s())\n' \
    "$repo/.venv/bin/python" "$module" "$func" "$func" \
    > ".venv/bin/$name"
  chmod +x ".venv/bin/$name"
done
touch "$venv"  # in use: keep it; environments unused for a week are pruned
find "$cache" -mindepth 1 -maxdepth 1 -type d -mtime +7 ! -path "$venv" -exec rm -rf {} + 2>/dev/null || true
# mx_rec's fused TF ops, compiled against this TensorFlow (cached by sources, compiler and TF version; ~15 s)
if ! kernels="$(TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python -m mx_rec.kernels.build)"; then
  log "building mx_rec's fused kernels failed (see above); TF's own ops will run instead"
else
  log "fused kernels: $kernels"
fi
log "ready: $repo/.venv (packages from $venv)"
