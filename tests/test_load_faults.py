"""Load and faults: 8 concurrent reviewer sessions submit verdicts for 125 studies each
while two worker processes (SIGKILLed at random moments and restarted) process 1,000
queued studies; and 200+ malformed files, each rejected with a message.

The reviewer sessions call the same functions the Review page calls (db.reviews), from
8 threads, each with its own signed-in identity.
"""

import io
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image, PngImagePlugin
from sqlalchemy import func, select

from core.labels import LABELS, NO_FINDING
from core.verdict_rules import present
from db.schema import AuditEvent, Prediction, Study, Verdict
from tests.conftest import (
    DEFAULT_MODEL,
    ROOT,
    app_settings,
    make_settings,
    settings_env,
    shared,
)

pytestmark = [
    pytest.mark.slow,  # real worker processes, killed and restarted
    pytest.mark.skipif(not (DEFAULT_MODEL / "model_card.json").exists(), reason="default model not trained"),
]


def thousand_real_images() -> list[tuple[str, bytes]]:
    """The 843 small NIH images, plus re-encodings of some of them (same pixels, new
    bytes, tagged in a PNG text chunk) to reach 1,000 distinct uploads."""
    files = sorted(shared("nih", "small64").glob("*.png"))
    out = [(f.name, f.read_bytes()) for f in files]
    i = 0
    while len(out) < 1000:
        f = files[i % len(files)]
        info = PngImagePlugin.PngInfo()
        info.add_text("copy", str(i))
        buf = io.BytesIO()
        Image.open(f).save(buf, format="PNG", pnginfo=info)
        out.append((f"copy{i}_{f.name}", buf.getvalue()))
        i += 1
    return out


def _spawn_worker(settings, wid: str) -> subprocess.Popen:
    env = settings_env(settings, CXR_TTA_VIEWS="identity", CXR_LEASE_SECONDS="4", CXR_BATCH_SIZE="8")
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--worker-id", wid],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_reviewers_under_load_with_workers_killed(settings, db_engine):
    from db.users import create_user
    from services.ingest import ingest_upload
    from services.reading import save_read

    ids = []
    for name, data in thousand_real_images():
        res = ingest_upload(db_engine, settings, name, data)[0]
        assert res.status == "accepted", (name, res.message)
        ids.append(res.study_id)
    users = [create_user(db_engine, f"reviewer{i}", f"long password number {i}") for i in range(8)]
    workers = {f"w{i}": _spawn_worker(settings, f"w{i}") for i in range(2)}
    latencies, errors, submitted = [], [], []
    stop = threading.Event()

    def reviewer(user, mine: list[int]) -> None:
        rng = random.Random(user.id)
        pending = list(mine)
        try:
            while pending and not stop.is_set():
                with db_engine.connect() as conn:
                    done = set(
                        conn.execute(select(Study.id).where(Study.id.in_(pending), Study.status == "done")).scalars()
                    )
                    flags = dict(
                        conn.execute(
                            select(Prediction.study_id, func.count())
                            .where(Prediction.study_id.in_(done or [-1]), Prediction.flagged.is_(True))
                            .group_by(Prediction.study_id)
                        ).all()
                    )
                if not done:
                    time.sleep(0.2)
                    continue
                for sid in sorted(done):
                    with db_engine.connect() as conn:
                        flagged = set(
                            conn.execute(
                                select(Prediction.label).where(Prediction.study_id == sid, Prediction.flagged.is_(True))
                            ).scalars()
                        )
                    verdicts = {
                        lab: rng.choice(["correct", "incorrect"] if lab in flagged else ["correct", "missed"])
                        for lab in LABELS
                    }
                    if any(present(lab in flagged, v) for lab, v in verdicts.items() if lab != NO_FINDING):
                        # a reader who sees a finding does not also call the study normal
                        verdicts[NO_FINDING] = "incorrect" if NO_FINDING in flagged else "correct"
                    t = time.perf_counter()
                    outcome = save_read(db_engine, settings, user, sid, verdicts)
                    assert outcome.saved, outcome.message
                    latencies.append(time.perf_counter() - t)
                    submitted.append((sid, user.id, verdicts))
                    pending.remove(sid)
                del flags
        except Exception as exc:  # noqa: BLE001 - any error fails the test
            errors.append(repr(exc))

    threads = [threading.Thread(target=reviewer, args=(u, ids[i::8])) for i, u in enumerate(users)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    rng = random.Random(42)
    kills = 0
    deadline = time.time() + 900
    while any(t.is_alive() for t in threads) and time.time() < deadline:
        time.sleep(rng.uniform(2.0, 6.0))
        if kills < 4:
            wid = rng.choice(sorted(workers))
            workers[wid].send_signal(signal.SIGKILL)
            workers[wid].wait()
            kills += 1
            workers[f"{wid}r{kills}"] = _spawn_worker(settings, f"{wid}r{kills}")
            del workers[wid]
    stop.set()
    for t in threads:
        t.join(timeout=60)
    elapsed = time.perf_counter() - start
    for w in workers.values():
        w.send_signal(signal.SIGTERM)
        w.wait(timeout=60)
    assert errors == []
    assert kills == 4
    with db_engine.connect() as conn:
        statuses = dict(conn.execute(select(Study.status, func.count()).group_by(Study.status)).all())
        n_pred = dict(conn.execute(select(Prediction.study_id, func.count()).group_by(Prediction.study_id)).all())
        rows = conn.execute(select(Verdict.study_id, Verdict.reviewer_id, Verdict.label, Verdict.verdict)).all()
        events = conn.execute(select(func.count()).where(AuditEvent.action == "review_submitted")).scalar_one()
    assert statuses == {"done": 1000}
    assert len(n_pred) == 1000 and set(n_pred.values()) == {15}  # no study lost or done twice
    assert len(submitted) == 1000 and events == 1000
    stored = {(r.study_id, r.reviewer_id, r.label): r.verdict for r in rows}
    expected = {(sid, uid, lab): v for sid, uid, vs in submitted for lab, v in vs.items()}
    assert stored == expected  # every verdict exactly once, as submitted
    print(
        f"\n[{db_engine.dialect.name}] {len(submitted) * 15} verdicts in {len(submitted)} submissions over "
        f"{elapsed:.1f}s: {len(submitted) / elapsed:.1f} submissions/s, "
        f"{len(submitted) * 15 / elapsed:.0f} verdicts/s; worst submission latency {max(latencies) * 1000:.0f} ms, "
        f"median {np.median(latencies) * 1000:.0f} ms; {kills} workers SIGKILLed"
    )


def _jpeg_marker_offsets(data: bytes) -> list[int]:
    """Offsets of the marker segments before the scan (SOI, APPn, DQT, SOF, DHT, SOS)."""
    out, pos = [0], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        out.append(pos)
        if data[pos + 1] == 0xDA:  # start of scan: entropy-coded data follows
            break
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return out


def malformed_corpus(n_random: int = 30) -> list[tuple[str, bytes]]:
    """Structurally broken copies of the real files, and random bytes.

    Truncations; bit flips where the format has structure or a checksum (PNG: signature,
    chunk lengths, types, data and CRCs, all CRC-protected; JPEG: the marker and length
    bytes of each segment before the scan; DICOM: the 'DICM' magic and the transfer
    syntax); overwritten headers. A flipped bit in a JPEG quantisation table or a DICOM
    text value leaves a valid file with other content, so those are not in the corpus.
    """
    rng = np.random.default_rng(11)
    sources = {
        "png": shared("nih", "full", "00000001_000.png").read_bytes(),
        "jpg": shared("other", "16747_3_1.jpg").read_bytes(),
        "dcm": shared("dicom", "cr_chest.dcm").read_bytes(),
        "small_png": shared("other", "h0001.png").read_bytes(),
    }
    out = []
    for kind, data in sources.items():
        for frac in (0.0005, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 0.9, 0.97, 0.995):
            out.append((f"trunc_{frac}_{kind}", data[: max(1, int(len(data) * frac))]))
        if kind.endswith("png"):
            spots = [int(x) for x in rng.integers(0, len(data), 24)] + list(range(0, 8, 2))
        elif kind == "jpg":
            # segments the decoder cannot do without (SOI, DQT, SOF, SOS); APPn are optional and
            # libjpeg falls back to standard Huffman tables when a DHT is lost
            marks = [m for m in _jpeg_marker_offsets(data) if m == 0 or data[m + 1] in (0xDB, 0xC0, 0xC2, 0xDA)]
            spots = [m + k for m in marks for k in (0, 1)] + [m + 2 for m in marks[1:]]
        else:
            ts = data.find(b"1.2.840.10008.1.2.4")
            spots = list(range(128, 132)) * 5 + [ts + int(k) for k in rng.integers(0, 19, 8)]  # DICM, syntax
        for i, pos in enumerate(spots[:28]):
            b = bytearray(data)
            b[pos] ^= 1 << int(rng.integers(0, 8)) if kind != "jpg" or data[pos] != 0xFF else 0x80
            out.append((f"flip{i}_{kind}", bytes(b)))
        for i in range(8):
            b = bytearray(data)
            sof = next(m for m in _jpeg_marker_offsets(data) if data[m + 1] in (0xC0, 0xC2)) if kind == "jpg" else 0
            start = {"png": 8, "small_png": 8, "jpg": sof, "dcm": 128}[kind] + 2 * i
            b[start : start + 16] = rng.bytes(16)
            out.append((f"hdr{i}_{kind}", bytes(b)))
    out += [(f"random{i}", rng.bytes(int(rng.integers(1, 200_000)))) for i in range(n_random)]
    return out


def test_malformed_files_each_rejected_and_nothing_else_changes(settings, db_engine):
    from services.ingest import ingest_upload

    good = ingest_upload(db_engine, settings, "good.png", shared("other", "tb0005.png").read_bytes())[0]
    corpus = malformed_corpus()
    assert len(corpus) >= 200
    with db_engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(Study)).scalar_one()
    outcomes = {}
    for name, data in corpus:
        res = ingest_upload(db_engine, settings, name, data, actor="fuzz")
        outcomes[name] = res
    accepted = sorted(n for n, r in outcomes.items() if any(x.status != "rejected" for x in r))
    assert accepted == []
    rejected = [r for rs in outcomes.values() for r in rs if r.status == "rejected"]
    assert len(rejected) == len(corpus)
    assert all(len(r.message) > 10 and "Traceback" not in r.message for r in rejected)
    with db_engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(Study)).scalar_one()
        n_rej = conn.execute(select(func.count()).where(AuditEvent.action == "upload_rejected")).scalar_one()
        status = conn.execute(select(Study.status).where(Study.id == good.study_id)).scalar_one()
    assert after == before
    assert n_rej == len(rejected) and status == "queued"
    codes = pd.Series([r.code for r in rejected]).value_counts().to_dict()
    print(f"\n{len(corpus)} malformed inputs, all rejected with a message: {codes}")


def test_app_keeps_serving_after_malformed_uploads(tmp_path):
    """The Upload and Home pages still run after a batch of bad files in the same process."""
    from streamlit.testing.v1 import AppTest

    from db.bootstrap import open_database
    from db.users import create_user
    from services.ingest import ingest_upload

    with app_settings(make_settings(tmp_path / "d")) as settings:
        engine = open_database(settings)
        user = create_user(engine, "alice", "correct horse battery", "admin")
        for name, data in malformed_corpus(5)[::5]:
            ingest_upload(engine, settings, name, data)
        for page in ("pages/home.py", "pages/upload.py", "pages/worklist.py"):
            at = AppTest.from_file(str(ROOT / page), default_timeout=60)
            at.session_state["user_id"] = user.id
            at.run()
            assert not at.exception, page


CHILD = r"""
import os, sys
from core.config import load_settings
from db.bootstrap import open_database
from db.reviews import load_study
from db.users import current_identity
from core.verdict_rules import normal_study
from services.reading import save_read
settings = load_settings()
engine = open_database(settings)
uid, first, last = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
flags = {sid: dict(zip(c.predictions["label"], c.predictions["flagged"].astype(bool)))
         for sid in range(first, last + 1) if (c := load_study(engine, sid, uid)) is not None}
reader = current_identity(engine, uid)
print("ready", flush=True)
for sid in range(first, last + 1):
    assert save_read(engine, settings, reader, sid, normal_study(flags[sid]), "note " * 50).saved
"""


def test_crash_during_verdict_submission_is_all_or_nothing(settings, db_engine):
    from sqlalchemy import insert

    from db.schema import utcnow
    from db.users import create_user

    user = create_user(db_engine, "crashy", "a long enough password")
    n = 400
    now = utcnow()
    with db_engine.begin() as conn:
        conn.execute(
            insert(Study),
            [
                {
                    "id": i,
                    "sha256": f"{i:064x}",
                    "original_name": f"s{i}.png",
                    "stored_path": f"originals/00/{i}.png",
                    "file_format": "png",
                    "width": 64,
                    "height": 64,
                    "status": "done",
                    "model_version": "v",
                    "priority": 0.0,
                    "attempts": 1,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(1, n + 1)
            ],
        )
        conn.execute(
            insert(Prediction),
            [
                {
                    "study_id": i,
                    "label": lab,
                    "probability": 0.2,
                    "spread": 0.0,
                    "threshold": 0.5,
                    "flagged": False,
                    "model_name": "m",
                    "model_version": "v",
                    "threshold_version": "t",
                    "tta_views": 1,
                    "created_at": now,
                }
                for i in range(1, n + 1)
                for lab in LABELS
            ],
        )
    env = settings_env(settings)
    rng = random.Random(5)
    first = 1
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(user.id), str(first), str(n)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with db_engine.connect() as conn:
            counts = dict(conn.execute(select(Verdict.study_id, func.count()).group_by(Verdict.study_id)).all())
        first = max(counts, default=0) + 1
        if first > n:
            break
    with db_engine.connect() as conn:
        counts = dict(conn.execute(select(Verdict.study_id, func.count()).group_by(Verdict.study_id)).all())
        audited = set(
            conn.execute(select(AuditEvent.study_id).where(AuditEvent.action == "review_submitted")).scalars()
        )
    assert counts, "no submission finished before the first kill"
    assert set(counts.values()) == {15}  # never a partial submission
    assert audited == set(counts)  # the audit event commits with the verdicts, or not at all
