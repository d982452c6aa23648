"""The `iapas evaluate` harness: datasets in, predictions (cached), metrics and tables out."""
