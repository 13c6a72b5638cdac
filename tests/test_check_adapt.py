"""One-line adapters and the standalone adapter template (issue 18, item 3).

The implementation under test here is written from the definition in NumPy alone (below,
``IMPLEMENTATION``; λ_k* read from the suite's header, not from this package), so a pass
means the adapters carried its arrays through the wire format bit for bit.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import check_helpers
import numpy as np
import pytest

from ul2q_ref.crosscheck import adapters, check, encoding, vectors
from ul2q_ref.crosscheck.templates import adapter_template

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
suite_dir, suite = check_helpers.suite_dir, check_helpers.suite  # module-scoped fixtures

IMPLEMENTATION = textwrap.dedent('''\
    LAMBDAS = [float.fromhex(h) for h in LAMBDA_HEX]  # λ_k*, k = 1..16


    def _per_channel(values, w, axis):
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if axis is None:
            return values[0]
        shape = [1] * w.ndim
        shape[axis] = -1
        return values.reshape(shape)


    def _moments(row):
        """μ, σ by the corrected two-pass algorithm on values rescaled by a power of two."""
        if row[0] == row.min() == row.max():
            return float(row[0]), 0.0
        _, exponent = np.frexp(np.abs(row).max())
        scaled = np.ldexp(row, -exponent)
        mean = scaled.sum() / scaled.size
        deviations = scaled - mean
        total = deviations.sum()
        variance = max((deviations * deviations).sum() - total * total / scaled.size, 0.0)
        variance = variance / scaled.size
        return float(np.ldexp(mean, exponent)), float(np.ldexp(np.sqrt(variance), exponent))


    def encode(w, alpha, beta, bits, axis):
        """q = clip(⌊(w − β)/α⌋ + 1, 1 − 2^(k−1), 2^(k−1)), q = 1 where α = 0; ŵ = α(q − ½) + β."""
        a, b = _per_channel(alpha, w, axis), _per_channel(beta, w, axis)
        half = 2 ** (bits - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.clip(np.floor((w.astype(np.float64) - b) / a) + 1.0, 1 - half, half)
        q = np.where(a == 0.0, 1.0, q).astype(np.int64)
        return q, (a * (q - 0.5) + b).astype(w.dtype)


    def quantize(w, bits, axis):
        rows = (w.reshape(1, -1) if axis is None
                else np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1))
        stats = [_moments(np.ascontiguousarray(row, dtype=np.float64)) for row in rows]
        beta = np.array([mean for mean, _ in stats])
        alpha = LAMBDAS[bits - 1] * np.array([std for _, std in stats])
        codes, w_hat = encode(w, alpha, beta, bits, axis)
        return alpha, beta, codes, w_hat
    ''')


@pytest.fixture(scope="module")
def implementation(suite):
    lambda_hex = [float(np.frombuffer(bytes.fromhex(h), ">f8")[0]).hex()
                  for h in suite.header["lambdas"]["exact"]]
    namespace: dict = {"np": np, "LAMBDA_HEX": lambda_hex}
    exec(IMPLEMENTATION, namespace)  # noqa: S102 - the test's own implementation text
    return namespace, lambda_hex


def exact_cases(suite):
    return check.select_cases(suite.cases, schemes=["ul2q"], profiles=["exact"])


def test_adapt_with_everything_passes_every_exact_case_bit_for_bit(suite, implementation):
    namespace, _ = implementation
    solve = adapters.adapt(namespace["quantize"], encode=namespace["encode"])
    report = check.check_suite(exact_cases(suite), check.function_provider(solve))
    assert report.failed == 0 and report.not_answerable == 0, report.render(quiet=True)
    assert all(outcome.bit_exact and not outcome.notes for outcome in report.outcomes)


def test_w_hat_only_function_without_axis(suite, implementation):
    namespace, _ = implementation
    solve = adapters.adapt(lambda w, bits: namespace["quantize"](w, bits, None)[3])
    report = check.check_suite(exact_cases(suite), check.function_provider(solve))
    by_status: dict[str, list] = {}
    for case, outcome in zip(exact_cases(suite), report.outcomes, strict=True):
        by_status.setdefault(outcome.status, []).append((case, outcome))
    assert {c.stats is None for c, _ in by_status["not answerable"]} == {True}
    assert all(c.axis is not None for c, _ in by_status["fail"])
    assert all("takes no axis, so per-channel cases cannot be answered" in o.lines[0]
               for _, o in by_status["fail"])
    assert all(o.notes == ["ŵ only: no α, β given, so the statistics step and the codes are "
                           "not checked; ŵ is compared with the reference's"]
               for _, o in by_status["pass"])
    assert len(by_status["pass"]) == sum(c.stats is not None and c.axis is None
                                         for c in exact_cases(suite))


def test_codes_left_out_are_inferred_and_said(suite, implementation):
    namespace, _ = implementation

    def no_codes(w, bits, axis):
        alpha, beta, _, w_hat = namespace["quantize"](w, bits, axis)
        return {"alpha": alpha, "beta": beta, "w_hat": w_hat}

    cases = check.select_cases(exact_cases(suite), patterns=["*random*"])
    report = check.check_suite(cases, check.function_provider(adapters.adapt(no_codes)))
    assert report.failed == 0, report.render(quiet=True)
    assert all("quantize: codes not given; inferred from ŵ with the implementation's own α, "
               "β" in o.notes for o in report.outcomes)


def test_a_wrong_zero_point_through_the_adapter_is_explained(suite, implementation):
    namespace, _ = implementation

    def zero_point_one(w, bits, axis):
        alpha, beta, codes, _ = namespace["quantize"](w, bits, axis)
        a = np.asarray(alpha)[0]
        return alpha, beta, codes, (a * (codes - 1.0) + np.asarray(beta)[0]).astype(w.dtype)

    cases = check.select_cases(suite.cases, patterns=["ul2q-exact-k4-float64-random"])
    report = check.check_suite(cases, check.function_provider(adapters.adapt(zero_point_one)))
    assert "quantize: pattern: every ŵ is 0.500 α below the reference; codes agree" in \
        report.outcomes[0].lines


def test_torch_module_with_alpha_and_beta_attributes(suite, implementation):
    torch = pytest.importorskip("torch", reason="the torch adapter needs PyTorch")
    namespace, _ = implementation

    class Quantiser(torch.nn.Module):
        """A module that keeps α and β after its forward call, as published code does."""

        def __init__(self, bits, axis):
            super().__init__()
            self.bits, self.axis = bits, axis

        def forward(self, w):
            alpha, beta, _, w_hat = namespace["quantize"](w.numpy(), self.bits, self.axis)
            self.alpha, self.beta = torch.from_numpy(alpha), torch.from_numpy(beta)
            return torch.from_numpy(w_hat)

    solve = adapters.adapt_torch_module(Quantiser)
    cases = [c for c in exact_cases(suite) if c.stats is not None]
    report = check.check_suite(cases, check.function_provider(solve))
    assert report.failed == 0, report.render(quiet=True)
    inferred = "quantize: codes not given; inferred from ŵ with the implementation's own α, β"
    for case, outcome in zip(cases, report.outcomes, strict=True):
        constant = bool(np.any(case.stats.alpha == 0))
        assert outcome.notes == [inferred + (" (not where α = 0: every code decodes to β "
                                             "there)" if constant else "")]


def test_torch_module_instance_without_attributes_is_w_hat_only(suite):
    pytest.importorskip("torch", reason="the torch adapter needs PyTorch")
    from ul2q_ref.torch import UL2Q

    cases = check.select_cases(suite.cases, patterns=["ul2q-exact-k3-float32-random"])
    report = check.check_suite(cases, check.function_provider(
        adapters.adapt_torch_module(UL2Q(bits=3))))
    assert report.passed == 1 and report.outcomes[0].notes[0].startswith("ŵ only")


# --------------------------------------------------------------------------- the template


def filled_template(tmp_path: Path, lambda_hex: list[str]) -> Path:
    text = adapters.template_text()
    begin = text.index("# --- your implementation: begin")
    end = text.index("# --- your implementation: end")
    body = f"LAMBDA_HEX = {lambda_hex!r}\n" + IMPLEMENTATION
    path = tmp_path / "adapter.py"
    path.write_text(text[:begin] + body + "\n" + text[end:], encoding="utf-8")
    return path


def test_the_template_imports_only_the_standard_library_and_numpy():
    tree = ast.parse(adapters.template_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported == {"json", "sys", "numpy"}


def test_the_filled_template_passes_every_exact_case_under_batch(tmp_path, suite_dir,
                                                                 implementation):
    _, lambda_hex = implementation
    script = filled_template(tmp_path, lambda_hex)
    # -I: isolated mode, PYTHONPATH ignored; the script runs from a directory of its own
    command = f"{sys.executable} -I {script}"
    done = subprocess.run([sys.executable, "-m", "ul2q_ref", "check", str(suite_dir),
                           "--command", command, "--batch", "--scheme", "ul2q", "--profile",
                           "exact", "--quiet"], env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    count = len(check.select_cases(vectors.load_suite(suite_dir).cases, schemes=["ul2q"],
                                   profiles=["exact"]))
    assert done.stdout.strip().splitlines()[-1] == f"{count} passed, 0 failed"


def test_the_unfilled_template_fails_each_case_with_its_message(tmp_path, suite_dir):
    script = tmp_path / "adapter.py"
    script.write_text(adapters.template_text(), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "ul2q_ref", "check", str(suite_dir),
                           "--command", f"{sys.executable} -I {script}", "--batch",
                           "--select", "ul2q-exact-k2-float32-random"], env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "NotImplementedError: fill in quantize() in the adapter" in done.stdout


def test_print_adapter_template_prints_the_shipped_file():
    done = subprocess.run([sys.executable, "-m", "ul2q_ref", "check",
                           "--print-adapter-template"], env=ENV, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout == Path(adapter_template.__file__).read_text(encoding="utf-8")


def test_template_hex_helpers_agree_with_the_package_encoding():
    rng = np.random.default_rng(5)
    for dtype in ("float32", "float64"):
        values = np.concatenate([rng.normal(size=50), [0.0, -0.0, np.inf, -np.inf, 5e-324,
                                                       1e-40, np.nan]]).astype(dtype)
        patterns = encoding.to_hex(values, dtype)
        assert adapter_template.to_hex(values, dtype) == patterns
        assert adapter_template.from_hex(patterns, dtype).tobytes() == \
            encoding.from_hex(patterns, dtype).tobytes()




def test_the_adapters_are_importable_from_the_package():
    from ul2q_ref.crosscheck import adapt as adapt_function
    from ul2q_ref.crosscheck import adapt_torch_module

    assert adapt_function is adapters.adapt
    assert adapt_torch_module is adapters.adapt_torch_module


def test_the_filled_template_also_answers_one_process_per_case(tmp_path, suite_dir,
                                                               implementation):
    _, lambda_hex = implementation
    script = filled_template(tmp_path, lambda_hex)
    done = subprocess.run([sys.executable, "-m", "ul2q_ref", "check", str(suite_dir),
                           "--command", f"{sys.executable} -I {script}", "--select",
                           "ul2q-exact-k4-float*-random", "--select",
                           "ul2q-exact-k2-float32-constant-channel-0.25", "--quiet"],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "3 passed, 0 failed"
