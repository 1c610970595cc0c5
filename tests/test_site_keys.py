"""Site keys (the session signing key, the patient identity key) are made once, whole,
however many processes ask for them at the same moment."""

import multiprocessing as mp

from core.storage import read_or_create_secret


def _ask(path: str, barrier, out) -> None:
    barrier.wait()
    try:
        out.put(read_or_create_secret(path).hex())
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put(f"error {type(exc).__name__}: {exc}")


def test_six_processes_creating_the_key_at_once_all_get_the_same_key(tmp_path):
    ctx = mp.get_context("fork")
    for round_ in range(10):
        path = str(tmp_path / f"r{round_}" / "session.key")
        barrier, out = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_ask, args=(path, barrier, out)) for _ in range(6)]
        for p in procs:
            p.start()
        keys = [out.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        assert not [k for k in keys if k.startswith("error")], keys
        assert len(set(keys)) == 1 and len(keys[0]) == 64
        assert not [p for p in (tmp_path / f"r{round_}").iterdir() if p.name != "session.key"]  # no temp left


def test_a_truncated_key_file_is_refused_not_used(tmp_path):
    import pytest

    path = tmp_path / "identity.key"
    path.write_bytes(b"short")
    with pytest.raises(RuntimeError, match="not a 32-byte key"):
        read_or_create_secret(path)
