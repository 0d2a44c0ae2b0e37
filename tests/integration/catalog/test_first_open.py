"""Opening a new catalog from several threads or processes at once: one migrates, the
others wait for it and find the schema current (a race here failed the second opener with
"table alembic_version already exists")."""

import threading

from snapkeep.catalog import Catalog
from snapkeep.catalog.catalog import HEAD


def test_threads_opening_a_new_sqlite_catalog_at_once_all_get_it(tmp_path):
    for round_ in range(5):
        state = tmp_path / f"state{round_}"
        start = threading.Barrier(4)
        errors: list[BaseException] = []
        opened: list[Catalog] = []

        def open_it() -> None:
            start.wait()
            try:
                opened.append(Catalog.at(state))
            except BaseException as e:  # noqa: BLE001 - reported by the assertion below
                errors.append(e)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        assert len(opened) == 4
        with opened[0].engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD
        for c in opened:
            c.engine.dispose()
