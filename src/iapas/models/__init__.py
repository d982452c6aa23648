"""Model loading through transformers: load once per process, clear ModelLoadError, weight resolution."""
