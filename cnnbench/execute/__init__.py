"""Executing a suite's runs: one after another in this process (or grouped into vectorized
ensembles), in N local worker processes, or as Slurm job arrays; how progress is shown; which
device and environment the runs get."""
