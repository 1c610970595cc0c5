"""``python -m cli VERB ...`` is ``cxr VERB ...`` without the installed script."""

import sys

from cli.main import main

sys.exit(main())
