"""Builds the C extensions, both optional (without a compiler snapkeep installs anyway and
falls back to the same work in Python, slower):

- the dump's row pump, against the MariaDB client library (the one mysqlclient links;
  without libmariadb-dev the dump reads server-composed lines from Python);
- the page walk that tells a physical snapshot's row counts (``ibd_rows.py``)."""

import shlex
import subprocess

from setuptools import Extension, setup


def _pkg_config(*args: str) -> list[str]:
    for cmd in (["pkg-config", *args, "libmariadb"], ["mariadb_config", *args]):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        return shlex.split(out)
    return []


setup(ext_modules=[Extension(
    "snapkeep.engines.mysql._rowpump",
    ["src/snapkeep/engines/mysql/_rowpump.c"],
    extra_compile_args=[*_pkg_config("--cflags"), "-O2"],
    extra_link_args=_pkg_config("--libs"),
    optional=True,
), Extension(
    "snapkeep.engines.mysql._ibdpages",
    ["src/snapkeep/engines/mysql/_ibdpages.c"],
    extra_compile_args=["-O2"],
    optional=True,
)])
