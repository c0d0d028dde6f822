"""What every benchmark does last: write its result as JSON beside the others, and show it."""

from __future__ import annotations

import json
from pathlib import Path


def write_result(path: str | Path, result: dict, echo: bool = True) -> Path:
    """``result`` as indented JSON at ``path`` (its folder created), printed too unless ``echo`` is False."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2)
    path.write_text(text + "\n")
    if echo:
        print(text)
    return path
