"""Helpers the tests import: a real daemon, the CLI as a subprocess, waiting on conditions, holders."""
