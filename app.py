"""Entry point of the editor (also the Hugging Face Space's app_file).

The browser editor is built in the app issue; until then this prints what is
available and exits cleanly.
"""

from __future__ import annotations

import sys


def main() -> int:
    print(
        "EditGAN-class editor: the browser editor arrives with the app issue.\n"
        "Available now: the core model code (python -m core.train.gan --help), the procedural\n"
        "face domain (core.data.faces) and the benchmarks in benchmarks/."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
