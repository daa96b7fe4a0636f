"""A share of a GPU as people write it, read by one function for the CLI's -p and the console's
resize box alike (bitshare.units)."""

from __future__ import annotations

import pytest

from bitshare.cli.options import parse_fraction as cli_fraction
from bitshare.errors import UsageError
from bitshare.units import NotAFraction, parse_fraction, parse_fraction_or_size


@pytest.mark.parametrize(("text", "value"), [("0.25", 0.25), ("1", 1.0), ("25%", 0.25), (" 0.5 ", 0.5), ("1e-1", 0.1)])
def test_a_fraction_is_a_number_or_a_percentage_in_zero_to_one(text: str, value: float) -> None:
    assert parse_fraction(text) == value
    assert cli_fraction(text) == value
    assert parse_fraction_or_size(text) == (value, None)


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("0", "0"),
        ("1.5", "1.5"),
        ("nan", "nan"),
        ("-0.1", "-0.1"),
        ("200%", "200%"),
        ("abc", "'abc'"),
        ("", "''"),
        ("50%%", "'50%%'"),
    ],
)
def test_anything_else_is_refused_and_quoted_back(text: str, written: str) -> None:
    with pytest.raises(NotAFraction) as refused:
        parse_fraction(text)
    assert refused.value.written == written
    assert str(refused.value) == f"a fraction of a GPU is in (0, 1], got {written}"


def test_the_cli_names_its_flag_in_the_same_refusal() -> None:
    with pytest.raises(UsageError, match=r"^-p must be a fraction of a GPU in \(0, 1\], got 1.5$"):
        cli_fraction("1.5")
    with pytest.raises(UsageError, match=r"^-p must be a fraction of a GPU in \(0, 1\], got 'half'$"):
        cli_fraction("half")


def test_the_console_reads_a_fraction_as_the_cli_does_and_a_size_by_its_unit() -> None:
    assert parse_fraction_or_size("8GiB") == (None, 8192)
    with pytest.raises(ValueError, match="a fraction of a GPU is in \\(0, 1\\], got 0"):
        parse_fraction_or_size("0")
    with pytest.raises(ValueError, match="3 is more than a whole GPU"):
        parse_fraction_or_size("3")
