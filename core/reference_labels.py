"""Entry shim: ``python -m core.reference_labels import CSV`` keeps working; the import
itself lives in :mod:`services.reference_labels` (it writes to the database)."""

import sys

from services.reference_labels import main

if __name__ == "__main__":
    sys.exit(main())
