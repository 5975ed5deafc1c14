"""The root command group: a command's options are read from its function only when the command is run or listed.

typer builds the click command of every registered function each time the program starts — reading each
function's signature and type hints —, which costs as much as the rest of a short command's start. Commands
registered with :func:`lazy_group` are built on first use instead: running ``sessionflow start`` builds
``start`` alone; the group's ``--help`` lists each command from its function's docstring alone (building all
twenty-six cost some 65 ms, more than the rest of ``--help``); shell completion builds them all. The functions
themselves may be named by where they live (:class:`CommandFunctions`): the module of a command is imported
when the command is run or listed, so ``sessionflow start`` does not import the modules of ``worker``,
``apply`` or ``demo``. Owns :func:`lazy_group`, :class:`LazyCommands` and :class:`CommandFunctions`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from typer.core import TyperCommand, TyperGroup

__all__ = ["CommandFunctions", "LazyCommands", "lazy_group"]


def _build(name: str, callback: Callable[..., Any]) -> Any:
    from typer.main import get_command_from_info
    from typer.models import CommandInfo

    return get_command_from_info(CommandInfo(name=name, callback=callback, cls=PlainHelpCommand),
                                 pretty_exceptions_short=True, rich_markup_mode=None)


class PlainHelpCommand(TyperCommand):
    """A command whose help names its arguments as click does — ``SESSION_ID``, ``[SESSION_ID]``, ``FILE...`` — on
    every typer version (typer 0.27 and later write ``{SESSION_ID}`` in the usage line, 0.29 and later also
    ``SESSION_ID <str>`` in the list of arguments)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_argument_name(param, usage=True))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None and param.param_type_name == "argument":
                arguments.append((_argument_name(param), record[1]))
            elif record is not None:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _argument_name(param: Any, *, usage: bool = False) -> str:
    """``SESSION_ID``; ``[SESSION_ID]`` for an optional argument in the usage line; ``FILE...`` for several."""
    name = str(param.metavar or (param.name or "").upper())
    if usage and not param.required and not name.startswith("["):
        name = f"[{name}]"
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name


class CommandFunctions(Mapping[str, Callable[..., Any]]):
    """Command functions by name, each named as ``"package.module:function"`` and imported when first looked
    up (iterating over the names imports nothing)."""

    def __init__(self, paths: Mapping[str, str]) -> None:
        self._paths = dict(paths)
        self._loaded: dict[str, Callable[..., Any]] = {}

    def __getitem__(self, name: str) -> Callable[..., Any]:
        function = self._loaded.get(name)
        if function is None:
            module, _, attribute = self._paths[name].partition(":")
            function = self._loaded[name] = getattr(importlib.import_module(module), attribute)
        return function

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, name: object) -> bool:
        return name in self._paths


class LazyCommands(MutableMapping[str, Any]):
    """A group's commands by name: those given as functions (``lazy``, listed first, in their order) are turned
    into click commands when first looked up; the others (``built``: sub-groups, eagerly registered commands)
    are kept as they are."""

    def __init__(self, lazy: Mapping[str, Callable[..., Any]], built: Mapping[str, Any]) -> None:
        self._lazy = dict.fromkeys(lazy, lazy)  # the mapping each function is looked up in, when needed
        self._built: dict[str, Any] = {}
        self._order = list(self._lazy)
        for name, command in built.items():
            self[name] = command

    def __getitem__(self, name: str) -> Any:
        command = self._built.get(name)
        if command is None:
            functions = self._lazy.get(name)
            if functions is None:
                raise KeyError(name)
            command = self._built[name] = _build(name, functions[name])
        return command

    def listed(self, name: str) -> Any:
        """What the group's help lists for ``name``: the command if it is built, else a command holding only
        the function's docstring (its short help is what the built command's would be; nothing else is read)."""
        command = self._built.get(name)
        if command is not None:
            return command
        return TyperCommand(name, help=inspect.getdoc(self._lazy[name][name]))

    def __setitem__(self, name: str, command: Any) -> None:
        if name not in self._built and name not in self._lazy:
            self._order.append(name)
        self._lazy.pop(name, None)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self._built and name not in self._lazy:
            raise KeyError(name)
        self._built.pop(name, None)
        self._lazy.pop(name, None)
        self._order.remove(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in self._lazy


def lazy_group(functions: Mapping[str, Callable[..., Any]]) -> type[TyperGroup]:
    """A typer group class (``typer.Typer(cls=...)``) whose subcommands include ``functions`` (name → the
    command's function, as ``app.command(name)`` would take it; a :class:`CommandFunctions` imports it only
    then), each built when first used. ``functions`` is read when the group is built: commands added to it until
    then are included."""

    class LazyGroup(TyperGroup):
        """A group of ``sessionflow`` whose commands are built on first use (see
        :mod:`sessionflow.entrypoints.cli.group`)."""

        def __init__(self, *, commands: Mapping[str, Any] | None = None, **options: Any) -> None:
            super().__init__(**options)
            self.lazy_commands = LazyCommands(functions, commands or {})
            self.commands = self.lazy_commands

        def list_commands(self, ctx: Any) -> list[str]:
            return list(self.commands)

        def format_commands(self, ctx: Any, formatter: Any) -> None:
            """The list of commands, as typer writes it, without building the commands (see the module)."""
            commands = self.lazy_commands
            listed = [(name, commands.listed(name)) for name in self.list_commands(ctx)]
            listed = [(name, command) for name, command in listed if not command.hidden]
            if not listed:
                return
            limit = formatter.width - 6 - max(len(name) for name, _ in listed)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in listed])

    return LazyGroup
