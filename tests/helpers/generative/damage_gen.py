"""Random damage to a live database: the states of issue #12 point 2 and random DML.

``damages(schema, features)`` draws a ``Damage``: a list of SQL statements run against the
live database after the snapshot (statements the server refuses are skipped, and
counted: damage that cannot happen is no damage). ``repr`` prints the script.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from tests.helpers.generative.schema_gen import Schema, q
from tests.helpers.generative.values import literal


@dataclass
class Damage:
    statements: list[str] = field(default_factory=list)
    drops_database: bool = False

    def __repr__(self) -> str:
        return "Damage script:\n" + "".join(s + ";\n" for s in self.statements)

    def _repr_pretty_(self, p, cycle: bool) -> None:  # hypothesis prints this
        p.text(repr(self))


def _object_names(s: Schema, features: frozenset[str]) -> list[tuple[str, str]]:
    """Tables, views and sequences damage may drop (while the restore of a dropped sequence
    that a column default reads is pending, not those)."""
    keep = (set() if "damage_drop_default_sequence" in features
            else {t.seq_default for t in s.tables})
    return ([("TABLE", t.name) for t in s.tables] + [("VIEW", v) for v in s.views]
            + [("SEQUENCE", n) for n in s.sequences if n not in keep])


def _drop(kind: str, name: str) -> str:
    return f"DROP {kind} IF EXISTS {q(name)}"


@st.composite
def damages(draw, s: Schema, db: str, features: frozenset[str]) -> Damage:
    d = Damage()
    # mildest first: hypothesis draws and shrinks towards the front of the list
    kinds = [k for k in ("dml", "change_objects", "extra_tables", "alter_tables", "rename",
                         "database_charset", "drop_objects", "replace_kind", "empty_database",
                         "drop_database") if f"damage_{k}" in features]
    if not kinds:
        return d
    for kind in draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=4)):
        getattr(_Damager(draw, s, db, d, features), kind)()
        if d.drops_database:  # what follows would run in no (or another) database
            break
    return d


class _Damager:
    def __init__(self, draw, s: Schema, db: str, d: Damage, features: frozenset[str]) -> None:
        self.draw, self.s, self.db, self.d, self.features = draw, s, db, d, features

    def add(self, *sql: str) -> None:
        self.d.statements.extend(sql)

    def drop_database(self) -> None:
        self.d.drops_database = True
        self.add(f"DROP DATABASE {q(self.db)}")
        if self.draw(st.booleans()):  # sometimes someone recreated it, empty, differently
            self.add(f"CREATE DATABASE {q(self.db)} CHARACTER SET latin1")

    def empty_database(self) -> None:
        s = self.s
        self.add(*(_drop(k, n) for k, n in reversed(_object_names(s, self.features))))
        self.add(*(f"DROP FUNCTION IF EXISTS {q(f)}" for f in s.functions))
        self.add(*(f"DROP PROCEDURE IF EXISTS {q(p)}" for p in s.procedures))
        self.add(*(f"DROP EVENT IF EXISTS {q(e)}" for e in s.events))

    def drop_objects(self) -> None:
        s = self.s
        pool = (_object_names(s, self.features) + [("FUNCTION", f) for f in s.functions]
                + [("PROCEDURE", p) for p in s.procedures] + [("EVENT", e) for e in s.events]
                + [("TRIGGER", t[0]) for t in s.triggers])
        if pool:
            for kind, name in self.draw(st.lists(st.sampled_from(pool), min_size=1,
                                                 max_size=3, unique=True)):
                self.add(_drop(kind, name))

    def replace_kind(self) -> None:
        pool = _object_names(self.s, self.features)
        if not pool:
            return
        kind, name = self.draw(st.sampled_from(pool))
        new = self.draw(st.sampled_from([k for k in ("TABLE", "VIEW", "SEQUENCE") if k != kind]))
        self.add(_drop(kind, name))
        if new == "TABLE":
            self.add(f"CREATE TABLE {q(name)} (other INT) ENGINE=InnoDB",
                     f"INSERT INTO {q(name)} VALUES (7)")
        elif new == "VIEW":
            self.add(f"CREATE VIEW {q(name)} AS SELECT 'impostor' AS what")
        else:
            self.add(f"CREATE SEQUENCE {q(name)} START WITH 77")

    def change_objects(self) -> None:
        s, draw = self.s, self.draw
        options = []
        if s.functions:
            options.append("function")
        if s.procedures:
            options.append("procedure")
        if s.triggers:
            options.append("trigger")
        if s.events:
            options.append("event")
        if s.views:
            options.append("view")
        if s.sequences:
            options.append("sequence")
        if not options:
            return
        what = draw(st.sampled_from(options))
        if what == "function":
            f = draw(st.sampled_from(s.functions))
            self.add(f"DROP FUNCTION {q(f)}", f"CREATE FUNCTION {q(f)}(a BIGINT) RETURNS BIGINT "
                                              "DETERMINISTIC RETURN -a")
        elif what == "procedure":
            p = draw(st.sampled_from(s.procedures))
            self.add(f"DROP PROCEDURE {q(p)}", f"CREATE PROCEDURE {q(p)}() SELECT 'changed'")
        elif what == "trigger":
            name, table, _, _ = draw(st.sampled_from(s.triggers))
            self.add(f"DROP TRIGGER IF EXISTS {q(name)}",
                     f"CREATE TRIGGER {q(name)} AFTER INSERT ON {q(table)} FOR EACH ROW "
                     "SET @changed = 1")
        elif what == "event":
            e = draw(st.sampled_from(s.events))
            self.add(f"ALTER EVENT {q(e)} ON SCHEDULE EVERY 2 HOUR ENABLE COMMENT 'changed'")
        elif what == "view":
            v = draw(st.sampled_from(s.views))
            self.add(f"CREATE OR REPLACE VIEW {q(v)} AS SELECT 1 AS id")
        else:
            seq = draw(st.sampled_from(s.sequences))
            self.add(f"SELECT NEXTVAL({q(seq)})", f"ALTER SEQUENCE {q(seq)} INCREMENT BY 7")

    def extra_tables(self) -> None:
        n = self.draw(st.integers(1, 2))
        for i in range(n):
            name = self.draw(st.sampled_from([f"extra{i}", f"Extra {i}", f"zz`{i}"]))
            self.add(f"CREATE TABLE IF NOT EXISTS {q(name)} (id INT PRIMARY KEY, v TEXT)",
                     f"INSERT IGNORE INTO {q(name)} VALUES (1, 'not in the snapshot')")
        if self.draw(st.booleans()):
            self.add("CREATE VIEW `extra view` AS SELECT 1 AS x",
                     "CREATE PROCEDURE `extra proc`() SELECT 1",
                     "CREATE SEQUENCE `extra seq`")

    def dml(self) -> None:
        s, draw = self.s, self.draw
        tables = [t for t in s.tables if t.columns]
        if not tables:
            return
        for _ in range(draw(st.integers(1, 4))):
            t = draw(st.sampled_from(tables))
            op = draw(st.sampled_from(["insert", "update", "delete", "truncate"]))
            if op == "insert":
                c = draw(st.sampled_from(t.columns))
                self.add(f"INSERT IGNORE INTO {q(t.name)} (id, {q(c.name)}) VALUES "
                         f"({draw(st.integers(51, 99))}, "
                         f"{literal(draw, c.ctype, nullable=c.nullable)})")
            elif op == "update":
                c = draw(st.sampled_from(t.columns))
                self.add(f"UPDATE IGNORE {q(t.name)} SET {q(c.name)} = "
                         f"{literal(draw, c.ctype, nullable=c.nullable)}"
                         f" WHERE id % 2 = {draw(st.integers(0, 1))}")
            elif op == "delete":
                self.add(f"DELETE FROM {q(t.name)} WHERE id < {draw(st.integers(1, 50))}")
            else:
                self.add(f"TRUNCATE TABLE {q(t.name)}")

    def alter_tables(self) -> None:
        s, draw = self.s, self.draw
        if not s.tables:
            return
        t = draw(st.sampled_from(s.tables))
        self.add(draw(st.sampled_from([
            f"ALTER TABLE {q(t.name)} ADD COLUMN added_live INT DEFAULT 5",
            f"ALTER TABLE {q(t.name)} COMMENT 'changed live'",
            f"ALTER TABLE {q(t.name)} AUTO_INCREMENT = 5000",
            f"ALTER TABLE {q(t.name)} ENGINE=Aria",
            f"ALTER TABLE {q(t.name)} DROP COLUMN id"])))

    def rename(self) -> None:
        """A table renamed (its name now free, an extra table in its place), or two
        tables' names swapped in one RENAME."""
        tables = self.s.tables
        if not tables:
            return
        a = self.draw(st.sampled_from(tables))
        b = self.draw(st.sampled_from(tables))
        if a is b:
            self.add(f"RENAME TABLE {q(a.name)} TO {q(a.name + ' old')}")
        else:
            self.add(f"RENAME TABLE {q(a.name)} TO `swap tmp`, {q(b.name)} TO {q(a.name)}, "
                     f"`swap tmp` TO {q(b.name)}")

    def database_charset(self) -> None:
        self.add(f"ALTER DATABASE {q(self.db)} CHARACTER SET ascii COMMENT 'changed'")
