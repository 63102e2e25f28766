"""One training stage: the fit loop, the stage store, the one evaluation path, metrics.

Plain PyTorch and files: nothing here imports Ray or MLflow (a test checks it).
"""
