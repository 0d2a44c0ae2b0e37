"""The command table (cli/commands.py) that ``snapkeep --help`` prints without importing the
command modules matches the commands themselves, and ``--help`` shows each as before."""

from __future__ import annotations

import importlib
import pkgutil

import click
from click.testing import CliRunner

import snapkeep.cli
from snapkeep.cli.commands import ALIASES, COMMANDS
from snapkeep.cli.main import cli


def defined_commands() -> dict[str, tuple[str, click.Command]]:
    """Every command of every snapkeep.cli module with a COMMANDS list: name -> (module, it)."""
    found: dict[str, tuple[str, click.Command]] = {}
    for info in pkgutil.iter_modules(snapkeep.cli.__path__):
        module = importlib.import_module(f"snapkeep.cli.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            if isinstance(command, click.Command):
                assert command.name not in found, f"{command.name} defined twice"
                found[str(command.name)] = (info.name, command)
    return found


def test_the_table_names_every_command_its_module_and_its_own_short_help():
    defined = defined_commands()
    assert sorted(defined) == sorted(COMMANDS)
    for name, (module, command) in defined.items():
        assert COMMANDS[name].module == module, name
        assert COMMANDS[name].short_help == command.get_short_help_str(70), name
        assert not command.hidden, name


def test_aliases_name_commands_and_resolve_to_them():
    ctx = click.Context(cli)
    for alias, target in ALIASES.items():
        assert target in COMMANDS and alias not in COMMANDS, alias
        command = cli.get_command(ctx, alias)
        assert command is not None and command.name == target


def test_help_lists_every_command_with_its_aliases_and_short_help_in_order():
    out = CliRunner().invoke(cli, ["--help"], terminal_width=200).output
    listed = out.split("Commands:\n", 1)[1].split()  # (a long label wraps: compare words)
    expected: list[str] = []
    for name, (_module, command) in sorted(defined_commands().items()):
        aliases = [a for a, target in ALIASES.items() if target == name]
        label = f"{name} ({', '.join(aliases)})" if aliases else name
        expected += [*label.split(), *command.get_short_help_str(70).split()]
    assert listed == expected


def test_every_command_and_alias_loads_and_shows_its_help():
    for name in [*COMMANDS, *ALIASES]:
        res = CliRunner().invoke(cli, [name, "--help"], terminal_width=200)
        assert res.exit_code == 0, (name, res.output)
        target = ALIASES.get(name, name)
        assert " ".join(COMMANDS[target].short_help.removesuffix("...").split()) in " ".join(
            res.output.split()), name


def test_an_unknown_command_is_refused():
    res = CliRunner().invoke(cli, ["snapshot:lis"])
    assert res.exit_code == 2 and "No such command 'snapshot:lis'" in res.output


def test_a_command_freezes_what_the_imports_made():
    """Once a command's module is imported, the objects that exist are moved out of the
    collector's sight (``gc.freeze``): a full collection during the command does not walk
    every module, class and function again (docs/performance.md, third pass)."""
    import gc

    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        with click.Context(cli) as ctx:
            assert cli.get_command(ctx, "snapshot:list") is not None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
