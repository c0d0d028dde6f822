#!/usr/bin/env bash
# Creates .venv and installs the project's dependencies into it.
#   bash scripts/install.sh        runtime dependencies
#   bash scripts/install.sh dev    runtime + test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-runtime}"
# what an install is made from; when none of it changed since the last install of this mode (or of dev, which holds
# runtime's too), there is nothing to do. EDITGAN_REINSTALL=1 installs anyway.
key="$(cat scripts/install.sh requirements.txt requirements-dev.txt 2>/dev/null | sha256sum | cut -c1-16) $(python3 -V 2>&1)"
installed_as() { [ -f ".venv/.editgan-installed-$1" ] && [ "$(cat ".venv/.editgan-installed-$1")" = "$key" ]; }
if [ -z "${EDITGAN_REINSTALL:-}" ] && [ -x .venv/bin/python ] && { installed_as "$mode" || installed_as dev; }; then
    echo "dependencies up to date in .venv (EDITGAN_REINSTALL=1 reinstalls)"
    exit 0
fi
rm -f .venv/.editgan-installed*
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
if [ "$mode" = "dev" ]; then
    python -m pip install -q -r requirements-dev.txt
else
    python -m pip install -q -r requirements.txt
fi
echo "$key" > ".venv/.editgan-installed-$mode"
