"""The shadow load's session per table and the order in which its steps run."""

from __future__ import annotations

from typing import Any

from snapkeep.engines.mysql.ddl import split_create_table
from snapkeep.engines.mysql.shadow_load import KEY_COST_PER_ROW, _Loading, unique_checks
from snapkeep.repository import BlobRef


def create(name: str, engine: str = "InnoDB", keys: int = 0) -> str:
    extra = "".join(f",\n  KEY `k{i}` (`v`)" for i in range(keys))
    return (f"CREATE TABLE `{name}` (\n  `id` int(11) NOT NULL,\n  `v` int(11) DEFAULT NULL,\n"
            f"  PRIMARY KEY (`id`){extra}\n) ENGINE={engine}")


def table(name: str, part_sizes: list[int], rows: int = 0) -> dict[str, Any]:
    parts = [BlobRef(size, (("0" * 64, size),)).to_json() for size in part_sizes]
    return {"name": name, "columns": [{"name": "id", "data_type": "int"}], "parts": parts,
            "row_count": rows}


def test_innodb_rows_load_with_unique_checks_on_other_engines_with_them_off():
    # both checks off would send an InnoDB load into an empty table down the slower
    # bulk-insert path; MyISAM and Aria keep building their keys in bulk with them off
    assert unique_checks(split_create_table("t", create("t", keys=1))) == 1
    assert unique_checks(split_create_table("t", create("t"))) == 1
    assert unique_checks(split_create_table("t", create("t", "MyISAM", keys=1))) == 0
    assert unique_checks(split_create_table("t", create("t", "Aria"))) == 0


def schedule(*tables: tuple[dict[str, Any], int]) -> _Loading:
    splits = {t["name"]: split_create_table(t["name"], create(t["name"], keys=k))
              for t, k in tables}
    return _Loading([t for t, _ in tables], splits)


def run(st: _Loading, kind: str, name: str) -> None:
    """What ``ShadowLoader`` does when it starts a step."""
    if kind == "load":
        st.loading.add(name)
        st.queues[name].pop(0)
    else:
        st.ddl.pop(name)


def test_the_table_with_the_most_work_left_goes_first_and_its_parts_never_overlap():
    st = schedule((table("big", [100, 100, 100]), 0), (table("mid", [150]), 0),
                  (table("small", [10]), 0))
    assert st.next_step() == ("load", "big")
    run(st, "load", "big")
    # big's next part waits for the one loading (parts load in key order, one at a time)
    assert st.next_step() == ("load", "mid")
    run(st, "load", "mid")
    assert st.next_step() == ("load", "small")
    run(st, "load", "small")
    assert st.next_step() is None
    st.loading.discard("big")
    assert st.next_step() == ("load", "big")


def test_a_large_tables_keys_are_added_before_small_loads_and_count_as_its_work():
    # "keyed" has fewer bytes to load than "plain" but its keys make its chain longer
    rows = 1000
    st = schedule((table("plain", [3 * rows * KEY_COST_PER_ROW + 1]), 0),
                  (table("keyed", [rows * KEY_COST_PER_ROW], rows), 3),
                  (table("tiny", [5]), 0))
    assert st.work_left("keyed") == 4 * rows * KEY_COST_PER_ROW
    assert st.next_step() == ("load", "keyed")
    run(st, "load", "keyed")
    st.loading.discard("keyed")
    st.ddl["keyed"] = ["ALTER TABLE `keyed` ADD KEY `k0` (`v`)"]
    assert st.next_step() == ("load", "plain")  # more to load than the ALTER's estimate
    run(st, "load", "plain")
    assert st.next_step() == ("ddl", "keyed")  # before the tiny table's load
