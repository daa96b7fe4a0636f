"""python -m bitshare.tui: the same as bitshare-admin."""

from .main import run

run()
