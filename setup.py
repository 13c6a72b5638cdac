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
    """The optional Cython extension ``ul2q_ref._fast``, with OpenMP if the compiler has it.

    OpenMP is probed by compiling and linking a tiny program with the C compiler that will
    build the extension; when that fails the extension is built single-threaded (and without
    any compiler :class:`OptionalBuildExt` falls back to the pure reference).
    ``UL2Q_PURE_PYTHON=1`` skips the extension altogether; ``UL2Q_NO_OPENMP=1`` skips OpenMP.
    """
    if os.environ.get("UL2Q_PURE_PYTHON", "") not in ("", "0"):
        return []
    source = ROOT / "ul2q_ref" / "_fast.pyx"
    if not source.exists():
        return []
    try:
        import numpy
        from Cython.Build import cythonize
    except ImportError as error:  # no build requirements: install the reference only
        print(f"WARNING: not building ul2q_ref._fast ({error}); installing the pure NumPy "
              "reference only (ul2q_ref.HAVE_FAST will be False).", file=sys.stderr)
        return []
    from setuptools import Extension

    def openmp_flags():
        if os.environ.get("UL2Q_NO_OPENMP", "") not in ("", "0"):
            return []
        import tempfile

        try:
            from setuptools._distutils.ccompiler import new_compiler
            from setuptools._distutils.sysconfig import customize_compiler
        except ImportError:  # pragma: no cover - old setuptools
            from distutils.ccompiler import new_compiler
            from distutils.sysconfig import customize_compiler

        # a shared object, compiled and linked like the extension itself
        program = (
            "#include <omp.h>\n"
            "int ul2q_probe(void) {\n"
            "    int n = 0;\n"
            "#pragma omp parallel reduction(+: n)\n"
            "    n += 1;\n"
            "    return n + omp_get_max_threads();\n"
            "}\n"
        )
        flags = ["-fopenmp"]
        with tempfile.TemporaryDirectory() as folder, \
                open(Path(folder) / "log", "w") as log:
            probe = Path(folder) / "probe_openmp.c"
            probe.write_text(program, encoding="utf-8")
            saved = [os.dup(1), os.dup(2)]  # the compiler's own messages go to the log
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                compiler = new_compiler()
                customize_compiler(compiler)
                objects = compiler.compile([str(probe)], output_dir=folder,
                                           extra_postargs=flags)
                compiler.link_shared_object(objects, "probe_openmp.so", output_dir=folder,
                                            extra_postargs=flags)
            except Exception:  # noqa: BLE001 - any failure means: no OpenMP
                flags = []
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
        if not flags:
            print("ul2q_ref._fast: no OpenMP, building it single-threaded", file=sys.stderr)
        return flags

    openmp = openmp_flags()
    extension = Extension(
        "ul2q_ref._fast",
        [str(source.relative_to(ROOT))],
        include_dirs=[numpy.get_include()],
        # -ffp-contract=off: no fused multiply-add, so every float64 operation rounds once as
        # in NumPy; and no -ffast-math: the kernels must not reassociate anything.
        extra_compile_args=["-O3", "-ffp-contract=off", *openmp],
        extra_link_args=openmp,
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
    package_data={
        "ul2q_ref": [
            "_fast.pyx", "py.typed", "data/*.npz", "data/README.md",
            "crosscheck/vectors.schema.json", "crosscheck/results.schema.json",
            "crosscheck/diagnosis.schema.json",
        ]
    },
    install_requires=["numpy>=1.23", "scipy>=1.9", "tqdm>=4.60", "threadpoolctl>=3.1"],
    extras_require={
        "test": [
            "pytest>=7", "hypothesis>=6.70", "mpmath>=1.2", "ruff>=0.5", "matplotlib>=3.5",
            "torch>=2.0", "onnx>=1.16", "onnxruntime>=1.16", "safetensors>=0.4",
            "mypy>=1.8",  # .ci/run's lint step (ruff is above)
            "jsonschema>=4.18",
            "onnxscript>=0.2",  # torch.onnx.export(dynamo=True) in the bridge's ONNX tests
            "torchao>=0.10",  # UL2QConfig with torchao's quantize_ (installs beside torch)
        ],
        "check": ["jsonschema>=4.18"],
        "plot": ["matplotlib>=3.5"],
        "torch": ["torch>=2.0"],
        "models": ["safetensors>=0.4", "onnx>=1.16", "torch>=2.0"],
        "dev": ["tox>=4"],
    },
    entry_points={"console_scripts": ["ul2q-ref=ul2q_ref.cli:main"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    zip_safe=False,
)
