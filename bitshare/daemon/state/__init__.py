"""The daemon's state: the manager (the only door to the ledger), the SQLite store and its records."""
