"""The fresh process of ``invariants.Loader``: loads saved hybrids and writes their logits, one request a line.

Each request on stdin is a JSON object ``{"model": DIR, "inputs": FILE, "out": FILE}``: the inputs file holds
``NAME.ids`` (B, T) and optionally ``NAME.mask`` (B, T) tensors; the answer (``out``) holds ``NAME`` logits for
each. One JSON line on stdout answers each request: ``{"ok": true}`` or ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from ..models.hybrid import HybridModel

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            model = HybridModel.from_pretrained(request["model"]).eval()
            tensors = load_file(request["inputs"])
            out = {}
            with torch.no_grad():
                for key in tensors:
                    if key.endswith(".ids"):
                        name = key[: -len(".ids")]
                        mask = tensors.get(f"{name}.mask")
                        out[name] = model(tensors[key], attention_mask=mask).logits.contiguous()
            save_file(out, request["out"])
            reply = {"ok": True}
        except Exception as err:  # noqa: BLE001 - reported to the caller, who fails the invariant
            reply = {"error": f"{type(err).__name__}: {err}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
