"""Hypothesis profiles for the generative tests and a summary of what the server refused.

Profiles: ``ci`` (the default: a fixed budget and a fixed seed, so CI is reproducible) and
``soak`` (one run of scripts/soak, which loops over fresh seeds), ``triage`` (no
shrinking: the first failing example as drawn). Choose one with
``SNAPKEEP_HYPOTHESIS_PROFILE``; override the seed with pytest's ``--hypothesis-seed``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, core, settings

from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.generative.features import ACCEPTED, PENDING, REASONS, REFUSED

_COMMON = dict(
    deadline=None,
    derandomize=False,
    print_blob=True,
    # examples talk to a real server and real files: slow by nature, and a session-scoped
    # server fixture is shared on purpose
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture],
    # no example database: a failure is reproduced from its printed seed or blob
    database=None,
)
settings.register_profile("ci", max_examples=int(os.environ.get("SNAPKEEP_GEN_EXAMPLES", 0))
                          or 120, **_COMMON)  # about 2 min for the three tests on 2 cores
# one run of scripts/soak (which loops over fresh seeds for as long as asked)
settings.register_profile("soak", max_examples=int(os.environ.get("SNAPKEEP_GEN_EXAMPLES", 0))
                          or 40, **_COMMON)
# no shrinking: the first failing example as drawn (fast, to triage a soak's failure)
settings.register_profile("triage", max_examples=int(os.environ.get("SNAPKEEP_GEN_EXAMPLES", 0))
                          or 25, phases=[Phase.explicit, Phase.generate], **_COMMON)
settings.load_profile(os.environ.get("SNAPKEEP_HYPOTHESIS_PROFILE", "ci"))

# CI's fixed seed (pytest's --hypothesis-seed overrides it; the soak passes fresh ones)
CI_SEED = 20261204


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    """A fresh repository in the test's temp dir (for the plain tests of test_findings)."""
    return Repository.init(LocalBackend(tmp_path / "repo"))


@pytest.fixture(autouse=True)
def _fixed_seed() -> None:
    """CI's runs use CI_SEED unless pytest was given ``--hypothesis-seed`` (the soak's)."""
    if core.global_force_seed is None:
        core.global_force_seed = CI_SEED


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001 - pytest's hook
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        seed = core.global_force_seed
        env = " ".join(f"{k}={os.environ[k]}" for k in ("SNAPKEEP_GEN_PENDING", "SNAPKEEP_GEN_OFF",
                                                        "SNAPKEEP_HYPOTHESIS_PROFILE",
                                                        "SNAPKEEP_GEN_EXAMPLES")
                       if os.environ.get(k))
        report.sections.append((
            "generative: reproduce",
            f"seed {seed}: {env + ' ' if env else ''}.venv/bin/python -m pytest -p no:xdist "
            f"'{item.nodeid}' --hypothesis-seed={seed}"))


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's hook
    if not (REFUSED or ACCEPTED):
        return
    tr = terminalreporter
    tr.section("generative: statements the server refused (examples discarded)")
    for kind in sorted(set(REFUSED) | set(ACCEPTED)):
        total = REFUSED[kind] + ACCEPTED[kind]
        tr.write_line(f"{kind}: {REFUSED[kind]} refused of {total}")
    for reason, n in REASONS.most_common(8):
        tr.write_line(f"  {n} x {reason}")
    tr.write_line("pending features (off unless SNAPKEEP_GEN_PENDING=1): "
                  + ", ".join(f"{k} ({v})" for k, v in sorted(PENDING.items())))
