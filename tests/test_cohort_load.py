"""The analytics cohort as read from the database: the same values as a row-by-row read,
each study with the scores of the version that analysed it, only done studies, and the
details read later in the cohort's order."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, update

from bench.seed import seed
from core.labels import LABELS
from db.analytics import CohortFilter, _scores_row, load_cohort, study_details
from db.packing import unmask, unpack_floats
from db.schema import Study, StudyScores, StudyStatus, VerdictSet
from db.session import run_write


@pytest.fixture
def seeded(db_engine, settings, tmp_path):
    image = tmp_path / "grey.png"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))).save(image)
    seed(db_engine, settings.data_dir, image, 60, reviewed_fraction=0.5)
    return db_engine


def _row_by_row(engine):
    """What the cohort must hold, read the plain way: one ORM row at a time."""
    with engine.connect() as conn:
        studies = conn.execute(
            select(Study.id, Study.model_version).where(Study.status == StudyStatus.DONE).order_by(Study.id)
        ).all()
        scores = {(r.study_id, r.model_version): r for r in conn.execute(select(StudyScores)).all()}
        votes = conn.execute(select(VerdictSet)).all()
    kept = [s.id for s in studies if (s.id, s.model_version) in scores]
    probs = np.array(
        [
            unpack_floats(
                [scores[(s.id, s.model_version)].probabilities], [scores[(s.id, s.model_version)].labels], LABELS
            )[0]
            for s in studies
            if (s.id, s.model_version) in scores
        ]
    )
    return kept, probs, [v for v in votes if v.study_id in set(kept)]


def test_the_cohort_holds_what_a_row_by_row_read_finds(seeded):
    data = load_cohort(seeded, CohortFilter(), LABELS, with_reference=False)
    ids, probs, votes = _row_by_row(seeded)
    assert data.meta["id"].tolist() == ids and len(ids) == 60
    np.testing.assert_array_equal(data.probs, probs)
    assert len(data.vote_pos) == len(votes) > 0
    by_study = {v.study_id: v for v in votes}
    for pos, present in zip(data.vote_pos, data.vote_present, strict=True):
        vote = by_study[ids[pos]]
        want, _ = unmask([vote.present_mask], [vote.labels], LABELS)
        np.testing.assert_array_equal(present, want[0])


def test_a_study_reads_the_scores_of_the_version_that_analysed_it_and_only_done_studies_count(seeded):
    first, second, third = load_cohort(seeded, CohortFilter(), LABELS).meta["id"].tolist()[:3]

    def rescore(session):
        row = session.get(StudyScores, (first, session.get(Study, first).model_version))
        session.add(
            StudyScores(
                study_id=first,
                model_version="v2",
                probabilities=bytes(len(row.probabilities)),
                thresholds=row.thresholds,
                labels=row.labels,
            )
        )
        session.execute(update(Study).where(Study.id == second).values(model_version="v2"))  # no v2 scores
        session.execute(update(Study).where(Study.id == third).values(status=StudyStatus.QUEUED))

    before = load_cohort(seeded, CohortFilter(), LABELS)
    run_write(seeded, rescore)
    after = load_cohort(seeded, CohortFilter(), LABELS)
    ids = after.meta["id"].tolist()
    assert first in ids and second not in ids and third not in ids and len(ids) == len(before.meta) - 2
    np.testing.assert_array_equal(after.probs[ids.index(first)], before.probs[0])  # still the old version's
    assert not (np.asarray(after.meta["id"])[after.vote_pos] == third).any()  # its verdicts leave with it

    run_write(seeded, lambda s: s.execute(update(Study).where(Study.id == first).values(model_version="v2")))
    moved = load_cohort(seeded, CohortFilter(), LABELS)
    np.testing.assert_array_equal(moved.probs[moved.meta["id"].tolist().index(first)], np.zeros(len(LABELS)))


def test_scores_rows_join_on_id_and_version():
    assert _scores_row((1, 2, 3), ("a", "b", "a"), (1, 2, 3), ("a", "a", "a")).tolist() == [0, -1, 2]
    assert _scores_row((1, 2, 3), ("a", "b", "a"), (1, 2, 2, 3), ("a", "a", "b", "b")).tolist() == [0, 2, -1]
    assert _scores_row((5,), ("a",), (), ()).tolist() == [-1]


def test_details_come_in_the_order_asked(seeded):
    ids = load_cohort(seeded, CohortFilter(), LABELS).meta["id"].to_numpy()
    wanted = ids[::-7]
    details = study_details(seeded, wanted)
    assert details["id"].tolist() == wanted.tolist()
    with seeded.connect() as conn:
        names = dict(conn.execute(select(Study.id, Study.original_name)).all())
    assert details["original_name"].tolist() == [names[int(i)] for i in wanted]
    assert str(details["created_at"].dtype).startswith("datetime64")
    assert study_details(seeded, np.array([], dtype=np.int64)).empty
