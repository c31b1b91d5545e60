"""Results on disk: the run-row schema and its column types (schema, tables), the folder's files
(files), the store (each writer's parts, written atomically), reading any version (loading, v1),
compaction, upgrade, and where a suite stands (done / failed / interrupted / pending)."""
