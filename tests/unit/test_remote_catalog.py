"""The remote CuPy's catalog: the functions with client-side rules exist in NumPy, and what is
forwarded and what never is are documented."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bitshare.protocol import catalog, wire


def test_every_covered_name_exists_in_numpy() -> None:
    missing = []
    for name in catalog.QUALIFIED:
        target = np
        for part in name.split("."):
            target = getattr(target, part, None)
        if target is None:
            missing.append(name)
    assert missing == []
    assert [m for m in catalog.METHODS if not hasattr(np.ndarray, m)] == []


def test_the_forwarded_modules_and_what_is_never_forwarded_are_documented() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "remote.md").read_text()
    for prefix in catalog.SUBMODULES:
        assert (
            f"`{catalog.module_name(prefix)}`" in text or f"`{catalog.module_name(prefix).rpartition('.')[2]}`" in text
        )
    never = text[text.index("**Never forwarded**") : text.index("**Missing names behave")]
    named = re.findall(r"`([A-Za-z_.]+)\*?`", never)
    assert len(named) > 15
    for name in named:
        if name != "catalog.denied":
            assert catalog.denied(name) or catalog.denied(f"ndarray.{name}"), f"{name} is documented as never forwarded"


def test_values_round_trip_and_bad_ones_are_refused() -> None:
    value = (1, 2.5, True, 1 + 2j, "s", None, Ellipsis, slice(1, None, 2), [np.float32(3)], np.arange(3))
    back = wire.decode(wire.encode(value, lambda _v: None), lambda _h: None)
    assert back[:8] == value[:8]
    assert isinstance(back[8][0], np.float32)  # a NumPy scalar keeps its dtype
    assert back[9].tolist() == [0, 1, 2]
    for bad in ("|O", ">f8", "V8", "nonsense"):
        try:
            wire.check_dtype(bad)
        except wire.WireError:
            continue
        raise AssertionError(f"{bad} accepted")
