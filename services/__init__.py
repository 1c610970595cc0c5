"""The verbs that join storage and the domain: ingest, the worker loop, reference-label
import, threshold versions and exports. Pages call these; these call ``db`` and ``core``."""
