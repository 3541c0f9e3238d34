"""Experiments built from many training runs: MAD proxy suites, alpha sweeps, programming mixtures."""
