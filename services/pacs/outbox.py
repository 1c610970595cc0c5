"""The outbox of results for the PACS, as admins see and act on it (the Admin page and
``cxr outbox``): what failed, why, how often, and a resend."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import Engine

from db import outbound, pacs_result_jobs, site_settings


@dataclass(frozen=True)
class FailingResult:
    id: int
    study_id: int
    kind: str
    status: str  # "pending" (retrying) or "failed" (given up after the retry window)
    attempts: int
    error: str
    destination: str
    next_attempt: str | None  # ISO time of the next try while retrying

    def as_dict(self) -> dict:
        return asdict(self)


def failing_results(engine: Engine) -> list[FailingResult]:
    return [
        FailingResult(
            item.id,
            item.study_id,
            item.kind,
            str(item.status),
            item.attempts,
            item.last_error or "",
            item.destination,
            item.next_attempt_at.isoformat(timespec="seconds") if item.status == outbound.PENDING else None,
        )
        for item in outbound.failing(engine)
    ]


def resend_results(engine: Engine, ids: list[int] | None, actor: str) -> int:
    """Queue the named results (None: every failing one) again now; audited."""
    return outbound.resend(engine, ids, actor)


def results_failing(engine: Engine) -> int:
    """How many results are not being delivered (Home warns while this is above zero): sends
    failed for good, and studies whose result objects could not be built (given up)."""
    return outbound.failing_count(engine) + pacs_result_jobs.given_up(engine)


def site_destination(engine: Engine) -> str | None:
    """The destination a PACS service recorded for the site ("AE@host:port"), or None while
    no service with one has run: results then stay here."""
    return site_settings.pacs_destination(engine)


def stop_sending_results(engine: Engine, actor: str) -> tuple[str | None, int]:
    """The site no longer sends results to a PACS (its service retired): forget the recorded
    destination, so workers stop recording result jobs, and close the jobs still open, so
    none waits for a service that will not come. Returns (destination forgotten, jobs closed).
    A PACS service started again with a destination records it again."""
    return site_settings.clear_pacs_destination(engine, actor)
