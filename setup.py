"""Build declaration for the compiled EventStream codec.

Everything else lives in pyproject.toml. Set KIRO2API_NO_EXTENSIONS=1 to build a
pure-Python package (the codec then falls back to kiro2api/_eventstream_py.py).
"""

import os

from setuptools import Extension, setup

if os.environ.get("KIRO2API_NO_EXTENSIONS"):
    print("kiro2api: pure Python build (KIRO2API_NO_EXTENSIONS is set)")
    ext_modules = []
else:
    from Cython.Build import cythonize

    print("kiro2api: accelerated build (compiling kiro2api/_eventstream.pyx)")
    ext_modules = cythonize(
        # zlib: the codec calls its C crc32 directly.
        [Extension("kiro2api._eventstream", ["kiro2api/_eventstream.pyx"], libraries=["z"])],
        compiler_directives={"language_level": "3", "embedsignature": True},
    )

setup(ext_modules=ext_modules)
