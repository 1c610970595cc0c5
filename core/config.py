"""Runtime configuration read from the environment.

One place decides where data lives, which database and which model are used, and the
limits applied to uploads, so that the app, the worker and the scripts agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from core.triage import TriagePolicy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = PROJECT_ROOT / "models" / "default"

# How much a finding above its threshold raises a study in the worklist: findings that
# need action within hours weigh more than chronic ones. A site changes them with
# CXR_TRIAGE_WEIGHTS="Pneumothorax=3,Hernia=0.5" (entries not named keep these values).
DEFAULT_TRIAGE_WEIGHTS: dict[str, float] = {
    "Pneumothorax": 3.0,
    "Edema": 1.5,
    "Consolidation": 1.5,
    "Pneumonia": 1.5,
    "Effusion": 1.3,
    "Mass": 1.3,
    "Cardiomegaly": 1.1,
    "Atelectasis": 1.0,
    "Infiltration": 1.0,
    "Nodule": 1.1,
    "Emphysema": 0.8,
    "Fibrosis": 0.8,
    "Hernia": 0.8,
    "Pleural_Thickening": 0.8,
}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass(frozen=True)
class Settings:
    """Everything that can differ between sites; build with :func:`load_settings`."""

    data_dir: Path
    database_url: str
    model_dir: Path
    max_upload_bytes: int = 200 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 32
    max_zip_members: int = 2000
    max_zip_total_bytes: int = 2 * 1024 * 1024 * 1024
    lease_seconds: float = 120.0
    max_attempts: int = 3
    batch_size: int = 8
    tta_views: tuple[str, ...] = field(default_factory=tuple)
    runtime: str = "auto"  # core.runtime: auto | onnx | tensorflow
    overdue_hours: float = 24.0
    triage_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TRIAGE_WEIGHTS))
    embedded_worker: bool = True  # the app runs one worker thread (the embedded default)
    # DICOM node: the receiver's AE title and port, the calling AE titles it accepts (none:
    # every caller refused), where results go ("AE@host:port"; empty: nowhere), and how long
    # a study's instances must stop arriving before it is analysed
    dicom_ae_title: str = "CXR_TRIAGE"
    dicom_port: int = 11112
    dicom_allowed_callers: tuple[str, ...] = ()
    dicom_destination: str = ""
    dicom_quiet_seconds: float = 30.0
    embedded_receiver: bool = False  # the app also runs the DICOM receiver (CXR_EMBEDDED_RECEIVER=1)
    dicom_bind_address: str = "0.0.0.0"  # the interface the receiver listens on
    dicom_max_associations: int = 16  # established associations at once, all callers
    dicom_max_per_caller: int = 4  # established associations at once from one calling AE title
    dicom_acse_timeout: float = 5.0  # a connection that sends no association request is closed after this
    dicom_network_timeout: float = 60.0  # an association idle this long is closed
    dicom_dimse_timeout: float = 30.0  # a started message that stalls this long aborts the association
    reads_required: int = 1  # 2 where the site double-reads: a study waits for a second reader
    min_threshold_positives: int = 20  # a threshold version is saved only on this many positives per finding
    session_hours: float = 12.0  # a sign-in lasts at most this long, whatever its cookie says

    def triage(self) -> TriagePolicy:
        """The worklist order these settings define (weights and overdue time)."""
        return TriagePolicy(self.triage_weights, self.overdue_hours)

    @property
    def destination(self) -> tuple[str, str, int] | None:
        """(AE title, host, port) of CXR_DICOM_DESTINATION, or None when results go nowhere."""
        return parse_destination(self.dicom_destination) if self.dicom_destination else None

    @property
    def originals_dir(self) -> Path:
        return self.data_dir / "originals"

    @property
    def previews_dir(self) -> Path:
        return self.data_dir / "previews"

    @property
    def heatmaps_dir(self) -> Path:
        return self.data_dir / "heatmaps"


def parse_destination(text: str) -> tuple[str, str, int]:
    """ "PACS@10.0.0.5:104" -> ("PACS", "10.0.0.5", 104); anything else is a clear error."""
    ae, at, address = text.partition("@")
    host, colon, port = address.rpartition(":")
    if not at or not colon or not ae or not host or not port.isdigit() or len(ae) > 16 or not 0 < int(port) < 65536:
        raise ValueError(f"CXR_DICOM_DESTINATION {text!r} is not AE@host:port")
    return ae, host, int(port)


def sqlite_url(path: Path) -> str:
    """A SQLite URL whose path is quoted: a '#' or '?' in the data folder's name must not
    end the path and start a fragment or a query (the database would land elsewhere)."""
    from sqlalchemy.engine import URL

    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def _env_weights(name: str) -> dict[str, float]:
    """``"Pneumothorax=3,Hernia=0.5"`` over the defaults; a malformed entry is an error
    at start-up, not a silently different worklist."""
    weights = dict(DEFAULT_TRIAGE_WEIGHTS)
    for item in filter(None, (part.strip() for part in os.environ.get(name, "").split(","))):
        label, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not label.strip() or not weight >= 0:
            raise ValueError(f"{name}: {item!r} is not LABEL=WEIGHT with a weight >= 0")
        weights[label.strip()] = weight
    return weights


def load_settings() -> Settings:
    """Read ``CXR_*`` variables once per process (entry points call this and pass the
    result down); defaults give an embedded SQLite file under ./data."""
    data_dir = Path(os.environ.get("CXR_DATA_DIR", "./data")).resolve()
    url = os.environ.get("CXR_DATABASE_URL") or sqlite_url(data_dir / "cxr.sqlite3")
    model_dir = Path(os.environ.get("CXR_MODEL", str(DEFAULT_MODEL_DIR))).resolve()
    views = tuple(v.strip() for v in os.environ.get("CXR_TTA_VIEWS", "").split(",") if v.strip())
    return Settings(
        data_dir=data_dir,
        database_url=url,
        model_dir=model_dir,
        max_upload_bytes=_env_int("CXR_MAX_UPLOAD_BYTES", 200 * 1024 * 1024),
        max_pixels=_env_int("CXR_MAX_PIXELS", 50_000_000),
        min_side=_env_int("CXR_MIN_SIDE", 32),
        lease_seconds=_env_float("CXR_LEASE_SECONDS", 120.0),
        max_attempts=_env_int("CXR_MAX_ATTEMPTS", 3),
        batch_size=_env_int("CXR_BATCH_SIZE", 8),
        tta_views=views,
        runtime=os.environ.get("CXR_RUNTIME", "auto").strip().lower() or "auto",
        overdue_hours=_env_float("CXR_OVERDUE_HOURS", 24.0),
        triage_weights=_env_weights("CXR_TRIAGE_WEIGHTS"),
        embedded_worker=os.environ.get("CXR_EMBEDDED_WORKER", "1") == "1",
        dicom_ae_title=os.environ.get("CXR_DICOM_AE_TITLE", "CXR_TRIAGE").strip(),
        dicom_port=_env_int("CXR_DICOM_PORT", 11112),
        dicom_allowed_callers=tuple(
            a.strip() for a in os.environ.get("CXR_DICOM_ALLOWED_CALLERS", "").split(",") if a.strip()
        ),
        dicom_destination=os.environ.get("CXR_DICOM_DESTINATION", "").strip(),
        dicom_quiet_seconds=_env_float("CXR_DICOM_QUIET_SECONDS", 30.0),
        embedded_receiver=os.environ.get("CXR_EMBEDDED_RECEIVER", "0") == "1",
        dicom_bind_address=os.environ.get("CXR_DICOM_BIND", "0.0.0.0").strip() or "0.0.0.0",
        dicom_max_associations=max(1, _env_int("CXR_DICOM_MAX_ASSOCIATIONS", 16)),
        dicom_max_per_caller=max(1, _env_int("CXR_DICOM_MAX_PER_CALLER", 4)),
        dicom_acse_timeout=max(0.5, _env_float("CXR_DICOM_ACSE_TIMEOUT", 5.0)),
        dicom_network_timeout=max(1.0, _env_float("CXR_DICOM_NETWORK_TIMEOUT", 60.0)),
        dicom_dimse_timeout=max(1.0, _env_float("CXR_DICOM_DIMSE_TIMEOUT", 30.0)),
        reads_required=max(1, _env_int("CXR_READS_REQUIRED", 1)),
        min_threshold_positives=max(1, _env_int("CXR_MIN_THRESHOLD_POSITIVES", 20)),
        session_hours=max(0.1, _env_float("CXR_SESSION_HOURS", 12.0)),
    )
