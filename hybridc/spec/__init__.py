"""The spec front end (torch-free): load, validate, canonicalize, resolve configs."""

from .frontend import ParsedSpec, ResolvedSpec, load_spec, lock_data, parse_file, parse_string, resolve
from .model import Spec

__all__ = ["ParsedSpec", "ResolvedSpec", "Spec", "load_spec", "lock_data", "parse_file", "parse_string", "resolve"]
