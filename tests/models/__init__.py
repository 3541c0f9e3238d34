"""Tests of hybridc/models/."""
