"""``Settings``: defaults, minimums, types, environment variables, the TOML file, and the manager they build."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import sessionflow
from sessionflow import InvalidInput, SessionManager, Settings, SettingsError
from sessionflow.adapters.apscheduler import ApschedulerWaker
from sessionflow.bootstrap import from_settings
from sessionflow.testing import ManualClock


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("SESSIONFLOW_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = Settings()
    assert s.database_url == "sqlite:///./sessionflow.db"
    assert (s.session.timeout_seconds, s.session.cleanup_interval_seconds, s.session.sliding,
            s.session.max_lifetime_seconds) == (3600, 300, False, None)
    assert (s.policies.single_active_per_user, s.policies.enforce_owner) == (False, False)
    assert s.manager_options() == {"default_ttl": timedelta(hours=1), "sliding": False, "max_lifetime": None,
                                   "single_active_per_user": False, "enforce_owner": False, "group_commit": False,
                                   "idempotency_window": timedelta(hours=24)}


def test_settings_is_exported_and_immutable() -> None:
    assert sessionflow.Settings is Settings
    assert "Settings" in sessionflow.__all__
    s = Settings()
    with pytest.raises(Exception, match="frozen"):
        s.database_url = "sqlite://"  # type: ignore[misc]


def test_the_constructor_never_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONFLOW_SESSION__TIMEOUT_SECONDS", "120")
    monkeypatch.setenv("SESSIONFLOW_DATABASE_URL", "sqlite:///elsewhere.db")
    assert Settings().session.timeout_seconds == 3600
    assert Settings().database_url == "sqlite:///./sessionflow.db"
    assert Settings.from_env().session.timeout_seconds == 120


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONFLOW_DATABASE_URL", "postgresql+psycopg://app:secret@db/sessions")
    monkeypatch.setenv("SESSIONFLOW_SESSION__TIMEOUT_SECONDS", "1800")
    monkeypatch.setenv("SESSIONFLOW_SESSION__CLEANUP_INTERVAL_SECONDS", "30")
    monkeypatch.setenv("sessionflow_session__sliding", "true")  # names are case-insensitive
    monkeypatch.setenv("SESSIONFLOW_SESSION__MAX_LIFETIME_SECONDS", "86400")
    monkeypatch.setenv("SESSIONFLOW_POLICIES__SINGLE_ACTIVE_PER_USER", "1")
    monkeypatch.setenv("SESSIONFLOW_POLICIES__ENFORCE_OWNER", "yes")
    s = Settings.from_env()
    assert s.database_url == "postgresql+psycopg://app:secret@db/sessions"
    assert s.session.timeout == timedelta(minutes=30)
    assert s.session.cleanup_interval == timedelta(seconds=30)
    assert s.session.sliding is True
    assert s.session.max_lifetime == timedelta(days=1)
    assert s.policies.single_active_per_user is True
    assert s.policies.enforce_owner is True
    assert "secret" not in repr(s)
    assert "secret" not in str(s)


def test_toml_file_and_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "sessionflow.toml"
    config.write_text('database_url = "sqlite:///from-file.db"\n\n[session]\ntimeout_seconds = 600\n'
                      "sliding = true\n\n[policies]\nenforce_owner = true\n", encoding="utf-8")
    from_file = Settings.from_env(config)
    assert (from_file.database_url, from_file.session.timeout_seconds, from_file.session.sliding,
            from_file.policies.enforce_owner) == ("sqlite:///from-file.db", 600, True, True)
    # The environment overrides the file, one setting at a time; explicit overrides win over both.
    monkeypatch.setenv("SESSIONFLOW_SESSION__TIMEOUT_SECONDS", "900")
    merged = Settings.from_env(str(config))
    assert (merged.session.timeout_seconds, merged.session.sliding) == (900, True)
    assert Settings.from_env(config, environment=False).session.timeout_seconds == 600
    assert Settings.from_env(config, database_url="sqlite:///explicit.db").database_url == "sqlite:///explicit.db"


@pytest.mark.parametrize(("variable", "value", "setting", "words"), [
    ("SESSIONFLOW_SESSION__TIMEOUT_SECONDS", "59", "session.timeout_seconds", "greater than or equal to 60"),
    ("SESSIONFLOW_SESSION__TIMEOUT_SECONDS", "ten", "session.timeout_seconds", "valid integer"),
    ("SESSIONFLOW_SESSION__TIMEOUT_SECONDS", "90.5", "session.timeout_seconds", "integer"),
    ("SESSIONFLOW_SESSION__CLEANUP_INTERVAL_SECONDS", "29", "session.cleanup_interval_seconds",
     "greater than or equal to 30"),
    ("SESSIONFLOW_SESSION__MAX_LIFETIME_SECONDS", "10", "session.max_lifetime_seconds", "greater than or equal to 60"),
    ("SESSIONFLOW_SESSION__SLIDING", "maybe", "session.sliding", "valid boolean"),
    ("SESSIONFLOW_POLICIES__ENFORCE_OWNER", "sometimes", "policies.enforce_owner", "valid boolean"),
    ("SESSIONFLOW_DATABASE_URL", "", "database_url", "at least 1 character"),
])
def test_an_invalid_environment_value_names_the_setting(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                        value: str, setting: str, words: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env()
    error = caught.value
    assert isinstance(error, InvalidInput)
    assert [name for name, _ in error.problems] == [setting]
    assert setting in str(error)
    assert variable in str(error)
    assert words in str(error)
    assert error.to_dict()["code"] == "invalid_settings"


def test_invalid_values_in_a_file_are_all_reported(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[session]\ntimeout_seconds = 5\ncleanup_interval_seconds = true\ntimeout_second = 90\n",
                      encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(config)
    problems = dict(caught.value.problems)
    assert set(problems) == {"session.timeout_seconds", "session.cleanup_interval_seconds",
                             "session.timeout_second"}
    assert "unknown setting" in problems["session.timeout_second"]
    assert "boolean" in problems["session.cleanup_interval_seconds"]


def test_a_missing_or_malformed_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such file"):
        Settings.from_env(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[session\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"toml_path: cannot read broken\.toml"):
        Settings.from_env(broken)


def test_explicit_arguments_are_validated_too() -> None:
    with pytest.raises(SettingsError, match=r"session\.timeout_seconds"):
        Settings(session={"timeout_seconds": 30})
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings(sesion={"timeout_seconds": 90})
    assert Settings(session={"timeout_seconds": 60}).session.timeout_seconds == 60


def test_from_settings_builds_a_configured_manager(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}",
                        session={"timeout_seconds": 600, "sliding": True, "max_lifetime_seconds": 3600,
                                 "cleanup_interval_seconds": 45},
                        policies={"single_active_per_user": True, "enforce_owner": True})
    clock = ManualClock()
    with SessionManager.from_settings(settings, clock=clock) as manager:
        assert manager.default_ttl == timedelta(minutes=10)
        assert manager.deadlines.sliding is True
        assert manager.deadlines.max_lifetime == timedelta(hours=1)
        assert manager.single_active_per_user
        assert manager.enforce_owner
        waker = manager.waker
        assert isinstance(waker, ApschedulerWaker)
        assert waker.cleanup_interval == timedelta(seconds=45)
        assert not waker.running  # built, not started
        s = manager.create(performer_id="u1")
        assert s.expires_at == clock.now() + timedelta(minutes=10)
    with from_settings(settings, default_ttl=timedelta(minutes=2), migrate=False) as again:
        assert again.default_ttl == timedelta(minutes=2)  # an explicit option wins over the setting
        assert again.get(s.id).id == s.id
