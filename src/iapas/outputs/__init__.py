"""Everything a run leaves for people and tools: per-image files, overlays, plots, reports."""
