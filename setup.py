"""Builds the dump's row pump, a C extension against the MariaDB client library (the one
mysqlclient links). Optional: without a compiler or libmariadb-dev snapkeep installs
anyway and the dump falls back to server-composed lines read from Python (slower)."""

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
)])
