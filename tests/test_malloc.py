"""sknn.malloc: opt-in glibc allocator settings, never applied on import."""

import platform
import subprocess
import sys

import pytest

SCRIPT = """
from sknn.malloc import tune_malloc, tuned_malloc
with tuned_malloc() as applied:
    print(applied)
print(tune_malloc())
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the settings exist in glibc only")
def test_glibc_accepts_the_settings_in_a_separate_process():
    # a subprocess, because the settings are process-wide
    out = subprocess.run([sys.executable, "-c", SCRIPT], check=True,
                         capture_output=True, text=True)
    assert out.stdout.split() == ["True", "True"]

