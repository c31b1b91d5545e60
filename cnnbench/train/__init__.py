"""Training one run, or several as one vectorized ensemble (ensemble.py): the engine (seeded
model and data order, the step, evaluation, the divergence guard), its checkpoints, precision
and memory layout, the probes (time, memory, FLOPs, gradient norms) and the stop signals that
end a run cleanly."""
