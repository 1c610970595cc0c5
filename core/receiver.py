"""Entry shim: ``python -m core.receiver`` starts the DICOM receiver, which lives in
:mod:`services.receiver` (it stores what it receives)."""

import sys

from services.receiver import main

if __name__ == "__main__":
    sys.exit(main())
