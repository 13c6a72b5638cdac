r"""Whole-pipeline ties: tensors whose own statistics put values exactly on thresholds.

An encode-only case gives α and β and puts values on β + jα; an implementation without an
encode entry point cannot answer it. These tensors carry the tie through the whole pipeline:
the reference's μ and σ of the tensor itself give β = μ and α = λ_k σ, and pairs of values
(probes) lie on β ± jα *exactly* — as rationals, Fraction(w) = Fraction(β) + j·Fraction(α) —
for chosen j, odd ones included, so the definition's q = ⌊(w − β)/α⌋ + 1 puts each in the
upper cell, code j + 1 (−j + 1 for β − jα), with no rounding anywhere.

Construction, in integer units u (the tensor is the integers times 2^e):

1. Pick a step a (a multiple of 16) and a σ with fl(λ_k σ) = a, found among the float64
   neighbours of a/λ_k.
2. Pick the integer S = Σ(w − μ)² with fl(√(S/n)) = σ, n = 256 (S < 2^53, so that every
   sum of the statistics is exact).
3. Fill the tensor with values c ± x in symmetric pairs (so μ = c exactly): the probes
   x = ja, random x ≈ normal, and a few x from a greedy sum of squares that makes Σx²
   exactly (S − probes)/2.
4. Compute the statistics with the reference and keep the tensor only if α and β are those
   planned and every probe lies on its threshold exactly (else try the next candidate).

Every value is a float32 (the integers stay below 2^24 or are multiples of 4 below 2^26), so
the same tensor serves float32 and float64 inputs. The caffe profile's statistics are float32
sums: :func:`caffe_tie_tensor` builds its ties from small integers instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..codebook import code_range
from . import steps

COUNT = 256
"""Values per tensor: a power of two, so S/n is exact, and inline in vectors.json."""

_SIGMA_UNITS = 2.0 ** 22
"""σ in units before scaling: S = nσ² ≈ 2^52, fine enough to choose σ to the last bit."""


@dataclass(frozen=True)
class TieTensor:
    """A tensor with probes on its own thresholds.

    ``probes`` maps the index of each probe in ``weights`` to its threshold j: the value is
    exactly β + jα of the reference's own α and β (``alpha``, ``beta``).
    """

    weights: np.ndarray
    alpha: float
    beta: float
    probes: dict[int, int]


def _greedy_squares(total: int) -> list[int]:
    """Positive integers whose squares sum to `total` exactly (largest square first)."""
    parts = []
    while total > 0:
        root = math.isqrt(total)
        parts.append(root)
        total -= root * root
    return parts


def _sigmas_for(step: float, lam: float) -> list[float]:
    """The float64 σ near step/λ with fl(λσ) = step."""
    centre = step / lam
    below = [centre]
    for _ in range(4):
        below.append(math.nextafter(below[-1], -math.inf))
    above = [centre]
    for _ in range(4):
        above.append(math.nextafter(above[-1], math.inf))
    candidates = sorted(set(below + above))
    return [sigma for sigma in candidates if lam * sigma == step]


def _sums_of_squares_for(sigma: float, count: int) -> list[int]:
    """The even integers S with fl(√(fl(S/n))) = σ (the statistics' last two roundings)."""
    ulp = math.ulp(sigma)
    low = math.floor(count * (sigma - ulp) ** 2)
    high = math.ceil(count * (sigma + ulp) ** 2)
    return [total for total in range(low - low % 2, high + 1, 2)
            if math.sqrt(total / count) == sigma]


def _fill(half_sum: int, pairs_available: int, sigma: float, rng: np.random.Generator,
          multiple: int = 4) -> list[int] | None:
    """Non-negative integers x (one per ± pair) with Σx² = `half_sum`, `pairs_available` of
    them: random normal ones (multiples of `multiple`), then a greedy remainder; None if it
    does not come out at exactly that many."""
    corrections = min(10, pairs_available - 1)
    for _ in range(40):
        random_pairs = pairs_available - corrections
        if random_pairs < 1:
            return None
        draws = np.abs(rng.standard_normal(random_pairs))
        target = half_sum - 0.5 * sigma * sigma
        scale = math.sqrt(target / float(np.sum(draws * draws)))
        values = [multiple * round(scale * float(z) / multiple) for z in draws]
        remainder = half_sum - sum(x * x for x in values)
        if remainder <= 0:
            continue
        greedy = _greedy_squares(remainder)
        if len(greedy) == corrections:
            return values + greedy
        corrections = len(greedy)
    return None


def _is_float32(values: np.ndarray) -> bool:
    return bool(np.all(values.astype(np.float32).astype(np.float64) == values))


def _probe_offsets_ok(weights: np.ndarray, alpha: float, beta: float,
                      probes: dict[int, int]) -> bool:
    """Exact rational check: every probe is β + jα."""
    step, centre = Fraction(alpha), Fraction(beta)
    return all(Fraction(float(weights[index])) == centre + j * step
               for index, j in probes.items())


def tie_tensor(profile: str, bits: int, offsets: tuple[int, ...], dtype: str, exponent: int,
               rng: np.random.Generator) -> TieTensor:
    """A tensor of :data:`COUNT` values whose probes lie exactly on β ± jα, j in `offsets`.

    Parameters
    ----------
    profile : str
        ``"exact"`` or ``"paper"`` (float64 statistics; λ_k from the profile, k ≤ 8).
    bits : int
        k; every j must name an interior threshold, 1 ≤ j ≤ 2^(k−1) − 1.
    offsets : tuple of int
        The thresholds j; each gets a probe at β + jα and one at β − jα.
    dtype : str
        ``"float32"`` or ``"float64"``.
    exponent : int
        The tensor is integers times 2^exponent (σ ≈ 2^(22 + exponent)).
    rng : numpy.random.Generator
        The case's generator.
    """
    if profile not in ("exact", "paper") or not 1 <= bits <= 8:
        raise ValueError("pipeline ties are built for the exact and paper profiles, k <= 8")
    highest = code_range(bits)[1] - 1
    if not all(1 <= j <= highest for j in offsets):
        raise ValueError(f"thresholds must be 1..{highest} at k = {bits}, got {offsets}")
    probe = np.zeros(4)
    probe[:2] = (-1.0, 1.0)
    lam = float(steps.statistics("ul2q", profile, probe, bits, None).details["lam"][0])
    pairs_available = (COUNT - 2 * len(offsets)) // 2
    scale = 2.0 ** exponent
    for _ in range(400):
        step_units = 16 * round(lam * _SIGMA_UNITS * rng.uniform(1.05, 1.35) / 16)
        centre = 16 * int(rng.integers(-2 ** 18, 2 ** 18))
        for sigma in _sigmas_for(float(step_units), lam):
            for total in _sums_of_squares_for(sigma, COUNT):
                probes_sum = sum(2 * (j * step_units) ** 2 for j in offsets)
                if total <= probes_sum:
                    continue
                spread = _fill((total - probes_sum) // 2, pairs_available, sigma, rng)
                if spread is None:
                    continue
                found = _assemble(centre, spread, step_units, offsets, scale, dtype, rng)
                if found is None:
                    continue
                weights, probes = found
                stats = steps.statistics("ul2q", profile, weights, bits, None)
                alpha, beta = float(stats.alpha[0]), float(stats.beta[0])
                if (alpha == step_units * scale and beta == centre * scale
                        and _probe_offsets_ok(weights, alpha, beta, probes)):
                    return TieTensor(weights, alpha, beta, probes)
    raise AssertionError(f"no tie tensor found for {profile} k={bits} {offsets}")


def _caffe_sigmas_for(step: float, lam: np.float32) -> list[np.float32]:
    """The float32 σ near step/λ with f32(λ ⊗ σ) = step (float32 multiplication)."""
    centre = np.float32(step / float(lam))
    candidates = [centre]
    for direction in (-np.inf, np.inf):
        value = centre
        for _ in range(4):
            value = np.nextafter(value, np.float32(direction))
            candidates.append(value)
    return [sigma for sigma in candidates if np.float32(lam * sigma) == np.float32(step)]


def _caffe_sums_of_squares_for(sigma: np.float32, count: int) -> list[int]:
    """The even integers T with f32(√(T/n)) = σ (T/n exact, the root rounded twice)."""
    ulp = float(np.spacing(sigma))
    low = math.floor(count * (float(sigma) - ulp) ** 2)
    high = math.ceil(count * (float(sigma) + ulp) ** 2)
    return [total for total in range(low - low % 2, high + 1, 2)
            if np.float32(math.sqrt(total / count)) == sigma]


def _caffe_ties_exact(step: int, offsets: tuple[int, ...]) -> bool:
    """Caffe's t = f32(f32(jα) ⊗ r), r = f32(1/α), is exactly j for every probe ±j."""
    reciprocal = np.float32(1.0 / step)
    return all(np.float32(np.float32(sign * j * step) * reciprocal) == sign * j
               for j in offsets for sign in (1, -1))


def caffe_tie_tensor(bits: int, offsets: tuple[int, ...], dtype: str,
                     rng: np.random.Generator) -> TieTensor:
    """The caffe profile's tie tensor: 64 integers whose float32 statistics are exact.

    Caffe sums in float32 from left to right, so every value is an integer and Σw² stays
    below 2^24: then μ = c, E[w²] and σ² are exact and only √ rounds. α is an integer ≥ 2,
    so the added 10⁻⁷ is below half an ulp of α and α = f32(λ ⊗ σ) exactly, chosen so that
    Caffe's t = f32(w − μ) ⊗ f32(1/α) is exactly j on every probe. Caffe's rule then gives
    code j + 1 for j > 0 but j for j < 0 (y = j + ½ rounds away from zero): the negative-tie
    defect of docs/crosscheck.md §2, through the whole pipeline.
    """
    count = 64
    highest = code_range(bits)[1] - 1
    if not 1 <= bits <= 8 or not all(1 <= j <= highest for j in offsets):
        raise ValueError(f"thresholds must be 1..{highest} at k = {bits} <= 8, got {offsets}")
    probe = np.array([-1.0, 1.0, 0.0, 0.0], dtype=np.float32)
    lam = np.float32(steps.statistics("ul2q", "caffe", probe, bits, None).details["lam"][0])
    pairs_available = (count - 2 * len(offsets)) // 2
    for _ in range(2000):
        step = round(float(lam) * rng.uniform(250.0, 450.0))
        centre = int(rng.integers(-100, 100))
        if step < 2 or not _caffe_ties_exact(step, offsets):
            continue
        for sigma in _caffe_sigmas_for(float(step), lam):
            for total in _caffe_sums_of_squares_for(sigma, count):
                probes_sum = sum(2 * (j * step) ** 2 for j in offsets)
                if total <= probes_sum or count * centre ** 2 + total >= 2 ** 24:
                    continue
                spread = _fill((total - probes_sum) // 2, pairs_available, float(sigma), rng,
                               multiple=1)
                if spread is None:
                    continue
                found = _assemble(centre, spread, step, offsets, 1.0, dtype, rng, count)
                if found is None:
                    continue
                weights, probes = found
                stats = steps.statistics("ul2q", "caffe", weights, bits, None)
                alpha, beta = float(stats.alpha[0]), float(stats.beta[0])
                if (alpha == step and beta == centre
                        and _probe_offsets_ok(weights, alpha, beta, probes)):
                    return TieTensor(weights, alpha, beta, probes)
    raise AssertionError(f"no caffe tie tensor found for k={bits} {offsets}")


def _assemble(centre: int, spread: list[int], step_units: int, offsets: tuple[int, ...],
              scale: float, dtype: str, rng: np.random.Generator, count: int = COUNT
              ) -> tuple[np.ndarray, dict[int, int]] | None:
    """The shuffled tensor c ± x (fillers) and c ± ja (probes), or None if a value is not a
    float32; with the index → j map of the probes."""
    units = [centre + sign * x for x in spread for sign in (1, -1)]
    thresholds = [0] * len(units)
    for j in offsets:
        units += [centre + j * step_units, centre - j * step_units]
        thresholds += [j, -j]
    values = np.array(units, dtype=np.float64)
    if values.size != count or not _is_float32(values):
        return None
    order = rng.permutation(count)
    weights = (values[order] * scale).astype(dtype)
    placed = np.array(thresholds)[order]
    probes = {int(index): int(placed[index]) for index in np.flatnonzero(placed)}
    return weights, probes


__all__ = ["COUNT", "TieTensor", "caffe_tie_tensor", "tie_tensor"]
