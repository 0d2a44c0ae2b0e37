"""Sizes as activity logs print them."""


def mib(n: int) -> str:
    """``n`` bytes in MiB with one decimal (``6.8 MiB``)."""
    return f"{n / 2**20:.1f} MiB"
