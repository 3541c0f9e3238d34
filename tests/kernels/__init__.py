"""Tests of hybridc/kernels/."""
