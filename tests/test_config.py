"""The server configuration the app ships with: upload cap, XSRF, no stack traces."""

import tomllib

from core.config import load_settings
from tests.conftest import ROOT


def test_streamlit_config_caps_uploads_and_hides_errors(monkeypatch):
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert config["client"]["showErrorDetails"] == "none"
    monkeypatch.delenv("CXR_MAX_UPLOAD_BYTES", raising=False)
    # the code enforces the same cap again (the server limit is in MB)
    assert load_settings().max_upload_bytes == config["server"]["maxUploadSize"] * 1024 * 1024


def test_paths_never_come_from_user_names(tmp_path):
    import pytest

    from core import storage

    assert storage.original_relpath("a" * 64, "png") == f"originals/aa/{'a' * 64}.png"
    with pytest.raises(ValueError):
        storage.original_relpath("../../etc/passwd", "png")
    with pytest.raises(ValueError):
        storage.safe_join(tmp_path, "../outside.png")
    assert storage.cams_relpath(3, "v1/../..") == "heatmaps/3/v1/cams.npz"
