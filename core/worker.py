"""Entry shim: ``python -m core.worker [--once]`` keeps working; the worker lives in
:mod:`services.worker` (it reads the queue and writes results)."""

import sys

from services.worker import main

if __name__ == "__main__":
    sys.exit(main())
