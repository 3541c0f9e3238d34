"""Property-based testing of spec-to-model compilation, for users (``pip install 'hybridc[testing]'``).

- ``hybridc.testing.strategies``: hypothesis strategies of specs (valid ones over your families or model
  directories, variations of your spec, invalid ones with the errors they must give, fuzz input);
- ``hybridc.testing.invariants``: one function per promise of hybridc (parameters, one-hot equivalence,
  discretization, save and load, cached decoding, ``fmt``, ``diff``, counts), usable in any test;
- ``hybridc.testing.conformance``: the checks every built-in family passes, for a plugin's family (a function,
  a pytest class, a pytest plugin);
- ``hybridc.testing.specs`` and ``hybridc.testing.tiny``: specs as data (write, parse, resolve) and tiny models of
  any family (configs, checkpoints, stand-ins).

``hybridc check SPEC`` runs the invariants on variations of a spec from the command line. Importing this package
imports neither hypothesis nor torch; the strategies need hypothesis, the invariants torch.
"""
