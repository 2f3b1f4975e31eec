#!/usr/bin/env bash
# Set up a Python environment for oodbench: `scripts/setup_env.sh [EXTRAS]` (e.g. `test`).
#
# - Uses the active virtual environment if there is one, else creates ./.venv (override: OODBENCH_VENV).
# - Keeps an existing torch + torchvision pair that imports (a GPU user's install is left as it is).
# - Otherwise (no torch, or a torchvision that does not match torch, e.g. a CPU-only torch 2.13.0+cpu
#   beside a CUDA torchvision: "operator torchvision::nms does not exist") installs a pair known to
#   import and run on CPU-only machines: OODBENCH_TORCH_PAIR (default below).
# - Then installs oodbench itself in editable mode with the requested extras.
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRAS="${1:-}"
TORCH_PAIR="${OODBENCH_TORCH_PAIR:-torch==2.14.1 torchvision==0.29.1}"

if [ -n "${VIRTUAL_ENV:-}" ]; then
    PY="$VIRTUAL_ENV/bin/python"
else
    VENV="${OODBENCH_VENV:-.venv}"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "[setup] creating virtual environment $VENV"
        "${PYTHON:-python3}" -m venv "$VENV"
    fi
    PY="$VENV/bin/python"
fi

if "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
    echo "[setup] keeping torch $("$PY" -c 'import torch; print(torch.__version__)') with its torchvision"
else
    echo "[setup] installing $TORCH_PAIR"
    # shellcheck disable=SC2086
    "$PY" -m pip install --quiet $TORCH_PAIR
fi

SPEC="."
[ -n "$EXTRAS" ] && SPEC=".[$EXTRAS]"
echo "[setup] installing oodbench ($SPEC)"
"$PY" -m pip install --quiet -e "$SPEC"
"$PY" -c "import torchvision, open_clip, oodbench; print('[setup] ok: oodbench', oodbench.__version__)"
