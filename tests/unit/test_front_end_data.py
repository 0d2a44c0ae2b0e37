"""Front ends get plain data from services, never catalog rows (issue 14, item 4).

Every module of the CLI, the API, the console and the worker entry points is imported,
and none may hold a class of ``snapkeep.catalog.models`` (an ORM row type) or
``snapkeep.catalog.rows`` (the plain rows of activities and snapshots): services hand
them dataclasses (``ActivityInfo``, ``LogLine``, ``SnapshotInfo``, …) instead.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import snapkeep.api
import snapkeep.cli
import snapkeep.web
import snapkeep.worker
from snapkeep.catalog import models, rows

FRONT_ENDS = (snapkeep.cli, snapkeep.api, snapkeep.web, snapkeep.worker)


def _modules() -> list[ModuleType]:
    found = []
    for package in FRONT_ENDS:
        found.append(package)
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            found.append(importlib.import_module(info.name))
    return found


def _orm_classes() -> set[type]:
    return {cls for module in (models, rows) for cls in vars(module).values()
            if inspect.isclass(cls) and cls.__module__ == module.__name__}


@pytest.mark.parametrize("module", _modules(), ids=lambda m: m.__name__)
def test_a_front_end_module_holds_no_catalog_row_class(module):
    orm = _orm_classes()
    held = sorted(name for name, value in vars(module).items()
                  if value in (models, rows) or (inspect.isclass(value) and value in orm))
    assert not held, f"{module.__name__} holds catalog row classes {held}"


def test_the_check_sees_the_row_classes():
    assert models.Activity in _orm_classes() and models.ActivityLog in _orm_classes()
    assert rows.Activity in _orm_classes() and rows.Snapshot in _orm_classes()
    assert len(_modules()) > 30  # it walked the front-end packages
