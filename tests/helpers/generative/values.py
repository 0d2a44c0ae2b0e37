"""Column types of MariaDB 10.11 and SQL literals of their values, as hypothesis draws.

``column_type(draw, features, engine)`` returns a ``ColType``: its SQL and how to draw a
literal for it (``literal(draw, ctype)``). Literals are plain SQL (hex for bytes), so a
failing example prints as a script anyone can paste into the ``mariadb`` client.
"""

from __future__ import annotations

import ipaddress
import json
import math
import uuid
from dataclasses import dataclass, field

from hypothesis import strategies as st

# text that is hard to carry: the dump's own escapes, SQL's quotes, NUL, emoji, CRLF
AWKWARD = ["", "NULL", "\\N", "\\", "\t", "\n", "\r\n", "\x00", "'", '"', "\\\\N", " trail ",
           "a\tb\nc", "😀", "🎉中文", "x\x00y", "-- not a comment", "/* no */", "\x1a"]

MULTIBYTE = {"sjis": "shift_jis", "cp932": "cp932", "gbk": "gbk", "big5": "big5"}
WIDE = ["utf16", "utf32", "ucs2"]


def _five_c_chars(codec: str) -> list[str]:
    """Characters whose encoding in ``codec`` has 0x5C (backslash) as its second byte."""
    found = []
    for cp in range(0x3000, 0xA000):
        ch = chr(cp)
        try:
            enc = ch.encode(codec)
        except UnicodeEncodeError:
            continue
        if len(enc) == 2 and enc[1] == 0x5C:
            found.append(ch)
            if len(found) == 12:
                break
    return found


FIVE_C = {cs: _five_c_chars(codec) for cs, codec in MULTIBYTE.items()}
# a repertoire each multi-byte charset can hold: ASCII, kana/han, and the 0x5C troublemakers
_COMMON_CJK = "表能ソ十申日本語中文漢字アイウかな"


@dataclass
class ColType:
    sql: str  # the type as written in CREATE TABLE, without NULL/DEFAULT
    family: str  # int, bit, decimal, float, double, date, time, datetime, timestamp, ...
    params: dict = field(default_factory=dict)
    indexable: bool = True  # may be part of a key without a prefix length
    charset: str | None = None


INT_RANGES = {"TINYINT": 8, "SMALLINT": 16, "MEDIUMINT": 24, "INT": 32, "BIGINT": 64}


def column_type(draw, features: frozenset[str], engine: str) -> ColType:
    """A random column type allowed for ``engine`` (CSV and MEMORY take fewer)."""
    families = []
    if "integers" in features:
        families.append("int")
    if "bit" in features:
        families.append("bit")
    if "decimal" in features:
        families.append("decimal")
    if "floats" in features:
        families.append("float")
    if "temporal" in features:
        families += ["date", "time", "datetime", "timestamp"]
    if "year" in features:
        families.append("year")
    if "strings" in features:
        families += ["char", "varchar"]
    if "blobs" in features and engine not in ("MEMORY",):
        families += ["text", "blob"]
    if "blobs" in features:
        families += ["binary", "varbinary"]
    if "enum_set" in features:
        families += ["enum", "set"]
    if "json" in features and engine not in ("MEMORY", "CSV"):
        families.append("json")
    if "geometry" in features and engine not in ("MEMORY", "CSV"):
        families.append("geometry")
    if "inet" in features and engine != "CSV":
        families += ["inet4", "inet6"]
    if "uuid" in features and engine != "CSV":
        families.append("uuid")
    if engine == "CSV":  # CSV: a few plain types keep the example about the engine
        families = [f for f in families if f in ("int", "decimal", "char", "varchar", "text",
                                                 "date", "datetime", "float", "blob")]
    if not families:
        families = ["int"]
    fam = draw(st.sampled_from(families))
    if fam == "int":
        name = draw(st.sampled_from(sorted(INT_RANGES)))
        unsigned = draw(st.booleans())
        return ColType(f"{name}{' UNSIGNED' if unsigned else ''}", "int",
                       {"bits": INT_RANGES[name], "unsigned": unsigned})
    if fam == "bit":
        n = draw(st.sampled_from([1, 2, 7, 8, 9, 31, 63, 64]))
        return ColType(f"BIT({n})", "bit", {"n": n})
    if fam == "decimal":
        p = draw(st.sampled_from([1, 5, 10, 18, 19, 30, 38, 65]))
        s = draw(st.integers(0, min(p, 38)))
        return ColType(f"DECIMAL({p},{s})", "decimal", {"p": p, "s": s})
    if fam == "float":
        name = draw(st.sampled_from(["FLOAT", "DOUBLE", "REAL", "FLOAT(7,4)"]))
        return ColType(name, "float", {"width": 32 if name == "FLOAT" else 64,
                                       "fixed": name == "FLOAT(7,4)"})
    if fam in ("time", "datetime", "timestamp"):
        fsp = draw(st.sampled_from([0, 3, 6]))
        return ColType(f"{fam.upper()}({fsp})", fam, {"fsp": fsp})
    if fam == "date":
        return ColType("DATE", "date")
    if fam == "year":
        return ColType("YEAR", "year")
    if fam in ("char", "varchar", "text"):
        cs = _charset(draw, features)
        if fam == "char":
            n = draw(st.sampled_from([1, 10, 255]))
            sql = f"CHAR({n})"
        elif fam == "varchar":
            n = draw(st.sampled_from([1, 20, 255, 1000]))
            sql = f"VARCHAR({n})"
        else:
            sql = draw(st.sampled_from(["TINYTEXT", "TEXT", "MEDIUMTEXT", "LONGTEXT"]))
        indexable = fam != "text" and (fam == "char" or n <= 255)
        return ColType(f"{sql} CHARACTER SET {cs}", fam, {"n": locals().get("n")},
                       indexable=indexable, charset=cs)
    if fam in ("binary", "varbinary"):
        n = draw(st.sampled_from([1, 8, 255] + ([1000] if fam == "varbinary" else [])))
        return ColType(f"{fam.upper()}({n})", fam, {"n": n}, indexable=n <= 255)
    if fam == "blob":
        sql = draw(st.sampled_from(["TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB"]))
        return ColType(sql, "blob", indexable=False)
    if fam in ("enum", "set"):
        members = draw(st.lists(st.sampled_from(
            ["", "a", "b", "x y", "0", "1", "2", "é", "NULL", "\\N", "it's", "中"]
            + (["😀"] if "enum_4byte_members" in features else [])),
            min_size=1, max_size=6, unique=True))
        if fam == "set":  # SET members cannot contain commas or be ''
            members = [m for m in members if m] or ["a"]
        body = ", ".join(_quoted(m) for m in members)  # the grammar takes no hex here
        return ColType(f"{fam.upper()}({body}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                       fam, {"members": members})
    if fam == "json":
        return ColType("JSON", "json", indexable=False)
    if fam == "geometry":
        sub = draw(st.sampled_from(["GEOMETRY", "POINT", "LINESTRING", "POLYGON",
                                    "MULTIPOINT", "GEOMETRYCOLLECTION"]))
        return ColType(sub, "geometry", {"sub": sub}, indexable=False)
    if fam in ("inet4", "inet6", "uuid"):
        return ColType(fam.upper(), fam)
    raise AssertionError(fam)


def _charset(draw, features: frozenset[str]) -> str:
    choices = ["utf8mb4", "latin1", "ascii", "binary", "utf8mb3"]
    if "charsets_multibyte" in features:
        choices += sorted(MULTIBYTE)
    if "charsets_wide" in features:
        choices += WIDE
    return draw(st.sampled_from(choices))


def _str_literal(s: str) -> str:
    """A utf8mb4 string literal that no sql_mode can misread (hex of its bytes)."""
    return f"_utf8mb4 X'{s.encode().hex()}'" if s else "''"


def _quoted(s: str) -> str:
    """A quoted literal under the generator's sql_mode '' (backslash escapes on)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


def _bytes_literal(b: bytes) -> str:
    return f"X'{b.hex()}'"


def literal(draw, ct: ColType, *, nullable: bool = True) -> str:
    """A SQL literal for a value of ``ct`` (NULL when allowed and drawn)."""
    if nullable and draw(st.integers(0, 5)) == 0:
        return "NULL"
    fam, p = ct.family, ct.params
    if fam == "int":
        lo, hi = (0, 2 ** p["bits"] - 1) if p["unsigned"] else (-(2 ** (p["bits"] - 1)),
                                                                 2 ** (p["bits"] - 1) - 1)
        return str(draw(st.one_of(st.sampled_from([lo, hi, 0, 1]), st.integers(lo, hi))))
    if fam == "bit":
        v = draw(st.integers(0, 2 ** p["n"] - 1))
        return f"b'{v:b}'"
    if fam == "decimal":
        ip, fp = p["p"] - p["s"], p["s"]
        whole = draw(st.one_of(st.just("9" * ip), st.text("0123456789", max_size=ip)))
        frac = draw(st.one_of(st.just("9" * fp), st.text("0123456789", max_size=fp)))
        sign = draw(st.sampled_from(["", "-"]))
        return f"{sign}{whole or '0'}.{frac or '0'}"
    if fam == "float":
        if p["fixed"]:
            v = draw(st.floats(-999.9999, 999.9999, allow_nan=False))
        else:
            v = draw(st.one_of(
                st.sampled_from([-0.0, 0.0, 1.1, 0.1 + 0.2]
                                + ([3.4028234663852886e38, -3.4028234663852886e38,
                                    1.1754943508222875e-38, 1.401298464324817e-45]
                                   if p["width"] == 32 else
                                   [1.7976931348623157e308, -1.7976931348623157e308,
                                    2.2250738585072014e-308, 5e-324, 9007199254740993.0])),
                st.floats(allow_nan=False, allow_infinity=False, width=p["width"])))
        assert math.isfinite(v)
        r = repr(v)
        return r if "e" in r else r + "e0"  # a DOUBLE literal: -0.0e0 keeps its sign
    if fam == "date":
        return "'" + draw(_dates()) + "'"
    if fam == "year":
        return str(draw(st.sampled_from([0, 1901, 2155, 1999, 2000, 70])))
    if fam == "time":
        h = draw(st.integers(-838, 838))
        frac = _frac(draw, p["fsp"])
        return f"'{h}:{draw(st.integers(0, 59)):02}:{draw(st.integers(0, 59)):02}{frac}'"
    if fam == "datetime":
        frac = _frac(draw, p["fsp"])
        return f"'{draw(_dates())} {draw(_clock())}{frac}'"
    if fam == "timestamp":
        frac = _frac(draw, p["fsp"])
        value = draw(st.one_of(
            st.just("0000-00-00 00:00:00"), st.just("1970-01-01 00:00:01"),
            st.just("2038-01-19 03:14:07"),
            st.builds(lambda d, c: f"{d} {c}", st.sampled_from(
                ["1999-12-31", "2021-03-28", "2021-10-31", "2024-02-29"]), _clock())))
        return f"'{value}{frac if value[0] != '0' else ''}'"
    if fam in ("char", "varchar", "text"):
        return _text_literal(draw, ct)
    if fam in ("binary", "varbinary", "blob"):
        b = draw(st.one_of(st.binary(max_size=40),
                           st.sampled_from([b"", b"\x00", b"\\", b"\\N", b"\x5c\x00", b"NULL",
                                            b"\xff" * 8, b"\t\n\r"])))
        return _bytes_literal(b)
    if fam == "enum":
        return draw(st.one_of(st.sampled_from([_str_literal(m) for m in p["members"]]),
                              st.just("'not-a-member'"),
                              st.integers(0, len(p["members"])).map(str)))
    if fam == "set":
        chosen = draw(st.lists(st.sampled_from(p["members"]), unique=True))
        return _str_literal(",".join(chosen)) if chosen else "''"
    if fam == "json":
        doc = draw(st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                      st.floats(allow_nan=False, allow_infinity=False),
                      st.sampled_from(AWKWARD), st.text(max_size=8)),
            lambda inner: st.one_of(st.lists(inner, max_size=3),
                                    st.dictionaries(st.text(max_size=5), inner, max_size=3)),
            max_leaves=8))
        return _str_literal(json.dumps(doc, ensure_ascii=draw(st.booleans())))
    if fam == "geometry":
        return _geometry(draw, p["sub"])
    if fam == "inet4":
        return "'" + str(ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))) + "'"
    if fam == "inet6":
        return "'" + str(ipaddress.IPv6Address(draw(st.one_of(
            st.integers(0, 2**128 - 1), st.sampled_from([0, 1, 0xFFFF01020304]))))) + "'"
    if fam == "uuid":
        return "'" + str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))) + "'"
    raise AssertionError(fam)


def _frac(draw, fsp: int) -> str:
    return "." + "".join(str(draw(st.integers(0, 9))) for _ in range(fsp)) if fsp else ""


def _dates():
    return st.one_of(st.sampled_from(["0000-00-00", "2020-00-15", "2020-01-00", "1000-01-01",
                                      "9999-12-31", "2024-02-29"]),
                     st.dates().map(lambda d: d.isoformat()))


def _clock():
    return st.builds(lambda h, m, s: f"{h:02}:{m:02}:{s:02}",
                     st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))


def _text_literal(draw, ct: ColType) -> str:
    cs = ct.charset or "utf8mb4"
    if cs in MULTIBYTE:
        alphabet = st.sampled_from(list("ab \\\t\n'") + list(_COMMON_CJK) + FIVE_C[cs])
        s = "".join(draw(st.lists(alphabet, max_size=12)))
        try:
            raw = s.encode(MULTIBYTE[cs])
        except UnicodeEncodeError:
            raw = s.encode(MULTIBYTE[cs], errors="ignore")
        return f"_{cs} X'{raw.hex()}'" if raw else "''"
    if cs == "binary":
        return _bytes_literal(draw(st.binary(max_size=30)))
    if cs in ("latin1", "ascii"):
        s = draw(st.one_of(st.sampled_from([a for a in AWKWARD if a.isascii()]),
                           st.text(st.characters(max_codepoint=0x7F if cs == "ascii" else 0xFF),
                                   max_size=20)))
        return f"_{cs} X'{s.encode(cs).hex()}'" if s else "''"
    bmp = cs in ("ucs2", "utf8mb3")
    s = draw(st.one_of(st.sampled_from([a for a in AWKWARD if not (bmp and a and
                                                                   max(a) > "\uffff")]),
                       st.text(st.characters(max_codepoint=0xFFFF if bmp else 0x10FFFF,
                                             exclude_categories=("Cs",)), max_size=20)))
    return _str_literal(s)


def _geometry(draw, sub: str) -> str:
    coord = st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False)
                      .map(lambda f: 0.0 if f == 0 else f))

    def pt() -> str:
        return f"{draw(coord)!r} {draw(coord)!r}"

    kind = sub if sub != "GEOMETRY" else draw(st.sampled_from(["POINT", "LINESTRING",
                                                               "POLYGON"]))
    if kind == "POINT":
        wkt = f"POINT({pt()})"
    elif kind == "LINESTRING":
        wkt = f"LINESTRING({pt()}, {pt()})"
    elif kind == "POLYGON":
        wkt = "POLYGON((0 0, 10 0, 10 10, 0 10, 0 0))"
    elif kind == "MULTIPOINT":
        wkt = f"MULTIPOINT({pt()}, {pt()})"
    else:
        wkt = f"GEOMETRYCOLLECTION(POINT({pt()}), LINESTRING({pt()}, {pt()}))"
    srid = draw(st.sampled_from([0, 4326]))
    return f"ST_GeomFromText('{wkt}', {srid})"
