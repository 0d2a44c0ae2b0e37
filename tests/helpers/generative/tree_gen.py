"""Random mount trees, their damage, and a fingerprint of every attribute a restore keeps.

``trees(features, caps)`` draws a ``Tree``: a list of build steps (directories, files with
holes, hard links, symlinks, FIFOs; modes incl. setuid/sticky, owners, ``user.*`` xattrs,
POSIX ACLs, nanosecond mtimes; odd, long and deep names). ``build(tree, mount)`` makes it;
``repr`` lists the steps, which is the reproduction. ``tree_damages`` draws what happens
to the live mount afterwards; ``tree_fingerprint`` records the tree as a comparable dict.
``caps`` says what this filesystem can hold (``probe_caps``): a feature it cannot hold is
skipped, never failed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

from tests.helpers.generative.features import TREE_FEATURES, enabled

MiB = 1 << 20
NAMES = [b"a", b"file.txt", b"Dir", b"with space", b"-dash", b".hidden", b"\xc3\xbcn\xc3\xafc",
         b"\xe2\x98\x83"]
ODD_NAMES = [b"new\nline", b"latin1-\xe9", b"\xff\xfe", b"tab\there", b"back\\slash",
             b"star*?", b"'quote\"", b"\x01ctrl", b" lead", b"trail "]
MODES_FILE = [0o644, 0o600, 0o755, 0o400, 0o000, 0o666]
MODES_SPECIAL = [0o4755, 0o2755, 0o6711, 0o1644]
MODES_DIR = [0o755, 0o700, 0o555, 0o775]
OWNERS = [(0, 0), (1000, 1000), (65534, 65534), (12345, 54321)]
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 1, 2, 4, 8, 16, 32


def acl_blob(entries: list[tuple[int, int, int]]) -> bytes:
    """The kernel's binary form of a POSIX ACL (what ``setfacl`` writes as an xattr)."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident)
                                           for tag, perm, ident in entries)


def _acl(uid: int, gid: int) -> bytes:
    undefined = 0xFFFFFFFF
    return acl_blob([(ACL_USER_OBJ, 6, undefined), (ACL_USER, 4, uid),
                     (ACL_GROUP_OBJ, 4, undefined), (ACL_GROUP, 5, gid),
                     (ACL_MASK, 7, undefined), (ACL_OTHER, 0, undefined)])


@dataclass
class Step:
    kind: str  # dir, file, link, symlink, fifo
    path: bytes
    mode: int = 0o644
    owner: tuple[int, int] = (0, 0)
    mtime_ns: int = 1_600_000_000_000_000_000
    data: list[tuple[int, bytes]] = field(default_factory=list)  # (offset, bytes) extents
    size: int = 0
    target: bytes = b""  # symlink target, or the first path of a hard link's file
    xattrs: dict[str, bytes] = field(default_factory=dict)

    def __repr__(self) -> str:
        extra = {"dir": "", "fifo": "", "link": f" -> {self.target!r}",
                 "symlink": f" -> {self.target!r}"}.get(
            self.kind, f" size={self.size} extents={[(o, len(b)) for o, b in self.data]}")
        return (f"{self.kind} {self.path!r}{extra} mode={self.mode:o} owner={self.owner} "
                f"mtime_ns={self.mtime_ns} xattrs={sorted(self.xattrs)}")


@dataclass
class Tree:
    steps: list[Step]

    def __repr__(self) -> str:
        return "Tree:\n" + "\n".join(f"  {s!r}" for s in self.steps)

    def _repr_pretty_(self, p, cycle: bool) -> None:  # hypothesis prints this
        p.text(repr(self))


def probe_caps(where: Path) -> frozenset[str]:
    """What the filesystem at ``where`` can hold: user xattrs, ACLs, holes, FIFOs."""
    caps = set()
    probe = where / "probe"
    probe.write_bytes(b"x")
    try:
        try:
            os.setxattr(probe, "user.snapkeep-probe", b"1")
            caps.add("xattrs")
        except OSError:
            pass
        try:
            os.setxattr(probe, "system.posix_acl_access", _acl(1000, 1000))
            caps.add("acls")
        except OSError:
            pass
        with open(probe, "r+b") as f:
            f.truncate(8 * MiB)
        if os.stat(probe).st_blocks * 512 < MiB:
            caps.update({"sparse_files", "sparse_allocation"})
        try:
            os.mkfifo(where / "probe-fifo")
            os.unlink(where / "probe-fifo")
            caps.add("fifos")
        except OSError:
            pass
        if os.geteuid() == 0:
            caps.update({"owners", "special_modes"})
    finally:
        probe.unlink()
    return frozenset(caps)


@st.composite
def trees(draw, features: frozenset[str], base_len: int) -> Tree:
    """``base_len``: the length of the mount's absolute path, to keep deep paths near (not
    over) PATH_MAX."""
    steps: list[Step] = []
    dirs: list[bytes] = [b""]
    files: list[bytes] = []
    names = NAMES + (ODD_NAMES if "odd_names" in features else [])

    def attrs(kind: str) -> dict:
        modes = MODES_DIR if kind == "dir" else MODES_FILE
        if "special_modes" in features:
            modes = modes + ([0o1777, 0o3755] if kind == "dir" else MODES_SPECIAL)
        out = {"mode": draw(st.sampled_from(modes)),
               # before 1970 too: ext4 keeps negative times
               "mtime_ns": draw(st.integers(-2**60, 2**62)) if "mtimes_ns" in features
               else 1_600_000_000_000_000_000}
        if "owners" in features:
            out["owner"] = draw(st.sampled_from(OWNERS))
        xattrs: dict[str, bytes] = {}
        if kind == "fifo":  # user.* xattrs are for files and directories only
            return {**out, "xattrs": xattrs}
        if "xattrs" in features and draw(st.booleans()):
            for i in range(draw(st.integers(1, 3))):
                xattrs[f"user.k{i}{draw(st.sampled_from(['', '.dot', '-x']))}"] = draw(
                    st.binary(max_size=64))
        if "acls" in features and draw(st.integers(0, 3)) == 0:
            xattrs["system.posix_acl_access"] = _acl(*draw(st.sampled_from(OWNERS[1:])))
            if kind == "dir" and draw(st.booleans()):
                xattrs["system.posix_acl_default"] = _acl(1000, 1000)
        out["xattrs"] = xattrs
        return out

    def child(parent: bytes, i: int) -> bytes:
        name = draw(st.sampled_from(names))
        if "long_names" in features and draw(st.integers(0, 5)) == 0:
            name = (name * 255)[:250]
        name = name[:250] + b"%d" % i  # unique in its directory, at most 255 bytes
        return parent + b"/" + name if parent else name

    for i in range(draw(st.integers(1, 14))):
        parent = draw(st.sampled_from(dirs))
        kinds = ["dir", "file", "file"]
        if "symlinks" in features:
            kinds.append("symlink")
        if "hard_links" in features and files:
            kinds.append("link")
        if "fifos" in features:
            kinds.append("fifo")
        kind = draw(st.sampled_from(kinds))
        path = child(parent, i)
        if kind == "dir":
            steps.append(Step("dir", path, **attrs("dir")))
            dirs.append(path)
        elif kind == "file":
            step = Step("file", path, **attrs("file"))
            if "sparse_files" in features and draw(st.integers(0, 3)) == 0:
                step.size = draw(st.sampled_from([2 * MiB, 16 * MiB, 64 * MiB]))
                for _ in range(draw(st.integers(0, 3))):
                    off = draw(st.integers(0, step.size - 4096))
                    step.data.append((off, draw(st.binary(min_size=1, max_size=5000))))
            else:
                content = draw(st.one_of(st.binary(max_size=300),
                                         st.sampled_from([b"", b"\x00" * 10000, b"x" * 70000])))
                step.data, step.size = [(0, content)], len(content)
            steps.append(step)
            files.append(path)
        elif kind == "link":
            steps.append(Step("link", path, target=draw(st.sampled_from(files))))
        elif kind == "symlink":
            target = draw(st.sampled_from([b"does/not/exist", b"/etc/passwd", b"..", b".",
                                           b"../" * 3 + b"escape", path.rsplit(b"/", 1)[-1],
                                           b"x" * 1000]
                                          + [(b"../" * parent.count(b"/")) + f
                                             for f in files[:2]]))
            steps.append(Step("symlink", path, target=target,
                              owner=draw(st.sampled_from(OWNERS)) if "owners" in features
                              else (0, 0),
                              mtime_ns=draw(st.integers(0, 2**62))))
        else:
            steps.append(Step("fifo", path, **attrs("fifo")))
    if "empty_dirs" in features:
        steps.append(Step("dir", child(draw(st.sampled_from(dirs)), 99), mode=0o755))
    if "deep_paths" in features and draw(st.booleans()):
        margins = [60, 300] + ([0] if "deep_paths_at_path_max" in features else [])
        room = 4095 - base_len - 1 - draw(st.sampled_from(margins))
        path = b""
        while len(path) + 201 <= room:
            path = (path + b"/" if path else b"") + b"d" * 200
            steps.append(Step("dir", path, mode=0o755))
        left = room - len(path) - 1
        if left > 0:
            steps.append(Step("file", path + b"/" + b"f" * min(left, 255), data=[(0, b"deep")],
                              size=4))
    return Tree(steps)


def build(tree: Tree, mount: Path) -> None:
    base = os.fsencode(mount)
    os.makedirs(base, exist_ok=True)
    for s in tree.steps:
        p = base + b"/" + s.path
        if s.kind == "dir":
            os.mkdir(p)
        elif s.kind == "file":
            with open(p, "wb") as f:
                for off, data in s.data:
                    f.seek(off)
                    f.write(data)
                f.truncate(s.size)
        elif s.kind == "link":
            os.link(base + b"/" + s.target, p)
        elif s.kind == "symlink":
            os.symlink(s.target, p)
        else:
            os.mkfifo(p)
    # attributes after contents: chown clears setuid, writing into a dir changes its mtime
    for s in reversed(tree.steps):
        p = base + b"/" + s.path
        if s.kind == "symlink":
            os.chown(p, *s.owner, follow_symlinks=False)
            os.utime(p, ns=(s.mtime_ns, s.mtime_ns), follow_symlinks=False)
            continue
        if s.kind == "link":
            continue
        os.chown(p, *s.owner, follow_symlinks=False)
        os.chmod(p, s.mode)
        for name, value in s.xattrs.items():
            os.setxattr(p, name, value)
        os.utime(p, ns=(s.mtime_ns, s.mtime_ns))
    os.utime(base, ns=(1_500_000_000_123_456_789, 1_500_000_000_123_456_789))


def tree_fingerprint(mount: Path, *, sparse: bool) -> dict:
    """Every entry's type, mode, owner, mtime, size, content hash, symlink target and
    xattrs; hard-link groups as sets of paths; with ``sparse``, whether each file of
    1 MiB or more allocates less than half its size."""
    base = os.fsencode(mount)
    if not os.path.isdir(base) or os.path.islink(base):
        return {"mount": "missing or not a directory"}
    entries: dict[bytes, tuple] = {}
    inodes: dict[int, list[bytes]] = {}

    def visit(rel: bytes) -> None:
        p = base + b"/" + rel if rel else base
        st_ = os.lstat(p)
        mode = st_.st_mode
        xattrs = ()
        if not stat.S_ISLNK(mode):
            xattrs = tuple(sorted((n, os.getxattr(p, n, follow_symlinks=False))
                                  for n in os.listxattr(p, follow_symlinks=False)))
        common = (stat.S_IFMT(mode), stat.S_IMODE(mode), st_.st_uid, st_.st_gid,
                  st_.st_mtime_ns, xattrs)
        if stat.S_ISREG(mode):
            with open(p, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            sparse_flag = (st_.st_blocks * 512 < st_.st_size // 2
                           if sparse and st_.st_size >= MiB else None)
            entries[rel] = (*common, st_.st_size, digest, sparse_flag)
            inodes.setdefault(st_.st_ino, []).append(rel)
        elif stat.S_ISLNK(mode):
            entries[rel] = (stat.S_IFMT(mode), st_.st_uid, st_.st_gid, st_.st_mtime_ns,
                            os.readlink(p))
        else:
            entries[rel] = common
        if stat.S_ISDIR(mode):
            for name in sorted(os.listdir(p)):
                visit(rel + b"/" + name if rel else name)

    visit(b"")
    links = sorted(tuple(sorted(paths)) for paths in inodes.values() if len(paths) > 1)
    return {"entries": entries, "hard_link_groups": links}


# -- damage ----------------------------------------------------------------------------------

@dataclass
class TreeDamage:
    actions: list[tuple[str, int]]  # (what, a drawn number choosing where/how)

    def __repr__(self) -> str:
        return f"TreeDamage({self.actions})"


@st.composite
def tree_damages(draw, features: frozenset[str]) -> TreeDamage:
    kinds = [k for k in ("delete_mount", "replace_by_file", "fill", "modify")
             if f"damage_{k}" in features]
    if not kinds:
        return TreeDamage([])
    return TreeDamage(draw(st.lists(st.tuples(st.sampled_from(kinds), st.integers(0, 999)),
                                    min_size=1, max_size=3)))


def apply_damage(damage: TreeDamage, tree: Tree, mount: Path) -> None:
    base = os.fsencode(mount)
    for k, (what, n) in enumerate(damage.actions):
        if what == "delete_mount":
            _remove(base)
        elif what == "replace_by_file":
            _remove(base)
            with open(base, "wb") as f:
                f.write(b"not a directory any more")
        elif what == "fill":
            if not os.path.isdir(base):
                continue
            for i in range(1 + n % 5):
                os.makedirs(base + b"/junk%d-%d/deeper" % (k, i), exist_ok=True)
                with open(base + b"/junk%d-%d/deeper/f" % (k, i), "wb") as f:
                    f.write(os.urandom(n))
                os.symlink(b"/", base + b"/junk-link%d-%d" % (k, i))
        else:
            files = [s for s in tree.steps if s.kind == "file"]
            if not files or not os.path.isdir(base):
                continue
            s = files[n % len(files)]
            p = base + b"/" + s.path
            if not os.path.lexists(p):
                continue
            match n % 4:
                case 0:
                    with open(p, "r+b") as f:
                        f.write(b"changed")
                case 1:
                    os.chmod(p, 0o777)
                case 2:
                    os.unlink(p)
                case 3:
                    os.utime(p, ns=(n, n))


def _remove(p: bytes) -> None:
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
    elif os.path.lexists(p):
        os.unlink(p)


# features that need something of the filesystem (probed) rather than of the engine
FS_DEPENDENT = {"xattrs", "acls", "sparse_files", "sparse_allocation", "fifos", "owners",
                "special_modes"}


def tree_diff(after: dict, before: dict) -> str:
    if "entries" not in after or "entries" not in before:
        return f"restored {after.get('mount', 'a tree')}, snapshotted {before.get('mount')}"
    a, b = after["entries"], before["entries"]
    lines = [f"only restored: {p!r}" for p in sorted(set(a) - set(b))]
    lines += [f"missing after restore: {p!r} {b[p]!r}"[:400] for p in sorted(set(b) - set(a))]
    lines += [f"differs: {p!r}\n  restored    {a[p]!r}\n  snapshotted {b[p]!r}"[:800]
              for p in sorted(set(a) & set(b)) if a[p] != b[p]]
    if after["hard_link_groups"] != before["hard_link_groups"]:
        lines.append(f"hard links: restored {after['hard_link_groups']!r}, "
                     f"snapshotted {before['hard_link_groups']!r}")
    return "the restored tree differs:\n" + "\n".join(lines[:30])


def tree_features(scratch: Path) -> frozenset[str]:
    """The tree features enabled for this run that a filesystem like the one of ``scratch``
    can hold (``scratch`` is made for the probe and removed after it)."""
    scratch.mkdir(exist_ok=True)
    try:
        caps = probe_caps(scratch)
    finally:
        shutil.rmtree(scratch)
    return enabled(TREE_FEATURES) - (FS_DEPENDENT - caps)
