"""What remote CuPy and the worker know of the CuPy surface, so the two cannot disagree.

The surface itself is the worker's library: every function of CuPy (NumPy and SciPy on a
simulated GPU) in the modules of ``SUBMODULES`` that is not ``denied`` (daemon/workers/surface.py
lists them, with their signatures, for the client). The lists below are the functions for which
the client knows its own rules (the result's shape and dtype, how many arrays it returns), so they
need no answer from the worker before their results are used.

Names are as in CuPy (``linalg.norm``, ``fft.rfft``, ``cupyx.scipy.ndimage.zoom``).
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

# (svd, qr, eigh, slogdet and lstsq are the worker's alone: the form of their results, a plain or a
# named tuple, is the library's own, which the worker tells.)
LINALG = "norm inv pinv solve det cholesky eigvalsh matrix_power matrix_rank".split()
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
    "sum prod mean std var max min argmax argmin all any cumsum cumprod clip round dot "
    "argsort sort fill view __iadd__ __isub__ __imul__ __itruediv__ __ifloordiv__ __imod__ __ipow__ "
    "__iand__ __ior__ __ixor__ __ilshift__ __irshift__ __imatmul__"
).split()

# Functions that return several arrays, and how many (None: it depends on the arguments).
MULTIPLE_RESULTS: dict[str, int | None] = {
    "meshgrid": None,
    "nonzero": None,
    "split": None,
    "array_split": None,
    "unique": None,
    "histogram": 2,
}

KERNEL_KINDS = ("RawKernel", "ElementwiseKernel", "ReductionKernel")

# The modules whose functions are forwarded by name: prefix -> (CuPy's module, NumPy's or SciPy's
# on a simulated GPU). The prefix is the name remote CuPy gives the module ("" is ``cupy``).
SUBMODULES: dict[str, tuple[str, str]] = {
    "": ("cupy", "numpy"),
    "linalg": ("cupy.linalg", "numpy.linalg"),
    "fft": ("cupy.fft", "numpy.fft"),
    "random": ("cupy.random", "numpy.random"),
    "cupyx.scipy.ndimage": ("cupyx.scipy.ndimage", "scipy.ndimage"),
    "cupyx.scipy.signal": ("cupyx.scipy.signal", "scipy.signal"),
    "cupyx.scipy.special": ("cupyx.scipy.special", "scipy.special"),
}

# Methods of the library's array type are forwarded by name too, listed under this prefix.
METHODS_PREFIX = "ndarray"

# Functions of those modules that are never forwarded, though the library has them: they read or
# write the server's files, change the worker's global state, print on the server, take Python
# callables (which never cross the wire), make objects that are not arrays, or run on the client.
DENIED_WORDS = ("load", "save", "file", "txt", "memmap", "regex", "printoptions", "dlpack", "pinned")
DENIED = frozenset(
    (
        "fromstring frombuffer fromiter fromfunction frompyfunc vectorize apply_along_axis apply_over_axes "
        "piecewise seterr geterr seterrcall geterrcall setbufsize getbufsize show_config show_runtime test info "
        "get_include who lookfor source deprecate deprecate_with_doc add_docstring add_newdoc add_newdoc_ufunc "
        "safe_eval disp set_string_function byte_bounds asnumpy get_array_module fuse memoize clear_memo "
        "get_default_memory_pool is_available busday_count busday_offset is_busday datetime_as_string "
        "datetime_data nested_iters bmat mask_indices asmatrix "
        "random.default_rng random.get_state random.set_state random.get_random_state "
        "random.set_random_state random.reset_states random.bit_generator random.get_bit_generator "
        "random.set_bit_generator random.bytes "
        "ndarray.dump ndarray.dumps ndarray.tobytes ndarray.tostring ndarray.setflags ndarray.getfield "
        "ndarray.setfield ndarray.to_device ndarray.get ndarray.set"
    ).split()
)


def denied(qualified: str) -> bool:
    """``qualified`` (``linalg.norm``) is never forwarded, whatever the worker's library has."""
    name = qualified.rpartition(".")[2]
    return (
        name.startswith("_")
        or qualified in DENIED
        or name in DENIED
        or any(word in name.lower() for word in DENIED_WORDS)
    )


def split(qualified: str) -> tuple[str, str]:
    """``linalg.norm`` -> ("linalg", "norm"); ``sum`` -> ("", "sum")."""
    prefix, _, name = qualified.rpartition(".")
    return prefix, name


def module_name(prefix: str) -> str:
    """The module a program imports for ``prefix``: ``cupy``, ``cupy.linalg``, ``cupyx.scipy.signal``."""
    if not prefix:
        return "cupy"
    return prefix if prefix.startswith("cupyx") else f"cupy.{prefix}"


QUALIFIED = frozenset(
    [*UNARY_UFUNCS, *BINARY_UFUNCS, *REDUCTIONS, *FUNCTIONS]
    + [f"linalg.{name}" for name in LINALG]
    + [f"fft.{name}" for name in FFT]
    + [f"random.{name}" for name in RANDOM]
)


def has_rules(name: str) -> bool:
    """``name`` (qualified like ``linalg.norm``) is one the client has its own rules for."""
    return name in QUALIFIED
