"""The `iapas` command line: a thin layer over iapas.pipeline and iapas.evaluation."""
