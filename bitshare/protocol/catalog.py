"""The CuPy surface that runs remotely: one list for remote CuPy (which offers it) and the
worker (which executes it), so the two cannot disagree. docs/remote.md shows it as a table.

Names are as in CuPy (``linalg.norm``, ``fft.rfft``, ``random.normal``). Anything not listed
raises ``NotImplementedError`` naming it, on the client, before anything is sent.
"""

from __future__ import annotations

# Elementwise functions: shape by broadcasting, dtype by NumPy's type rules (as CuPy's).
UNARY_UFUNCS = (
    "negative positive absolute abs fabs sign exp exp2 expm1 log log2 log10 log1p sqrt cbrt square "
    "reciprocal sin cos tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh deg2rad rad2deg "
    "degrees radians floor ceil trunc rint conj conjugate isnan isinf isfinite signbit logical_not invert "
    "bitwise_not"
).split()
BINARY_UFUNCS = (
    "add subtract multiply divide true_divide floor_divide power float_power mod remainder fmod "
    "maximum minimum fmax fmin arctan2 hypot copysign ldexp logaddexp logaddexp2 equal not_equal less "
    "less_equal greater greater_equal logical_and logical_or logical_xor bitwise_and bitwise_or bitwise_xor "
    "left_shift right_shift heaviside nextafter gcd lcm"
).split()

# Reductions: reduce over ``axis`` (all axes by default), keepdims as NumPy.
REDUCTIONS = (
    "sum prod mean std var max min amax amin argmax argmin all any nansum nanprod nanmean nanstd nanvar "
    "nanmax nanmin nanargmax nanargmin count_nonzero median nanmedian ptp"
).split()

# Other functions of the top-level module; their result's shape is taken from the worker.
FUNCTIONS = (
    "array asarray ascontiguousarray copy empty zeros ones full empty_like zeros_like ones_like full_like "
    "arange linspace logspace eye identity tri diag diagonal diagflat tril triu meshgrid "
    "reshape ravel transpose swapaxes moveaxis squeeze expand_dims broadcast_to atleast_1d atleast_2d "
    "atleast_3d flip fliplr flipud roll rot90 tile repeat concatenate stack vstack hstack dstack "
    "column_stack split array_split where clip around round cumsum cumprod diff sort argsort "
    "searchsorted nonzero flatnonzero argwhere unique take take_along_axis put_along_axis "
    "matmul dot vdot inner outer tensordot einsum kron trace cross "
    "isclose allclose array_equal average histogram bincount interp convolve correlate real imag angle "
    "sinc i0 nan_to_num fix"
).split()

LINALG = "norm inv pinv solve lstsq det slogdet svd qr cholesky eigh eigvalsh matrix_power matrix_rank".split()
FFT = (
    "fft ifft rfft irfft fft2 ifft2 rfft2 irfft2 fftn ifftn rfftn irfftn hfft ihfft fftfreq rfftfreq fftshift ifftshift"
).split()
RANDOM = (
    "seed rand randn random random_sample uniform normal standard_normal randint permutation "
    "choice exponential poisson binomial beta gamma"
).split()

# Methods of ndarray executed on the worker (operators are mapped to the functions above).
METHODS = (
    "astype copy reshape ravel flatten transpose swapaxes squeeze repeat take diagonal trace conj "
    "sum prod mean std var max min argmax argmin all any cumsum cumprod clip round dot nonzero "
    "argsort sort fill view __iadd__ __isub__ __imul__ __itruediv__ __ifloordiv__ __imod__ __ipow__ "
    "__iand__ __ior__ __ixor__ __ilshift__ __irshift__ __imatmul__"
).split()

# Functions that return several arrays, and how many (None: it depends on the arguments).
MULTIPLE_RESULTS: dict[str, int | None] = {
    "linalg.svd": None,  # 3, or 1 with compute_uv=False
    "linalg.qr": 2,
    "linalg.eigh": 2,
    "linalg.slogdet": 2,
    "linalg.lstsq": 4,
    "meshgrid": None,
    "nonzero": None,
    "split": None,
    "array_split": None,
    "unique": None,
    "histogram": 2,
}

KERNEL_KINDS = ("RawKernel", "ElementwiseKernel", "ReductionKernel")

QUALIFIED = frozenset(
    [*UNARY_UFUNCS, *BINARY_UFUNCS, *REDUCTIONS, *FUNCTIONS]
    + [f"linalg.{name}" for name in LINALG]
    + [f"fft.{name}" for name in FFT]
    + [f"random.{name}" for name in RANDOM]
)


def covered(name: str) -> bool:
    """``name`` (qualified like ``linalg.norm``) is part of the remote surface."""
    return name in QUALIFIED
