"""The experiment pipeline: prepare, train, forward, decode, score, report."""
