#!/usr/bin/env python3
"""An adapter that lets `ul2q-ref check` (and `ul2q-ref diagnose`) test your μL2Q implementation.

This file stands alone: it needs only Python 3.9+ and NumPy, not ul2q-ref, so it runs in the
environment your implementation lives in (a TensorFlow or JAX virtual environment, a C
library loaded through ctypes). Copy it, fill in the two functions between the "your
implementation" markers, and run the checker from the environment that has ul2q-ref:

    ul2q-ref check vectors/ --command "/path/to/your/python adapter.py" --batch

It reads one request per line on standard input (JSON; docs/crosscheck.md, "Protocol") and
writes one result line per request: the hexadecimal bit patterns of the wire format are
handled here. What to return:

* ``quantize(w, bits, axis)`` — w is a NumPy array (float32 or float64, the request's shape),
  axis None (one α, β for the tensor) or the channel axis. Return ŵ alone (an array: the
  checker then compares ŵ only), or ``(alpha, beta, codes, w_hat)`` (codes may be None: the
  checker infers them from ŵ with your α, β), or a dict with those keys. α and β are
  scalars or one value per channel; ŵ is rounded to the input's dtype.
* ``encode(w, alpha, beta, bits, axis)`` — ``(codes, w_hat)`` for a given code book (α, β
  scalars, or one per channel), used by the checker's encode-only cases (values exactly on
  thresholds). Leave it as ``None`` if your implementation has no such step: those cases
  are reported as "not answerable" instead of failing.

ŵ and codes must have the input's shape; ŵ may be any array-like NumPy can convert (a
TensorFlow eager tensor, a JAX array, a list), codes whole numbers of any dtype. Typical
bodies of quantize(), for an implementation ``my_quantize``:

* TensorFlow: ``return my_quantize(tf.constant(w), bits).numpy()`` (import tensorflow as
  tf at the top; a per-channel ``axis`` is the NumPy axis of ``w``);
* JAX: ``return np.asarray(my_quantize(jnp.asarray(w), bits))`` (jax_enable_x64 must be on
  for float64 requests, or they come back rounded to float32);
* a C library through ctypes: ``x = np.ascontiguousarray(w)``, ``out = np.empty_like(x)``,
  ``lib.quantize(x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
  x.size, bits)``, ``return out`` (check the element type: float32 requests are ``float``,
  float64 ones ``double``).

Return (alpha, beta, codes, w_hat) instead of w_hat when the implementation exposes them:
the checker then also compares the statistics step and the codes.

The hex helpers below repeat ``ul2q_ref.crosscheck.encoding`` on purpose (this file must
not import ul2q-ref); ``ul2q_ref.crosscheck.adapt`` reuses :func:`answer` from this file.

Requests for schemes other than those in ``SCHEMES`` are answered with an error, so select
cases with ``--scheme ul2q --profile exact`` (or the profile you implement).
"""

import json
import sys

import numpy as np

SCHEMES = ("ul2q",)

# --- your implementation: begin ------------------------------------------------------------


def quantize(w, bits, axis):
    """Your whole pipeline: ŵ, or (alpha, beta, codes, w_hat), or a dict with those keys."""
    raise NotImplementedError("fill in quantize() in the adapter with your implementation")


encode = None  # or: def encode(w, alpha, beta, bits, axis): return codes, w_hat

# --- your implementation: end --------------------------------------------------------------

_FLOATS = {"float32": ("<f4", "<u4", 8), "float64": ("<f8", "<u8", 16)}


def from_hex(patterns, dtype):
    """The array of `dtype` whose IEEE 754 bit patterns are the hex strings `patterns`."""
    floats, uints, digits = _FLOATS[dtype]
    for text in patterns:
        if not isinstance(text, str) or len(text) != digits:
            raise ValueError(f"expected {digits}-digit hex bit patterns of {dtype}, got {text!r}")
    bits = np.array([int(text, 16) for text in patterns], dtype=uints)
    return bits.view(floats).astype(dtype)


def to_hex(values, dtype):
    """The hex bit patterns of `values` rounded to `dtype`, in C order."""
    floats, uints, digits = _FLOATS[dtype]
    array = np.ascontiguousarray(np.asarray(values).reshape(-1), dtype=floats)
    return [format(int(bits), f"0{digits}x") for bits in array.view(uints)]


def _channels(value, count, dtype):
    vector = np.asarray(value, dtype=np.float64).reshape(-1)
    if vector.size == 1 and count > 1:
        vector = np.full(count, vector[0])
    return {"hex": to_hex(vector, dtype)}


def _array(value, shape, what, kinds):
    """`value` as a NumPy array of the input's `shape` whose dtype kind is in `kinds`."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # a ragged list, an object without __array__
        raise ValueError(f"{what} is not an array of numbers ({type(value).__name__}: "
                         f"{str(error).splitlines()[0][:80]})") from None
    if array.dtype.kind not in kinds:
        raise ValueError(f"{what} has dtype {array.dtype}; expected real numbers")
    if array.shape != shape:
        raise ValueError(f"{what} has shape {array.shape}; expected the input's shape {shape}")
    return array


def _w_hat(value, w, what):
    return _array(value, w.shape, what, "fiu").astype(w.dtype)


def _codes(codes, w, what):
    values = _array(codes, w.shape, what, "fiub").reshape(-1)
    if values.dtype.kind == "f":
        whole = np.isfinite(values) & (values == np.round(values))
        if not whole.all():
            first = int(np.flatnonzero(~whole)[0])
            raise ValueError(f"{what} are not whole numbers (first: {float(values[first])!r} at "
                             f"index {first})")
    return [int(q) for q in values]


def _parts(returned):
    """(alpha, beta, codes, w_hat) from whatever quantize() returned (None where absent).

    A tuple holds the four parts; a dict the keys alpha, beta, codes, w_hat; anything else
    (an array, a list of numbers, a framework's tensor) is w_hat alone.
    """
    if isinstance(returned, dict):
        w_hat = returned.get("w_hat", returned.get("output"))
        if w_hat is None:
            raise ValueError(f"quantize() returned a dict without \"w_hat\" (its keys: "
                             f"{', '.join(map(str, returned))})")
        return returned.get("alpha"), returned.get("beta"), returned.get("codes"), w_hat
    if isinstance(returned, tuple):
        if len(returned) != 4:
            raise ValueError(f"quantize() returned a tuple of {len(returned)}; expected w_hat "
                             "or (alpha, beta, codes, w_hat)")
        return returned
    if returned is None:
        raise ValueError("quantize() returned None; expected w_hat or (alpha, beta, codes, "
                         "w_hat)")
    return None, None, None, returned


def answer(request, quantize, encode=None, schemes=SCHEMES):
    """The result object for one request object, from the functions `quantize` and `encode`."""
    if request["scheme"] not in schemes:
        raise ValueError(f"this adapter answers {', '.join(schemes)} only")
    dtype, parameter = request["dtype"], request["parameter_dtype"]
    shape = tuple(int(n) for n in request["shape"])
    w = from_hex(request["input"]["hex"], dtype).reshape(shape)
    bits, axis = int(request["bits"]), request["axis"]
    channels = 1 if axis is None else shape[axis]
    result = {"id": request["id"]}
    if request.get("quantize", True):
        alpha, beta, codes, w_hat = _parts(quantize(w, bits, axis))
        if w_hat is None:
            raise ValueError("quantize() returned no w_hat")
        part = {"output": {"hex": to_hex(_w_hat(w_hat, w, "quantize()'s w_hat"), dtype)}}
        if alpha is not None and beta is not None:
            part["alpha"] = _channels(alpha, channels, parameter)
            part["beta"] = _channels(beta, channels, parameter)
        if codes is not None:
            part["codes"] = _codes(codes, w, "quantize()'s codes")
        result["quantize"] = part
    if encode is None:
        if not request.get("quantize", True):
            result["not_answerable"] = "the implementation has no encode step"
        return result
    given = request["encode"]
    alpha = from_hex(given["alpha"]["hex"], parameter).astype(np.float64)
    beta = from_hex(given["beta"]["hex"], parameter).astype(np.float64)
    if axis is None:
        alpha, beta = alpha[0], beta[0]
    returned = encode(w, alpha, beta, bits, axis)
    if not isinstance(returned, (tuple, list)) or len(returned) != 2:
        raise ValueError("encode() must return (codes, w_hat)")
    codes, w_hat = returned
    result["encode"] = {"codes": _codes(codes, w, "encode()'s codes"),
                        "output": {"hex": to_hex(_w_hat(w_hat, w, "encode()'s w_hat"), dtype)}}
    return result


def main():
    """Answer every request line on standard input with this file's quantize() and encode()."""
    for line in sys.stdin:
        if not line.strip():
            continue
        request = None
        try:
            request = json.loads(line)
            result = answer(request, quantize, encode)
        except Exception as error:  # reported to the checker, per case
            case_id = request.get("id") if isinstance(request, dict) else None
            result = {"id": case_id, "error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
