"""Side tools beside the suite runs: profiling a model's speed and memory, loss-landscape
trajectories, and gradient norms by depth."""
