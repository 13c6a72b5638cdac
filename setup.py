"""Build script: package metadata and the optional Cython extension ``ul2q_ref._fast``.

The extension is optional. Set ``UL2Q_PURE_PYTHON=1`` to skip it; a build without a working
C compiler also falls back to the pure NumPy reference (with a warning) instead of failing.
"""

import os
import sys
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent


def _extensions():
    if os.environ.get("UL2Q_PURE_PYTHON", "") not in ("", "0"):
        return []
    source = ROOT / "ul2q_ref" / "_fast.pyx"
    if not source.exists():
        return []
    import numpy
    from Cython.Build import cythonize
    from setuptools import Extension

    extension = Extension(
        "ul2q_ref._fast",
        [str(source.relative_to(ROOT))],
        include_dirs=[numpy.get_include()],
        extra_compile_args=["-O3", "-ffp-contract=off"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    return cythonize(
        [extension],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


class OptionalBuildExt(build_ext):
    """Build the extension if possible; without a compiler, install the pure reference."""

    def run(self):
        try:
            super().run()
        except Exception as error:  # noqa: BLE001 - any build failure falls back
            self._warn(error)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as error:  # noqa: BLE001
            self._warn(error)

    @staticmethod
    def _warn(error):
        print(
            f"WARNING: building ul2q_ref._fast failed ({error}); installing the pure NumPy "
            "reference only (ul2q_ref.HAVE_FAST will be False).",
            file=sys.stderr,
        )


setup(
    name="ul2q-ref",
    version="0.1.0",
    description="Executable specification of μL2Q ultra-low loss quantisation (IJCNN 2019)",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["ul2q_ref", "ul2q_ref.*"]),
    package_data={"ul2q_ref": ["_fast.pyx", "data/*.npz", "data/README.md"]},
    install_requires=["numpy>=1.23", "scipy>=1.9", "tqdm>=4.60"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.70", "mpmath>=1.2", "ruff>=0.5"],
        "plot": ["matplotlib>=3.5"],
        "dev": ["tox>=4"],
    },
    entry_points={"console_scripts": ["ul2q-ref=ul2q_ref.cli:main"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    zip_safe=False,
)
