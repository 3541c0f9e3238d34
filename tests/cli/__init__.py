"""Tests of hybridc/cli/."""
