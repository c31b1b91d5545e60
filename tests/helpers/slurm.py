"""Whether a Slurm cluster answers here (the single-node one CI starts), for the tests that
submit real job arrays and skip without one."""

from __future__ import annotations

import shutil
import subprocess


def cluster_up() -> bool:
    if not all(shutil.which(tool) for tool in ("sbatch", "squeue", "scancel", "srun", "sinfo")):
        return False
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return states.returncode == 0 and any(s.strip() in ("idle", "mixed", "allocated")
                                          for s in states.stdout.splitlines())
