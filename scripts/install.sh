#!/usr/bin/env bash
# Creates .venv and installs the project's dependencies into it.
#   bash scripts/install.sh        runtime dependencies
#   bash scripts/install.sh dev    runtime + test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-runtime}"
# what was installed, by what: when nothing of it changed since the last install, there is nothing to do
# (EDITGAN_REINSTALL=1 installs anyway)
want="$(cat scripts/install.sh requirements.txt requirements-dev.txt 2>/dev/null | sha256sum | cut -c1-16) $mode $(python3 -V 2>&1)"
stamp=.venv/.editgan-installed
if [ -z "${EDITGAN_REINSTALL:-}" ] && [ -f "$stamp" ] && [ -x .venv/bin/python ] \
        && { [ "$(cat "$stamp")" = "$want" ] || { [ "$mode" = runtime ] && grep -q " dev " "$stamp" \
             && [ "$(cut -d' ' -f1 "$stamp")" = "$(echo "$want" | cut -d' ' -f1)" ]; }; }; then
    echo "dependencies up to date in .venv (EDITGAN_REINSTALL=1 reinstalls)"
    exit 0
fi
rm -f "$stamp"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch/torchvision are pinned here (not in requirements.txt) to the builds that
# lie on this project's machines; a Space installs whatever requirements.txt allows.
if [ "$(uname -m)" = "x86_64" ]; then
    python -m pip install -q torch==2.14.1 torchvision==0.29.1
else
    python -m pip install -q torch==2.9.1 torchvision==0.24.1
fi
if [ "${1:-}" = "dev" ]; then
    python -m pip install -q -r requirements-dev.txt
else
    python -m pip install -q -r requirements.txt
fi
echo "$want" > "$stamp"
