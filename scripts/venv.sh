#!/usr/bin/env bash
# Create .venv and install the requirements; re-install only when a requirements file changed.
set -euo pipefail
reqs="${1:-requirements.txt}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.installed-$(cat requirements.txt "$reqs" | sha256sum | cut -c1-16)-$(basename "$reqs")"
if [ ! -f "$stamp" ]; then
  echo "Installing Python packages from $reqs (about a minute on a new machine)"
  if ! .venv/bin/pip install --disable-pip-version-check -q -r "$reqs" > .venv/pip.log 2>&1; then
    grep -v "is ignored: it is neither" .venv/pip.log >&2
    exit 1
  fi
  rm -f .venv/.installed-*-"$(basename "$reqs")"
  touch "$stamp"
fi
