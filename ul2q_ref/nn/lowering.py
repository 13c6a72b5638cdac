"""Lowering a convolution to one matrix product (im2col) and its adjoint.

:class:`~ul2q_ref.nn.layers.Conv2d` computes ``Y = cols @ W2^T`` with :func:`im2col`'s patch
matrix and propagates ``dL/dx`` with :func:`col2im_gemm`; the pools reuse the padding and
offset helpers. Nothing here knows about layers or quantisation.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["col2im_gemm", "conv_output_size", "crop_to_nchw", "im2col", "kernel_offsets",
           "pad_nhwc"]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """``floor((size + 2*padding - kernel) / stride) + 1`` (Caffe conv / PyTorch rule)."""
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise ValueError(f"kernel {kernel} too large for input {size} with padding {padding}")
    return out


def pad_nhwc(x: np.ndarray, ph: int, pw: int, value: float = 0.0) -> np.ndarray:
    """Pad the H and W axes of an ``(N, H, W, C)`` array on both sides."""
    if ph == 0 and pw == 0:
        return x
    n, h, w, c = x.shape
    xp = np.full((n, h + 2 * ph, w + 2 * pw, c), value, dtype=x.dtype)
    xp[:, ph : ph + h, pw : pw + w, :] = x
    return xp


def kernel_offsets(
    kernel: tuple[int, int], stride: tuple[int, int], ho: int, wo: int
) -> list[tuple[int, int, slice, slice]]:
    """For every kernel offset ``(u, v)`` the H/W slices ``u + s*i``, ``v + s*j`` it touches."""
    (kh, kw), (sh, sw) = kernel, stride
    return [
        (u, v, slice(u, u + (ho - 1) * sh + 1, sh), slice(v, v + (wo - 1) * sw + 1, sw))
        for u in range(kh)
        for v in range(kw)
    ]


def _pad_nchw(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    xp[:, :, ph : ph + h, pw : pw + w] = x
    return xp


def im2col(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> tuple[np.ndarray, int, int]:
    """Unfold ``x`` (N, C, H, W) into the patch matrix of a convolution GEMM.

    Returns ``(cols, Ho, Wo)``; ``cols`` is the ``(N*Ho*Wo, kh*kw*C)`` matrix
    whose row ``(n, i, j)`` is the zero-padded patch
    ``x[n, :, s*i:s*i+kh, s*j:s*j+kw]`` flattened in ``(u, v, c)`` order
    (channel fastest)::

        cols[(n, i, j), (u, v, c)] = x_pad[n, c, s*i + u, s*j + v]

    With ``W2 = W.transpose(0, 2, 3, 1).reshape(O, -1)`` the product
    ``cols @ W2.T`` is the convolution output as an ``(N*Ho*Wo, O)`` (NHWC) matrix.

    The same matrix is built in whichever memory order makes the copy cheap
    (BLAS accepts both):

    * channels-last input (what :class:`Conv2d` and the pools output): rows are
      read from a ``sliding_window_view`` of the NHWC image -- one reshape copy,
      C-ordered result;
    * NCHW-contiguous input (e.g. the data batch): one strided-slice copy per
      kernel offset ``(u, v)`` into a ``(kh*kw*C, N*Ho*Wo)`` buffer, returned
      transposed (Fortran-ordered result).
    """
    kh, kw = kernel
    sh, sw = stride
    n, c, h, w = x.shape
    ho = conv_output_size(h, kh, sh, padding[0])
    wo = conv_output_size(w, kw, sw, padding[1])
    if x.flags.c_contiguous:
        xp = _pad_nchw(x, *padding)
        cols_t = np.empty((kh, kw, c, n, ho, wo), dtype=x.dtype)
        for u, v, si, sj in kernel_offsets(kernel, stride, ho, wo):
            cols_t[u, v] = xp[:, :, si, sj].transpose(1, 0, 2, 3)
        return cols_t.reshape(kh * kw * c, n * ho * wo).T, ho, wo
    xp = pad_nhwc(x.transpose(0, 2, 3, 1), *padding)  # (N, Hp, Wp, C)
    win = sliding_window_view(xp, (kh, kw), axis=(1, 2))  # (N, Hp-kh+1, Wp-kw+1, C, kh, kw)
    win = win[:, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw]  # (N, Ho, Wo, C, kh, kw)
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, kh * kw * c)
    return cols, ho, wo


def col2im_gemm(
    g: np.ndarray,
    w2: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> np.ndarray:
    """The adjoint of :func:`im2col` applied to ``g @ w2``, without materialising that product.

    This is the input gradient of a convolution: ``g`` is ``dL/dY`` as an
    ``(N*Ho*Wo, O)`` matrix and ``w2`` the ``(O, kh*kw*C)`` weight matrix.
    For each kernel offset ``t = (u, v)`` the block ``g @ w2[:, t*C:(t+1)*C]``
    (shape ``(N*Ho*Wo, C)``, still in cache) is added to the slab of the
    padded input it came from.  Same result as scattering the full product
    back patch by patch (the adjoint of :func:`im2col`), but with ``kh*kw``
    small GEMMs instead of one huge one it is several times faster for large
    layers (memory traffic).
    """
    n, c, h, w = x_shape
    kh, kw = kernel
    ho = conv_output_size(h, kh, stride[0], padding[0])
    wo = conv_output_size(w, kw, stride[1], padding[1])
    # (kh*kw, O, C): contiguous per-offset weight blocks
    w3 = np.ascontiguousarray(w2.reshape(w2.shape[0], kh * kw, c).transpose(1, 0, 2))
    dxp = np.zeros((n, h + 2 * padding[0], w + 2 * padding[1], c), dtype=np.result_type(g, w2))
    for u, v, si, sj in kernel_offsets(kernel, stride, ho, wo):
        dxp[:, si, sj, :] += (g @ w3[u * kw + v]).reshape(n, ho, wo, c)
    return crop_to_nchw(dxp, x_shape, padding)


def crop_to_nchw(
    dxp: np.ndarray, x_shape: tuple[int, int, int, int], padding: tuple[int, int]
) -> np.ndarray:
    """Remove the padding of a channels-last ``(N, Hp, Wp, C)`` array; return an NCHW view."""
    _, _, h, w = x_shape
    ph, pw = padding
    return dxp[:, ph : ph + h, pw : pw + w, :].transpose(0, 3, 1, 2)
