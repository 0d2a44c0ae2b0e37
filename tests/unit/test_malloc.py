"""The heap bound that keeps a long dump's peak memory flat."""

import platform

import pytest

from snapkeep.malloc import bound_heap_growth


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_the_mmap_threshold_is_fixed_on_glibc():
    assert bound_heap_growth() is True
