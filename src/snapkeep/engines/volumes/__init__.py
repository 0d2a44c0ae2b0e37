"""The volumes engine: snapshots and all-or-nothing restores of mounted directories.

``snapshot_mount`` walks a mount into the repository (``snapshot``, ``walk``; tree format
in ``tree``); ``prepare_restore`` builds the snapshot's tree in a staging directory
(``restore``, ``staging``, ``attributes``, ``keep``) and returns a
``PreparedMountRestore`` whose ``swap`` is the cut-over (``swap``);
``cleanup_leftovers`` recovers from a killed restore. Work-directory names: ``layout``.
``export_tar``/``extract_tar`` write a mount as a tar and read one back safely (``export``).
``tree_digest`` recomputes a directory's digest, equal to the one a snapshot recorded
exactly when every entry is identical (``digest``). A restore drill reads a snapshot's tree
(``tree_ref``, ``decode_tree``), keeps the entries a restorer can own (``owned_by``,
``restorer_owner``) and removes its work (``remove_tree``). Services import only this
package, never a submodule (an import-linter contract in pyproject.toml holds them to it).
``export_tar``/``extract_tar`` are resolved on first use (PEP 562): ``export`` loads
``tarfile``, which a snapshot or restore never needs (docs/performance.md).
"""

from typing import TYPE_CHECKING, Any

from snapkeep.engines.volumes.digest import owned_by, recorded_digest, restorer_owner, tree_digest
from snapkeep.engines.volumes.layout import remove_tree
from snapkeep.engines.volumes.restore import prepare_restore
from snapkeep.engines.volumes.snapshot import measure_mount, snapshot_mount
from snapkeep.engines.volumes.swap import (
    PreparedMountRestore,
    cleanup_leftovers,
    cutover_record,
    recover_cutover,
)
from snapkeep.engines.volumes.tree import decode_tree, tree_ref

if TYPE_CHECKING:
    from snapkeep.engines.volumes.export import export_tar, extract_tar

__all__ = [
    "PreparedMountRestore",
    "cleanup_leftovers",
    "cutover_record",
    "decode_tree",
    "export_tar",
    "extract_tar",
    "measure_mount",
    "owned_by",
    "prepare_restore",
    "recorded_digest",
    "recover_cutover",
    "remove_tree",
    "restorer_owner",
    "snapshot_mount",
    "tree_digest",
    "tree_ref",
]


def __getattr__(name: str) -> Any:
    if name in ("export_tar", "extract_tar"):
        from snapkeep.engines.volumes import export

        return getattr(export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
