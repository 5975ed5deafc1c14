"""``Settings``: sessionflow's configuration, validated by pydantic-settings.

A ``Settings`` object built with the constructor holds the values given to it and the defaults — nothing
else: the library never reads the environment or a file by itself. Entry points (the CLI, the HTTP app, a
host program's ``main``) call :meth:`Settings.from_env`, which also reads ``SESSIONFLOW_…`` environment
variables and, optionally, a TOML file::

    SESSIONFLOW_DATABASE_URL=postgresql+psycopg://app@db/sessions
    SESSIONFLOW_SESSION__TIMEOUT_SECONDS=1800        # nested groups use a double underscore
    SESSIONFLOW_SESSION__SLIDING=true
    SESSIONFLOW_POLICIES__ENFORCE_OWNER=true

The same settings in a TOML file::

    database_url = "postgresql+psycopg://app@db/sessions"

    [session]
    timeout_seconds = 1800
    sliding = true

    [policies]
    enforce_owner = true

    [http]
    max_body_bytes = 1048576

Precedence, highest first: explicit keyword arguments, environment variables, the TOML file, defaults.
A value below its minimum, of the wrong type or unknown raises :class:`~sessionflow.errors.SettingsError`,
which names each offending setting and its environment variable.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from sessionflow.domain.values import MAX_TTL
from sessionflow.errors import SettingsError

__all__ = ["DEFAULT_DATABASE_URL", "ENV_PREFIX", "HttpSettings", "PolicySettings", "SessionSettings", "Settings"]

#: The embedded default database: an SQLite file in the current directory.
DEFAULT_DATABASE_URL = "sqlite:///./sessionflow.db"
#: Every environment variable sessionflow reads starts with this.
ENV_PREFIX = "SESSIONFLOW_"
_NESTED = "__"
_MAX_SECONDS = int(MAX_TTL.total_seconds())
#: The default limit on an HTTP request body (4 MiB), and the bounds of the setting.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
_MIN_BODY_BYTES = 1024
_MAX_BODY_BYTES = 1024 * 1024 * 1024
#: The default time ``serve`` gives itself to stop on SIGTERM (below the 30 s a container runtime usually waits).
DEFAULT_GRACE_PERIOD_SECONDS = 25
_MAX_STOP_SECONDS = 3600

# Set only while Settings.from_env builds an object: which external sources to read.
_EXTERNAL: ContextVar[tuple[bool, Path | None] | None] = ContextVar("sessionflow_settings_sources", default=None)


def _no_bool(value: Any) -> Any:
    # pydantic accepts True/False for an int field; a boolean where a number of seconds belongs is a mistake.
    if isinstance(value, bool):
        raise ValueError("expected a number of seconds, got a boolean")
    return value


class SessionSettings(BaseModel):
    """Timeouts: ``[session]`` in TOML, ``SESSIONFLOW_SESSION__…`` in the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Time-to-live of a session created without an explicit ``ttl`` (seconds, at least 60).
    timeout_seconds: int = Field(default=3600, ge=60, le=_MAX_SECONDS)
    #: How often the safety-net sweep runs besides the deadline wake-ups (seconds, at least 30).
    cleanup_interval_seconds: int = Field(default=300, ge=30, le=_MAX_SECONDS)
    #: When true, every write (not only ``touch``) moves the deadline to ``now + ttl``.
    sliding: bool = False
    #: An absolute cap on a session's life, from its creation (seconds, at least 60; none by default).
    max_lifetime_seconds: int | None = Field(default=None, ge=60, le=_MAX_SECONDS)
    #: How long a write's idempotency key is kept (seconds, at least 60; 24 hours by default).
    idempotency_window_seconds: int = Field(default=86_400, ge=60, le=_MAX_SECONDS)

    _reject_bools = field_validator("timeout_seconds", "cleanup_interval_seconds", "max_lifetime_seconds",
                                    "idempotency_window_seconds", mode="before")(_no_bool)

    @property
    def idempotency_window(self) -> timedelta:
        return timedelta(seconds=self.idempotency_window_seconds)

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self.timeout_seconds)

    @property
    def cleanup_interval(self) -> timedelta:
        return timedelta(seconds=self.cleanup_interval_seconds)

    @property
    def max_lifetime(self) -> timedelta | None:
        return None if self.max_lifetime_seconds is None else timedelta(seconds=self.max_lifetime_seconds)


class PolicySettings(BaseModel):
    """Policies: ``[policies]`` in TOML, ``SESSIONFLOW_POLICIES__…`` in the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Refuse to start a session while its user has another one in progress.
    single_active_per_user: bool = False
    #: A write to a session that has a ``user_id`` must come from that user (or ``"system"``).
    enforce_owner: bool = False


class HttpSettings(BaseModel):
    """The HTTP service: ``[http]`` in TOML, ``SESSIONFLOW_HTTP__…`` in the environment.

    Bearer tokens are not settings (so they never appear in a settings ``repr`` or error): the service reads
    them from ``SESSIONFLOW_HTTP_TOKENS`` or the file named by ``SESSIONFLOW_HTTP_TOKENS_FILE``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: A request body over this many bytes is refused with 413 before it is read whole (1 KiB to 1 GiB).
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=_MIN_BODY_BYTES, le=_MAX_BODY_BYTES)
    #: On SIGTERM, how long (seconds) the service may take to stop: requests in flight are answered within it,
    #: those still running at its end are cancelled (``serve --grace-period``; 1 s to 1 h).
    grace_period_seconds: int = Field(default=DEFAULT_GRACE_PERIOD_SECONDS, ge=1, le=_MAX_STOP_SECONDS)
    #: On SIGTERM, how long (seconds) the service goes on serving with ``/readyz`` answering 503 before it stops
    #: accepting connections, so a load balancer stops sending it requests first (``serve --drain``; part of
    #: the grace period, so smaller than it; 0: none).
    drain_seconds: int = Field(default=0, ge=0, le=_MAX_STOP_SECONDS)
    #: Serve the operator's console at ``/ui`` (``sessionflow serve --no-console``: not).
    console: bool = True
    #: The secret that signs the console's sign-in cookies (at least 32 characters). Give every process and host
    #: serving one store the same one; unset, each process draws its own (sign-ins then hold in that process only).
    console_key: SecretStr | None = Field(default=None, min_length=32)

    @field_validator("max_body_bytes", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected a number of bytes, got a boolean")
        return value

    @field_validator("grace_period_seconds", "drain_seconds", mode="before")
    @classmethod
    def _seconds_not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected a number of seconds, got a boolean")
        return value

    @model_validator(mode="after")
    def _drain_within_grace(self) -> HttpSettings:
        if self.drain_seconds >= self.grace_period_seconds:
            raise ValueError(f"drain_seconds ({self.drain_seconds}) must be smaller than grace_period_seconds "
                             f"({self.grace_period_seconds}): the drain is part of the grace period")
        return self


class Settings(BaseSettings):
    """sessionflow's settings. Immutable.

    ``Settings(...)`` uses only its arguments and the defaults; :meth:`from_env` adds the environment and
    an optional TOML file. Pass the object to :func:`sessionflow.bootstrap.from_settings` (or
    ``SessionManager.from_settings``) to build a manager.

    Raises :class:`~sessionflow.errors.SettingsError` for an invalid value.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=_NESTED,
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    #: Where sessions live (a SQLAlchemy URL: ``sqlite:///path.db`` or ``postgresql+psycopg://…``).
    database_url: str = Field(default=DEFAULT_DATABASE_URL, min_length=1)
    session: SessionSettings = Field(default_factory=SessionSettings)
    policies: PolicySettings = Field(default_factory=PolicySettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    #: Concurrent threads' single writes share commits (see ``docs/batches.md``): worth it where commits wait for
    #: the disk and many threads write, as the HTTP service's worker threads do.
    group_commit: bool = False

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise _settings_error(error) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        external = _EXTERNAL.get()
        if external is None:
            return (init_settings,)
        read_env, toml_path = external
        sources: list[PydanticBaseSettingsSource] = [init_settings]
        if read_env:
            sources.append(env_settings)
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @classmethod
    def from_env(cls, toml_path: str | Path | None = None, *, environment: bool = True,
                 **overrides: Any) -> Settings:
        """Settings from ``SESSIONFLOW_…`` environment variables and, if given, the TOML file ``toml_path``.

        For entry points only (the library itself never calls it). ``overrides`` win over both;
        ``environment=False`` reads the file alone. Raises :class:`~sessionflow.errors.SettingsError` if
        the file is missing or not valid TOML, or if any value is invalid.
        """
        path: Path | None = None
        if toml_path is not None:
            path = Path(toml_path)
            if not path.is_file():
                raise SettingsError([("toml_path", f"no such file: {str(path)[:200]}")])
            try:
                with path.open("rb") as handle:
                    tomllib.load(handle)
            except (OSError, tomllib.TOMLDecodeError) as error:
                raise SettingsError([("toml_path", f"cannot read {path.name}: {error}")]) from None
        token = _EXTERNAL.set((environment, path))
        try:
            return cls(**overrides)
        finally:
            _EXTERNAL.reset(token)

    # ------------------------------------------------------------------ conveniences

    def manager_options(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~sessionflow.SessionManager` these settings stand for."""
        return {
            "default_ttl": self.session.timeout,
            "sliding": self.session.sliding,
            "max_lifetime": self.session.max_lifetime,
            "single_active_per_user": self.policies.single_active_per_user,
            "enforce_owner": self.policies.enforce_owner,
            "group_commit": self.group_commit,
            "idempotency_window": self.session.idempotency_window,
        }

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, (_masked_url(value) if name == "database_url" and isinstance(value, str) else value)


def env_name(location: tuple[str | int, ...]) -> str:
    """The environment variable of a setting, e.g. ``SESSIONFLOW_SESSION__TIMEOUT_SECONDS``."""
    return ENV_PREFIX + _NESTED.join(str(part) for part in location).upper()


def _masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (the command line shows URLs through SQLAlchemy's
    ``make_url(url).render_as_string(hide_password=True)``; this module does not load SQLAlchemy).

    The URL is read as SQLAlchemy reads it — the user name runs to the first ``:`` or ``/``, the password from
    that ``:`` to the next ``@``, whatever it holds (``/``, ``:``, ``%``...) — and, since a Redis client reads a
    password holding an ``@`` that was not percent-encoded up to the last ``@`` before the host, what precedes
    that last ``@`` is hidden too. A URL without a password is returned as it is.
    """
    url = re.sub(r"([?&]sentinel_password=)[^&#]*", r"\1***", url)  # (the Sentinels' password, redis+sentinel://)
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    user_end = next((index for index, char in enumerate(rest) if char in ":/"), len(rest))
    if user_end == len(rest) or rest[user_end] != ":":
        return url  # no password: "host:port" has no "@" after it, a path starts with "/"
    first_at = rest.find("@", user_end)
    if first_at < 0:
        return url
    netloc_end = min((index for index in (rest.find(char) for char in "/?#") if index >= 0), default=len(rest))
    password_end = max(first_at, rest.rfind("@", 0, netloc_end))
    return f"{scheme}://{rest[:user_end]}:***{rest[password_end:]}"


def _settings_error(error: ValidationError) -> SettingsError:
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
        location = tuple(part for part in item["loc"])
        name = ".".join(str(part) for part in location) or "settings"
        problem = item["msg"]
        if item["type"] == "extra_forbidden":
            problem = "unknown setting"
        elif location and location[0] != "database_url" and "input" in item:
            problem = f"{problem} (got {str(item['input'])[:60]!r})"
        if location:
            problem = f"{problem} [environment variable {env_name(location)}]"
        problems.append((name, problem))
    return SettingsError(problems)
