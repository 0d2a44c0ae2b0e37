"""The remote CLI's tests: a served project whose runs never print a token (the ``team``
fixture of tests/e2e/conftest.py), and a created snapshot's name read from the output."""

from __future__ import annotations

from dataclasses import dataclass

from tests.helpers.server import ServerTeam
from tests.helpers.shop import Cli


@dataclass
class Team(ServerTeam):
    def run(self, cli: Cli, *args: str, **kw):
        res = cli.run(*args, **kw)
        for token in self.tokens.values():  # never printed, whatever happens
            assert token not in res.stdout + res.stderr
        assert "Traceback" not in res.stderr
        return res


def last_snapshot(res) -> str:
    line = res.stdout.strip().splitlines()[-1]
    assert line.startswith("Snapshot name: "), res.stdout
    return line.split(": ", 1)[1]
