"""Training one run: the engine (seeded model and data order, the step, evaluation, the
divergence guard), its checkpoints, precision and memory layout, the probes (time, memory,
FLOPs, gradient norms) and the stop signals that end a run cleanly."""
