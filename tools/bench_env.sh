#!/usr/bin/env bash
# Builds (or reuses) the benchmark-only environment and prints its python's path on stdout.
#
# It holds what the project itself must not depend on: TFRA 0.7.0 (the peer), matplotlib (the chart)
# and py-spy (profiles). It is a small venv layered on the main cached environment (the one
# tools/bootstrap.sh built: TensorFlow 2.15.1, numba, rocksdict, horovod) through a .pth file, as
# .venv is, and lives under ${MXREC_BENCH_VENV_CACHE:-~/.cache/mx_rec/bench-venvs}/<hash of the
# main environment and the pins below>. First run: ~30 s (wheels only); later runs: instant.
#
# TFRA's wheel asks for the `tensorflow` distribution while we have `tensorflow-cpu` of the same
# version, so it is installed with --no-deps (otherwise pip would pull a second, 500 MB TensorFlow);
# its pkg_resources import needs setuptools<70. The import and a tiny lookup are checked before
# the environment is marked complete.
#
# mx_rec is not installed here: callers put the checkout's mx_rec_py on PYTHONPATH.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
log() { printf '[bench_env] %s\n' "$*" >&2; }
bash tools/bootstrap.sh >/dev/null 2>&1 || { log "tools/bootstrap.sh failed; run it for details"; exit 1; }
main_venv="$(cat .venv/mxrec-cache)"
PINS='setuptools<70
matplotlib>=3.8,<3.10
py-spy==0.4.*
tensorflow-recommenders-addons==0.7.0'
BENCH_STEPS_VERSION=1  # bump when the steps below change what goes into the environment
key="$( (echo "$main_venv"; echo "$PINS"; echo "bench-steps-$BENCH_STEPS_VERSION") | sha256sum | cut -c1-16)"
cache="${MXREC_BENCH_VENV_CACHE:-$HOME/.cache/mx_rec/bench-venvs}"
venv="$cache/$key"
py="$main_venv/bin/python"

if [ ! -f "$venv/.complete" ]; then
  log "building benchmark environment $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$(readlink -f "$py")" -m venv "$venv"
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  main_site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  printf 'import site; site.addsitedir(%s)\n' "'$main_site'" > "$site/mxrec_main_env.pth"
  quiet_pip() { "$venv/bin/python" -m pip --disable-pip-version-check "$@" \
                  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
  echo "$PINS" | grep -v '^tensorflow-recommenders-addons' > "$venv/requirements-bench.txt"
  quiet_pip install --quiet -r "$venv/requirements-bench.txt"
  quiet_pip install --quiet --no-deps "$(echo "$PINS" | grep '^tensorflow-recommenders-addons')"
  TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/python" - <<'EOF'
import tensorflow as tf
import tensorflow_recommenders_addons as tfra
assert tf.__version__ == "2.15.1", tf.__version__
with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    v = tfra.dynamic_embedding.get_variable("probe", key_dtype=tf.int64, value_dtype=tf.float32, dim=4,
                                            initializer=1.5)
    out = tfra.dynamic_embedding.embedding_lookup(v, tf.constant([1, 2, 1], tf.int64), name="probe_lookup")
    got = sess.run(out)
assert got.shape == (3, 4) and (got == 1.5).all(), got
EOF
  touch "$venv/.complete"
fi
touch "$venv"  # in use: keep it; environments unused for a week are pruned
find "$cache" -mindepth 1 -maxdepth 1 -type d -mtime +7 ! -path "$venv" -exec rm -rf {} + 2>/dev/null || true
echo "$venv/bin/python"
