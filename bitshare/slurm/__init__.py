"""The Slurm node integration: prolog, task prolog and epilog that make a job's GPUs a lease."""
