"""The console's commands in the command palette (ctrl+p), by name: one for each key binding
named here, running that binding's action, and offered only when the action may be taken."""

from __future__ import annotations

# binding id -> (the command's name, what it does)
PALETTE: dict[str, tuple[str, str]] = {
    "view.gpus": ("GPUs view", "each GPU with its partitions, use and history"),
    "view.leases": ("Leases view", "the leases, one a row"),
    "view.queue": ("Queue view", "the requests waiting for room"),
    "lease.details": ("Lease details", "the selected lease's processes and events"),
    "lease.resize": ("Resize lease", "give the selected lease a new size"),
    "lease.revoke": ("Revoke lease", "end the selected lease now, with a reason"),
    "queue.priority": ("Priority of queued request", "move the selected request in the queue"),
    "gpu.drain": ("Drain GPU", "grant nothing more on the focused GPU"),
    "gpu.undrain": ("Undrain GPU", "grant on the focused GPU again"),
    "table.filter": ("Filter rows", "show only the rows that contain a text"),
    "table.sort": ("Sort rows", "sort the table by its next column"),
    "app.help": ("Console keys", "what each key does"),
}
