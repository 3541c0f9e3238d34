"""How the fuzz tests draw (their strategies are the public ones, ``hybridc.testing.strategies``)."""

from __future__ import annotations

import os

# The fuzz tests draw the same cases every run (a CI result can be reproduced) unless HYBRIDC_FUZZ_FRESH=1 asks
# for new ones (to hunt for failures).
FUZZ_DERANDOMIZED = os.environ.get("HYBRIDC_FUZZ_FRESH") != "1"
