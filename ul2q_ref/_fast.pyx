# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Compiled kernels behind ``backend="fast"``: the NumPy reference's results, bit for bit, faster.

:mod:`ul2q_ref.kernels` registers the four kernels of this module beside their NumPy twins of
the same names and signatures in ``ul2q_ref/kernels/reference.py``; each has a section below:

* ``moments``        μ and σ per channel (twin: ``reference.moments``, ``stats.moments``)
* ``encode``         the codes q for a code book α, β (twin: ``reference.encode``, ``ul2q.encode``)
* ``decode``         ŵ = α(q − z) + β (twin: ``reference.decode``, ``codebook.decode``)
* ``fake_quantize``  decode(encode(w)) in one pass (twin: ``reference.fake_quantize``)

Each section opens with what its kernel must do (bit identity with the twin), why the loops
below do it (the proofs), and the tests that hold it. Before them comes what the kernels
share: the thread count, the one walk over an array of any layout, the one driver that splits
the elementwise kernels into tasks, and the argument checks.

The calling convention is the registry's: the public layer (:mod:`ul2q_ref.api`) validates,
picks the dtypes and passes finite, non-empty, native-order float32/float64 arrays of any
layout; ``axis`` in ``0..ndim-1``; α, β float64 vectors with one entry per channel. The checks
kept here are the O(1) ones that guard memory (the channel count of α and β, the axis, the
dtypes the loops were compiled for) and the bit width, because the PyTorch operators'
CPU kernels (``ul2q_ref/torch/_cpu.py``) reach these functions when ``torch.ops.ul2q.*`` is
called directly, without the public layer's checks. This module imports nothing from the
Python package.

No loop relies on reassociation: the module is compiled with ``-O3 -ffp-contract=off`` and no
fast-math flag, so every float64 operation is one IEEE operation, rounded once, as in NumPy.
gcc vectorises the elementwise loops because their bodies are branch-free, and compiles the
hot ones three times (baseline SSE2, AVX2 and AVX-512, picked per CPU at import); vectorising
changes how many elements one instruction handles, never the value computed for an element.
docs/performance.md has the measurements.

Threads. With OpenMP (detected when the extension is built) the work is split into tasks of
fixed size and the tasks are run by up to :func:`get_num_threads` threads, fewer for small
inputs (:func:`_threads_for`). A task's result depends only on the task, never on which thread
ran it or when, and partial sums are combined in a fixed order afterwards, so every result is
bit-identical for any thread count. The default is one thread (no OpenMP thread pool is ever
started, which keeps ``fork`` safe; a call on one thread runs its tasks in a plain loop, as
entering an OpenMP region costs ~0.4 µs even for one thread); set ``UL2Q_NUM_THREADS`` (a
count, or ``0``/``auto`` for all usable cores) before import, or call
:func:`set_num_threads`. How idle threads wait is
set by :mod:`ul2q_ref.kernels` while this module loads (``GOMP_SPINCOUNT``, unless the
environment already chooses; see ``SPIN_COUNT`` there and docs/performance.md).
"""

from cython.parallel cimport prange
from libc.math cimport frexp, ldexp, sqrt
from libc.stdint cimport int8_t, int16_t, int32_t, uint16_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

import os
import warnings

import numpy as np

cimport numpy as cnp

cnp.import_array()

cdef extern from *:
    """
    #ifdef _OPENMP
    #define UL2Q_HAVE_OPENMP 1
    #else
    #define UL2Q_HAVE_OPENMP 0
    #endif
    /* Multi-versioning: a function declared `hot_void` is compiled three times by gcc, for
       the x86-64 baseline (SSE2), for AVX2 and for AVX-512F, and the dynamic loader picks
       the version for the CPU at import (an ifunc). All versions perform the same IEEE
       operations on each element (no FMA: -ffp-contract=off), so they give the same bits;
       AVX2 just handles four doubles per instruction instead of two, AVX-512 eight, with
       cheaper conversions (on the AMD Zen 4 measured, the AVX-512 clone made the fused
       kernel ~1.3x faster than AVX2). Other compilers and platforms get plain functions.
       Define UL2Q_NO_MULTIVERSION to build the baseline only. */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) \
        && defined(__GLIBC__) && !defined(UL2Q_NO_MULTIVERSION)
    #define UL2Q_HOT_VOID __attribute__((target_clones("avx512f", "avx2", "default"))) void
    #define UL2Q_MULTIVERSION 1
    #else
    #define UL2Q_HOT_VOID void
    #define UL2Q_MULTIVERSION 0
    #endif
    """
    int UL2Q_HAVE_OPENMP
    int UL2Q_MULTIVERSION
    ctypedef void hot_void "UL2Q_HOT_VOID"  # void, compiled for several CPUs (see above)

HAVE_OPENMP = bool(UL2Q_HAVE_OPENMP)
"""True when the module was compiled with OpenMP, so that more than one thread can be used."""

MULTIVERSIONED = bool(UL2Q_MULTIVERSION)
"""True when the hot loops were also compiled for AVX2 and AVX-512 (chosen at import by CPU)."""


# =============================================================================================
# What every kernel shares
# =============================================================================================

cdef enum:
    MAXD = 64             # NumPy's maximum number of dimensions (NPY_MAXDIMS in NumPy 2)
    LEAF = 128            # NumPy's pairwise-summation block (PW_BLOCKSIZE)
    MOMENT_TASK = 4096    # largest pairwise subtree summed by one task (32 KiB: L1)
    ELEMENT_TASK = 16384  # elements per task of the elementwise kernels

ctypedef fused real_t:       # weights
    float
    double

ctypedef fused code_t:       # μL2Q codes: int8 for k ≤ 7, int16 for k ≤ 15, int32 for k = 16
    int8_t
    int16_t
    int32_t

ctypedef fused out_t:        # reconstructions; uint16_t holds IEEE binary16 (float16) bits
    float
    double
    uint16_t

ctypedef fused source_t:     # what an elementwise kernel reads: weights or codes
    float
    double
    int8_t
    int16_t
    int32_t

ctypedef fused target_t:     # what it writes: codes or reconstructions
    int8_t
    int16_t
    int32_t
    float
    double
    uint16_t


# ---------------------------------------------------------------------------------------------
# Thread count
# ---------------------------------------------------------------------------------------------

cdef int _num_threads = 1
cdef int _threads_used = 1  # by the most recent kernel call (see _last_thread_count)

cdef Py_ssize_t _min_per_thread = 1 << 17
"""A call gets one thread per this many elements at most, so two threads from 2^18 elements
on. Measured with benchmarks/bench_threads.py --crossover (docs/performance.md, "Threads"):
on an idle 2-core machine two threads ran 0.80x the speed of one at 2^16, 1.04x at 2^17 and
1.12x or more from 2^18 on (1.44–1.97x from 2^20). On a machine with more runnable processes
than cores a second thread loses up to 2^21 whatever the rule: keep the default of one
thread there."""


def _available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def set_num_threads(n):
    """Set how many threads the kernels may use (results never depend on it).

    Parameters
    ----------
    n : int
        A positive thread count, or 0 for all usable cores. Without OpenMP the kernels
        always run on one thread, whatever is set here. A call gets at most one thread per
        2^17 elements (docs/performance.md, "Threads").

    Returns
    -------
    int
        The previous setting.
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"the thread count must be a non-negative integer, got {n!r}")
    previous = _num_threads
    _num_threads = int(n) if n > 0 else _available_cores()
    return previous


def get_num_threads():
    """The number of threads the kernels may use (1 unless set, see :func:`set_num_threads`)."""
    return _num_threads


def _threads_from_environment():
    value = os.environ.get("UL2Q_NUM_THREADS", "").strip().lower()
    if value in ("", "1"):
        return
    try:
        set_num_threads(0 if value == "auto" else int(value))
    except ValueError:
        warnings.warn(
            f"ignoring UL2Q_NUM_THREADS={value!r}: expected a thread count, 0 or 'auto'",
            RuntimeWarning,
            stacklevel=2,
        )


_threads_from_environment()


def _last_thread_count():
    """How many threads the most recent kernel call used (for the tests)."""
    return _threads_used


def _set_min_per_thread(Py_ssize_t elements):
    """Set the elements a call needs per thread; returns the previous value. For the tests,
    which run the threaded paths on small arrays (results never depend on it)."""
    global _min_per_thread
    previous = _min_per_thread
    _min_per_thread = elements if elements > 0 else 1
    return previous


cdef int _threads_for(Py_ssize_t elements, Py_ssize_t tasks):
    """Threads for `elements` values in `tasks` tasks: the setting, at most one per task and
    one per `_min_per_thread` elements, and at least one."""
    global _threads_used
    cdef Py_ssize_t n = _num_threads
    if n > elements // _min_per_thread:
        n = elements // _min_per_thread
    if n > tasks:
        n = tasks
    if n < 1 or not UL2Q_HAVE_OPENMP:
        n = 1
    _threads_used = <int>n
    return <int>n


# ---------------------------------------------------------------------------------------------
# The walk over an array of any layout
# ---------------------------------------------------------------------------------------------
#
# A Plan describes an order in which to visit the elements of an array: its dimensions (after
# dropping those of size 1 and merging neighbours that are contiguous with each other) with
# the input's byte strides. Element number `flat` of the order sits at the byte offset given
# by the mixed-radix digits of `flat`. A walk (a Cursor) seeks once to its first element and
# then moves from "run" to "run" along the innermost dimension, where the stride is constant;
# every kernel's task is such a walk, its loops working on one run at a time:
#
#     _walk(&cursor, &plan, data, first, count)
#     while _next_run(&cursor):
#         ... cursor.run elements from cursor.at, stride plan.stride[plan.nd - 1] ...

cdef struct Plan:
    int nd
    int cdim                      # the dimension holding the channel index, or -1
    Py_ssize_t shape[MAXD]
    Py_ssize_t stride[MAXD]       # input strides in bytes


cdef struct Cursor:
    const Plan* plan
    const char* at                # the first element of the current run
    Py_ssize_t run                # the current run's length (0 before the first run)
    Py_ssize_t done               # elements of the walk before the current run
    Py_ssize_t count              # elements the walk visits
    Py_ssize_t idx[MAXD]          # the multi-index of `at`


cdef inline void _walk(Cursor* c, const Plan* p, const void* data, Py_ssize_t first,
                       Py_ssize_t count) noexcept nogil:
    """Start a walk over `count` elements from element `first` of the plan's order."""
    cdef Py_ssize_t offset = 0
    cdef int d
    for d in range(p.nd - 1, -1, -1):
        c.idx[d] = first % p.shape[d]
        first = first // p.shape[d]
        offset += c.idx[d] * p.stride[d]
    c.plan = p
    c.at = <const char*>data + offset
    c.run = 0
    c.done = 0
    c.count = count


cdef inline bint _next_run(Cursor* c) noexcept nogil:
    """Move past the current run (carrying into the outer dimensions) to the next one, at most
    as long as what is left of the walk; False when the walk is over."""
    cdef const Plan* p = c.plan
    cdef int d = p.nd - 1
    c.done += c.run
    c.idx[d] += c.run
    c.at += c.run * p.stride[d]
    while c.run and d > 0 and c.idx[d] == p.shape[d]:
        c.at -= c.idx[d] * p.stride[d]
        c.idx[d] = 0
        d -= 1
        c.idx[d] += 1
        c.at += p.stride[d]
    d = p.nd - 1
    c.run = p.shape[d] - c.idx[d]
    if c.run > c.count - c.done:
        c.run = c.count - c.done
    return c.run > 0


cdef inline real_t _at(const real_t* p, Py_ssize_t stride, Py_ssize_t i) noexcept nogil:
    """Element `i` of a run with a stride in bytes."""
    return (<const real_t*>(<const char*>p + i * stride))[0]


cdef void _fill_plan(Plan* p, list dims, int cdim):
    cdef int d
    p.nd = len(dims)
    p.cdim = cdim
    for d in range(p.nd):
        p.shape[d] = dims[d][0]
        p.stride[d] = dims[d][1]


cdef list _coalesce(list dims):
    """Merge neighbouring dimensions [size, stride, is_channel] that step through memory as
    one (outer stride = inner stride × inner size); never merge the channel dimension."""
    cdef list merged = []
    for dim in dims:
        if (merged and not merged[len(merged) - 1][2] and not dim[2]
                and merged[len(merged) - 1][1] == dim[1] * dim[0]):
            merged[len(merged) - 1][0] *= dim[0]
            merged[len(merged) - 1][1] = dim[1]
        else:
            merged.append(list(dim))
    return merged


cdef object _elementwise_plan(Plan* p, cnp.ndarray array, object axis, object out_dtype):
    """Plan for an elementwise kernel, and the output array it writes (see the next)."""
    if cnp.PyArray_IS_C_CONTIGUOUS(array) and (axis is None or type(axis) is int):
        return _contiguous_elementwise_plan(p, array, -1 if axis is None else axis, out_dtype)
    return _general_elementwise_plan(p, array, axis, out_dtype)


cdef object _general_elementwise_plan(Plan* p, cnp.ndarray array, object axis,
                                      object out_dtype):
    """Plan for an elementwise kernel, and the output array it writes.

    Elements are visited in the input's memory order (dimensions sorted by decreasing
    |stride|, as NumPy's ``order="K"``), and the output is allocated with that same layout,
    so the output is written contiguously: element number `flat` of the visit sits at
    offset `flat` of the output's memory. The channel dimension (per-channel α, β) is kept
    apart so that each run knows its channel.
    """
    shape = array.shape
    strides = array.strides
    cdef int ndim = array.ndim
    order = sorted(range(ndim), key=lambda d: (-abs(strides[d]), d))
    per_channel = axis is not None and shape[axis] > 1
    dims = []
    for d in order:
        if per_channel and d == axis:
            dims.append([shape[d], strides[d], True])
        elif shape[d] != 1:
            dims.append([shape[d], strides[d], False])
    dims = _coalesce(dims)
    if not dims:
        dims = [[1, array.itemsize, False]]
    cdim = -1
    for d in range(len(dims)):
        if dims[d][2]:
            cdim = d
    _fill_plan(p, dims, cdim)
    out = np.empty([shape[d] for d in order], dtype=out_dtype)
    return out.transpose(np.argsort(order)) if ndim > 1 else out


cdef int _rows_plan(Plan* p, cnp.ndarray array, object axis) except -1:
    """Plan visiting the elements channel by channel (see the next)."""
    if cnp.PyArray_IS_C_CONTIGUOUS(array) and (axis is None or type(axis) is int):
        return _contiguous_rows_plan(p, array, -1 if axis is None else axis)
    return _general_rows_plan(p, array, axis)


cdef int _general_rows_plan(Plan* p, cnp.ndarray array, object axis) except -1:
    """Plan visiting the elements channel by channel, each channel in the reference's order.

    :func:`ul2q_ref._channels.as_rows` orders a channel's values as the C order of the other
    axes, and the pairwise sums depend on that order, so the moments walk exactly it (strided
    if need be). Dimension 0 of the plan is the channel; element ``c·M + i`` is value ``i`` of
    channel ``c``.
    """
    shape = array.shape
    strides = array.strides
    dims = [] if axis is None else [[shape[axis], strides[axis], True]]
    dims += _coalesce([[shape[d], strides[d], False]
                       for d in range(array.ndim) if d != axis and shape[d] != 1])
    if len(dims) == (0 if axis is None else 1):
        dims.append([1, array.itemsize, False])
    _fill_plan(p, dims, -1 if axis is None else 0)
    return 0


# The shortcut for C-contiguous arrays (most calls: a fresh array or a tensor's own memory).
# The general plans above cost microseconds of Python (lists, a sort, the merging), which
# dominates a call on a thousand values; for a C-contiguous array their result is known in
# advance, and the two functions below write it directly. Why it is the same plan: in a
# C-contiguous array the dimensions of size > 1, in C order, have strictly decreasing
# strides, each equal to the next one's stride × size, and the last one's is the itemsize
# (NumPy leaves the strides of dimensions of size 1 arbitrary, and both plans drop those,
# except the channel dimension of a moments plan, kept with its own stride). So the sort by
# |stride| keeps C order, and `_coalesce` merges every group of neighbours not separated by
# the channel dimension: the dimensions before the channel axis into one of `outer` values
# with stride channels × inner × itemsize, those after it into one of `inner` values with
# stride itemsize (each left out when it holds one value). The output of an elementwise
# kernel then has the input's own C-contiguous layout. tests/test_fast.py compares these
# plans with the general ones field by field
# (test_the_contiguous_shortcut_makes_the_general_plan).

cdef inline void _add_dim(Plan* p, Py_ssize_t size, Py_ssize_t stride) noexcept nogil:
    p.shape[p.nd] = size
    p.stride[p.nd] = stride
    p.nd += 1


cdef inline void _outer_inner(cnp.ndarray array, int axis, Py_ssize_t* outer,
                              Py_ssize_t* inner) noexcept:
    """The numbers of values before and after one step along `axis` (C order)."""
    cdef cnp.npy_intp* shape = cnp.PyArray_DIMS(array)
    cdef int d
    outer[0] = 1
    inner[0] = 1
    for d in range(axis):
        outer[0] *= shape[d]
    for d in range(axis + 1, cnp.PyArray_NDIM(array)):
        inner[0] *= shape[d]


cdef object _contiguous_elementwise_plan(Plan* p, cnp.ndarray array, int axis,
                                         object out_dtype):
    """`_elementwise_plan` of a C-contiguous array (`axis` −1: none), and its output."""
    _contiguous_visit(p, array, axis)
    return _empty_like_contiguous(array, out_dtype)


cdef void _contiguous_visit(Plan* p, cnp.ndarray array, int axis) noexcept:
    """The plan of `_contiguous_elementwise_plan`, without allocating the output."""
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(array), outer, inner, channels
    p.nd = 0
    p.cdim = -1
    if axis < 0 or cnp.PyArray_DIM(array, axis) == 1:  # no channel dimension (α, β scalar)
        _add_dim(p, cnp.PyArray_SIZE(array), itemsize)
    else:
        channels = cnp.PyArray_DIM(array, axis)
        _outer_inner(array, axis, &outer, &inner)
        if outer > 1:
            _add_dim(p, outer, channels * inner * itemsize)
        p.cdim = p.nd
        _add_dim(p, channels, inner * itemsize)
        if inner > 1:
            _add_dim(p, inner, itemsize)


cdef object _empty_like_contiguous(cnp.ndarray array, object dtype):
    """An uninitialised C-contiguous array of `array`'s shape and `dtype` (a NumPy dtype)."""
    cdef int type_num = (<cnp.dtype>dtype).type_num
    if cnp.PyArray_DescrFromType(type_num) is dtype:  # the built-in dtype: NumPy's C call
        return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(array), cnp.PyArray_DIMS(array), type_num,
                                 0)
    return np.empty((<object>array).shape, dtype=dtype)  # e.g. a dtype with metadata


def _plans(array, axis):
    """The plans of `array` (for the tests): ``{"rows": (general, shortcut), "elementwise":
    (general, shortcut)}``, each plan as (dimensions, strides, channel dimension), the
    shortcut's None when `array` is not C-contiguous; and the elementwise outputs' strides."""
    cdef Plan p
    cdef int a = -1 if axis is None else axis
    cdef cnp.ndarray w = array
    contiguous = cnp.PyArray_IS_C_CONTIGUOUS(w)
    _general_rows_plan(&p, w, axis)
    rows = [_plan_tuple(&p), None]
    if contiguous:
        _contiguous_rows_plan(&p, w, a)
        rows[1] = _plan_tuple(&p)
    out = _general_elementwise_plan(&p, w, axis, w.dtype)
    elementwise = [_plan_tuple(&p), None]
    outputs = [out.strides, None]
    if contiguous:
        out = _contiguous_elementwise_plan(&p, w, a, w.dtype)
        elementwise[1] = _plan_tuple(&p)
        outputs[1] = out.strides
    return {"rows": tuple(rows), "elementwise": tuple(elementwise), "outputs": tuple(outputs)}


cdef tuple _plan_tuple(const Plan* p):
    return (tuple([p.shape[d] for d in range(p.nd)]),
            tuple([p.stride[d] for d in range(p.nd)]), p.cdim)


cdef int _contiguous_rows_plan(Plan* p, cnp.ndarray array, int axis) except -1:
    """`_rows_plan` of a C-contiguous array (`axis` −1: none)."""
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(array), outer, inner, channels
    p.nd = 0
    p.cdim = -1
    if axis >= 0:  # the channel first, with its own stride (arbitrary when it is 1)
        p.cdim = 0
        _add_dim(p, cnp.PyArray_DIM(array, axis), cnp.PyArray_STRIDE(array, axis))
    if axis < 0 or cnp.PyArray_DIM(array, axis) == 1:  # the rest: all in one dimension
        if cnp.PyArray_SIZE(array) > 1:
            _add_dim(p, cnp.PyArray_SIZE(array), itemsize)
    else:  # before and after the channel axis: not neighbours once the channel is taken out
        channels = cnp.PyArray_DIM(array, axis)
        _outer_inner(array, axis, &outer, &inner)
        if outer > 1:
            _add_dim(p, outer, channels * inner * itemsize)
        if inner > 1:
            _add_dim(p, inner, itemsize)
    if p.nd == (0 if axis < 0 else 1):  # a single value per row
        _add_dim(p, 1, itemsize)
    return 0


# ---------------------------------------------------------------------------------------------
# The elementwise driver: encode, decode and fake_quantize
# ---------------------------------------------------------------------------------------------
#
# The three elementwise kernels differ only in what they do to a run, and that follows from
# the types of what they read and write: weights to codes is encode, codes to
# reconstructions is decode, weights to reconstructions is fake_quantize (see `_run`). So one
# driver serves all three: `_drive_types` picks the specialisation for the arrays' dtypes
# (five source types, six target types), `_drive` splits [0, total) into tasks of
# ELEMENT_TASK elements, and `_elementwise_task` walks a task's runs.
#
# Each task writes its own slice of the output, so any assignment of tasks to threads gives
# the same array. The schedule is OpenMP's "guided": each thread takes a run of consecutive
# tasks, long at first (a share of what is left) and shorter towards the end. Every thread
# then streams through contiguous memory, which the hardware prefetchers follow; with tasks
# dealt out one at a time ("dynamic"), the two threads of the AMD machine measured
# interleaved 64 KiB pieces and 2^24-element moments ran slower on two threads than on one
# (docs/performance.md). The moment passes use the same schedule.

cdef struct Book:              # the code book, as the runs read it
    const double* alpha       # one per channel (a single entry without channels)
    const double* beta
    double low                # lo − 1 = −2^(k−1): the clip bounds of t (encode)
    double high               # hi − 1 = 2^(k−1) − 1
    double zero               # the zero point z (decode)


cdef object _elementwise(source, alpha, beta, int bits, double zero, axis, dtype,
                         cnp.ndarray out=None):
    """Run the elementwise kernel named by the dtypes of `source` and `dtype` (see above),
    into `out` when given (`dtype` then is out's dtype).

    When `source` and `out` are both C-contiguous, the plan's visit order is out's C order
    (see "The shortcut for C-contiguous arrays"), so the kernel writes `out` directly;
    otherwise the result is computed into a new array and copied."""
    cdef cnp.ndarray array = _aligned(source)
    cdef Plan plan
    cdef Book book
    if out is not None and not (cnp.PyArray_IS_C_CONTIGUOUS(array)
                                and cnp.PyArray_IS_C_CONTIGUOUS(out)
                                and cnp.PyArray_ISALIGNED(out)):
        np.copyto(out, _elementwise(array, alpha, beta, bits, zero, axis, dtype))
        return out
    cdef Py_ssize_t channels = _channels(array, axis)
    # (the vectors are kept alive by these names while the kernel reads them)
    cdef cnp.ndarray alphas = _channel_vector(alpha, channels, "alpha")
    cdef cnp.ndarray betas = _channel_vector(beta, channels, "beta")
    book.alpha = <const double*>cnp.PyArray_DATA(alphas)
    book.beta = <const double*>cnp.PyArray_DATA(betas)
    book.low = -<double>(1 << (bits - 1)) if bits > 0 else 0.0
    book.high = <double>(1 << (bits - 1)) - 1.0 if bits > 0 else 0.0
    book.zero = zero
    if out is None:
        out = _elementwise_plan(&plan, array, axis, dtype)
    else:
        _contiguous_visit(&plan, array, -1 if axis is None else axis)
    _drive_types(&plan, array, out, &book)
    return out  # 0-d input gives a 0-d array, like the input


cdef int _drive_types(const Plan* p, cnp.ndarray source, cnp.ndarray target,
                      const Book* book) except -1:
    """`_drive` specialised for the dtypes of `source` and `target`."""
    cdef int of = cnp.PyArray_TYPE(source), to = cnp.PyArray_TYPE(target)
    cdef const void* src = cnp.PyArray_DATA(source)
    cdef void* dst = cnp.PyArray_DATA(target)
    cdef Py_ssize_t total = cnp.PyArray_SIZE(source)
    cdef int threads = _threads_for(total, (total + ELEMENT_TASK - 1) // ELEMENT_TASK)
    assert _is_source_type(of) and _is_target_type(to) and (_is_float_type(of)
                                                            or _is_float_type(to))
    with nogil:
        if of == cnp.NPY_FLOAT32:
            _drive_to(p, <const float*>src, dst, to, total, book, threads)
        elif of == cnp.NPY_FLOAT64:
            _drive_to(p, <const double*>src, dst, to, total, book, threads)
        elif of == cnp.NPY_INT8:
            _drive_to(p, <const int8_t*>src, dst, to, total, book, threads)
        elif of == cnp.NPY_INT16:
            _drive_to(p, <const int16_t*>src, dst, to, total, book, threads)
        else:
            _drive_to(p, <const int32_t*>src, dst, to, total, book, threads)
    return 0


cdef void _drive_to(const Plan* p, const source_t* src, void* dst, int to, Py_ssize_t total,
                    const Book* book, int threads) noexcept nogil:
    if to == cnp.NPY_INT8:
        _drive(p, src, <int8_t*>dst, total, book, threads)
    elif to == cnp.NPY_INT16:
        _drive(p, src, <int16_t*>dst, total, book, threads)
    elif to == cnp.NPY_INT32:
        _drive(p, src, <int32_t*>dst, total, book, threads)
    elif to == cnp.NPY_FLOAT32:
        _drive(p, src, <float*>dst, total, book, threads)
    elif to == cnp.NPY_FLOAT64:
        _drive(p, src, <double*>dst, total, book, threads)
    else:  # float16, written as its bits
        _drive(p, src, <uint16_t*>dst, total, book, threads)


cdef void _drive(const Plan* p, const source_t* src, target_t* dst, Py_ssize_t total,
                 const Book* book, int threads) noexcept nogil:
    """Every task of [0, total), on `threads` threads; task t writes dst[t·TASK, …)."""
    cdef Py_ssize_t t, tasks = (total + ELEMENT_TASK - 1) // ELEMENT_TASK
    if threads == 1:  # the same tasks, without entering an OpenMP region (see _moment_pass)
        for t in range(tasks):
            _elementwise_task(p, src, dst, t * ELEMENT_TASK,
                              total if (t + 1) * ELEMENT_TASK > total
                              else (t + 1) * ELEMENT_TASK, book)
        return
    for t in prange(tasks, num_threads=threads, schedule="guided"):
        _elementwise_task(p, src, dst, t * ELEMENT_TASK,
                          total if (t + 1) * ELEMENT_TASK > total else (t + 1) * ELEMENT_TASK,
                          book)


cdef void _elementwise_task(const Plan* p, const source_t* src, target_t* dst,
                            Py_ssize_t start, Py_ssize_t stop, const Book* book) noexcept nogil:
    """Elements [start, stop) of the visit, written to dst[start:stop], run by run."""
    cdef Cursor c
    cdef int last = p.nd - 1
    _walk(&c, p, src, start, stop - start)
    while _next_run(&c):
        if p.cdim == last:  # along the channel axis: α and β change with every element
            _run(<const source_t*>c.at, p.stride[last], dst + start + c.done, c.run, book,
                 c.idx[last], True)
        else:
            _run(<const source_t*>c.at, p.stride[last], dst + start + c.done, c.run, book,
                 c.idx[p.cdim] if p.cdim >= 0 else 0, False)


cdef inline void _run(const source_t* src, Py_ssize_t stride, target_t* dst, Py_ssize_t n,
                      const Book* b, Py_ssize_t channel, bint per_element) noexcept nogil:
    """One run of the kernel that the types name; `channel` is the run's first channel."""
    if source_t in code_t:
        if target_t in out_t:  # decode
            if per_element:
                _decode_vec(src, stride, dst, n, b.alpha + channel, b.beta + channel, b.zero)
            else:
                _decode_run(src, stride, dst, n, b.alpha[channel], b.beta[channel], b.zero)
    elif target_t in code_t:  # encode
        if per_element:
            _encode_vec(src, stride, dst, n, b.alpha + channel, b.beta + channel, b.low,
                        b.high)
        else:
            _encode_run(src, stride, dst, n, b.alpha[channel], b.beta[channel], b.low, b.high)
    elif per_element:  # fake_quantize
        _fq_vec(src, stride, dst, n, b.alpha + channel, b.beta + channel, b.low, b.high,
                b.zero)
    else:
        _fq_run(src, stride, dst, n, b.alpha[channel], b.beta[channel], b.low, b.high, b.zero)


# ---------------------------------------------------------------------------------------------
# Argument checks (O(1); the registry's convention, with the twins' exception types)
# ---------------------------------------------------------------------------------------------

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_CODES = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32))

# Each check first tries a test in C that accepts the usual argument (an ndarray whose dtype
# is NumPy's own object for its type: NumPy keeps one dtype object per built-in type) and
# otherwise runs the full Python test, so an argument is accepted or refused exactly as by
# the full test alone; the C test saves a few tenths of a microsecond per check.

cdef inline bint _is_float_type(int type_num) noexcept nogil:
    return (type_num == cnp.NPY_FLOAT16 or type_num == cnp.NPY_FLOAT32
            or type_num == cnp.NPY_FLOAT64)


cdef inline bint _is_code_type(int type_num) noexcept nogil:
    return type_num == cnp.NPY_INT8 or type_num == cnp.NPY_INT16 or type_num == cnp.NPY_INT32


cdef inline bint _is_source_type(int type_num) noexcept nogil:
    """What an elementwise kernel reads: float32/float64 weights or codes."""
    return _is_code_type(type_num) or type_num == cnp.NPY_FLOAT32 or type_num == cnp.NPY_FLOAT64


cdef inline bint _is_target_type(int type_num) noexcept nogil:
    return _is_code_type(type_num) or _is_float_type(type_num)


cdef inline bint _has_builtin_dtype(object array, bint weights) noexcept:
    """`array` is an ndarray with NumPy's own float32/float64 dtype object (`weights`) or
    int8/int16/int32 one (codes)."""
    cdef int type_num
    if not cnp.PyArray_Check(array):
        return False
    type_num = cnp.PyArray_TYPE(<cnp.ndarray>array)
    if weights:
        if type_num != cnp.NPY_FLOAT32 and type_num != cnp.NPY_FLOAT64:
            return False
    elif not _is_code_type(type_num):
        return False
    return <object>cnp.PyArray_DESCR(<cnp.ndarray>array) is cnp.PyArray_DescrFromType(
        type_num)


cdef int _check_weights(weights, axis) except -1:
    if not (_has_builtin_dtype(weights, True) and cnp.PyArray_SIZE(<cnp.ndarray>weights) > 0):
        if (not isinstance(weights, np.ndarray) or weights.dtype not in _FLOATS[1:]
                or weights.size == 0):
            raise TypeError("weights must be a non-empty native float32 or float64 numpy "
                            "array")
    _check_axis(weights, axis)
    return 0


cdef int _check_codes(codes) except -1:
    if not _has_builtin_dtype(codes, False):
        if not isinstance(codes, np.ndarray) or codes.dtype not in _CODES:
            raise TypeError("codes must be an int8, int16 or int32 numpy array")
    return 0


cdef int _check_axis(array, axis) except -1:
    if axis is not None and not 0 <= axis < array.ndim:
        raise ValueError(f"axis must be None or in 0..{array.ndim - 1}, got {axis!r}")
    return 0


cdef int _check_bits(bits) except -1:
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits!r}")
    return 0


cdef object _output_dtype(dtype, tuple allowed, str names):
    """`dtype` as a NumPy dtype if it is one of `allowed`; TypeError naming them otherwise."""
    cdef object one
    for one in allowed:
        if dtype is one:  # (what np.dtype(dtype) would return)
            return dtype
    if np.dtype(dtype) not in allowed:
        raise TypeError(f"dtype must be {names}, got {dtype!r}")
    return np.dtype(dtype)


cdef cnp.ndarray _channel_vector(values, Py_ssize_t channels, name):
    """α or β, C-contiguous: a float64 vector with exactly one entry per channel (1 without
    an axis)."""
    if (_has_builtin_dtype(values, True)
            and cnp.PyArray_TYPE(<cnp.ndarray>values) == cnp.NPY_FLOAT64
            and cnp.PyArray_NDIM(<cnp.ndarray>values) == 1
            and cnp.PyArray_DIM(<cnp.ndarray>values, 0) == channels
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>values)):
        return <cnp.ndarray>values
    if (not isinstance(values, np.ndarray) or values.dtype != np.float64 or values.ndim != 1
            or values.shape[0] != channels):
        raise ValueError(f"{name} must be a 1-D float64 array of {channels} value(s)")
    return np.ascontiguousarray(values)


cdef cnp.ndarray _aligned(cnp.ndarray array):
    """`array`, or an aligned copy if its elements are not aligned (e.g. np.frombuffer at an
    odd offset): the kernels read elements through typed pointers, which must be aligned."""
    return array if cnp.PyArray_ISALIGNED(array) else np.array(array)


cdef Py_ssize_t _channels(cnp.ndarray array, axis) except -1:
    return 1 if axis is None else (<object>array).shape[axis]


# =============================================================================================
# moments
# =============================================================================================
#
# Twin: ul2q_ref.kernels.reference.moments, i.e. ul2q_ref.stats.moments (row_moments per
# channel).
#
# Obligation: μ and σ bit for bit those of the twin, for every layout, dtype and thread
# count. The reference computes, for each channel's values v (in C order of the other axes,
# as float64):
#
#   constant row (v[0] == min == max)  ->  (v[0], 0.0)
#   e = frexp(max|v|)[1];  s = ldexp(v, −e)          (exact power-of-two scaling)
#   μs = sum(s)/n;  d = s − μs
#   var = max(sum(d·d) − sum(d)·sum(d)/n, 0)/n
#   (ldexp(μs, e), ldexp(sqrt(var), e))
#
# where each sum() is NumPy's pairwise summation, reproduced by `_pairwise` below: up to 128
# values are summed with 8 interleaved accumulators (the leaves, ul2q_leaf_sum and
# ul2q_leaf_dev), longer ranges are halved (at a multiple of 8) and the halves' sums added.
# The result depends only on the values and their order, so the same tree gives the same
# bits. The tree also makes the work parallel: subtrees of at most MOMENT_TASK values are
# summed by independent tasks, and the subtree sums are then added up the tree in the same
# order as the recursion would.
#
# Passes over memory: two for float32 input (the sum, then the deviations), three for
# float64 (min/max first). A one-pass scheme (block means combined by Chan's formula) would
# save one read but could only agree with the reference to a few ulps; this one agrees
# exactly, so the fast μ, σ and hence the fast codes are the reference's, bit for bit.
#
# Scaling. ldexp(v, −e) multiplies by a power of two; IEEE multiplication by 2^−e rounds once,
# exactly like ldexp, so `x * scale` (with scale = 2^−e as a double) gives the same bits.
# (When 2^−e is not a double, e < −1023, the values are scaled in two exact steps.)
# For float32 input the scaling changes nothing at all: float32 values are below 2^128 and,
# when not 0, above 2^−150, so no sum, deviation, square or quotient computed from them in
# float64 comes near overflow or the subnormal range, with or without the scaling, and a
# power-of-two scaling commutes with every correctly rounded operation in the normal range.
# The float32 path therefore skips the pass that finds max|v| and computes unscaled.
#
# Constant rows. For float32 input, a constant row gives μ = v exactly (n copies of a 24-bit
# value sum exactly in float64 while n < 2^29) and σ = 0, so the formula already agrees with
# the rule except for the sign of a zero mean; rows whose computed σ is 0 are therefore
# checked afterwards with the min/max tasks of that row (rare and cheap). float64 rows get
# their min and max in the pass that finds the scale.
#
# Layout. The leaves read unit-stride memory (float32 values are converted to float64 in
# registers, exactly): a task whose values are one contiguous run is summed in place; any
# other task (strided or multi-dimensional rows, two-step scaling) is first gathered, in
# order and as float64, into a buffer of MOMENT_TASK doubles that fits in L1.
#
# Tests: tests/test_kernels.py::test_every_kernel_equals_its_twin_bit_for_bit[moments] and,
# in tests/test_fast.py:
#   test_moments_are_bit_identical
#   test_moments_identical_across_the_pairwise_tree_and_task_boundaries
#   test_moments_of_extreme_and_constant_rows_are_identical
#   test_numpy_sums_by_the_pairwise_algorithm_the_kernels_reproduce
#   test_unusual_layouts
#   test_results_do_not_depend_on_the_thread_count
#   test_small_and_task_boundary_sizes_per_tensor_in_every_layout
#   test_small_and_task_boundary_sizes_per_channel_in_every_layout

def moments(weights, axis):
    """Mean and population standard deviation of every channel, as the reference computes them.

    Parameters
    ----------
    weights : numpy.ndarray
        Finite float32 or float64 values, any shape and layout (not modified).
    axis : int or None
        The channel axis (in ``0..ndim-1``), or None for the whole tensor.

    Returns
    -------
    mean, std : numpy.ndarray
        float64 vectors with one entry per channel (one entry without an axis), bit for bit
        those of ``ul2q_ref.kernels.reference.moments``.
    """
    _check_weights(weights, axis)
    cdef cnp.ndarray w = _aligned(weights)
    cdef Plan plan
    _rows_plan(&plan, w, axis)
    cdef cnp.npy_intp rows = _channels(w, axis)
    cdef Py_ssize_t row_length = cnp.PyArray_SIZE(w) // rows
    cdef cnp.ndarray means = cnp.PyArray_EMPTY(1, &rows, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray stds = cnp.PyArray_EMPTY(1, &rows, cnp.NPY_FLOAT64, 0)
    cdef double* m = <double*>cnp.PyArray_DATA(means)
    cdef double* s = <double*>cnp.PyArray_DATA(stds)
    if cnp.PyArray_TYPE(w) == cnp.NPY_FLOAT32:
        _moments_rows(&plan, <const float*>cnp.PyArray_DATA(w), rows, row_length, m, s)
    else:
        _moments_rows(&plan, <const double*>cnp.PyArray_DATA(w), rows, row_length, m, s)
    return means, stds


cdef extern from *:
    """
    /* The leaves of NumPy's pairwise summation (numpy/_core/src/umath/loops_utils.h.src,
       pairwise_sum for n <= 128): for n < 8 a plain loop from 0.0; otherwise 8 accumulators
       r_j start at the first 8 values, r_j += x[i + j] for each further full group of 8,
       then ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the last n % 8 values
       one by one. Here the 8 accumulators are the lanes of two 4-double vectors (lane j of
       `a` is r_j, lane j of `b` is r_(4+j)): lane-wise additions are exactly the scalar
       additions, nothing is reassociated, and the final combination is written out in
       NumPy's order. (gcc does not keep 8 scalar accumulators in vector registers by
       itself; with the vector type it does, which is ~5x faster with AVX2.) Values are
       x[i]*scale, the reference's power-of-two scaling (scale = 1 when there is none). */
    #include <string.h>
    typedef double ul2q_v4d __attribute__((vector_size(32)));

    /* Loads of 4 consecutive values as doubles, from float64 or (single != 0) float32
       memory; float32 -> float64 is exact. `single` is a compile-time constant at every
       call, so the test folds away. */
    static inline void ul2q_load4(ul2q_v4d* v, const void* p, Py_ssize_t i, int single) {
        if (single) {
            float f[4];
            memcpy(f, (const float*)p + i, sizeof f);
            *v = (ul2q_v4d){f[0], f[1], f[2], f[3]};
        } else {
            memcpy(v, (const double*)p + i, sizeof *v);  /* an unaligned vector load */
        }
    }

    static inline double ul2q_value(const void* p, Py_ssize_t i, int single) {
        return single ? (double)((const float*)p)[i] : ((const double*)p)[i];
    }

    /* NumPy's pairwise_sum of p[i]*scale for n <= 128 */
    static inline double ul2q_leaf_sum(const void* p, Py_ssize_t n, double scale,
                                       int single) {
        ul2q_v4d a, b, x, y, s = {scale, scale, scale, scale};
        double res = 0.0;
        Py_ssize_t i = 0;
        if (n >= 8) {
            ul2q_load4(&a, p, 0, single);
            ul2q_load4(&b, p, 4, single);
            a *= s;
            b *= s;
            for (i = 8; i < n - n % 8; i += 8) {
                ul2q_load4(&x, p, i, single);
                ul2q_load4(&y, p, i + 4, single);
                a += x * s;
                b += y * s;
            }
            res = ((a[0] + a[1]) + (a[2] + a[3])) + ((b[0] + b[1]) + (b[2] + b[3]));
        }
        for (; i < n; i++)
            res += ul2q_value(p, i, single) * scale;
        return res;
    }

    /* NumPy's pairwise_sum of d and of d*d, d = p[i]*scale - mean, for n <= 128: the
       reference sums the arrays d and d*d separately, over the same tree */
    static inline void ul2q_leaf_dev(const void* p, Py_ssize_t n, double scale, double mean,
                                     int single, double* sum_d, double* sum_dd) {
        ul2q_v4d a, b, qa, qb, x, y;
        ul2q_v4d s = {scale, scale, scale, scale}, m = {mean, mean, mean, mean};
        double res = 0.0, rq = 0.0, d;
        Py_ssize_t i = 0;
        if (n >= 8) {
            ul2q_load4(&a, p, 0, single);
            ul2q_load4(&b, p, 4, single);
            a = a * s - m;
            b = b * s - m;
            qa = a * a;
            qb = b * b;
            for (i = 8; i < n - n % 8; i += 8) {
                ul2q_load4(&x, p, i, single);
                ul2q_load4(&y, p, i + 4, single);
                x = x * s - m;
                y = y * s - m;
                a += x;
                b += y;
                qa += x * x;
                qb += y * y;
            }
            res = ((a[0] + a[1]) + (a[2] + a[3])) + ((b[0] + b[1]) + (b[2] + b[3]));
            rq = ((qa[0] + qa[1]) + (qa[2] + qa[3])) + ((qb[0] + qb[1]) + (qb[2] + qb[3]));
        }
        for (; i < n; i++) {
            d = ul2q_value(p, i, single) * scale - mean;
            res += d;
            rq += d * d;
        }
        *sum_d = res;
        *sum_dd = rq;
    }
    """
    double ul2q_leaf_sum(const void* p, Py_ssize_t n, double scale,
                         bint single) noexcept nogil
    void ul2q_leaf_dev(const void* p, Py_ssize_t n, double scale, double mean, bint single,
                       double* sum_d, double* sum_dd) noexcept nogil


# A moment task is one subtree of one row's pairwise tree: `count` values starting at value
# `start` of row `row`. A pass runs every task; each writes only its own partial results.

cdef struct Tasks:
    Py_ssize_t* row
    Py_ssize_t* start
    Py_ssize_t* count
    double* first       # per task: sum, or Σd, or the minimum
    double* second      # per task: Σd·d, or the maximum
    Py_ssize_t n


cdef enum Pass:
    PASS_MINMAX
    PASS_SUM
    PASS_DEV


cdef struct Rows:
    double* scale       # 2^−e (or 2^1023 when it takes two steps)
    double* scale2      # 1, or 2^(−e−1023) when 2^−e is not a double
    double* exponent    # e (0 for float32 rows)
    double* mean        # μ of the scaled values
    double* constant    # 1 for a constant row (found by the min/max pass)


cdef int _moments_rows(const Plan* p, const real_t* src, Py_ssize_t n_rows,
                       Py_ssize_t row_length, double* means, double* stds) except -1:
    """The reference's (μ, σ) of every row, bit for bit (see the comment block above)."""
    cdef Py_ssize_t per_row = _count_tasks(row_length), r, t, cursor
    cdef Py_ssize_t n_tasks = n_rows * per_row
    cdef Tasks tasks
    cdef Rows rows
    cdef double total, low, high, largest, sum_d, sum_dd, variance
    cdef int exponent
    # float32 rows skip the min/max pass (see above) unless they are so long that n copies
    # of one value might not sum exactly
    cdef bint scaled = real_t is double or row_length >= (1 << 29)
    cdef int threads = _threads_for(n_rows * row_length, n_tasks)
    # one zeroed block (one allocation, not five arrays: this is most of a small call's
    # cost otherwise): per row 5 numbers, per task 2 partial results and 3 positions; freed
    # below (nothing in between can raise)
    cdef double* block = <double*>calloc(5 * n_rows + 5 * n_tasks, sizeof(double))
    if block == NULL:
        raise MemoryError(f"no memory for the moments of {n_rows} channel(s)")
    rows.scale = block
    rows.scale2 = rows.scale + n_rows
    rows.exponent = rows.scale2 + n_rows
    rows.mean = rows.exponent + n_rows
    rows.constant = rows.mean + n_rows
    tasks.first = rows.constant + n_rows
    tasks.second = tasks.first + n_tasks
    tasks.row = <Py_ssize_t*>(tasks.second + n_tasks)  # (sizeof(Py_ssize_t) ≤ sizeof(double))
    tasks.start = tasks.row + n_tasks
    tasks.count = tasks.start + n_tasks
    tasks.n = n_tasks
    with nogil:
        t = 0
        for r in range(n_rows):
            t = _emit_tasks(&tasks, t, r, 0, row_length)
            rows.scale[r] = 1.0
            rows.scale2[r] = 1.0
        if scaled:
            # pass 0: min and max of each row -> constant rows, and the scale 2^−e
            _moment_pass(p, src, row_length, &tasks, PASS_MINMAX, &rows, threads)
            for r in range(n_rows):
                _row_extremes(&tasks, r, per_row, &low, &high)
                if _row_first(p, src, r * row_length) == low and low == high:
                    rows.constant[r] = 1.0
                if real_t is double:  # (float32: scaling changes nothing, see above)
                    largest = -low if -low > high else high
                    frexp(largest, &exponent)
                    rows.exponent[r] = exponent
                    if -exponent > 1023:  # 2^−e is not a double: 2^1023, then 2^(−e−1023)
                        rows.scale[r] = ldexp(1.0, 1023)
                        rows.scale2[r] = ldexp(1.0, -exponent - 1023)
                    else:
                        rows.scale[r] = ldexp(1.0, -exponent)
        # pass 1: the pairwise sum of each row -> the mean of the scaled values
        _moment_pass(p, src, row_length, &tasks, PASS_SUM, &rows, threads)
        for r in range(n_rows):
            cursor = r * per_row
            total = _combine(tasks.first, &cursor, row_length)
            rows.mean[r] = total / <double>row_length
        # pass 2: the pairwise sums of d and d·d
        _moment_pass(p, src, row_length, &tasks, PASS_DEV, &rows, threads)
        for r in range(n_rows):
            cursor = r * per_row
            sum_d = _combine(tasks.first, &cursor, row_length)
            cursor = r * per_row
            sum_dd = _combine(tasks.second, &cursor, row_length)
            # the reference's correction is sum(d)·sum(d)/n: a product, then a quotient
            variance = sum_dd - (sum_d * sum_d) / <double>row_length
            if 0.0 > variance:  # Python's max(v, 0.0) (v is never NaN here)
                variance = 0.0
            variance = variance / <double>row_length
            exponent = <int>rows.exponent[r]
            means[r] = ldexp(rows.mean[r], exponent)
            stds[r] = ldexp(sqrt(variance), exponent)
            if not scaled and stds[r] == 0.0:  # float32: is the row really constant?
                for t in range(r * per_row, (r + 1) * per_row):  # (its partials are used)
                    _moment_task(p, src, row_length, &tasks, t, PASS_MINMAX, &rows)
                _row_extremes(&tasks, r, per_row, &low, &high)
                if _row_first(p, src, r * row_length) == low and low == high:
                    rows.constant[r] = 1.0
            if rows.constant[r] != 0.0:
                means[r] = _row_first(p, src, r * row_length)
                stds[r] = 0.0
    free(block)
    return 0


cdef void _row_extremes(const Tasks* tasks, Py_ssize_t r, Py_ssize_t per_row, double* low,
                        double* high) noexcept nogil:
    """Row r's min and max, from the min/max results of its `per_row` tasks."""
    cdef Py_ssize_t t
    low[0] = tasks.first[r * per_row]
    high[0] = tasks.second[r * per_row]
    for t in range(r * per_row + 1, (r + 1) * per_row):
        low[0] = tasks.first[t] if tasks.first[t] < low[0] else low[0]
        high[0] = tasks.second[t] if tasks.second[t] > high[0] else high[0]


cdef double _row_first(const Plan* p, const real_t* src, Py_ssize_t flat) noexcept nogil:
    """The value of element `flat` of the rows' order (a row's first: flat = r·row_length)."""
    cdef Cursor c
    _walk(&c, p, src, flat, 1)
    return (<const real_t*>c.at)[0]


cdef void _moment_pass(const Plan* p, const real_t* src, Py_ssize_t row_length, Tasks* tasks,
                       int which, const Rows* rows, int threads) noexcept nogil:
    """Run every task of one pass; each task writes only its own partial results."""
    cdef Py_ssize_t t
    if threads == 1:  # entering an OpenMP region costs ~0.4 µs even for one thread: skip it
        for t in range(tasks.n):
            _moment_task(p, src, row_length, tasks, t, which, rows)
        return
    for t in prange(tasks.n, num_threads=threads, schedule="guided"):
        _moment_task(p, src, row_length, tasks, t, which, rows)


cdef void _moment_task(const Plan* p, const real_t* src, Py_ssize_t row_length,
                       Tasks* tasks, Py_ssize_t t, int which, const Rows* rows) noexcept nogil:
    """Task t of pass `which`: its min and max, or its (scaled) pairwise sum(s)."""
    cdef double buffer[MOMENT_TASK]
    cdef Cursor c
    cdef Py_ssize_t row = tasks.row[t], n = tasks.count[t]
    cdef int last = p.nd - 1
    _walk(&c, p, src, row * row_length + tasks.start[t], n)
    if which == PASS_MINMAX:
        tasks.first[t] = (<const real_t*>c.at)[0]
        tasks.second[t] = tasks.first[t]
        while _next_run(&c):
            _minmax(<const real_t*>c.at, p.stride[last], c.run, &tasks.first[t],
                    &tasks.second[t])
    elif (n <= p.shape[last] - c.idx[last] and p.stride[last] == sizeof(real_t)
            and rows.scale2[row] == 1.0):
        # in place: the subtree is one contiguous run (the usual case)
        _sum_task(<const real_t*>c.at, n, rows.scale[row], rows.mean[row], which, tasks, t)
    else:
        while _next_run(&c):  # gather the values in order, scaled, as float64
            _convert(<const real_t*>c.at, p.stride[last], c.run, rows.scale[row],
                     rows.scale2[row], buffer + c.done)
        _sum_task(<const double*>buffer, n, 1.0, rows.mean[row], which, tasks, t)


cdef inline void _sum_task(const real_t* values, Py_ssize_t n, double scale, double mean,
                           int which, Tasks* tasks, Py_ssize_t t) noexcept nogil:
    if which == PASS_SUM:
        _pairwise(values, n, scale, &tasks.first[t])
    else:
        _pairwise_dev(values, n, scale, mean, &tasks.first[t], &tasks.second[t])


cdef inline Py_ssize_t _half(Py_ssize_t n) noexcept nogil:
    """Where NumPy's pairwise sum splits n > 128 values: n/2 rounded down to a multiple of 8."""
    cdef Py_ssize_t n2 = n // 2
    return n2 - n2 % 8


cdef Py_ssize_t _count_tasks(Py_ssize_t n) noexcept nogil:
    if n <= MOMENT_TASK:
        return 1
    return _count_tasks(_half(n)) + _count_tasks(n - _half(n))


cdef Py_ssize_t _emit_tasks(Tasks* tasks, Py_ssize_t t, Py_ssize_t row, Py_ssize_t start,
                            Py_ssize_t n) noexcept nogil:
    """Append the subtrees of [start, start + n) in the order the recursion visits them."""
    if n <= MOMENT_TASK:
        tasks.row[t] = row
        tasks.start[t] = start
        tasks.count[t] = n
        return t + 1
    t = _emit_tasks(tasks, t, row, start, _half(n))
    return _emit_tasks(tasks, t, row, start + _half(n), n - _half(n))


cdef double _combine(const double* values, Py_ssize_t* t, Py_ssize_t n) noexcept nogil:
    """Add up subtree sums along the pairwise tree of n values (left subtree first)."""
    cdef double left
    if n <= MOMENT_TASK:
        t[0] += 1
        return values[t[0] - 1]
    left = _combine(values, t, _half(n))
    return left + _combine(values, t, n - _half(n))


cdef hot_void _pairwise(const real_t* p, Py_ssize_t n, double scale,
                        double* total) noexcept nogil:
    """NumPy's pairwise sum of p[i]·scale, i < n (unit stride)."""
    cdef double left, right
    if n <= LEAF:
        total[0] = ul2q_leaf_sum(p, n, scale, real_t is float)
        return
    _pairwise(p, _half(n), scale, &left)
    _pairwise(p + _half(n), n - _half(n), scale, &right)
    total[0] = left + right


cdef hot_void _pairwise_dev(const real_t* p, Py_ssize_t n, double scale, double mean,
                            double* sum_d, double* sum_dd) noexcept nogil:
    """NumPy's pairwise sums of d and d·d, d = p[i]·scale − mean, i < n (unit stride)."""
    cdef double d1, dd1, d2, dd2
    if n <= LEAF:
        ul2q_leaf_dev(p, n, scale, mean, real_t is float, sum_d, sum_dd)
        return
    _pairwise_dev(p, _half(n), scale, mean, &d1, &dd1)
    _pairwise_dev(p + _half(n), n - _half(n), scale, mean, &d2, &dd2)
    sum_d[0] = d1 + d2
    sum_dd[0] = dd1 + dd2


cdef hot_void _convert(const real_t* p, Py_ssize_t stride, Py_ssize_t n, double scale1,
                       double scale2, double* out) noexcept nogil:
    """out[i] = x[i]·scale1·scale2 in float64 (scale2 = 1 unless 2^−e takes two steps)."""
    cdef Py_ssize_t i
    if stride == sizeof(real_t):
        for i in range(n):
            out[i] = <double>p[i] * scale1 * scale2
    else:
        for i in range(n):
            out[i] = <double>_at(p, stride, i) * scale1 * scale2


cdef hot_void _minmax(const real_t* p, Py_ssize_t stride, Py_ssize_t n, double* low,
                      double* high) noexcept nogil:
    """Update low, high with the smallest and largest of n values (two chains each)."""
    cdef double lo0 = low[0], lo1 = low[0], hi0 = high[0], hi1 = high[0], x, y
    cdef Py_ssize_t i = 0
    while i + 1 < n:
        x = _at(p, stride, i)
        y = _at(p, stride, i + 1)
        lo0 = x if x < lo0 else lo0
        lo1 = y if y < lo1 else lo1
        hi0 = x if x > hi0 else hi0
        hi1 = y if y > hi1 else hi1
        i += 2
    if i < n:
        x = _at(p, stride, i)
        lo0 = x if x < lo0 else lo0
        hi0 = x if x > hi0 else hi0
    low[0] = lo0 if lo0 < lo1 else lo1
    high[0] = hi0 if hi0 > hi1 else hi1


# =============================================================================================
# encode
# =============================================================================================
#
# Twin: ul2q_ref.kernels.reference.encode, i.e. ul2q_ref.ul2q.encode.
#
# Obligation: the reference's codes q = clip(floor(t) + 1, lo, hi), t = (w − β)/α in float64,
# lo = 1 − 2^(k−1), hi = 2^(k−1), and q = 1 where α = 0, bit for bit, for any α, β (0, tiny,
# huge), any finite w, every layout. The code rule, exactly:
#
# 1. Since floor is monotone and lo, hi are integers, clip(floor(t) + 1, lo, hi) equals
#    floor(clip(t, lo − 1, hi − 1)) + 1 for every t (including ±inf). The clip comes first
#    so that the rest only sees |t| ≤ 2^15, which fits an int.
# 2. floor without libm (a call per element would stop vectorisation, and SSE2 has no vector
#    floor): the C cast (int)t truncates towards zero, which is floor(t) for t ≥ 0 and
#    floor(t) + 1 for negative non-integers. k = (double)(int)t is an integer, exactly
#    representable, so the comparison k > t is exact and is true precisely for negative
#    non-integers: floor(t) + 1 = k + (k > t ? 0 : 1), for every t in range, integers and
#    −0.0 included, with no rounding anywhere (small integers). (Adding an offset to make t
#    non-negative before truncating would NOT be exact: t + 2^15 rounds for t just below an
#    integer.)
# 3. The clip is two comparisons with selects (maxpd/minpd); t is never NaN because w and β
#    are finite and α > 0 on this path (α = 0 is handled separately, below).
# 4. t is the reference's own quotient: one subtraction and one true division in float64.
#    (Multiplying by fl(1/α) instead, with a proof per element and a fallback, was measured
#    and removed: docs/performance.md, "Dividing by multiplying".)
# Every step is branch-free and stays in float64 until the code is stored (gcc does not
# vectorise a double -> int -> double round trip through a C int in the same loop as a float
# load, but does this form), so gcc vectorises the loops.
#
# α = 0 (a channel whose σ = 0): the reference gives code 1. Runs with one α test it once per
# run. Runs whose α varies per element (channel axis innermost) divide by `_safe(α)` (α, or
# 1 where α = 0, so no 0/0 ever appears) and then select 1.
#
# Long runs of one channel at k ≤ 2 find the same codes without the division, by comparing
# d = fl(w − β) with exact thresholds (the section "Thresholds" below, with its proof).
#
# Tests: tests/test_kernels.py::test_every_kernel_equals_its_twin_bit_for_bit[encode] and,
# in tests/test_fast.py:
#   test_codes_are_identical_for_the_same_code_book
#   test_the_floor_trick_is_exact_at_and_around_every_integer
#   test_values_exactly_on_thresholds_and_next_to_them
#   test_extreme_steps_and_quotients
#   test_quantize_end_to_end_agrees_except_on_thresholds
#   test_unusual_layouts
#   test_small_and_task_boundary_sizes_per_tensor_in_every_layout
#   test_small_and_task_boundary_sizes_per_channel_in_every_layout

def encode(weights, alpha, beta, bits, axis, dtype):
    """The μL2Q codes q = clip(floor((w − β)/α) + 1, 1 − 2^(k−1), 2^(k−1)); 1 where α = 0.

    Parameters
    ----------
    weights : numpy.ndarray
        Finite float32 or float64 values, any shape and layout (not modified).
    alpha, beta : numpy.ndarray
        The code book: float64 vectors, one entry per channel along `axis` (one without).
    bits : int
        The bit width k, 1 to 16.
    axis : int or None
        The channel axis of per-channel α, β.
    dtype : numpy.dtype
        The code dtype, int8, int16 or int32, wide enough for the k-bit range.

    Returns
    -------
    numpy.ndarray
        Codes of `dtype` with the shape of `weights`, bit for bit those of
        ``ul2q_ref.kernels.reference.encode``.
    """
    _check_weights(weights, axis)
    _check_bits(bits)
    dtype = _output_dtype(dtype, _CODES, "int8, int16 or int32")
    return _elementwise(weights, alpha, beta, bits, 0.0, axis, dtype)


cdef inline double _safe(double alpha) noexcept nogil:
    """α, or 1 where α = 0: the divisor of a run along the channel axis (see above)."""
    return 1.0 if alpha == 0.0 else alpha


cdef inline double _code(double t, double low, double high) noexcept nogil:
    """floor(clip(t, low, high)) + 1, exactly, as a double (see above)."""
    cdef double k
    t = low if t < low else t
    t = high if t > high else t
    k = <double><int>t
    return k + (0.0 if k > t else 1.0)


cdef hot_void _encode_run(const real_t* src, Py_ssize_t stride, code_t* dst, Py_ssize_t n,
                          double alpha, double beta, double low, double high) noexcept nogil:
    """The codes of a run of one channel (long runs of small k: by comparisons)."""
    cdef int m = <int>(high - low)  # 2^k − 1
    cdef Py_ssize_t i
    if alpha == 0.0:
        for i in range(n):
            dst[i] = 1
    elif _counting_pays(alpha, m, n, ENCODE_BITS):  # section Thresholds
        _encode_counted_run(src, stride, dst, n, alpha, beta, m)
    elif stride == sizeof(real_t):  # unit stride: a loop gcc vectorises
        for i in range(n):
            dst[i] = <code_t>_code((<double>src[i] - beta) / alpha, low, high)
    else:
        for i in range(n):
            dst[i] = <code_t>_code((<double>_at(src, stride, i) - beta) / alpha, low, high)


cdef hot_void _encode_vec(const real_t* src, Py_ssize_t stride, code_t* dst, Py_ssize_t n,
                          const double* alpha, const double* beta, double low,
                          double high) noexcept nogil:
    """A run along the channel axis: α and β change with every element."""
    cdef Py_ssize_t i
    cdef double q
    for i in range(n):
        q = _code((<double>_at(src, stride, i) - beta[i]) / _safe(alpha[i]), low, high)
        dst[i] = <code_t>(1.0 if alpha[i] == 0.0 else q)


# =============================================================================================
# Thresholds: the codes of small k by comparisons instead of a division
# =============================================================================================
#
# Used by `_fq_run` for k ≤ THRESHOLD_BITS and `_encode_run` for k ≤ ENCODE_BITS, on runs of
# one α, β with at least COUNTED_RUN·2^k values (`_counting_pays`); runs along the channel
# axis (`_encode_vec`, `_fq_vec`), shorter runs and larger k divide, as the encode section
# says. Nothing is stored in the code book: each counted run finds its own thresholds.
#
# Obligation: the same code q = clip(floor(t) + 1, lo, hi), t = fl(d/α), d = fl(w − β), as the
# division loop (and so the twin), for every finite w, finite β and 0 < α < +inf, without
# dividing per element. (lo = 1 − 2^(k−1), hi = 2^(k−1).) Proof:
#
# 1. Counting. For every t (±inf included), q = lo + #{ j ∈ {lo, …, hi − 1} : t ≥ j }: the
#    integers j ≤ t are those j ≤ floor(t); none of the listed ones when floor(t) < lo (q = lo),
#    all hi − lo of them when floor(t) ≥ hi − 1 (q = hi), else floor(t) − lo + 1 of them.
# 2. Monotonicity. Order the non-NaN doubles by value (−0 and +0 are one point: every
#    comparison treats them alike, and so does the quotient, fl(±0/α) = ±0). For 0 < α < inf,
#    d ↦ fl(d/α) is non-decreasing on [−inf, +inf]: the exact quotient is increasing and
#    correct rounding is non-decreasing. So P_j(d) := [fl(d/α) ≥ j] is monotone, and
#    P_j(+inf) is true (+inf ≥ j), P_j(−inf) false. Hence { d : P_j(d) } is an up-set with a
#    least element T_j ∈ (−inf, +inf], and P_j(d) ⟺ d ≥ T_j for every d in [−inf, +inf] —
#    including d = ±inf, which fl(w − β) can be when w − β overflows. (T_0 can be negative:
#    a tiny negative d/α rounds to −0, and −0 ≥ 0; the twin's floor(−0) + 1 = 1 agrees.)
#    P_(j+1) implies P_j, so T_lo ≤ T_(lo+1) ≤ … ≤ T_(hi−1): the thresholds ascend.
# 3. Finding T_j (`_least_reaching`, at the start of each counted run): work on
#    the integer keys of the ordered doubles (`_key`: −0 and +0 both key 0, consecutive keys
#    are neighbouring doubles, −inf and +inf are the ends). The search keeps an interval
#    [a, b] of keys with P_j(a) false and P_j(b) true, starting from the ends; it tests
#    fl(j·α) (for j = 0: fl(−α·2^−1075)), gallops away from it (steps 1, 2, 4, … towards
#    the boundary, capped at 2^62; T_j is usually an ulp or two away: two or three
#    divisions) until a test flips, and bisects what is left. Every probe lies strictly
#    inside (a, b), so each test shrinks the interval; key differences are taken in uint64
#    (b − a can exceed INT64_MAX). It stops when b = a + 1, so P_j holds at b and not at b's
#    predecessor: by monotonicity, b is the least element, T_j, wherever the search started
#    (tests/test_fast_thresholds.py starts it from ±inf, ±DBL_MAX, 0, …). At most ~130
#    divisions. Every P_j evaluated is the division the kernel would do, fl(d/α) in float64 (no
#    fast-math: one correctly rounded division), so the thresholds are exact for the very
#    quotient the twin computes; nothing about fl(j·α) (overflow, subnormal α, underflow) is
#    assumed — it is only where the search looks first.
# 4. Per element, d = (double)w − β, as in the division loop. encode (`_encode_counted`):
#    q = lo + Σ_j [d ≥ T_j], summed in float64 (0/1 terms: exact). fake_quantize
#    (`_fq_counted`): the 2^k reconstructions r_q = α(q − z) + β are computed once per run
#    with decode's formula (the same operations in the same order, so the same doubles), and
#    each element selects r_q: since the thresholds ascend, the ones d reaches are a prefix,
#    and the last one reached names q. The float64 value is then rounded once to the output
#    dtype, as decode does. The comparisons and selects are branch-free, so gcc vectorises
#    the unit-stride loops; the thresholds are copied into a local array first, so that no
#    store to the output can alias them.
#
# α = 0 keeps its own branch (code 1); a run whose α is not in (0, +inf) (which the public
# layer never passes) divides.
#
# Crossover, measured on one thread of the Intel Xeon (AVX-512), new time/old time: per
# element, 2^k − 1 compare-and-selects replace one division (~2 cycles). fake_quantize: k = 1,
# 2 take 0.30–0.52x, k = 3 0.61–0.94x, k = 4 1.07–1.35x (so k ≤ 3). encode stores int8 codes
# and gains less: k = 1 0.42–0.45x, k = 2 0.87–0.97x, k = 3 1.2–1.4x (so k ≤ 2). Per run the
# search costs ~2–3 divisions per threshold (more for T_0, whose tests divide subnormals):
# with COUNTED_RUN = 128, 1,000 values per tensor and 64 channels of 27 or 576 (k = 3) take
# 0.91–1.0x, 64 channels of 576 at k = 1, 2 0.68–0.80x; at 64 (runs of 512 counted at k = 3)
# 64 × 576 took 1.03x. docs/performance.md, "Codes by comparisons", has the runs.
#
# Tests: tests/test_fast_thresholds.py (the thresholds against an exact rational oracle and
# from any start; both kernels on fl(j·α) + β, on T_j + β and one ulp either side, extreme α,
# far β, constant channels, both axes, strided input, runs just below and at COUNTED_RUN·2^k,
# k = 1..4).

from libc.math cimport INFINITY
from libc.stdint cimport int64_t

cdef enum:
    THRESHOLD_BITS = 3     # the largest k whose fake_quantize codes are counted (measured)
    ENCODE_BITS = 2        # the largest k whose encode codes are counted (measured)
    MAX_THRESHOLDS = 7     # 2^THRESHOLD_BITS − 1
    COUNTED_RUN = 128      # a run is counted from COUNTED_RUN·2^k values on (measured)

cdef int64_t _KEY_INF = 0x7FF0000000000000    # key of +inf (and −key of −inf)
cdef uint64_t _SIGN_BIT = 0x8000000000000000  # of a double
cdef uint64_t _GALLOP_CAP = 0x4000000000000000  # 2^62: the largest step of the gallop


cdef inline int64_t _key(double x) noexcept nogil:
    """The position of non-NaN `x` among the ordered doubles; −0 and +0 both give 0."""
    cdef uint64_t bits
    memcpy(&bits, &x, 8)
    return <int64_t>bits if bits < _SIGN_BIT else -<int64_t>(bits - _SIGN_BIT)


cdef inline double _unkey(int64_t key) noexcept nogil:
    """The double at position `key` (+0 for 0)."""
    cdef double x
    cdef uint64_t bits = <uint64_t>key if key >= 0 else <uint64_t>(-key) + _SIGN_BIT
    memcpy(&x, &bits, 8)
    return x


cdef inline bint _reaches(int64_t key, double alpha, double j) noexcept nogil:
    """P_j(d) = [fl(d/α) ≥ j] for the d at position `key`: the kernel's own division."""
    return _unkey(key) / alpha >= j


cdef inline double _near_threshold(double alpha, double j) noexcept nogil:
    """Where T_j should be: near fl(j·α), except T_0 near −α·2^−1075 (quotients above
    −2^−1075 round to −0, which reaches 0). Only where the search starts: its tests decide."""
    return j * alpha if j != 0.0 else ldexp(-alpha, -1075)


cdef double _least_reaching(double alpha, double j, double start_at) noexcept nogil:
    """T_j: the least double d with fl(d/α) ≥ j, for 0 < α < inf (+inf when no finite d),
    searched from the non-NaN double `start_at` outwards."""
    cdef int64_t a = -_KEY_INF, b = _KEY_INF, probe, start = _key(start_at)
    cdef uint64_t step = 1
    # invariant: P_j(a) false, P_j(b) true, a < b (the ends: P_j(−inf) false, P_j(+inf) true).
    # b − a may exceed INT64_MAX, so it is always taken in uint64 (exact: 0 < b − a < 2^64);
    # a probe a ± step with step < b − a lies strictly between a and b (no overflow), and
    # step stops doubling at 2^62
    if _reaches(start, alpha, j):  # gallop down: b − 1, b − 3, b − 7, … until one fails
        b = start
        while step < <uint64_t>b - <uint64_t>a:
            probe = b - <int64_t>step
            if not _reaches(probe, alpha, j):
                a = probe
                break
            b = probe
            step = step * 2 if step < _GALLOP_CAP else step
    else:  # gallop up from a = fl(j·α) until a point reaches j
        a = start
        while step < <uint64_t>b - <uint64_t>a:
            probe = a + <int64_t>step
            if _reaches(probe, alpha, j):
                b = probe
                break
            a = probe
            step = step * 2 if step < _GALLOP_CAP else step
    while <uint64_t>b - <uint64_t>a > 1:  # bisect what is left
        probe = (a >> 1) + (b >> 1) + (a & b & 1)  # floor((a + b)/2): a < probe < b
        if _reaches(probe, alpha, j):
            b = probe
        else:
            a = probe
    return _unkey(b)


cdef void _find_thresholds(double* thresholds, double alpha, int m) noexcept nogil:
    """T_lo, …, T_(hi−1) for the step α (0 < α < inf), m = 2^k − 1 of them."""
    cdef double lo = <double>(1 - ((m + 1) >> 1))  # 1 − 2^(k−1)
    cdef int i
    for i in range(m):
        thresholds[i] = _least_reaching(alpha, lo + i, _near_threshold(alpha, lo + i))


COUNTED_BITS = {"encode": ENCODE_BITS, "fake_quantize": THRESHOLD_BITS}
"""The largest k whose codes each kernel counts against thresholds instead of dividing."""

COUNTED_RUN_LENGTH = COUNTED_RUN
"""A run of one channel is counted when it holds at least COUNTED_RUN_LENGTH·2^k values."""


def _thresholds(alpha, int bits, start=None):
    """T_lo, …, T_(hi−1) for each step α, as the counted runs find them (for the tests).

    Parameters
    ----------
    alpha : numpy.ndarray
        The steps α: a 1-D float64 array, each 0 < α < inf.
    bits : int
        k, 1 to 8.
    start : float, optional
        Where every search starts (any non-NaN double) instead of near T_j, so that the
        tests can make the gallop and the bisection cross the doubles.

    Returns
    -------
    numpy.ndarray
        float64, shape (channels, 2^k − 1): row c holds, for j = lo, …, hi − 1, the least
        double d with fl(d/α_c) ≥ j (+inf where no finite d has it).
    """
    cdef const double[::1] a = _channel_vector(alpha, len(alpha), "alpha")
    if not 1 <= bits <= 8 or not np.all((np.asarray(a) > 0) & np.isfinite(a)):
        raise ValueError("bits must be in 1..8 and every alpha in (0, inf)")
    if start is not None and np.isnan(start):
        raise ValueError("start must not be NaN")
    cdef int m = (1 << bits) - 1
    rows = np.empty((a.shape[0], m), dtype=np.float64)
    cdef double[:, ::1] r = rows
    cdef Py_ssize_t c
    cdef int i
    for c in range(a.shape[0]):
        if start is None:
            _find_thresholds(&r[c, 0], a[c], m)
        else:
            for i in range(m):
                r[c, i] = _least_reaching(a[c], <double>(1 - ((m + 1) >> 1) + i), start)
    return rows


cdef inline bint _counting_pays(double alpha, int m, Py_ssize_t n,
                                int largest_bits) noexcept nogil:
    """Whether a run of n values is coded by comparisons: 0 < α < inf, m = 2^k − 1 with
    k ≤ largest_bits, and the run long enough to repay finding the m thresholds (measured)."""
    return 0.0 < alpha < INFINITY and m < (1 << largest_bits) and n >= COUNTED_RUN * (m + 1)


cdef inline double _selected(double d, const double* thresholds, const double* values,
                            int m) noexcept nogil:
    """values[n] for n = Σ_j [d ≥ T_j]: the last threshold d reaches names the value (the
    thresholds ascend, so those d reaches are a prefix); branch-free selects."""
    cdef double value = values[0]
    cdef int j
    for j in range(m):
        value = values[j + 1] if d >= thresholds[j] else value
    return value


cdef inline void _fq_counted(const real_t* src, Py_ssize_t stride, out_t* dst, Py_ssize_t n,
                             double alpha, double beta, double zero, int m) noexcept nogil:
    """`_fq_run` with counted codes; `m` is a constant after inlining. The thresholds and the
    m + 1 reconstructions α(q − z) + β (decode's formula) are found once per run."""
    cdef double t[MAX_THRESHOLDS]
    cdef double r[MAX_THRESHOLDS + 1]
    cdef double lowest = 1.0 - <double>((m + 1) >> 1)  # lo = 1 − 2^(k−1)
    cdef Py_ssize_t i
    cdef int j
    _find_thresholds(t, alpha, m)
    for j in range(m + 1):
        r[j] = alpha * (lowest + <double>j - zero) + beta
    if out_t is not uint16_t:
        if stride == sizeof(real_t):  # unit stride, float32/float64 out: gcc vectorises
            for i in range(n):
                dst[i] = <out_t>_selected(<double>src[i] - beta, t, r, m)
            return
    for i in range(n):
        _store(dst + i, _selected(<double>_at(src, stride, i) - beta, t, r, m))


cdef inline double _reached(double d, const double* thresholds, int m) noexcept nogil:
    """Σ_j [d ≥ T_j], the number of thresholds d reaches, exactly, as a double."""
    cdef double count = 0.0
    cdef int j
    for j in range(m):
        count += 1.0 if d >= thresholds[j] else 0.0
    return count


cdef inline void _encode_counted(const real_t* src, Py_ssize_t stride, code_t* dst,
                                 Py_ssize_t n, double alpha, double beta, int m) noexcept nogil:
    """`_encode_run` with counted codes q = lo + Σ_j [d ≥ T_j]; `m` is a constant after
    inlining."""
    cdef double t[MAX_THRESHOLDS]
    cdef double lowest = 1.0 - <double>((m + 1) >> 1)  # lo = 1 − 2^(k−1)
    cdef Py_ssize_t i
    _find_thresholds(t, alpha, m)
    if stride == sizeof(real_t):
        for i in range(n):
            dst[i] = <code_t>(lowest + _reached(<double>src[i] - beta, t, m))
    else:
        for i in range(n):
            dst[i] = <code_t>(lowest + _reached(<double>_at(src, stride, i) - beta, t, m))


cdef hot_void _fq_counted_run(const real_t* src, Py_ssize_t stride, out_t* dst, Py_ssize_t n,
                             double alpha, double beta, double zero, int m) noexcept nogil:
    """`_fq_counted` for m = 1, 3 or 7, each a loop of its own (out of `_fq_run`'s line, so
    that the short runs it still handles do not pay for these loops' frames)."""
    if m == 1:
        _fq_counted(src, stride, dst, n, alpha, beta, zero, 1)
    elif m == 3:
        _fq_counted(src, stride, dst, n, alpha, beta, zero, 3)
    else:
        _fq_counted(src, stride, dst, n, alpha, beta, zero, MAX_THRESHOLDS)


cdef hot_void _encode_counted_run(const real_t* src, Py_ssize_t stride, code_t* dst,
                                  Py_ssize_t n, double alpha, double beta,
                                  int m) noexcept nogil:
    """`_encode_counted` for m = 1 or 3, each a loop of its own (out of `_encode_run`'s line)."""
    if m == 1:
        _encode_counted(src, stride, dst, n, alpha, beta, 1)
    else:
        _encode_counted(src, stride, dst, n, alpha, beta, 3)


# =============================================================================================
# decode
# =============================================================================================
#
# Twin: ul2q_ref.kernels.reference.decode, i.e. ul2q_ref.codebook.decode.
#
# Obligation: ŵ = α·(q − z) + β bit for bit: (q − z) is exact, the product and the sum are
# rounded once each in float64 (no fused multiply-add: -ffp-contract=off), in that order, and
# the float64 result is rounded once to the output type. For float16 that single rounding is
# `_double_to_half` below (going through float32 would round twice).
#
# Tests: tests/test_kernels.py::test_every_kernel_equals_its_twin_bit_for_bit[decode] and,
# in tests/test_fast.py:
#   test_decode_and_fake_quantize_are_identical_for_the_same_code_book
#   test_float16_results_are_rounded_once_from_float64
#   test_other_output_dtypes_round_the_float64_result_once
#   test_unusual_layouts
#   test_small_and_task_boundary_sizes_per_tensor_in_every_layout
#   test_small_and_task_boundary_sizes_per_channel_in_every_layout

def decode(codes, alpha, beta, zero_point, axis, dtype):
    """The reconstruction ŵ = α·(q − z) + β in float64, rounded once to `dtype`.

    Parameters
    ----------
    codes : numpy.ndarray
        int8, int16 or int32 codes, any shape and layout (not modified).
    alpha, beta, axis
        As for :func:`encode`.
    zero_point : float
        z.
    dtype : numpy.dtype
        The float dtype of the result: float16, float32 or float64.

    Returns
    -------
    numpy.ndarray
        Bit for bit the result of ``ul2q_ref.kernels.reference.decode``.
    """
    _check_codes(codes)
    _check_axis(codes, axis)
    dtype = _output_dtype(dtype, _FLOATS, "float16, float32 or float64")
    return _elementwise(codes, alpha, beta, 0, float(zero_point), axis, dtype)


cdef inline code_t _code_at(const code_t* p, Py_ssize_t stride, Py_ssize_t i) noexcept nogil:
    return (<const code_t*>(<const char*>p + i * stride))[0]


cdef hot_void _decode_run(const code_t* src, Py_ssize_t stride, out_t* dst, Py_ssize_t n,
                          double alpha, double beta, double zero) noexcept nogil:
    """The reconstructions of a run of one channel."""
    cdef Py_ssize_t i
    if out_t is not uint16_t:
        if stride == sizeof(code_t):
            for i in range(n):
                dst[i] = <out_t>(alpha * (<double>src[i] - zero) + beta)
            return
    for i in range(n):
        _store(dst + i, alpha * (<double>_code_at(src, stride, i) - zero) + beta)


cdef hot_void _decode_vec(const code_t* src, Py_ssize_t stride, out_t* dst, Py_ssize_t n,
                          const double* alpha, const double* beta, double zero) noexcept nogil:
    """A run along the channel axis: α and β change with every element."""
    cdef Py_ssize_t i
    for i in range(n):
        _store(dst + i, alpha[i] * (<double>_code_at(src, stride, i) - zero) + beta[i])


cdef inline void _store(out_t* dst, double value) noexcept nogil:
    """Round the float64 `value` once to the output type."""
    if out_t is uint16_t:
        dst[0] = _double_to_half(value)
    else:
        dst[0] = <out_t>value


cdef inline uint16_t _double_to_half(double value) noexcept nogil:
    """IEEE binary16 bits of `value`, rounded once (to nearest, ties to even).

    Going through float32 would round twice; this works on the float64 bits directly, as
    NumPy's ``astype(np.float16)`` does.
    """
    cdef uint64_t bits, mantissa, rest, halfway, half
    cdef int exponent, shift
    memcpy(&bits, &value, 8)
    cdef uint16_t sign = <uint16_t>((bits >> 48) & 0x8000)
    bits &= 0x7FFFFFFFFFFFFFFFULL                      # all bits but the sign
    exponent = <int>(bits >> 52)                       # biased by 1023
    if exponent == 0x7FF:                              # inf or NaN
        return sign | 0x7C00 | (0x0200 if (bits & 0x000FFFFFFFFFFFFFULL) else 0)
    if exponent >= 1023 + 16:                          # |v| ≥ 2^16: beyond 65504, inf
        return sign | 0x7C00
    if exponent < 1023 - 25:                           # |v| < 2^-25: below half of 2^-24
        return sign
    mantissa = (bits & 0x000FFFFFFFFFFFFFULL) | (<uint64_t>1 << 52)  # the 52 fraction bits
    if exponent >= 1023 - 14:                          # a normal half: keep 11 bits
        shift = 42
    else:                                              # a subnormal half: units of 2^-24
        shift = 42 + (1023 - 14 - exponent)
    half = mantissa >> shift
    rest = mantissa & ((<uint64_t>1 << shift) - 1)
    halfway = <uint64_t>1 << (shift - 1)
    if rest > halfway or (rest == halfway and (half & 1)):
        half += 1                                      # may carry into the exponent: fine
    if exponent >= 1023 - 14:
        # (biased half exponent << 10) + the 10 fraction bits; a carry out of the fraction
        # (half == 2048) correctly bumps the exponent, up to 0x7C00 = inf
        return sign | <uint16_t>((<uint64_t>(exponent - 1023 + 15) << 10) + half - 1024)
    return sign | <uint16_t>half                       # 1024 here is the smallest normal


# =============================================================================================
# fake_quantize
# =============================================================================================
#
# Twin: ul2q_ref.kernels.reference.fake_quantize, i.e. codebook.decode(ul2q.encode(w)).
#
# Obligation: bit for bit decode(encode(w)) of the twin, in one pass and without storing the
# codes: each element's code is encode's `_code` (so the proof of the encode section holds),
# kept as an exact small integer in float64, and its reconstruction is decode's formula with
# decode's single rounding (`_store`). α = 0 gives α·(1 − z) + β, decode of code 1. Long runs
# of one channel at k ≤ 3 find each code by comparisons with exact thresholds instead of the
# division (the section "Thresholds", with its proof) and select among the 2^k reconstructions
# computed once per run by the same formula and rounding: the same bits.
#
# With `out`, the result is written into the caller's array (the PyTorch bridge reuses each
# layer's previous ŵ so): directly when the weights and `out` are C-contiguous (the visit order
# is then out's C order), else through a new array and a copy.
#
# (Also held by tests/test_fast_thresholds.py and, for `out`, tests/test_kernels_out.py.)
#
# Tests: tests/test_kernels.py::test_every_kernel_equals_its_twin_bit_for_bit[fake_quantize] and,
# in tests/test_fast.py:
#   test_decode_and_fake_quantize_are_identical_for_the_same_code_book
#   test_quantize_end_to_end_agrees_except_on_thresholds
#   test_extreme_steps_and_quotients
#   test_unusual_layouts
#   test_results_do_not_depend_on_the_thread_count
#   test_small_and_task_boundary_sizes_per_tensor_in_every_layout
#   test_small_and_task_boundary_sizes_per_channel_in_every_layout

def fake_quantize(weights, alpha, beta, bits, zero_point, axis, dtype, out=None):
    """The μL2Q reconstruction ŵ = α·(q − z) + β, without materialising the codes q.

    Parameters
    ----------
    weights, alpha, beta, bits, axis
        As for :func:`encode`.
    zero_point : float
        z (½ for μL2Q: ``ul2q_ref.ul2q.ZERO_POINT``).
    dtype : numpy.dtype
        The float dtype of the result: float16, float32 or float64.
    out : numpy.ndarray, optional
        A writeable array of the result's shape and dtype, not sharing memory with
        `weights`, to write the result into (and return). Reusing one saves the page faults
        of a fresh allocation on large tensors (the PyTorch bridge does, from step to step).

    Returns
    -------
    numpy.ndarray
        ``decode(encode(weights, alpha, beta, bits, axis, ...), alpha, beta, zero_point, axis,
        dtype)``, bit for bit, in one pass.
    """
    _check_weights(weights, axis)
    _check_bits(bits)
    dtype = _output_dtype(dtype, _FLOATS, "float16, float32 or float64")
    if out is None:
        return _elementwise(weights, alpha, beta, bits, float(zero_point), axis, dtype)
    _check_out(out, weights, dtype)
    return _elementwise(weights, alpha, beta, bits, float(zero_point), axis, dtype, out)


def _check_out(out, weights, dtype):
    if (not isinstance(out, np.ndarray) or out.dtype != dtype or out.shape != weights.shape
            or not out.flags.writeable):
        raise ValueError(f"out must be a writeable {dtype} array of shape {weights.shape}")
    if np.may_share_memory(out, weights):
        raise ValueError("out must not share memory with weights")


cdef hot_void _fq_run(const real_t* src, Py_ssize_t stride, out_t* dst, Py_ssize_t n,
                      double alpha, double beta, double low, double high,
                      double zero) noexcept nogil:
    """The reconstructions of a run of one channel, the codes never stored (long runs of
    small k: by comparisons)."""
    cdef int m = <int>(high - low)  # 2^k − 1
    cdef Py_ssize_t i
    cdef double value
    if alpha == 0.0:
        value = alpha * (1.0 - zero) + beta
        for i in range(n):
            _store(dst + i, value)
        return
    if _counting_pays(alpha, m, n, THRESHOLD_BITS):  # section Thresholds
        _fq_counted_run(src, stride, dst, n, alpha, beta, zero, m)
        return
    if out_t is not uint16_t:
        if stride == sizeof(real_t):  # unit stride, float32/float64 out: gcc vectorises
            for i in range(n):
                dst[i] = <out_t>(alpha * (_code((<double>src[i] - beta) / alpha,
                                                low, high) - zero) + beta)
            return
    for i in range(n):
        _store(dst + i, alpha * (_code((<double>_at(src, stride, i) - beta) / alpha,
                                       low, high) - zero) + beta)


cdef hot_void _fq_vec(const real_t* src, Py_ssize_t stride, out_t* dst, Py_ssize_t n,
                      const double* alpha, const double* beta, double low, double high,
                      double zero) noexcept nogil:
    """A run along the channel axis: α and β change with every element."""
    cdef Py_ssize_t i
    cdef double q
    for i in range(n):
        q = _code((<double>_at(src, stride, i) - beta[i]) / _safe(alpha[i]), low, high)
        q = 1.0 if alpha[i] == 0.0 else q
        _store(dst + i, alpha[i] * (q - zero) + beta[i])
