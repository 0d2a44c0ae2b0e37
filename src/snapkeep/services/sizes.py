"""Sizes as activity logs and front ends print them."""


def mib(n: int) -> str:
    """``n`` bytes in MiB with one decimal (``6.8 MiB``)."""
    return f"{n / 2**20:.1f} MiB"


def human_size(n: int) -> str:
    """``n`` bytes in the largest unit under 1024 of it (``512 B``, ``6.8 MiB``)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
