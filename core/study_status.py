"""Where a study is on its way through the worker: the values stored in ``studies.status``."""

from __future__ import annotations

from enum import StrEnum


class StudyStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
