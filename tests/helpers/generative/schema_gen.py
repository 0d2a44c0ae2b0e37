"""Random schemas with data: a hypothesis strategy producing a ``Schema``, a SQL script.

``schemas(features)`` draws tables (random columns over ``values.column_type``, engines,
partitions, invisible/generated columns, system versioning, foreign keys), their rows, and
the objects around them (sequences, also as column defaults; functions, procedures, views
on functions and on views, ordered triggers, events). Each statement is kept apart so the
test can count the ones the server refuses; ``repr`` of a Schema is the whole script, so a
failing example prints as a reproduction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from tests.helpers.generative.values import ColType, column_type, literal

PRELUDE = ["SET SESSION sql_mode = ''", "SET SESSION time_zone = '+00:00'",
           "SET SESSION foreign_key_checks = 0"]
# table names: plain, and identifiers that quoting, files on disk and regexes get wrong
PLAIN = ["t", "items", "log"]
ODD = ["we`ird.na me", "sp ace", "a.b", "ünï☃", "per%cent", "it's", 'dq"x', "-dash", "1digit",
       "back\\slash", "x$y", "Ω"]
ENGINES = ["InnoDB", "InnoDB", "MyISAM", "Aria", "MEMORY", "CSV"]


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@dataclass
class Column:
    name: str
    ctype: ColType
    nullable: bool
    generated: bool = False
    invisible: bool = False


@dataclass
class Table:
    name: str
    engine: str
    columns: list[Column]
    versioned: bool = False
    partitioned: bool = False
    parent_column: str | None = None  # a nullable INT column other tables/self may point at
    seq_default: str | None = None  # the sequence a column's DEFAULT NEXTVAL(...) reads


@dataclass
class Schema:
    db_charset: str
    statements: list[tuple[str, str]] = field(default_factory=list)  # (kind, sql)
    tables: list[Table] = field(default_factory=list)
    views: list[str] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    procedures: list[str] = field(default_factory=list)
    triggers: list[tuple[str, str, str, str]] = field(default_factory=list)  # name, table,
    # timing, event
    events: list[str] = field(default_factory=list)
    big_row: bool = False

    def add(self, kind: str, sql: str) -> None:
        self.statements.append((kind, sql))

    def script(self) -> str:
        return ";\n".join([*PRELUDE, *(sql for _, sql in self.statements)]) + ";\n"

    def __repr__(self) -> str:
        return f"Schema(big_row={self.big_row}) script:\n{self.script()}"

    def _repr_pretty_(self, p, cycle: bool) -> None:  # hypothesis prints this
        p.text(repr(self))


def _names(draw, features: frozenset[str], count: int) -> list[str]:
    """``count`` distinct table names (case-sensitive on this server, see the test)."""
    styles = PLAIN + (ODD if "odd_identifiers" in features else [])
    names: list[str] = []
    for i in range(count):
        names.append(f"{draw(st.sampled_from(styles))}{i}")
    if "case_distinct_names" in features and names and draw(st.booleans()):
        names.append(names[0].swapcase() if names[0].swapcase() != names[0] else "T_" + names[0])
    return names


@st.composite
def schemas(draw, features: frozenset[str]) -> Schema:
    db_cs = draw(st.sampled_from(["utf8mb4 COLLATE utf8mb4_unicode_ci", "latin1",
                                  "utf8mb4 COLLATE utf8mb4_bin"]
                                 + (["sjis", "gbk"] if "charsets_multibyte" in features
                                    else [])))
    s = Schema(db_charset=db_cs)
    s.add("database", f"ALTER DATABASE CHARACTER SET {db_cs}")
    if "sequences" in features:
        for i in range(draw(st.integers(0, 2))):
            name = f"seq{i}"
            start = draw(st.sampled_from([1, 100, -5]))
            inc = draw(st.sampled_from([1, 3, -1]))
            cache = draw(st.sampled_from(["", " CACHE 0", " NOCACHE", " CACHE 5"]))
            cycle = draw(st.sampled_from(["", " CYCLE"]))
            bounds = " MINVALUE -100 MAXVALUE 1000" if inc < 0 or start < 0 else ""
            s.add("sequence", f"CREATE SEQUENCE {q(name)} START WITH {start} INCREMENT BY "
                              f"{inc}{bounds}{cache}{cycle}")
            s.sequences.append(name)
            for _ in range(draw(st.integers(0, 3))):
                s.add("sequence_use", f"SELECT NEXTVAL({q(name)})")
    if "functions" in features:
        for i in range(draw(st.integers(0, 2))):
            name = f"fn{i}"
            k = draw(st.integers(-3, 3))
            s.add("function", f"CREATE FUNCTION {q(name)}(a BIGINT) RETURNS BIGINT "
                              f"DETERMINISTIC RETURN a * {k} + {i}")
            s.functions.append(name)
    names = _names(draw, features, draw(st.integers(1, 4)))
    for name in names:
        _table(draw, features, s, name)
    if s.big_row:
        _big_row_table(s, f"big{len(s.tables)}")
    if "foreign_keys" in features:
        _foreign_keys(draw, s)
    _views(draw, features, s)
    _routines_triggers_events(draw, features, s)
    return s


def _table(draw, features: frozenset[str], s: Schema, name: str) -> None:
    engine = draw(st.sampled_from(ENGINES)) if "engines_other" in features else "InnoDB"
    csv = engine == "CSV"
    cols: list[Column] = []
    for i in range(draw(st.integers(1, 6))):
        ct = column_type(draw, features, engine)
        cols.append(Column(f"c{i}" if draw(st.integers(0, 3)) else f"c {i}.`x`",
                           ct, nullable=not csv and draw(st.booleans())))
    if "invisible_columns" in features and not csv and draw(st.booleans()):
        cols[-1].nullable = True
        cols[-1].invisible = True
    parent = None
    if "foreign_keys" in features and engine == "InnoDB" and draw(st.booleans()):
        parent = "parent_id"
    seq_default = None
    if "sequence_defaults" in features and s.sequences and not csv and draw(st.booleans()):
        seq_default = draw(st.sampled_from(s.sequences))
    versioned = ("system_versioning" in features and not csv and engine != "MEMORY"
                 and draw(st.booleans()))
    part = ""
    # partitioned tables take no GEOMETRY columns
    if ("partitions" in features and not csv and parent is None
            and all(c.ctype.family != "geometry" for c in cols)
            and draw(st.integers(0, 2)) == 0):
        kind = draw(st.sampled_from(["HASH", "KEY", "RANGE", "LIST"]
                                    + (["SYSTEM_TIME"] if versioned else [])))
        if kind in ("HASH", "KEY"):
            part = f"PARTITION BY {kind}(id) PARTITIONS {draw(st.integers(1, 4))}"
        elif kind == "RANGE":
            sub = ("subpartitions" in features and draw(st.booleans()))
            part = ("PARTITION BY RANGE(id)"
                    + (" SUBPARTITION BY HASH(id) SUBPARTITIONS 2" if sub else "")
                    + " (PARTITION p0 VALUES LESS THAN (3), PARTITION p1 VALUES LESS THAN "
                      "(10), PARTITION pmax VALUES LESS THAN MAXVALUE)")
        elif kind == "LIST":
            part = ("PARTITION BY LIST(id MOD 3) (PARTITION p0 VALUES IN (0), "
                    "PARTITION p1 VALUES IN (1, 2))")
        else:
            part = "PARTITION BY SYSTEM_TIME (PARTITION ph HISTORY, PARTITION pc CURRENT)"
    auto_inc = ("auto_increment" in features and not csv and engine != "MEMORY"
                and draw(st.booleans()))
    defs = ["id INT NOT NULL" + (" AUTO_INCREMENT" if auto_inc else "")
            + ("" if csv else " PRIMARY KEY")]
    for c in cols:
        extra = ""
        if "defaults_comments" in features and not c.invisible and draw(st.integers(0, 2)) == 0:
            raw = c.ctype.family in ("binary", "varbinary", "blob") or c.ctype.charset == "binary"
            if raw and "binary_defaults" not in features:  # bytes that are valid UTF-8
                extra += " DEFAULT " + draw(st.sampled_from(["X'00'", "'NULL'", "'\\\\N'", "''",
                                                             "X'5C'", "X'0A09'"]))
            elif c.ctype.family in ("char", "varchar", "text", "binary", "varbinary", "blob",
                                    "int"):
                value = literal(draw, c.ctype, nullable=c.nullable)
                if "default_backslash" not in features and _has_backslash(value):
                    value = "'plain'"
                extra += f" DEFAULT ({value})"
            extra += " COMMENT " + draw(st.sampled_from(
                ["'it''s'", "'back\\\\slash'", "'tab\\there'", "'ünï ☃'", "''"]))
        defs.append(f"{q(c.name)} {c.ctype.sql} {'NULL' if c.nullable else 'NOT NULL'}"
                    + (" INVISIBLE" if c.invisible else "") + extra)
    if parent:
        defs.append(f"{parent} INT NULL")
        defs.append(f"KEY ({parent})")
    if seq_default:
        defs.append(f"from_seq BIGINT NULL DEFAULT NEXTVAL({q(seq_default)})")
    # MEMORY and partitioned non-InnoDB tables refuse generated columns
    if ("generated_columns" in features and engine != "MEMORY" and not csv and not auto_inc
            and (not part or engine == "InnoDB") and draw(st.booleans())):
        how = draw(st.sampled_from(["VIRTUAL", "PERSISTENT"]))
        defs.append(f"g_num BIGINT AS (id * 2 + 1) {how}")
        defs.append(f"g_txt VARCHAR(40) AS (CONCAT('row ', id)) "
                    f"{draw(st.sampled_from(['VIRTUAL', 'PERSISTENT']))}")
    indexable = [c for c in cols if c.ctype.indexable and not c.invisible]
    if not csv and indexable and draw(st.booleans()):
        c = draw(st.sampled_from(indexable))
        unique = "unique_keys" in features and not part and draw(st.booleans())
        desc = " DESC" if "unique_keys" in features and draw(st.booleans()) else ""
        defs.append(f"{'UNIQUE ' if unique else ''}KEY {q('k ' + c.name)} ({q(c.name)}{desc})")
    texts = [c for c in cols if c.ctype.family in ("varchar", "text") and not c.invisible
             and c.ctype.charset in ("utf8mb4", "latin1", "utf8mb3")]
    if ("fulltext_spatial" in features and texts and engine in ("InnoDB", "MyISAM", "Aria")
            and not part and draw(st.booleans())):
        defs.append(f"FULLTEXT KEY {q('ft')} ({q(texts[0].name)})")
    # an AUTO_INCREMENT column cannot be in a CHECK (nor in a generated column)
    if ("check_constraints" in features and not csv and not auto_inc
            and draw(st.integers(0, 2)) == 0):
        defs.append(f"CONSTRAINT {q('positive id')} CHECK (id > 0)")
    opts = f"ENGINE={engine}"
    if auto_inc:
        opts += f" AUTO_INCREMENT={draw(st.sampled_from([60, 1000, 2**31 - 5]))}"
    if "table_charsets" in features and draw(st.integers(0, 2)) == 0:
        cs = draw(st.sampled_from(["latin1", "utf8mb4 COLLATE utf8mb4_bin", "ascii"]
                                  + (["sjis", "big5", "gbk"]
                                     if "charsets_multibyte" in features else [])))
        opts += f" DEFAULT CHARSET={cs}"
    if versioned:
        opts += " WITH SYSTEM VERSIONING"
    if draw(st.booleans()):
        opts += " COMMENT=" + literal_comment(name)
    sql = f"CREATE TABLE {q(name)} (\n  " + ",\n  ".join(defs) + f"\n) {opts} {part}".rstrip()
    s.add("table", sql)
    table = Table(name, engine, cols, versioned=versioned, partitioned=bool(part),
                  parent_column=parent, seq_default=seq_default)
    s.tables.append(table)
    nrows = draw(st.integers(0, 6))
    ids = draw(st.lists(st.integers(1, 50), min_size=nrows, max_size=nrows, unique=True))
    for rid in ids:
        names = ["id"] + [q(c.name) for c in cols]
        vals = [str(rid)] + [literal(draw, c.ctype, nullable=c.nullable) for c in cols]
        if parent:
            names.append(parent)
            vals.append(draw(st.sampled_from(["NULL"] + [str(i) for i in ids])))
        if seq_default and draw(st.booleans()):
            names.append("from_seq")
            vals.append(str(draw(st.integers(-5, 5))))
        s.add("insert", f"INSERT INTO {q(name)} ({', '.join(names)}) VALUES "
                        f"({', '.join(vals)})")
    if versioned and ids:
        for _ in range(draw(st.integers(1, 3))):  # history rows
            rid = draw(st.sampled_from(ids))
            c = draw(st.sampled_from(cols))
            s.add("history", f"UPDATE {q(name)} SET {q(c.name)} = "
                             f"{literal(draw, c.ctype, nullable=c.nullable)} WHERE id = {rid}")
        if draw(st.booleans()):
            s.add("history", f"DELETE FROM {q(name)} WHERE id = {draw(st.sampled_from(ids))}")
    if "big_row" in features and not s.big_row and draw(
            st.sampled_from([False] * 7 + [True])):
        s.big_row = True


BIG_ROW_BYTES = (1 << 20) + 12345  # over the 1 MiB max_allowed_packet the test sets


def _big_row_table(s: Schema, name: str) -> None:
    """A row longer than max_allowed_packet (lowered to 1 MiB by the test while dumping,
    as tests/integration/engines/mysql/test_row_pump.py does: 16 MiB rows would slow CI down)."""
    s.add("table", f"CREATE TABLE {q(name)} (id INT PRIMARY KEY, payload LONGBLOB, "
                   f"note TEXT) ENGINE=InnoDB")
    s.add("insert", f"INSERT INTO {q(name)} VALUES (1, REPEAT(X'5C0009000A4E', "
                    f"{BIG_ROW_BYTES // 6}), 'it''s\\\\N'), (2, 'small', NULL)")
    s.tables.append(Table(name, "InnoDB", []))


def _has_backslash(sql_literal: str) -> bool:
    """Whether a literal (hex ``X'…'`` with or without an introducer) holds byte 0x5C."""
    if "X'" not in sql_literal:
        return "\\" in sql_literal
    raw = bytes.fromhex(sql_literal.split("X'", 1)[1].rstrip("'"))
    return b"\\" in raw


def literal_comment(name: str) -> str:
    return "'" + ("comment of " + name).replace("\\", "\\\\").replace("'", "''") + "'"


def _foreign_keys(draw, s: Schema) -> None:
    with_parent = [t for t in s.tables if t.parent_column]
    for i, t in enumerate(with_parent):
        # self-reference, or a reference to the next table with a parent column: a cycle
        target = draw(st.sampled_from([t, with_parent[(i + 1) % len(with_parent)]]))
        action = draw(st.sampled_from(["", " ON DELETE CASCADE", " ON DELETE SET NULL"]))
        s.add("foreign_key", f"ALTER TABLE {q(t.name)} ADD CONSTRAINT {q(f'fk {i}')} "
                             f"FOREIGN KEY ({t.parent_column}) REFERENCES {q(target.name)} (id)"
                             f"{action}")


def _views(draw, features: frozenset[str], s: Schema) -> None:
    if "views" not in features or not s.tables:
        return
    for i in range(draw(st.integers(0, 3))):
        t = draw(st.sampled_from(s.tables))
        name = f"v{i} {t.name}"[:60]
        cols = "id"
        if "views_on_functions" in features and s.functions and draw(st.booleans()):
            cols += f", {q(draw(st.sampled_from(s.functions)))}(id) AS f_of_id"
        algo = draw(st.sampled_from(["", "ALGORITHM=MERGE ", "ALGORITHM=TEMPTABLE "]))
        who = _definer(draw, features, view=True)
        collist = "(`the id`, `f`) " if "f_of_id" in cols and draw(st.booleans()) else ""
        s.add("view", f"CREATE {algo}{who}VIEW {q(name)} {collist}AS SELECT {cols} "
                      f"FROM {q(t.name)}")
        s.views.append(name)
        if "views_on_views" in features and not collist and draw(st.booleans()):
            # named to sort before the view it reads: creation must follow dependencies
            top = f"a_on_{i}"
            s.add("view", f"CREATE VIEW {q(top)} AS SELECT id FROM {q(name)} WHERE id > 1 "
                          f"WITH CHECK OPTION" if not algo.startswith("ALGORITHM=T") else
                  f"CREATE VIEW {q(top)} AS SELECT id FROM {q(name)}")
            s.views.append(top)


def _definer(draw, features: frozenset[str], view: bool = False) -> str:
    """A DEFINER clause: none, the current user, or (routines: the server refuses it for
    views) an account that does not exist."""
    if "definers" not in features:
        return ""
    return draw(st.sampled_from(["", "DEFINER=CURRENT_USER ", "DEFINER=`root`@`localhost` "]
                                + ([] if view else ["DEFINER=`ghost`@`%` "])))


def _routines_triggers_events(draw, features: frozenset[str], s: Schema) -> None:
    if "procedures" in features and draw(st.booleans()):
        s.add("procedure", f"CREATE {_definer(draw, features)}PROCEDURE `count rows`(OUT n INT) "
                           "READS SQL DATA COMMENT 'counts' SELECT 42 INTO n")
        s.procedures.append("count rows")
    if "compound_bodies" in features and draw(st.booleans()):
        # a body with ';' inside strings and comments, and a label: the dump must not split it
        s.add("procedure", "CREATE PROCEDURE `multi;statement`(IN a INT, OUT b TEXT)\n"
                           "SQL SECURITY INVOKER\nbody: BEGIN\n"
                           "  DECLARE x TEXT DEFAULT 'a;b'; -- a comment; with a semicolon\n"
                           "  /* DELIMITER // */\n"
                           "  IF a > 0 THEN SET b = CONCAT(x, ';', a); LEAVE body; END IF;\n"
                           "  SET b = 'it''s \\\\ done;';\nEND")
        s.procedures.append("multi;statement")
    if "triggers" in features and s.tables:
        for i in range(draw(st.integers(0, 3))):
            t = draw(st.sampled_from(s.tables))
            timing = draw(st.sampled_from(["BEFORE", "AFTER"]))
            event = draw(st.sampled_from(["INSERT", "UPDATE", "DELETE"]))
            name = f"trg{i}"
            order = ""
            same = [n for n, tab, tim, ev in s.triggers
                    if (tab, tim, ev) == (t.name, timing, event)]
            if "trigger_order" in features and same and draw(st.booleans()):
                order = f" {draw(st.sampled_from(['FOLLOWS', 'PRECEDES']))} " \
                        f"{q(draw(st.sampled_from(same)))}"
            row = "OLD" if event == "DELETE" else "NEW"
            s.add("trigger", f"CREATE TRIGGER {q(name)} {timing} {event} ON {q(t.name)} "
                             f"FOR EACH ROW{order} SET @last_{i} = {row}.id")
            s.triggers.append((name, t.name, timing, event))
    if "events" in features:
        for i in range(draw(st.integers(0, 2))):
            when = draw(st.sampled_from([
                "EVERY 1 DAY STARTS '2030-01-01 00:00:00'",
                "AT '2031-06-01 12:00:00' ON COMPLETION PRESERVE",
                "EVERY 5 MINUTE STARTS '2029-01-01 00:00:00' ENDS '2032-01-01 00:00:00'"]))
            state = draw(st.sampled_from(["ENABLE", "DISABLE", "DISABLE ON SLAVE"]))
            s.add("event", f"CREATE EVENT {q(f'ev{i}')} ON SCHEDULE {when} {state} "
                           f"COMMENT 'e{i}' DO SET @ev = {i}")
            s.events.append(f"ev{i}")
