"""A study: the ablation catalogue, the keyed stage graph, Ray Tune trials, the MLflow runs,
sweeps and the results table."""
