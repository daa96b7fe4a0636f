"""Holding a lease for a command: launcher, keeper, process supervision, environment, and the agent."""
