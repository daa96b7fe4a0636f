"""The console's pure parts: what a table shows (filter, sort, widths) and a GPU panel's lines."""

from __future__ import annotations

import pytest

from bitshare.present.gpu_lines import BAR, gpu_lines, memory_bar
from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.tui.table_rows import MAX_CELL, TableRows, sort_key

ROWS = {
    "a": ("alice", "python serve.py", "4 GiB", "2m"),
    "b": ("bob", "pytest -k gpu", "512 MiB", "50s"),
    "c": ("carol", "R --vanilla", "20 GiB", "1.5h"),
}


def table() -> TableRows:
    rows = TableRows(("OWNER", "COMMAND", "PARTITION", "AGE"))
    rows.set_rows(ROWS)
    return rows


def test_rows_keep_the_order_given_until_sorted() -> None:
    rows = table()
    assert rows.order == ["a", "b", "c"]
    assert [rows.next_sort() for _ in range(4)] == ["OWNER", "COMMAND", "PARTITION", "AGE"]
    assert rows.order == ["b", "a", "c"]  # by age: 50s, 2m, 1.5h
    rows.next_sort()  # back to the first column
    assert rows.order == ["a", "b", "c"]


def test_sizes_ages_and_numbers_sort_by_value_before_text() -> None:
    values = ["20 GiB", "-", "512 MiB", "4 GiB", "abc"]
    assert sorted(values, key=sort_key) == ["512 MiB", "4 GiB", "20 GiB", "-", "abc"]
    assert sorted(["1.5h", "50s", "2m", "90s"], key=sort_key) == ["50s", "90s", "2m", "1.5h"]
    assert sorted(["10", "9", "37%", "100"], key=sort_key) == ["9", "10", "37%", "100"]


def test_the_filter_matches_any_cell_without_case_and_keeps_the_sort() -> None:
    rows = table()
    rows.next_sort()
    rows.next_sort()  # by command
    rows.set_query("PY")
    assert rows.order == ["b", "a"]  # pytest before python
    rows.set_rows({**ROWS, "d": ("dave", "python train.py", "1 GiB", "5s")})
    assert rows.order == ["b", "a", "d"]
    rows.set_query("")
    assert rows.order == ["c", "b", "a", "d"]


def test_columns_are_as_wide_as_their_widest_cell_in_terminal_cells() -> None:
    rows = TableRows(("OWNER", "COMMAND"))
    rows.set_rows({"a": ("日本", "x" * 100), "b": ("bo", "ls")})
    assert rows.widths == [5, MAX_CELL]  # the header is wider than "日本" (4 cells)
    line = rows.line("a")
    assert line.endswith("…" + " ")
    assert rows.line("b").index("ls") == rows.header().index("COMMAND")


def test_a_row_with_the_wrong_number_of_cells_is_refused_and_changes_nothing() -> None:
    rows = table()
    with pytest.raises(ValueError, match="3 cells for 4 columns"):
        rows.set_rows({"x": ("a", "b", "c")})
    assert rows.order == ["a", "b", "c"]


def gpu(**fields: object) -> pb.Gpu:
    return pb.Gpu(index=0, name="H100", total_mib=81920, capacity_mib=81408, reserved_mib=512, **fields)


def test_the_memory_bar_gives_each_partition_its_share() -> None:
    parts = [pb.Partition(lease_id="a", memory_mib=40960), pb.Partition(lease_id="b", memory_mib=20480)]
    bar = memory_bar(gpu(partitions=parts))
    assert [len(text) for text, _ in bar] == [24, 12, BAR - 24 - 12 - 0, 0]  # 512 MiB rounds to no cell
    assert sum(len(text) for text, _ in bar) == BAR
    assert bar[0][1] != bar[1][1]  # neighbours in different colours


def test_a_panel_says_simulated_names_each_partition_and_flags_memory_outside_leases() -> None:
    lease = pb.Lease(id="a", enforcement="agent")
    lease.usage.used_mib = 1000
    lease.usage.sampled_at.GetCurrentTime()
    shown = gpu(
        simulated=True,
        partitions=[pb.Partition(lease_id="a", owner="user:alice", memory_mib=40960)],
        unleased=[pb.ProcessUsage(pid=42, name="python", user="mallory", used_mib=2048)],
    )
    text = ["".join(run for run, _ in line) for line in gpu_lines(shown, {"a": lease}, [10, 50])]
    assert text[0].startswith("[SIMULATED (CPU-backed)] 80 GiB total")
    assert "a  user:alice  40 GiB  used 1000 MiB  SM 0%  [agent]" in text[4]
    assert text[5] == "  ! pid 42 python (mallory) 2 GiB: NOT UNDER A LEASE"
    assert len(text) == 6
