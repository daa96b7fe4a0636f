"""Write docs/screenshots/console-*.svg: each view of bitshare-admin, from the recorded data the
snapshot tests use (run from anywhere: python scripts/console_screenshots.py)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bitshare.tui.app import AdminApp  # noqa: E402
from tests.tui.recorded import NOW, sources  # noqa: E402
from tests.tui.test_snapshots import loaded  # noqa: E402

VIEWS = {"gpus": [], "leases": ["l"], "queue": ["w"], "lease-detail": ["l", "enter"]}


async def shoot(name: str, keys: list[str], out: Path) -> None:
    app = AdminApp(sources(), clock=lambda: NOW)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot)
        await pilot.press(*keys)
        await pilot.pause(0.5)
        app.save_screenshot(str(out / f"console-{name}.svg"))


def main() -> None:
    out = ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    for name, keys in VIEWS.items():
        asyncio.run(shoot(name, keys, out))
        print(out / f"console-{name}.svg")


if __name__ == "__main__":
    main()
