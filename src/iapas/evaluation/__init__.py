"""The `iapas evaluate` harness: datasets in, predictions (cached), metrics and tables out.

    from iapas.evaluation.harness import run_evaluation
"""
