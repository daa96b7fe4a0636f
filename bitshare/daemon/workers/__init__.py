"""Remote GPU access, daemon side: a worker process per remote lease, and the relay to it."""
