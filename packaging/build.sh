#!/usr/bin/env bash
# Build the one-folder desktop bundle with PyInstaller, then smoke-test the built program:
#   1. the GUI starts offscreen, constructs its main window and exits 0 (workbench --smoke);
#   2. a one-step chain (prune) on a tiny BERT runs through the bundle's own worker
#      (workbench --worker fed a core.protocol RUN request) and ends with run_finished, exit 0;
#   3. (--default-model) the packaged all-MiniLM-L6-v2 loads and evaluates inside the bundle.
# Prints a summary with the bundle size and exits non-zero when any check fails.
#
#   packaging/build.sh [--skip-build] [--default-model]
# PYTHON (default: .venv/bin/python of the checkout, else python3) must have the app's
# dependencies (torch included: the smoke test builds its tiny model with it) and pyinstaller.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY="$(command -v python3)"; fi
fi
DIST="$ROOT/build/dist"
EXE="$DIST/workbench/workbench"
SKIP_BUILD=0
EXTRA=()
for arg in "$@"; do
    case "$arg" in
        --skip-build) SKIP_BUILD=1 ;;
        --default-model) EXTRA+=(--default-model) ;;
        *) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

declare -a SUMMARY=()
FAILED=0
record() {  # record NAME STATUS DETAIL
    SUMMARY+=("$(printf '%-6s %-28s %s' "$2" "$1" "$3")")
    [[ "$2" == PASS ]] || FAILED=1
}

if [[ $SKIP_BUILD -eq 0 ]]; then
    echo "== building with PyInstaller ($("$PY" -m PyInstaller --version 2>/dev/null || echo 'not installed'))"
    start=$(date +%s)
    if PYTHONPATH="$ROOT" "$PY" -m PyInstaller --noconfirm --log-level WARN \
        --distpath "$DIST" --workpath "$ROOT/build/work" packaging/workbench.spec; then
        record build PASS "$(( $(date +%s) - start )) s"
    else
        record build FAIL "pyinstaller exited non-zero after $(( $(date +%s) - start )) s"
    fi
fi

if [[ ! -x "$EXE" ]]; then
    record bundle FAIL "$EXE missing"
else
    SCRATCH="$(mktemp -d)"
    trap 'rm -rf "$SCRATCH"' EXIT
    echo "== GUI smoke test (offscreen)"
    start=$(date +%s)
    # PYTHON* variables removed and a scratch cwd: everything must come from the bundle.
    if (cd "$SCRATCH" && env -u PYTHONPATH -u PYTHONHOME QT_QPA_PLATFORM=offscreen WORKBENCH_HOME="$SCRATCH/home" \
            timeout 600 "$EXE" --smoke); then
        record "gui --smoke" PASS "window constructed, exit 0, $(( $(date +%s) - start )) s"
    else
        record "gui --smoke" FAIL "exit $?"
    fi
    echo "== worker smoke test (one-step chain through $EXE --worker)"
    if PYTHONPATH="$ROOT" "$PY" packaging/smoke_worker.py "$EXE" "${EXTRA[@]}" | tee "$SCRATCH/worker.log"; then
        record "worker one-step chain" PASS "$(grep -c '^PASS' "$SCRATCH/worker.log") run(s) ended run_finished, exit 0"
    else
        record "worker one-step chain" FAIL "see the output above"
    fi
    record "bundle size" PASS "$(du -sh "$DIST/workbench" | cut -f1) in $DIST/workbench ($(find "$DIST/workbench" -type f | wc -l) files)"
fi

echo
echo "== summary"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
