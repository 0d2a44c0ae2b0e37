"""The engine's package face resolves its names on first use (PEP 562): importing it loads
no driver; every public name still resolves to its submodule's object."""

from __future__ import annotations

import importlib
import subprocess
import sys

import snapkeep.engines.mysql as face


def test_every_public_name_resolves_to_the_object_of_its_submodule():
    assert sorted(face._FACE) == sorted(face.__all__)
    for name, (module, attr) in face._FACE.items():
        sub = importlib.import_module(f"snapkeep.engines.mysql.{module}")
        assert getattr(face, name) is getattr(sub, attr)
    assert set(face.__all__) <= set(dir(face))


def test_an_unknown_name_is_an_attribute_error():
    try:
        face.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:
        raise AssertionError("no AttributeError")


def test_importing_the_package_and_its_target_loads_no_driver():
    probe = ("import sys; from snapkeep.engines.mysql import MySQLTarget; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pymysql', 'MySQLdb')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
    probe = "import sys; from snapkeep.engines.mysql import check_connection; " \
            "print('pymysql' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "True", "the probe sees a driver once a name needs it"
