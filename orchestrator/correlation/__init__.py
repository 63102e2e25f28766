"""The noise-correlation prior: the exact statistics, their Ray Data job, its outputs and figures,
and the blind regions derived from a map."""
