"""Rendering for people: the report's rich tables, markdown, CSV and JSON, the listings the CLI
prints, and the matplotlib figures. Numbers come from `cnnbench.analysis`."""
