"""The allocator setting CPU training relies on (a third of a d4 step without it)."""
import ctypes.util
import platform

import pytest

from nanochat_core.train.cpu_allocator import keep_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or not ctypes.util.find_library("c"), reason="glibc only")
def test_glibc_accepts_both_settings():
    # mallopt answers 0 to a parameter number it does not know: this catches a wrong constant.
    assert keep_freed_memory() is True
