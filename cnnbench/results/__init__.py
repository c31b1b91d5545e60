"""Results on disk: the run-row schema and statuses, the store (one atomic file per run) and
where a suite stands (done / failed / interrupted / pending)."""
