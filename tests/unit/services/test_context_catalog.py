"""Where the catalog lives: ``[project] catalog`` / SNAPKEEP_CATALOG, and its password
never shown."""

from pathlib import Path

import pytest

from snapkeep.catalog.catalog import Catalog, sqlalchemy_url
from snapkeep.config import load_config, redact_url
from snapkeep.errors import ConfigError, ServiceUnavailable
from snapkeep.services.context import Context

BASE = '[project]\nid = "shop"\nplan = "starter"\n'


def config(tmp_path: Path, extra: str = "") -> str:
    p = tmp_path / "snapkeep.toml"
    p.write_text(BASE + extra)
    return str(p)


def test_without_a_catalog_setting_the_catalog_is_the_sqlite_file_in_the_state_dir(
        tmp_path, monkeypatch):
    monkeypatch.delenv("SNAPKEEP_CATALOG", raising=False)
    cfg = load_config(config(tmp_path))
    assert cfg.catalog_url is None
    assert cfg.catalog_description == f"sqlite:///{tmp_path / '.snapkeep' / 'catalog.db'}"
    ctx = Context(cfg)
    assert ctx.catalog.is_sqlite and (tmp_path / ".snapkeep" / "catalog.db").is_file()


def test_the_catalog_url_comes_from_the_file_and_the_environment_overrides_it(
        tmp_path, monkeypatch):
    monkeypatch.delenv("SNAPKEEP_CATALOG", raising=False)
    path = config(tmp_path, 'catalog = "postgresql://snap:s3cret@db.example:5432/snap"\n')
    cfg = load_config(path)
    assert cfg.catalog_url == "postgresql://snap:s3cret@db.example:5432/snap"
    assert cfg.catalog_description == "postgresql://snap:***@db.example:5432/snap"
    assert "s3cret" not in repr(cfg)
    monkeypatch.setenv("SNAPKEEP_CATALOG", "postgresql://other@10.0.0.9/team")
    assert load_config(path).catalog_url == "postgresql://other@10.0.0.9/team"


@pytest.mark.parametrize("url, problem", [
    ("mysql://root:pw1@db/snap", "must start with postgresql://"),
    ("postgresql://root:pw1@db:5432/", "must name a database"),
])
def test_a_wrong_catalog_url_is_refused_without_showing_its_password(tmp_path, monkeypatch,
                                                                     url, problem):
    monkeypatch.delenv("SNAPKEEP_CATALOG", raising=False)
    with pytest.raises(ConfigError, match=problem) as e:
        load_config(config(tmp_path, f'catalog = "{url}"\n'))
    assert "pw1" not in str(e.value) and "***" in str(e.value)


def test_postgresql_urls_are_opened_with_psycopg_3():
    assert sqlalchemy_url("postgresql://u@h:5432/d") == "postgresql+psycopg://u@h:5432/d"
    assert sqlalchemy_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert sqlalchemy_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert redact_url("postgresql://u:p%40ss@h/d") == "postgresql://u:***@h/d"


def test_an_unreachable_catalog_is_a_clear_error_that_does_not_show_the_password():
    # Port 9 (discard) on the loopback: nothing listens, the connection is refused at once.
    with pytest.raises(ServiceUnavailable, match="cannot open the catalog") as e:
        Catalog.from_url("postgresql://snap:hunter22@127.0.0.1:9/snap")
    assert "hunter22" not in str(e.value)
    assert "postgresql://snap:***@127.0.0.1:9/snap" in str(e.value)
