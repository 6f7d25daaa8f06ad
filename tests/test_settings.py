import os
import stat

from controlpanel import settings as panel_settings


def test_installation_secret_is_generated_once_and_kept_private(tmp_path, monkeypatch):
    monkeypatch.setattr(panel_settings, "VAR_DIR", tmp_path)
    monkeypatch.delenv("SOME_SECRET", raising=False)
    first = panel_settings.installation_secret("SOME_SECRET")
    second = panel_settings.installation_secret("SOME_SECRET")
    assert first == second
    assert len(first) >= 40
    mode = stat.S_IMODE(os.stat(tmp_path / "some_secret").st_mode)
    assert mode == 0o600


def test_installation_secret_prefers_the_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(panel_settings, "VAR_DIR", tmp_path)
    monkeypatch.setenv("SOME_SECRET", "from-the-environment")
    assert panel_settings.installation_secret("SOME_SECRET") == "from-the-environment"
    assert not (tmp_path / "some_secret").exists()


def test_envbool_reads_common_spellings(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert panel_settings.envbool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "0")
    assert panel_settings.envbool("FLAG", True) is False
    monkeypatch.delenv("FLAG")
    assert panel_settings.envbool("FLAG", True) is True
