#!/usr/bin/env bash
# What a user of the wheel gets: build it, install it in a fresh venv outside the repository, run the demo
# and serve the playground from it. `make test` runs this (CI runs `make test`).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
torch_spec="${TORCH:-torch==2.13.0}"
work="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
"$python" -m pip wheel "$repo" --no-deps -q -w "$work/dist"
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$torch_spec"
"$work/venv/bin/pip" install -q "$work"/dist/genloom-*.whl
cd "$work"  # outside the repository: only the installed package is importable
"$work/venv/bin/genloom" --help > /dev/null
"$work/venv/bin/genloom" demo --max-iters 50 --out "$work/runs/demo" > "$work/demo.log" 2>&1
grep -q "validation loss" "$work/demo.log"
test -f "$work/runs/demo/card.md"
port=$("$work/venv/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$work/venv/bin/genloom" serve "$work/runs/demo" --port "$port" --api-key smoke > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
  sleep 0.5
done
curl -sf "http://127.0.0.1:$port/" | grep -q "genloom"                        # the playground page
curl -sf "http://127.0.0.1:$port/static/app.js" > /dev/null                   # and its script
curl -sf -H "Authorization: Bearer smoke" "http://127.0.0.1:$port/v1/models" | grep -q '"demo"'
curl -sf -H "Authorization: Bearer smoke" -H "Content-Type: application/json" \
  -d '{"model": "demo", "prompt": "ROMEO:", "max_tokens": 8, "seed": 1}' \
  "http://127.0.0.1:$port/v1/completions" | grep -q '"text_completion"'
echo "wheel smoke test: built, installed in a fresh venv, demo trained, playground and API served"
