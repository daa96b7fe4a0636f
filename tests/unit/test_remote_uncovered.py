"""Names remote CuPy does not cover behave as missing names, and still say what is missing."""

from __future__ import annotations

import numpy as np
import pytest

from bitshare.remote import cupy
from bitshare.remote.cupy.errors import Uncovered


@pytest.mark.parametrize(("where", "name"), [(cupy, "polyfit"), (cupy.linalg, "no_such"), (cupy.fft, "no_such")])
def test_an_uncovered_name_is_missing_to_feature_detection(where: object, name: str) -> None:
    assert not hasattr(where, name)
    assert getattr(where, name, None) is None
    with pytest.raises(AttributeError) as caught:
        getattr(where, name)
    assert isinstance(caught.value, NotImplementedError) and isinstance(caught.value, Uncovered)
    assert f".{name} is not supported by bitshare's remote CuPy" in str(caught.value)


def test_the_array_apis_dtype_names_are_numpys() -> None:
    assert cupy.bool is np.bool
    assert cupy.isdtype(cupy.float32, "real floating") and not cupy.isdtype(cupy.int8, "real floating")
