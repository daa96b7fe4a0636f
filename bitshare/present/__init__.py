"""UI-free text for GPUs and leases, shared by the CLI and the console."""
