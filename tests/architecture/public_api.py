"""The public API of sessionflow, read from the code, and its committed snapshot ``public_api.json``.

The public names are every name of ``sessionflow.__all__`` and the entry points of other modules listed in
:data:`ENTRY_POINTS` — the same names, module by module, as ``docs/api.md``. For each one the snapshot records
what a caller depends on: a function's signature; a class's constructor, its public methods and properties
and its bases; an enum's members; a value's type (and its value when it is a plain constant).

    python -m tests.architecture.public_api            # compare the code with the snapshot (exit 1 if they differ)
    python -m tests.architecture.public_api --write    # rewrite the snapshot from the code

``tests/architecture/test_public_api.py`` fails when they differ. Rewrite the snapshot only together with a
CHANGELOG entry: "Changed" or "Removed" with a "**Breaking:**" note, or "Deprecated" (see docs/api.md).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import importlib
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ForwardRef, Generic, Protocol

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).with_name("public_api.json")
API_DOC = ROOT / "docs" / "api.md"

#: The documented entry points outside ``sessionflow.__all__``: module -> names (docs/api.md lists them).
ENTRY_POINTS: dict[str, tuple[str, ...]] = {
    "sessionflow.errors": (
        "ActiveSessionExists", "ArchiveError", "BatchRejected", "ConcurrencyConflict", "IdempotencyKeyInFlight",
        "IdempotencyKeyReused", "InvalidInput",
        "InvalidTransition", "LifecycleDefinitionError", "OutcomeUnknown", "SessionNotFound", "SessionUserMismatch",
        "SessionflowError", "SettingsError", "StoreError", "UnknownState"),
    "sessionflow.bootstrap": (
        "SessionManager", "build", "create_engine", "create_redis_store", "create_store", "from_settings"),
    "sessionflow.stores": ("ENTRY_POINT_GROUP", "register_store"),
    "sessionflow.application.ports": (
        "AwaitsIO", "CachesReads", "CountsByStatus", "CountsQueries", "ExpiredBatch", "FiltersFeed",
        "KeepsIdempotencyKeys", "ListsByDeadline", "ListsConsumers", "PurgesSessions", "ReportsLatency",
        "SweepsToNextDeadline", "WatchesChanges"),
    "sessionflow.settings": ("HttpSettings", "PolicySettings", "SessionSettings", "Settings"),
    "sessionflow.testing": ("AsyncTimeTravel", "ManualClock", "TimeTravel", "aadvance", "advance"),
    "sessionflow.pytest_plugin": (
        "sessionflow_async_time", "sessionflow_clock", "sessionflow_manager", "sessionflow_manager_factory",
        "sessionflow_sqlite_manager", "sessionflow_store_factory", "sessionflow_store_lacks", "sessionflow_time"),
    "sessionflow.testing.contract": ("CAPABILITIES", "StoreFactory"),
    "sessionflow.adapters.sqlalchemy": ("SqlAlchemyEventStore",),
    "sessionflow.adapters.sqlalchemy.migrations": ("schema_drift",),
    "sessionflow.adapters.redis": ("RedisEventStore",),
    "sessionflow.adapters.apscheduler": ("ApschedulerWaker",),
    "sessionflow.adapters.archive": ("read_archive", "read_archive_file", "restore_archive"),
    "sessionflow.adapters.jsonl": ("ExportResult", "JsonlAuditTrail", "audit_path", "export"),
    "sessionflow.adapters.metrics": ("SessionflowMetrics",),
    "sessionflow.adapters.otel": ("OtelTracing",),
    "sessionflow.application.watching": ("ChangeWatcher", "Notice"),
    "sessionflow.domain.definitions": ("SESSION_DEFINITION", "LifecycleDefinition", "StateTimeout"),
    "sessionflow.domain.lifecycle": ("all_files_accounted", "deadline_not_passed", "deadline_passed", "has_reason"),
    "sessionflow.domain.deadlines": ("initial_deadline", "refreshed_deadline"),
    "sessionflow.domain.values": (
        "MAX_FILE_PATHS", "MAX_ID_LENGTH", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "MAX_LIST_LIMIT", "MAX_PATH_LENGTH",
        "MAX_TEXT_LENGTH", "MAX_TTL", "MIN_TTL", "thaw_json"),
    "sessionflow.loader": ("definition_from_document", "guard", "load_definition"),
    "sessionflow.middleware": ("SessionCleanupMiddleware", "SessionCleanupWSGIMiddleware"),
    "sessionflow.entrypoints.http": (
        "Scope", "Service", "TokenFile", "TokenTable", "User", "app_from_env", "create_app"),
    "sessionflow.entrypoints.http.environment": ("worker_app",),
    "sessionflow.entrypoints.http.console": ("mount_console",),
}

#: Special methods that are part of a class's interface (a context manager, a callable, ...).
_SPECIAL = frozenset({"__call__", "__enter__", "__exit__", "__aenter__", "__aexit__", "__await__", "__iter__",
                      "__aiter__", "__next__", "__anext__", "__len__", "__contains__", "__getitem__"})
#: Values whose repr is the value itself and stable between runs.
_PLAIN = (str, int, float, bool, type(None), timedelta)


def public_names() -> list[str]:
    """Every public name, qualified: ``sessionflow.X`` for ``__all__``, then the entry points, module by module."""
    root = importlib.import_module("sessionflow")
    names = [f"sessionflow.{name}" for name in sorted(root.__all__)]
    for module, members in ENTRY_POINTS.items():
        names += [f"{module}.{name}" for name in sorted(members)]
    return names


def resolve(qualified: str) -> object:
    """The object a qualified public name stands for (importing its module)."""
    module, _, name = qualified.rpartition(".")
    return getattr(importlib.import_module(module), name)


# ---------------------------------------------------------------------------------------------------- text


def _rewrite(text: str, generic: str, rewrite: Callable[[list[str]], str]) -> str:
    """Replace each ``generic[a, b, ...]`` (also ``typing.generic[...]``) by ``rewrite([a, b, ...])``."""
    while True:
        match = re.search(rf"(?:typing\.)?\b{generic}\[", text)
        if match is None:
            return text
        depth, index, start, arguments = 1, match.end(), match.end(), []
        while depth:
            char = text[index]
            if char in "[({":
                depth += 1
            elif char in "])}":
                depth -= 1
            if (char == "," and depth == 1) or depth == 0:
                arguments.append(text[start:index].strip())
                start = index + 1
            index += 1
        text = text[:match.start()] + rewrite(arguments) + text[index:]


def _unannotated(text: str) -> str:
    """``Annotated[X, metadata...]`` -> ``X`` (validators and constraints print as unstable reprs), and
    ``Optional[X]`` -> ``X | None`` (how a library prints an annotation is not the API)."""
    text = _rewrite(text, "Annotated", lambda arguments: arguments[0])
    return _rewrite(text, "Optional", lambda arguments: f"{arguments[0]} | None")


def normalize(text: str) -> str:
    """A signature or repr as the snapshot keeps it: no addresses, no metadata, no internal module paths."""
    text = _unannotated(text)
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)
    text = re.sub(r"\btyping\.", "", text)
    text = re.sub(r"ForwardRef\((['\"])(.*?)\1\)", r"'\2'", text)
    # sessionflow.domain.models.Session -> Session: moving a class between internal modules changes nothing.
    text = re.sub(r"\bsessionflow\.(?:[a-z_][a-z0-9_]*\.)+([A-Z]\w*)", r"\1", text)
    return text


def _annotation_text(annotation: object) -> str:
    if isinstance(annotation, ForwardRef):
        return normalize(annotation.__forward_arg__)
    return normalize(inspect.formatannotation(annotation))


def public_signature(obj: Any) -> inspect.Signature:
    """``inspect.signature`` without the parameters whose names start with ``_`` (they are not the API)."""
    signature = inspect.signature(obj)
    return signature.replace(parameters=[p for p in signature.parameters.values() if not p.name.startswith("_")])


def signature_text(obj: Any) -> str:
    return normalize(str(public_signature(obj)))


def _value_text(value: object) -> str:
    if isinstance(value, _PLAIN):
        return repr(value)
    if isinstance(value, (tuple, frozenset)) and all(isinstance(v, _PLAIN) for v in value):
        items = sorted(value, key=repr) if isinstance(value, frozenset) else value
        return f"{type(value).__name__}({', '.join(repr(v) for v in items)})"
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, _PLAIN) for k, v in value.items()):
        return "{" + ", ".join(f"{k!r}: {value[k]!r}" for k in sorted(value)) + "}"
    return f"<{type(value).__name__}>"


# ---------------------------------------------------------------------------------------------------- objects


def _own_classes(cls: type) -> Iterator[type]:
    """The classes of ``cls``'s MRO that sessionflow defines (inherited library classes are not our API)."""
    return (klass for klass in cls.__mro__ if klass.__module__.split(".")[0] == "sessionflow")


def _member(cls: type, name: str, raw: object) -> str:
    """How a class keeps one member: its signature, ``property -> type``, ``attribute`` or ``= value``."""
    if isinstance(raw, (staticmethod, classmethod)):
        kind = "staticmethod" if isinstance(raw, staticmethod) else "classmethod"
        return f"{kind} {signature_text(getattr(cls, name))}"
    if isinstance(raw, property):
        annotation = inspect.signature(raw.fget).return_annotation if raw.fget else inspect.Signature.empty
        suffix = "" if annotation is inspect.Signature.empty else f" -> {normalize(str(annotation))}"
        return f"property{' (settable)' if raw.fset else ''}{suffix}"
    if type(raw).__name__ == "cached_property":
        return "cached property"
    if inspect.isfunction(raw):
        prefix = "async " if inspect.iscoroutinefunction(raw) else ""
        return prefix + signature_text(raw)
    if inspect.isclass(raw):
        return "class"
    if type(raw).__name__ in ("member_descriptor", "getset_descriptor", "_tuplegetter"):
        return "attribute"
    if callable(raw):
        try:
            return signature_text(raw)
        except (TypeError, ValueError):
            return "callable"
    return f"= {_value_text(raw)}"


def _members(cls: type, *, skip: frozenset[str] = frozenset()) -> dict[str, str]:
    members: dict[str, str] = {}
    for klass in _own_classes(cls):
        for name, raw in vars(klass).items():
            if name in members or name in skip or (name.startswith("_") and name not in _SPECIAL):
                continue
            members[name] = _member(cls, name, raw)
    return dict(sorted(members.items()))


def _bases(cls: type) -> list[str]:
    """What an instance is also an instance of (``except LookupError`` works): the public classes of the MRO
    that sessionflow or the builtins define, and the first one from elsewhere (``BaseModel``, ``StrEnum``) —
    not that library's own internal bases."""
    names: list[str] = []
    foreign = False
    for klass in cls.__mro__[1:]:
        if klass in (object, Generic, Protocol):
            continue
        if klass.__module__.split(".")[0] not in ("sessionflow", "builtins"):
            if foreign:
                continue
            foreign = True
        if not klass.__qualname__.startswith("_"):
            names.append(klass.__qualname__)
    return names


def _constructor(cls: type) -> str:
    """The constructor's signature, when sessionflow defines it (else where it comes from)."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass) or "__new__" in vars(klass):
            own = klass.__module__.split(".")[0] == "sessionflow"
            if own or klass is object or dataclasses.is_dataclass(cls) or _is_pydantic(cls):
                return signature_text(cls)
            return f"inherited from {klass.__module__}.{klass.__qualname__}"
    return "()"


def _is_pydantic(cls: type) -> bool:
    return any(klass.__module__.split(".")[0] == "pydantic" for klass in cls.__mro__)


def describe_class(cls: type) -> dict[str, Any]:
    """A class as the snapshot keeps it; the kind decides what matters."""
    if issubclass(cls, enum.Enum):
        return {"kind": "enum", "bases": _bases(cls),
                "values": {member.name: repr(member.value) for member in cls},
                "members": _members(cls, skip=frozenset(cls.__members__))}
    if getattr(cls, "_is_protocol", False):
        return {"kind": "protocol", "bases": _bases(cls), "members": _members(cls)}
    if type(cls).__name__ == "_TypedDictMeta":
        required: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
        return {"kind": "typed dict",
                "keys": {key: ("" if key in required else "optional: ") + _annotation_text(annotation)
                         for key, annotation in sorted(inspect.get_annotations(cls).items())}}
    if any(klass.__module__.split(".")[0] == "statemachine" for klass in cls.__mro__):
        machine: Any = cls  # the states and events are the interface; the rest is python-statemachine's
        return {"kind": "state machine", "bases": _bases(cls),
                "states": sorted(state.id for state in machine.states),
                "events": sorted({event.id for event in machine.events})}
    kind = "exception" if issubclass(cls, BaseException) else "class"
    return {"kind": kind, "bases": _bases(cls), "constructor": _constructor(cls), "members": _members(cls)}


def describe(name: str, obj: object, described: dict[int, str]) -> dict[str, Any]:
    """One public name as the snapshot keeps it; an object already described is an alias of that name."""
    if (inspect.isclass(obj) or inspect.isroutine(obj)) and id(obj) in described:
        return {"kind": "alias", "of": described[id(obj)]}
    if inspect.isclass(obj) or inspect.isroutine(obj):
        described[id(obj)] = name
    if inspect.isclass(obj):
        return describe_class(obj)
    if type(obj).__name__ == "FixtureFunctionDefinition":
        return {"kind": "pytest fixture", "signature": signature_text(obj)}
    if inspect.isfunction(obj):
        kind = "async function" if inspect.iscoroutinefunction(obj) else "function"
        return {"kind": kind, "signature": signature_text(obj)}
    if name == "sessionflow.__version__":
        return {"kind": "value", "type": type(obj).__name__}  # its value changes with every release
    if type(obj).__module__ in ("typing", "types", "collections.abc") or type(obj).__name__ == "_GenericAlias":
        return {"kind": "type alias", "value": normalize(repr(obj))}
    return {"kind": "value", "type": type(obj).__name__, "value": normalize(_value_text(obj))}


def snapshot() -> dict[str, Any]:
    """The public API as it is in the code now."""
    described: dict[int, str] = {}
    return {name: describe(name, resolve(name), described) for name in public_names()}


# ---------------------------------------------------------------------------------------------------- compare


def load() -> dict[str, Any]:
    """The committed snapshot."""
    loaded: dict[str, Any] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    return loaded


def dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def differences(committed: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What changed between the committed snapshot and the code, one line per name (and per member)."""
    lines: list[str] = []
    for name in sorted(committed.keys() - current.keys()):
        lines.append(f"removed: {name}")
    for name in sorted(current.keys() - committed.keys()):
        lines.append(f"added: {name}")
    for name in sorted(committed.keys() & current.keys()):
        lines += [f"changed: {name}{where}" for where in _changed(committed[name], current[name])]
    return lines


def _changed(old: Any, new: Any, path: str = "") -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            where = f"{path} {key}"
            if key not in new:
                yield f"{where}: removed (was {old[key]!r})"
            elif key not in old:
                yield f"{where}: added ({new[key]!r})"
            else:
                yield from _changed(old[key], new[key], where)
    elif old != new:
        yield f"{path}: {old!r} -> {new!r}"


# ---------------------------------------------------------------------------------------------------- docs/api.md

#: A section of docs/api.md listing a module's names: its heading starts with the module, in backticks.
_SECTION = re.compile(r"^#{2,4} `(sessionflow(?:\.\w+)*)`")
#: A row of such a section: the name, then its signature (or ``—``), then what it is.
_ROW = re.compile(r"^\| `(\w+)` \| ([^|]*) \|")
#: The kinds of entry whose docs/api.md row must show a call signature.
CALLABLE_KINDS = frozenset({"function", "async function", "class", "exception"})


def documented(text: str | None = None) -> dict[str, str]:
    """The names docs/api.md lists, qualified (``sessionflow.testing.ManualClock``), with their signature cell."""
    if text is None:
        text = API_DOC.read_text(encoding="utf-8")
    names: dict[str, str] = {}
    module: str | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            section = _SECTION.match(line)
            module = section[1] if section else None
        elif module is not None and (row := _ROW.match(line)):
            names[f"{module}.{row[1]}"] = row[2].strip()
    return names


_KINDS = {"posonlyargs": inspect.Parameter.POSITIONAL_ONLY, "args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
          "kwonlyargs": inspect.Parameter.KEYWORD_ONLY}


def _documented_parameters(parameters: str) -> list[tuple[str, inspect._ParameterKind, ast.expr | None]]:
    """``a, b=1, *c, d, **e`` -> (name, kind, default expression) for each, as Python would read it."""
    arguments = ast.parse(f"def f({parameters}): pass").body[0].args  # type: ignore[attr-defined]
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(arguments.defaults)) + arguments.defaults
    found: list[tuple[str, inspect._ParameterKind, ast.expr | None]] = []
    for argument, default in zip(positional, defaults, strict=True):
        kind = _KINDS["posonlyargs" if argument in arguments.posonlyargs else "args"]
        found.append((argument.arg, kind, default))
    if arguments.vararg:
        found.append((arguments.vararg.arg, inspect.Parameter.VAR_POSITIONAL, None))
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        found.append((argument.arg, inspect.Parameter.KEYWORD_ONLY, default))
    if arguments.kwarg:
        found.append((arguments.kwarg.arg, inspect.Parameter.VAR_KEYWORD, None))
    return found


def _is_ellipsis(default: ast.expr) -> bool:
    """``name=...`` in docs/api.md: optional, default not shown."""
    return isinstance(default, ast.Constant) and default.value is Ellipsis


def signature_problems(name: str, cell: str, obj: object) -> list[str]:
    """How the signature docs/api.md shows for ``name`` differs from the code's: names, order, kinds,
    which are optional, and the defaults written as literals."""
    call = re.fullmatch(r"`(\w+)\((.*)\)`", cell)
    if call is None:
        return [f"{name}: docs/api.md shows no signature ({cell!r}); write it as `{name.rpartition('.')[2]}(...)`"]
    if call[1] != name.rpartition(".")[2]:
        return [f"{name}: docs/api.md shows the signature of {call[1]!r}"]
    try:
        shown = _documented_parameters(call[2])
    except SyntaxError as error:
        return [f"{name}: docs/api.md's signature is not Python: {error.msg}"]
    actual = list(public_signature(obj).parameters.values())
    problems: list[str] = []
    if [(n, k) for n, k, _ in shown] != [(p.name, p.kind) for p in actual]:
        problems.append(f"{name}: docs/api.md shows ({call[2]}), the code has {public_signature(obj)}")
        return problems
    for (parameter, _, default), real in zip(shown, actual, strict=True):
        optional = real.default is not inspect.Parameter.empty
        if optional != (default is not None) and real.kind not in (real.VAR_POSITIONAL, real.VAR_KEYWORD):
            problems.append(f"{name}: docs/api.md shows {parameter!r} as {'required' if optional else 'optional'}")
        elif default is not None and isinstance(real.default, (*_PLAIN, tuple)) and not _is_ellipsis(default):
            try:
                value = ast.literal_eval(default)
            except (ValueError, TypeError):  # not a literal (``timedelta(hours=1)``): not compared
                continue
            if value != real.default or type(value) is not type(real.default):
                problems.append(f"{name}: docs/api.md shows {parameter}={ast.unparse(default)}, "
                                f"the code's default is {real.default!r}")
    return problems


# ---------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None, *, report: Callable[[str], object] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.architecture.public_api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"rewrite {SNAPSHOT.name} from the code")
    options = parser.parse_args(argv)
    current = snapshot()
    if options.write:
        SNAPSHOT.write_text(dump(current), encoding="utf-8")
        shown = SNAPSHOT.relative_to(ROOT) if SNAPSHOT.is_relative_to(ROOT) else SNAPSHOT
        report(f"wrote {shown}: {len(current)} public names")
        return 0
    found = differences(load(), current)
    for line in found:
        report(line)
    report("the snapshot matches the code" if not found else f"{len(found)} difference(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
