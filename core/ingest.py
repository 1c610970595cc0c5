"""Entry shim: ``python -m core.ingest PATH...`` keeps working; ingest lives in
:mod:`services.ingest` (it writes to the database)."""

import sys

from services.ingest import main

if __name__ == "__main__":
    sys.exit(main())
