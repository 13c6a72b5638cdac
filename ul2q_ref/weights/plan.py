r"""Bit allocation: the per-layer widths k_l that minimise the model's squared error in a budget.

For layers l with n_l weights and error E_l(k) = n_l σ_l² L_l(k) at k bits (L_l the layer's
actual normalised μL2Q loss, or the Gaussian prediction L(λ_k*)), the plan solves

.. math::
    \min_{k_l \in K_l} \sum_l E_l(k_l) \quad \text{subject to} \quad
    \sum_l n_l k_l \le C

exactly, where C = ⌊B Σ_l n_l⌋ bits for an average budget of B bits per weight (or 8 × the
size in bytes), and K_l is the allowed range (one width for a pinned layer).

This is a multiple-choice knapsack problem. :func:`solve` runs the exact dynamic programme
over the *Pareto frontier* of partial plans: after layers 1..l it keeps every (cost, error)
pair that no other partial plan beats in both, cheaper or equal and strictly smaller error.
Adding layer l + 1 to every frontier state and pruning dominated ones again gives the
frontier after l + 1 layers (a dominated partial plan can never be completed into a better
plan than its dominator, since the completions are the same), and states whose cost already
leaves no room for the cheapest widths of the remaining layers are dropped. The optimum is
the frontier's smallest error. Its size is bounded by the number of distinct reachable costs,
so the programme is exact without discretising the budget. Greedy marginal-gain allocation is
not exact in general (the losses need not be convex in k; ``tests/test_weights.py`` has a
two-layer example where it loses); the tests compare :func:`solve` with brute force.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import numpy as np

from .. import expected_loss, optimal_lambda
from .._json import JSONLimitError, read_json
from .tensors import some_names

PLAN_FORMAT = "ul2q-ref/bits-plan-v1"
"""The format of a plan file (written by ``ul2q-ref plan -o``, read by :func:`read_plan`)."""

MAX_CAPACITY = (1 << 63) - 1
"""The largest budget in bits a plan accepts: every sum of costs fits a signed 64-bit int."""


@dataclass(frozen=True)
class Solution:
    """An optimal choice: the option index of each layer, its total cost and error."""

    choices: tuple[int, ...]
    cost: int
    error: float


def solve(options: Sequence[Sequence[tuple[int, float]]], capacity: int) -> Solution:
    """Exactly minimise Σ_l error_l subject to Σ_l cost_l ≤ `capacity`.

    Parameters
    ----------
    options : sequence of sequences of (int, float)
        For each layer, its options as (cost ≥ 0, error) pairs; one is chosen per layer.
    capacity : int
        The largest total cost allowed.

    Returns
    -------
    Solution
        The index of the chosen option of every layer.

    Raises
    ------
    ValueError
        If even the cheapest options exceed `capacity`.
    """
    cheapest = [min(cost for cost, _ in layer) for layer in options]
    dearest = sum(max(cost for cost, _ in layer) for layer in options)
    if dearest > MAX_CAPACITY:
        raise ValueError(f"the widest widths cost {dearest} in all, beyond the 2^63 a plan "
                         "can count")
    capacity = min(capacity, dearest)  # a larger budget allows nothing more: no overflow
    if sum(cheapest) > capacity:
        raise ValueError(f"the cheapest widths need {sum(cheapest)}, more than the {capacity} "
                         "allowed")
    # room_after[l]: the least cost the layers after l still need
    room_after = np.concatenate((np.cumsum(cheapest[::-1])[::-1][1:], [0])).astype(np.int64)
    costs = np.zeros(1, dtype=np.int64)
    errors = np.zeros(1, dtype=np.float64)
    parents: list[np.ndarray] = []
    picks: list[np.ndarray] = []
    for position, layer in enumerate(options):
        option_cost = np.array([c for c, _ in layer], dtype=np.int64)
        option_error = np.array([e for _, e in layer], dtype=np.float64)
        new_cost = (costs[:, None] + option_cost[None, :]).ravel()
        new_error = (errors[:, None] + option_error[None, :]).ravel()
        parent = np.repeat(np.arange(costs.size), option_cost.size)
        pick = np.tile(np.arange(option_cost.size), costs.size)
        fits = new_cost <= capacity - room_after[position]
        new_cost, new_error, parent, pick = (a[fits] for a in (new_cost, new_error, parent, pick))
        order = np.lexsort((new_error, new_cost))
        new_cost, new_error, parent, pick = (a[order] for a in (new_cost, new_error, parent, pick))
        best_before = np.concatenate(([np.inf], np.minimum.accumulate(new_error)[:-1]))
        keep = new_error < best_before
        costs, errors = new_cost[keep], new_error[keep]
        parents.append(parent[keep].astype(np.int32))  # the frontier stays far below 2^31
        picks.append(pick[keep].astype(np.int16))
    state = int(np.argmin(errors))
    total_cost, total_error = int(costs[state]), float(errors[state])
    choices = []
    for position in range(len(options) - 1, -1, -1):
        choices.append(int(picks[position][state]))
        state = int(parents[position][state])
    return Solution(tuple(reversed(choices)), total_cost, total_error)


def layer_errors(
    row: Mapping[str, Any], *, gaussian: bool = False, per_channel: bool = False
) -> dict[int, float]:
    """E_l(k) = n_l σ_l² L_l(k) of one ``inspect`` row, for each k it reports.

    The actual loss by default (n_l times the measured mean squared error, per tensor or,
    with `per_channel`, per channel); the Gaussian prediction n_l σ_l² L(λ_k*) with
    `gaussian`.
    """
    n, variance = row["n"], row["std"] ** 2
    errors = {}
    for entry in row["loss"]:
        k = entry["bits"]
        if gaussian:
            errors[k] = n * variance * expected_loss(optimal_lambda(k), k)
        elif per_channel and entry.get("mse_per_channel") is not None:
            errors[k] = n * entry["mse_per_channel"]
        else:
            errors[k] = n * entry["mse"]
    return errors


def capacity_bits(total_weights: int, budget: str | None = None, size: int | None = None) -> int:
    """C in bits: ⌊B × Σ n_l⌋ for an average budget `budget` (a decimal string), or 8 × `size`.

    The budget is read as an exact fraction, so 2.5 bits for 10 weights is 25 bits exactly.
    A budget whose C reaches 2^63 bits (``--budget 1e308``) is refused, so the exact
    programme's integer costs cannot overflow.
    """
    if budget is not None:
        value = _budget_fraction(budget)
        capacity = int(value * total_weights)  # floor for a positive fraction
        what = f"--budget {budget} × {total_weights:,} weights"
    else:
        if size is None or isinstance(size, bool) or size <= 0:
            raise ValueError("give --budget BITS or --size BYTES (positive)")
        capacity = 8 * int(size)
        what = f"--size {size}"
    if capacity > MAX_CAPACITY:
        raise ValueError(f"{what} is {capacity:.3e} bits, beyond the 2^63 a plan can count; "
                         "give a budget of at most a few bits per weight")
    return capacity


def _budget_fraction(budget: str) -> Fraction:
    """`budget` as an exact positive fraction; its decimal exponent is bounded first, so
    ``1e999999999`` is refused at once instead of computing 10^999999999."""
    text = str(budget).strip()
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValueError(f"--budget must be a number of bits per weight, got {text[:40]!r}") \
            from None
    if not number.is_finite() or number <= 0:
        raise ValueError(f"--budget must be a positive number, got {text[:40]}")
    if not -40 <= number.adjusted() <= 40:
        raise ValueError(f"--budget {text[:40]} is out of range (a number of bits per weight, "
                         "such as 2.5)")
    return Fraction(number)


def plan_bits(
    rows: Sequence[Mapping[str, Any]],
    capacity: int,
    bits: Sequence[int],
    *,
    pins: Mapping[str, int] | None = None,
    gaussian: bool = False,
    per_channel: bool = False,
) -> dict[str, Any]:
    """The optimal widths of the layers in `rows` (``inspect`` rows) within `capacity` bits.

    Parameters
    ----------
    rows : sequence of dict
        :func:`~ul2q_ref.weights.inspect.inspect_tensors` rows, with the losses of every
        width in `bits` (and of every pinned width).
    capacity : int
        Σ_l n_l k_l may not exceed this many bits.
    bits : sequence of int
        The widths allowed for unpinned layers.
    pins : mapping of str to int
        Fixed widths, by layer or tensor name.
    gaussian, per_channel : bool
        Which error model (see :func:`layer_errors`).

    Returns
    -------
    dict
        ``layers`` ({layer: bits}), ``bits_total``, ``capacity``, ``error`` (Σ_l E_l(k_l)),
        ``normalised_error`` (divided by Σ_l n_l σ_l²) and ``uniform`` (the same for every
        uniform width in `bits`).
    """
    pins = dict(pins or {})
    known = {name for row in rows for name in (row["layer"], row["name"])}
    check_pins(pins, known, [row["layer"] for row in rows])
    options, widths = [], []
    for row in rows:
        errors = layer_errors(row, gaussian=gaussian, per_channel=per_channel)
        pinned = pins.get(row["layer"], pins.get(row["name"]))
        allowed = [pinned] if pinned is not None else list(bits)
        missing = [k for k in allowed if k not in errors]
        if missing:
            raise ValueError(f"layer {row['layer']}: no loss measured at {missing[0]} bits")
        options.append([(row["n"] * k, errors[k]) for k in allowed])
        widths.append(allowed)
    total = sum(row["n"] for row in rows)
    try:
        solution = solve(options, capacity)
    except ValueError:
        least = sum(min(c for c, _ in layer) for layer in options)
        raise ValueError(
            f"the budget of {capacity} bits ({capacity / total:.4g} per weight) is below the "
            f"{least} bits ({least / total:.4g} per weight) that the narrowest widths need"
        ) from None
    scale = sum(row["n"] * row["std"] ** 2 for row in rows)
    uniform = []
    for k in bits:
        error = sum(layer_errors(row, gaussian=gaussian, per_channel=per_channel)[k]
                    for row in rows)
        uniform.append({"bits": k, "bits_total": k * total, "error": error,
                        "normalised_error": error / scale if scale > 0 else 0.0})
    chosen = {row["layer"]: allowed[choice]
              for row, allowed, choice in zip(rows, widths, solution.choices, strict=True)}
    return {
        "layers": chosen,
        "tensors": {row["layer"]: row["name"] for row in rows},
        "weights": total,
        "capacity": capacity,
        "bits_total": solution.cost,
        "bits_per_weight": solution.cost / total,
        "error": solution.error,
        "normalised_error": solution.error / scale if scale > 0 else 0.0,
        "uniform": uniform,
    }


def check_pins(pins: Mapping[str, int], known: set[str], layers: Sequence[str]) -> None:
    """Raise ValueError (one capped line) if a pin names no layer or tensor in `known`."""
    unknown = sorted(set(pins) - known)
    if unknown:
        raise ValueError(f"--pin names unknown layers: {some_names(unknown)} ({len(unknown)} "
                         f"in all); the layers are {some_names(list(layers))}")


MAX_PLAN_BYTES = 64 << 20
"""The largest plan file read (64 MiB)."""


def read_plan_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON document of a plan file, with ``layers`` an object: the one plan reader.

    Bounded (:func:`ul2q_ref._json.read_json`: at most :data:`MAX_PLAN_BYTES`, nested at
    most 64 deep), so a hostile file is one ValueError line naming it. The values of
    ``layers`` are not checked here (:func:`read_plan` does, for integer widths).
    """
    source = os.fspath(path)
    try:
        document = read_json(source, max_bytes=MAX_PLAN_BYTES)
    except OSError as error:
        raise ValueError(f"{source}: cannot be read ({error.strerror or error})") from None
    except JSONLimitError as error:
        raise ValueError(str(error)) from None
    layers = document.get("layers") if isinstance(document, dict) else None
    if not isinstance(layers, dict) or not layers:
        raise ValueError(f'{source}: not a plan (expected {{"layers": {{name: bits, ...}}}})')
    return document


def read_plan(path: str | os.PathLike[str]) -> dict[str, int]:
    """The ``{"layers": {name: bits}}`` of a plan file, validated (bits 1 to 16)."""
    layers = read_plan_document(path)["layers"]
    for name, bits in layers.items():
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"{os.fspath(path)}: layer {name[:100]}: bits must be an integer "
                             f"1 to 16, got {str(bits)[:40]}")
    return dict(layers)


__all__ = ["MAX_CAPACITY", "PLAN_FORMAT", "Solution", "capacity_bits", "check_pins",
           "layer_errors", "plan_bits", "read_plan", "read_plan_document", "solve"]
