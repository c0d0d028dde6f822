"""Repository-root pytest configuration: puts the repo on sys.path and registers markers."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test, excluded unless -m slow")
    config.addinivalue_line("markers", "gpu: needs CUDA")
