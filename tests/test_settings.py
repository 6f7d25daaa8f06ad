import os
import stat
import subprocess
import sys
from pathlib import Path

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


def proxy_ssl_header(tmp_path, **env) -> str:
    """SECURE_PROXY_SSL_HEADER as the panel's settings read it from `env`."""
    environment = {
        **{k: v for k, v in os.environ.items() if k != "TRUSTED_PROXY_COUNT"},
        "CONTROLPANEL_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
        **env,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django.conf as c; print(c.settings.SECURE_PROXY_SSL_HEADER)",
        ],
        cwd=Path(panel_settings.BASE_DIR),
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_x_forwarded_proto_is_trusted_only_behind_a_configured_proxy(tmp_path):
    assert proxy_ssl_header(tmp_path) == "None"
    assert proxy_ssl_header(tmp_path, TRUSTED_PROXY_COUNT="1") == str(
        ("HTTP_X_FORWARDED_PROTO", "https")
    )
