"""Patient-level splits for training: no patient in two splits, official lists honoured."""

import pandas as pd

from tests.conftest import DEFAULT_MODEL, NIH_LABELS, shared
from training.splits import official_split, patient_split


def _table(n_patients=50, per=3):
    rows = [{"Image Index": f"{p:08d}_{i:03d}.png", "Patient ID": p} for p in range(n_patients) for i in range(per)]
    return pd.DataFrame(rows)


def test_patient_split_keeps_patients_whole():
    table = _table()
    split = patient_split(table, 0.2, 0.1, seed=3)
    per_patient = table.assign(split=split).groupby("Patient ID")["split"].nunique()
    assert (per_patient == 1).all()
    counts = table.assign(split=split).drop_duplicates("Patient ID")["split"].value_counts()
    assert counts["test"] == 10 and counts["val"] == 5 and counts["train"] == 35
    assert "test" not in set(patient_split(table, 0.0, 0.1, seed=3))


def test_official_split_honours_the_lists(tmp_path):
    table = _table()
    test_names = list(table["Image Index"][:30])  # patients 0-9
    (tmp_path / "test.txt").write_text("\n".join(test_names))
    (tmp_path / "train.txt").write_text("\n".join(table["Image Index"][30:]))
    split = official_split(table, tmp_path / "train.txt", tmp_path / "test.txt", 0.1, seed=1)
    assert set(table["Image Index"][split == "test"]) == set(test_names)
    assert set(split[30:]) == {"train", "val"}
    assert (table.assign(split=split).groupby("Patient ID")["split"].nunique() == 1).all()


def test_stratified_split_balances_sources_and_keeps_patients_whole():
    table = pd.concat([_table(40, 1).assign(source="a"), _table(20, 4).assign(source="b")], ignore_index=True)
    table.loc[table["source"] == "b", "Patient ID"] += 1000
    split = patient_split(table, 0.2, 0.15, seed=1, strata="source")
    firsts = table.assign(split=split).drop_duplicates("Patient ID")
    assert firsts.groupby(["source", "split"]).size().to_dict() == {
        ("a", "test"): 8,
        ("a", "train"): 26,
        ("a", "val"): 6,
        ("b", "test"): 4,
        ("b", "train"): 13,
        ("b", "val"): 3,
    }
    assert (table.assign(split=split).groupby("Patient ID")["split"].nunique() == 1).all()


def test_default_model_split_is_reproduced():
    """The committed list of training images is what the card's seeded, stratified split gives."""
    from core.model_card import ModelCard
    from training.evaluate import matched_table

    committed = pd.read_csv(DEFAULT_MODEL / "training_images.csv")
    seed = ModelCard.load(DEFAULT_MODEL).training["seed"]
    table = matched_table([shared("nih", "dev512"), shared("nih", "small64")], NIH_LABELS)
    split = patient_split(table, 0.2, 0.15, seed=seed, strata="source")
    got = dict(zip(table["Image Index"], split))
    assert got == dict(zip(committed["Image Index"], committed["split"]))
    assert len(set(table["Patient ID"][split == "test"]) & set(table["Patient ID"][split != "test"])) == 0
