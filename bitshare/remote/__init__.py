"""Remote GPU access only: remote CuPy (cupy/), and the session, sync and bulk transfer it will share with a
remote torch."""
