r"""Comparing one case's result with the expected one, and the report of a whole run.

For every case it compares

* the **statistics step** — α and β (and Δ for ternary), per channel, in ulps of the case's
  ``parameter_dtype``; by default they must be bit-exact, ``stats_ulps`` allows a distance
  (an integer, ``"stated"`` for each case's own ``tolerance_ulps``, or ``"any"``: not
  compared at all);
* the codes and reconstruction ŵ of the **whole pipeline**: if the implementation's α and β
  are bit-exact they must equal the case's expected encode step, otherwise (within the
  statistics allowance) they must equal the reference's encode step *run with the
  implementation's own α and β*;
* the **encode step** given the case's α and β: codes and ŵ.

Equal means equal bit patterns, except that +0 and −0 are equal and all NaNs are equal.
With ``tolerance_ulps = N`` ŵ may differ by up to N ulps and a code may differ where the input
lies within N ulps of the boundary between the two codes (so the code of some input at most
N ulps away). Codes the case leaves undefined (``null``: the caffe profile's NaN channels)
are not compared.

Partial results are accepted and said so: a whole pipeline without α and β ("ŵ only": its
statistics and codes are not checked, ŵ must equal the reference's), or without codes (they
are inferred from ŵ with the implementation's own α and β, q = round((ŵ − β)/α + z)). An
encode-only case may be answered ``{"id", "not_answerable": reason}`` by an implementation
without an encode step: it neither passes nor fails. Failures are explained by
:mod:`.explain`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import explain, steps
from .encoding import describe, from_hex, shift_ulps, ulp_distance
from .results import NoResult
from .vectors import Case

NULL_CODE = explain.NULL_CODE


@dataclass
class Options:
    """How strict the comparison is.

    tolerance_ulps : int
        Allowed ulp distance of ŵ (and code leeway near boundaries); 0 = bit-exact.
    stats_ulps : int, "stated", "any" or None
        Allowed ulp distance of α, β, Δ; None means "the same as tolerance_ulps", "stated"
        each case's own ``tolerance_ulps`` (null there: bit-exact), "any" no comparison (the
        whole pipeline is then checked with the implementation's own α, β).
    """

    tolerance_ulps: int = 0
    stats_ulps: int | str | None = None

    def stats_allowance(self, case: Case, name: str) -> int | None:
        """The allowed ulp distance of parameter `name` in `case`; None: not compared."""
        if self.stats_ulps == "any":
            return None
        if self.stats_ulps == "stated":
            stated = (case.tolerance or {}).get(name)
            return 0 if stated is None else int(stated)
        if self.stats_ulps is None:
            return self.tolerance_ulps
        return int(self.stats_ulps)


PASS, FAIL, NOT_ANSWERABLE = "pass", "fail", "not answerable"


@dataclass
class Outcome:
    """The verdict on one case, the lines explaining it, and what its failure points to.

    ``notes`` qualify a verdict without changing it (parts not checked, NaN on both sides);
    ``aspects`` are the implementation aspects a failure points to (:data:`explain.ASPECTS`);
    ``compared`` is False for a failure without a comparison (no result, an error reported,
    a malformed result), which points to no aspect; ``tolerated`` is True when a tolerance
    absorbed a difference (``bit_exact`` is also False when ``--stats-ulps any`` skipped
    differing statistics, which is no tolerance).
    """

    case_id: str
    passed: bool
    bit_exact: bool
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    aspects: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    status: str = PASS
    compared: bool = True
    tolerated: bool = False

    def fail(self, line: str, aspects: list[str] | None = None) -> Outcome:
        """Mark the case failed with `line` (and the aspects it points to)."""
        self.passed = False
        self.bit_exact = False
        self.status = FAIL
        self.lines.append(line)
        for aspect in aspects or []:
            if aspect not in self.aspects:
                self.aspects.append(aspect)
        return self


@dataclass
class Report:
    """Every case's outcome, plus notes about the run."""

    outcomes: list[Outcome]
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        """How many cases passed."""
        return sum(outcome.status == PASS for outcome in self.outcomes)

    @property
    def failed(self) -> int:
        """How many cases failed."""
        return sum(outcome.status == FAIL for outcome in self.outcomes)

    @property
    def not_answerable(self) -> int:
        """How many encode-only cases the implementation declared it cannot answer."""
        return sum(outcome.status == NOT_ANSWERABLE for outcome in self.outcomes)

    def summary(self) -> str:
        """The last line of every report: ``N passed, N failed`` (``, N not answerable``)."""
        text = f"{self.passed} passed, {self.failed} failed"
        return text + (f", {self.not_answerable} not answerable" if self.not_answerable
                       else "")

    def grouping(self) -> list[str]:
        """Failures counted by case flag and by the aspect they point to."""
        failures = [o for o in self.outcomes if o.status == FAIL]
        if not failures:
            return []
        by_flag = Counter(flag for o in failures for flag in (o.flags or ["(no flag)"]))
        compared = [o for o in failures if o.compared]
        by_aspect = Counter(aspect for o in compared for aspect in (o.aspects or ["other"]))
        lines = [f"failures by flag: {_counts(by_flag)}"]
        if compared:
            lines.append(f"failures point to: {_counts(by_aspect)} (leads, not verdicts: "
                         "`ul2q-ref diagnose` separates the aspects)")
        if len(compared) < len(failures):
            lines.append(f"failures without a comparison: {len(failures) - len(compared)} "
                         "(no result, an error, or a malformed result: they point to no "
                         "aspect)")
        return lines

    def render(self, *, quiet: bool = False) -> str:
        """The report as text: one line per case (failures with details), then the summary."""
        lines: list[str] = list(self.notes)
        for outcome in self.outcomes:
            if outcome.status == PASS:
                if not quiet:
                    extra = ["within tolerance"] if outcome.tolerated else []
                    extra += outcome.notes
                    lines.append(f"PASS {outcome.case_id}"
                                 + (f" ({'; '.join(extra)})" if extra else ""))
            elif outcome.status == NOT_ANSWERABLE:
                if not quiet:
                    lines.append(f"N/A  {outcome.case_id} ({'; '.join(outcome.notes)})")
            else:
                lines.append(f"FAIL {outcome.case_id}")
                lines.extend(f"     {line}" for line in outcome.lines + outcome.notes)
        lines.extend(self.grouping())
        lines.append(self.summary())
        return "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counter.most_common())


# --------------------------------------------------------------------------- one case


class Malformed(ValueError):
    """A result that does not follow the results format."""


def check_case(case: Case, result: dict[str, Any] | None, options: Options) -> Outcome:
    """The verdict on one case."""
    outcome = Outcome(case.id, True, True, flags=list(case.flags))
    if result is None or isinstance(result, NoResult) or not isinstance(result, dict) \
            or result.get("error") is not None:
        outcome.compared = False
    if result is None:
        return outcome.fail("no result for this case")
    if isinstance(result, NoResult):
        return outcome.fail(f"no result: {result['error']}")
    if not isinstance(result, dict):
        return outcome.fail(f"malformed result: not a JSON object ({type(result).__name__})")
    if result.get("error") is not None:
        return outcome.fail(f"the implementation reported an error: {result['error']}")
    if result.get("not_answerable") is not None:
        reason = str(result["not_answerable"])[:200]
        if case.stats is None:
            outcome.passed, outcome.status = False, NOT_ANSWERABLE
            outcome.notes.append(f"not answerable: {reason}")
            return outcome
        outcome.compared = False
        return outcome.fail(f"the implementation says it cannot answer ({reason}); only "
                            "encode-only cases may be not answerable")
    try:
        if case.stats is not None:
            _check_quantize(case, result.get("quantize"), options, outcome)
        encoded = result.get("encode")
        if encoded is not None:
            params = (case.encode_alpha, case.encode_beta, case.encode_threshold)
            _check_arrays(case, "encode", encoded, case.codes, case.defined, case.output,
                          params, options, outcome, given=params)
        elif case.stats is None:
            outcome.fail("encode: no result (this case checks the encode step only)")
    except Malformed as error:
        outcome.compared = False
        outcome.fail(f"malformed result: {error}")
    except (ValueError, TypeError, OverflowError, KeyError, IndexError) as error:
        outcome.compared = False
        outcome.fail(f"malformed result: {type(error).__name__}: {str(error)[:200]}")
    if outcome.status == FAIL and outcome.compared and not outcome.aspects:
        outcome.aspects.extend(explain.fallback_aspects(case.flags))
    return outcome


_HEX = re.compile(r"[0-9a-fA-F]+", re.ASCII)
_CODE_LIMIT = 2**62


def _floats(record: Any, dtype: str, count: int, what: str) -> np.ndarray:
    patterns = record.get("hex") if isinstance(record, dict) else record
    if not isinstance(patterns, list):
        raise Malformed(f"{what}: expected {{\"hex\": [...]}}")
    if len(patterns) != count:
        raise Malformed(f"{what}: expected {count} value(s), got {len(patterns)}")
    for index, text in enumerate(patterns):
        if not isinstance(text, str) or not _HEX.fullmatch(text):
            raise Malformed(f"{what}: element {index}: {str(text)[:40]!r} is not an ASCII "
                            "hexadecimal bit pattern")
    try:
        return from_hex(patterns, dtype)
    except ValueError as error:
        raise Malformed(f"{what}: {error}") from None


def _codes(record: Any, count: int, what: str) -> np.ndarray:
    if not isinstance(record, list) or len(record) != count:
        size = len(record) if isinstance(record, list) else type(record).__name__
        raise Malformed(f"{what}: expected a list of {count} integers, got {size}")
    values = []
    for code in record:
        if code is None:
            values.append(NULL_CODE)
        elif isinstance(code, int) and not isinstance(code, bool):
            if not -_CODE_LIMIT <= code <= _CODE_LIMIT:
                raise Malformed(f"{what}: {str(code)[:40]} is far outside any code range")
            values.append(code)
        else:
            raise Malformed(f"{what}: {code!r} is not an integer")
    return np.array(values, dtype=np.int64)


def _sigma(case: Case) -> np.ndarray | None:
    if case.stats is None or "std" not in case.stats.details:
        return None
    return np.asarray(case.stats.details["std"], dtype=np.float64).reshape(-1)


@dataclass
class _Statistics:
    """The statistics step compared: distances per parameter, and which are beyond allowance."""

    distances: list[str]
    exact: bool
    off: list[str]
    lines: list[str]

    @property
    def within(self) -> bool:
        return not self.off


def _check_quantize(case: Case, got: Any, options: Options, outcome: Outcome) -> None:
    if not isinstance(got, dict):
        outcome.fail("quantize: no result (the statistics step and whole pipeline)")
        return
    assert case.stats is not None
    case_params = (case.encode_alpha, case.encode_beta, case.encode_threshold)
    got_params = _read_parameters(case, got)
    if got_params is None:
        outcome.notes.append("ŵ only: no α, β given, so the statistics step and the codes "
                             "are not checked; ŵ is compared with the reference's")
        _check_arrays(case, "quantize", got, case.codes, case.defined, case.output,
                      case_params, options, outcome, given=None, whole_pipeline=True)
        return
    compared = _compare_parameters(case, got_params, options)
    outcome.bit_exact = outcome.bit_exact and compared.exact
    if options.stats_ulps == "any" and not compared.exact:
        outcome.notes.append(f"statistics not compared (--stats-ulps any): "
                             f"{', '.join(compared.distances)} from the reference's; codes "
                             "and ŵ checked with its own α, β")
    elif not compared.exact:
        outcome.tolerated = True
    _note_both_nan(case, got_params["alpha"], outcome)
    parameter_lines = _parameter_lines(case, got_params, skip=set(compared.off))
    own = (got_params["alpha"], got_params["beta"], got_params.get("threshold"))
    if not compared.within:
        aspects = explain.statistics_aspects(
            case.stats.alpha, got_params["alpha"], compared.off != ["alpha"], _sigma(case),
            _values_per_channel(case), case.bits, case.flags)
        outcome.fail(f"quantize: statistics off by {', '.join(compared.distances)} "
                     f"(parameter dtype {case.parameter_dtype})", aspects)
        outcome.lines.extend(compared.lines + parameter_lines)
    own_finite = all(np.isfinite(value).all() for value in own if value is not None)
    if compared.exact or not own_finite:
        reference = (case.codes, case.defined, case.output, case_params)
        if not compared.within and not own_finite:
            outcome.lines.append("quantize: codes and ŵ compared with the reference's (the "
                                 "implementation's α or β is not finite)")
    else:  # the definition's encode step with the implementation's own α, β
        with np.errstate(all="ignore"):
            codes, defined, output = steps.encode(case.scheme, case.profile, case.weights,
                                                  case.bits, case.axis, *own)
        reference = (codes, defined, output, own)
    before = len(outcome.lines)
    _check_arrays(case, "quantize", got, *reference, options, outcome, given=own,
                  whole_pipeline=True)
    if compared.within and len(outcome.lines) > before:
        outcome.lines[before:before] = [f"quantize: statistics {', '.join(compared.distances)}",
                                        *parameter_lines]
    elif not compared.within and reference[3] is own and len(outcome.lines) == before:
        outcome.lines.append("quantize: with its own α, β the codes and ŵ are the "
                             "definition's encode step: only the statistics step differs")


def _read_parameters(case: Case, got: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """α, β (Δ) of a whole-pipeline result as float64 vectors; None when none is given."""
    assert case.stats is not None
    names = ["alpha", "beta"] + (["threshold"] if case.stats.threshold is not None else [])
    if not any(name in got for name in names):
        return None
    missing = [name for name in names if name not in got]
    if missing:
        raise Malformed(f"quantize.{missing[0]} is missing (give all of "
                        f"{', '.join(names)} or none)")
    return {name: _floats(got[name], case.parameter_dtype, case.stats.alpha.size,
                          f"quantize.{name}").astype(np.float64) for name in names}


def _compare_parameters(case: Case, got: dict[str, np.ndarray],
                        options: Options) -> _Statistics:
    """Each parameter's ulp distance from the case's, against the allowance of `options`."""
    assert case.stats is not None
    dtype = case.parameter_dtype
    expected = {"alpha": case.stats.alpha, "beta": case.stats.beta,
                "threshold": case.stats.threshold}
    compared = _Statistics([], True, [], [])
    for name, value in got.items():
        want = expected[name]
        assert want is not None
        distance = ulp_distance(want, value, dtype)
        allowed = options.stats_allowance(case, name)
        compared.distances.append(f"{name} {explain.ulps(max(distance))}")
        compared.exact = compared.exact and max(distance) == 0
        beyond = [] if allowed is None else \
            [channel for channel, ulps in enumerate(distance) if ulps > allowed]
        if beyond:
            channel = beyond[0]
            label = name if want.size == 1 else f"{name}[{channel}]"
            compared.off.append(name)
            compared.lines.append(
                f"quantize: {label} expected {describe(want[channel], dtype)} got "
                f"{describe(value[channel], dtype)}: {explain.ulps(distance[channel])}, "
                f"{explain.difference(want[channel], value[channel])} (allowed {allowed})")
    return compared


def _values_per_channel(case: Case) -> int:
    if case.axis is None:
        return int(case.weights.size)
    return int(case.weights.size // case.weights.shape[case.axis])


def _parameter_lines(case: Case, got: dict[str, np.ndarray], skip: set[str]) -> list[str]:
    """α and β on both sides (first differing channel), and λ_eff = α/σ.

    Parameters named in `skip` were already reported with their allowance.
    """
    assert case.stats is not None
    dtype = case.parameter_dtype
    lines = []
    for name, symbol in (("alpha", "α"), ("beta", "β")):
        if name in skip:
            continue
        want, have = case.stats.alpha if name == "alpha" else case.stats.beta, got[name]
        same = (want == have) | (np.isnan(want) & np.isnan(have))
        channel = 0 if same.all() else int(np.flatnonzero(~same)[0])
        where = "" if want.size == 1 else f"[{channel}]"
        if same.all():
            lines.append(f"quantize: {symbol}{where} {describe(want[channel], dtype)} on both "
                         "sides")
        else:
            lines.append(f"quantize: {symbol}{where} expected {describe(want[channel], dtype)} "
                         f"got {describe(have[channel], dtype)} "
                         f"({explain.difference(want[channel], have[channel])})")
    lam = explain.lambda_line(case.stats.alpha, got["alpha"], _sigma(case))
    if lam is not None:
        lines.append(f"quantize: {lam}")
    return lines


def _note_both_nan(case: Case, got_alpha: np.ndarray, outcome: Outcome) -> None:
    """Say so when α is NaN on both sides: equal bits, but maybe not the same cause."""
    assert case.stats is not None
    both = np.isnan(case.stats.alpha) & np.isnan(got_alpha)
    if not both.any():
        return
    sigma = _sigma(case)
    if case.profile == "caffe" and sigma is not None and np.isnan(sigma[both]).all():
        why = ("the reference's because the caffe profile's variance E[w²] − μ² rounds below "
               "zero here (σ = NaN)")
    else:
        why = "the reference's as the case defines it"
    outcome.notes.append(
        f"α is NaN on both sides ({int(both.sum())} channel(s)): {why}; the implementation's "
        "cause is not visible in its result (a negative variance, or 0/0 from n − 1 = 0 at "
        "n = 1, look alike), so equal NaNs pass")


def _check_arrays(
    case: Case,
    label: str,
    got: Any,
    codes: np.ndarray,
    defined: np.ndarray,
    output: np.ndarray,
    params: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    options: Options,
    outcome: Outcome,
    *,
    given: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None,
    whole_pipeline: bool = False,
) -> None:
    """Compare a result's codes and ŵ with `codes`, `output` (computed with `params`).

    `given` are the α, β (Δ) the implementation used, when known: they infer codes from ŵ
    when the result has none.
    """
    got_codes, got_output, inferable = _read_arrays(case, label, got, given, whole_pipeline,
                                                    outcome)
    expected_codes = codes.reshape(-1)
    known = defined.reshape(-1) & inferable
    tolerance = options.tolerance_ulps
    code_bad = None if got_codes is None else known & (got_codes != expected_codes)
    exact_codes = code_bad is None or not code_bad.any()
    if code_bad is not None and tolerance > 0 and code_bad.any():
        low = _codes_at(case, shift_ulps(case.weights, -tolerance), params)
        high = _codes_at(case, shift_ulps(case.weights, tolerance), params)
        allowed = (got_codes >= np.minimum(low, high)) & (got_codes <= np.maximum(low, high))
        code_bad &= ~allowed
    distance = np.array(ulp_distance(output, got_output, case.dtype), dtype=np.float64)
    output_bad = distance > tolerance
    lowest, highest = explain.code_range(case.scheme, case.bits)
    outside = np.zeros(case.weights.size, dtype=bool) if got_codes is None else \
        (got_codes != NULL_CODE) & ((got_codes < lowest) | (got_codes > highest))
    outcome.bit_exact = outcome.bit_exact and exact_codes and not (distance > 0).any()
    outcome.tolerated = outcome.tolerated or not exact_codes or bool((distance > 0).any())
    bad = output_bad | outside
    if code_bad is not None:
        bad |= code_bad
    if bad.any():
        _explain_arrays(case, label, params, outcome, whole_pipeline,
                        _Arrays(expected_codes, known, output.reshape(-1), got_codes,
                                got_output, distance, code_bad, output_bad, outside, bad),
                        tolerance)


@dataclass
class _Arrays:
    """Codes and ŵ on both sides, flattened, with the masks of what fails."""

    expected_codes: np.ndarray
    known: np.ndarray
    expected_output: np.ndarray
    got_codes: np.ndarray | None
    got_output: np.ndarray
    distance: np.ndarray
    code_bad: np.ndarray | None
    output_bad: np.ndarray
    outside: np.ndarray
    bad: np.ndarray


def _read_arrays(case: Case, label: str, got: Any,
                 given: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None,
                 whole_pipeline: bool, outcome: Outcome
                 ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """A result's codes (given, inferred or None), ŵ, and where the codes are known."""
    if not isinstance(got, dict) or "output" not in got:
        raise Malformed(f"{label}: expected an object with \"output\" (and \"codes\")")
    size = case.weights.size
    got_codes = _codes(got["codes"], size, f"{label}.codes") if "codes" in got else None
    got_output = _floats(got["output"], case.dtype, size, f"{label}.output")
    inferable = np.ones(size, dtype=bool)
    if got_codes is None and given is not None:
        got_codes, inferable, off_book = _infer_codes(case, got_output, given)
        if off_book > MAX_OFF_BOOK:
            got_codes, inferable = None, np.ones(size, dtype=bool)
            outcome.notes.append(
                f"{label}: codes not given, and not inferred: ŵ is {off_book:.3f} α off "
                f"the code book α(q − {explain.zero_point(case.scheme):g}) + β of its own "
                "α, β, so ŵ alone is compared")
        else:
            outcome.notes.append(f"{label}: codes not given; inferred from ŵ with the "
                                 "implementation's own α, β" + ("" if inferable.all() else
                                 " (not where α = 0: every code decodes to β there)"))
    elif got_codes is None and not whole_pipeline:
        outcome.notes.append(f"{label}: codes not given and not checked")
    return got_codes, got_output, inferable


def _explain_arrays(case: Case, label: str,
                    params: tuple[np.ndarray, np.ndarray, np.ndarray | None],
                    outcome: Outcome, whole_pipeline: bool, arrays: _Arrays,
                    tolerance: int) -> None:
    """The failure lines of a codes-and-ŵ comparison (counts, range, elements, pattern)."""
    size = case.weights.size
    worst_at = int(np.argmax(arrays.distance))
    codes_text = ("codes not compared" if arrays.code_bad is None
                  else f"codes differ at {int(arrays.code_bad.sum())} of {size}")
    difference = explain.difference(float(arrays.expected_output[worst_at]),
                                    float(arrays.got_output[worst_at]))
    outcome.fail(f"{label}: {codes_text}, ŵ at {int(arrays.output_bad.sum())} of {size} "
                 f"(largest ŵ difference {explain.ulps(float(arrays.distance[worst_at]))}, "
                 f"{difference}; allowed {tolerance} ulps)")
    if arrays.outside.any():
        assert arrays.got_codes is not None
        first = int(np.flatnonzero(arrays.outside)[0])
        lowest, highest = explain.code_range(case.scheme, case.bits)
        outcome.fail(f"{label}: {int(arrays.outside.sum())} code(s) outside the {case.scheme} "
                     f"range {lowest}..{highest} at k = {case.bits} (first: "
                     f"{int(arrays.got_codes[first])} at index "
                     f"{explain.index_text(first, case.weights.shape)})", ["code_range"])
    if not whole_pipeline:
        channel = _channel_of(case, int(np.flatnonzero(arrays.bad)[0]))
        outcome.lines.append(f"{label}: α {_at(params[0], channel, case.parameter_dtype)}, β "
                             f"{_at(params[1], channel, case.parameter_dtype)} (given to both "
                             "sides)")
    alpha = _per_element(params[0], case)
    outcome.lines.extend(explain.element_lines(
        label, list(np.flatnonzero(arrays.bad)), case.weights.shape, case.weights.reshape(-1),
        case.dtype, arrays.expected_codes, arrays.known, arrays.got_codes,
        arrays.expected_output, arrays.got_output, arrays.distance, alpha))
    lower_edge = _codes_at(case, shift_ulps(case.weights, -1), params) != arrays.expected_codes
    upper_edge = _codes_at(case, shift_ulps(case.weights, 1), params) != arrays.expected_codes
    threshold = np.where(lower_edge, arrays.expected_codes - 1, arrays.expected_codes)
    found = explain.pattern(arrays.bad, arrays.code_bad, arrays.got_codes,
                            arrays.expected_codes, arrays.expected_output, arrays.got_output,
                            alpha, lower_edge | upper_edge, threshold, case.scheme,
                            arrays.distance, arrays.outside)
    outcome.fail(f"{label}: pattern: {found.line}", found.aspects)


def _channel_of(case: Case, flat: int) -> int:
    """The channel of the element at C-order index `flat` (0 without a channel axis)."""
    if case.axis is None:
        return 0
    return int(np.unravel_index(flat, case.weights.shape)[case.axis])


def _at(values: np.ndarray, channel: int, dtype: str) -> str:
    """Parameter `values` at `channel`, with the channel named when there are several."""
    vector = np.asarray(values).reshape(-1)
    text = describe(vector[channel], dtype)
    return text if vector.size == 1 else f"{text} (channel {channel} of {vector.size})"


def _per_element(values: np.ndarray, case: Case) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float64).reshape(-1)
    if case.axis is None:
        return np.full(case.weights.size, vector[0])
    shape = [1] * case.weights.ndim
    shape[case.axis] = -1
    return np.broadcast_to(vector.reshape(shape), case.weights.shape).reshape(-1)


MAX_OFF_BOOK = 0.25
"""How far (in units of α) ŵ may be from its own code book for codes to be inferred from it."""


def _infer_codes(case: Case, output: np.ndarray,
                 params: tuple[np.ndarray, np.ndarray, np.ndarray | None]
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """q = round((ŵ − β)/α + z) with the implementation's α, β (codes absent from a result).

    Returns the codes, where they could be inferred (not where α is 0 or not finite), and
    the largest distance of (ŵ − β)/α + z from a whole number beyond the rounding of ŵ to
    its dtype (½ ulp(ŵ)/α): near ½ when ŵ is not on the code book α(q − z) + β (another
    zero point), where rounding would invent codes.
    """
    alpha = _per_element(params[0], case)
    beta = _per_element(params[1], case)
    with np.errstate(all="ignore"):
        raw = (output.astype(np.float64) - beta) / alpha + explain.zero_point(case.scheme)
        values = np.rint(raw)
        rounding = 0.5 * np.spacing(np.abs(output)).astype(np.float64) / np.abs(alpha)
    inferable = np.isfinite(alpha) & (alpha != 0)
    usable = inferable & np.isfinite(values) & (np.abs(values) < 2**62)
    beyond = np.abs(raw - values) - rounding  # ŵ was rounded to its dtype by ≤ ½ ulp
    off_book = float(np.max(beyond[usable])) if usable.any() else 0.0
    return np.where(usable, values, NULL_CODE).astype(np.int64), inferable, off_book


def _codes_at(case: Case, weights: np.ndarray, params: tuple[Any, Any, Any]) -> np.ndarray:
    largest = np.finfo(weights.dtype).max
    weights = np.clip(weights, -largest, largest)  # shifting may have reached ±inf
    with np.errstate(all="ignore"):
        codes, _, _ = steps.encode(case.scheme, case.profile, weights, case.bits, case.axis,
                                   *params)
    return codes.reshape(-1)


__all__ = [
    "FAIL",
    "NOT_ANSWERABLE",
    "PASS",
    "Malformed",
    "Options",
    "Outcome",
    "Report",
    "check_case",
]
