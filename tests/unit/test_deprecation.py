"""The deprecation helpers: an old name keeps working and warns, naming its replacement (docs/api.md)."""

from __future__ import annotations

import inspect
import re
import sys
import types
import warnings
from typing import Any

import pytest

from sessionflow._deprecation import (
    DeprecatedAlias,
    deprecated_alias,
    deprecation_message,
    module_getattr,
    removal_version,
    renamed_keyword,
    warn_deprecated,
)


class NewName:
    """The replacement a deprecated alias stands for."""


@pytest.fixture
def module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A module ``fake_sessionflow_module`` whose ``OldName`` is a deprecated alias of :class:`NewName`."""
    fake = types.ModuleType("fake_sessionflow_module")
    fake.NewName = NewName  # type: ignore[attr-defined]
    fake.__getattr__ = module_getattr(  # type: ignore[method-assign]
        fake.__name__, deprecated_alias("OldName", "fake_sessionflow_module.NewName", since="0.2.0",
                                        target=lambda: NewName))
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    return fake


def test_a_deprecated_attribute_still_works_and_names_its_replacement(module: types.ModuleType) -> None:
    with pytest.warns(DeprecationWarning, match="OldName is deprecated") as caught:
        value = module.OldName
    assert value is NewName
    assert len(caught) == 1
    assert str(caught[0].message) == ("fake_sessionflow_module.OldName is deprecated since 0.2.0 and may be "
                                      "removed in 0.3.0; use fake_sessionflow_module.NewName instead.")
    assert caught[0].filename == __file__  # the warning points at the code that used the old name


def test_from_import_of_a_deprecated_name_warns_too(module: types.ModuleType) -> None:
    with pytest.warns(DeprecationWarning, match=r"use fake_sessionflow_module\.NewName instead") as caught:
        from fake_sessionflow_module import OldName  # type: ignore[import-not-found]
    assert OldName is NewName
    assert caught[0].filename == __file__


def test_the_new_name_and_unknown_names_behave_as_before(module: types.ModuleType) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert module.NewName is NewName  # no warning
        with pytest.raises(AttributeError, match="has no attribute 'Missing'"):
            _ = module.Missing


def test_a_fallback_serves_the_other_names() -> None:
    lazy = {"Lazy": 42}

    def fallback(name: str) -> Any:
        if name in lazy:
            return lazy[name]
        raise AttributeError(name)

    getter = module_getattr("pkg", deprecated_alias("Old", "pkg.Lazy", since="1.4.0", target=lambda: 42),
                            fallback=fallback)
    assert getter("Lazy") == 42
    with pytest.warns(DeprecationWarning, match=r"pkg\.Old is deprecated since 1\.4\.0 .* removed in 1\.5\.0"):
        assert getter("Old") == 42
    with pytest.raises(AttributeError):
        getter("Nothing")


def test_an_alias_looked_up_by_a_module_getattr_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The package root already has a ``__getattr__`` (its lazy imports): it asks the alias itself."""
    aliases: dict[str, DeprecatedAlias] = {
        "old_function": deprecated_alias("old_function", "pkg_with_getattr.new_function", since="0.2.0",
                                         target=lambda: len, removed_in="1.0.0")}
    fake = types.ModuleType("pkg_with_getattr")

    def __getattr__(name: str) -> Any:
        if name in aliases:
            return aliases[name].get(fake.__name__)
        raise AttributeError(name)

    fake.__getattr__ = __getattr__  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    with pytest.warns(DeprecationWarning, match=r"removed in 1\.0\.0; use pkg_with_getattr\.new_function") as caught:
        assert fake.old_function is len
    assert caught[0].filename == __file__


@renamed_keyword("ttl_seconds", "ttl", since="0.2.0")
def create(name: str, *, ttl: float = 60.0) -> tuple[str, float]:
    """A function whose keyword ``ttl_seconds`` was renamed ``ttl``."""
    return name, ttl


def test_a_renamed_keyword_still_works_and_names_the_new_one() -> None:
    with pytest.warns(DeprecationWarning, match="ttl_seconds") as caught:
        result = create("s", ttl_seconds=5.0)  # type: ignore[call-arg]
    assert result == ("s", 5.0)
    message = str(caught[0].message)
    assert re.fullmatch(r"the keyword argument 'ttl_seconds' of [\w.]+\.create\(\) is deprecated since 0\.2\.0 "
                        r"and may be removed in 0\.3\.0; use 'ttl' instead\.", message), message
    assert caught[0].filename == __file__


class Manager:
    """A class whose method's keyword was renamed; the warning names the method as callers know it."""

    @renamed_keyword("ttl_seconds", "ttl", since="0.2.0", public_name="sessionflow.SessionManager.create")
    def create(self, *, ttl: float = 60.0) -> float:
        return ttl


def test_a_renamed_keyword_of_a_method_is_named_as_callers_know_it() -> None:
    with pytest.warns(DeprecationWarning, match=r"^the keyword argument 'ttl_seconds' of "
                                                r"sessionflow\.SessionManager\.create\(\) is deprecated") as caught:
        assert Manager().create(ttl_seconds=3.0) == 3.0  # type: ignore[call-arg]
    assert caught[0].filename == __file__
    assert str(inspect.signature(Manager.create)) == "(self, *, ttl: 'float' = 60.0) -> 'float'"


def test_the_new_keyword_does_not_warn_and_both_at_once_is_an_error() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert create("s", ttl=7.0) == ("s", 7.0)
        assert create("s") == ("s", 60.0)
    with pytest.raises(TypeError, match=r"got both 'ttl_seconds' .* and 'ttl'"):
        create("s", ttl=1.0, ttl_seconds=2.0)  # type: ignore[call-arg]


def test_the_decorated_function_shows_its_new_signature() -> None:
    assert str(inspect.signature(create)) == "(name: 'str', *, ttl: 'float' = 60.0) -> 'tuple[str, float]'"
    assert create.__name__ == "create"
    assert create.__doc__ == "A function whose keyword ``ttl_seconds`` was renamed ``ttl``."


def test_warnings_as_errors_turn_a_deprecated_use_into_a_failure(module: types.ModuleType) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(DeprecationWarning, match="NewName"):
            _ = module.OldName


def test_versions_and_messages() -> None:
    assert removal_version("0.2.0") == "0.3.0"
    assert removal_version("0.9") == "0.10.0"
    assert removal_version("1.4.2") == "1.5.0"
    for bad in ("", "one", "1", "v0.2.0", "0.2.0rc1"):
        with pytest.raises(ValueError, match="since must be a version"):
            removal_version(bad)
    with pytest.raises(ValueError, match="since must be a version"):
        deprecated_alias("Old", "New", since="soon", target=lambda: None)
    with pytest.raises(ValueError, match="since must be a version"):
        renamed_keyword("old", "new", since="soon")
    with pytest.raises(ValueError, match="must differ"):
        renamed_keyword("same", "same", since="0.2.0")
    assert deprecation_message("a.Old", "a.New", since="0.2.0", removed_in="1.0.0") == (
        "a.Old is deprecated since 0.2.0 and may be removed in 1.0.0; use a.New instead.")


def test_warn_deprecated_points_at_the_caller_of_the_deprecated_thing() -> None:
    def old_api() -> int:
        warn_deprecated("pkg.old_api()", "pkg.new_api()", since="0.2.0")
        return 1

    expected = r"pkg\.old_api\(\) is deprecated .* use pkg\.new_api\(\) instead"
    line = inspect.stack()[0].lineno + 2
    with pytest.warns(DeprecationWarning, match=expected) as caught:
        old_api()
    assert caught[0].category is DeprecationWarning
    assert (caught[0].filename, caught[0].lineno) == (__file__, line)
