"""Holding leases to their partitions: MPS, the measured watchdog, and ending processes."""
