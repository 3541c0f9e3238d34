"""Tests of hybridc/io/."""
