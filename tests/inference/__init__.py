"""Tests of hybridc/inference/."""
