"""The selective scan: the chunked and fused backends compute what transformers' CPU scan computes.

Shapes: b batch, d channels, T tokens, N state size. Differences are measured relative to the
reference's scale (``scaled_diff``): float32 carries ~7 significant digits, and outputs and
gradients here reach magnitudes in the hundreds.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers.models.mamba.modeling_mamba import mamba_selective_scan

from hybridc.kernels import library as kernels
from hybridc.kernels.fused_scan import FusedScan
from hybridc.kernels.scan import chunked_scan, plan_chunks, selective_scan

CPU_BACKENDS = ["chunked", "fused"]
TOL = 1e-5  # float32, relative to the reference's largest magnitude (absolute below 1)


def make_inputs(
    b: int,
    d: int,
    T: int,
    N: int,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    delta_scale: float = 1.0,
    delta_shift: float = 0.0,
    a_scale: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Random scan inputs (leaves requiring grad). ``delta`` = shift + scale * N(0, 1)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    values = {
        "u": randn(b, d, T),
        "delta": delta_shift + delta_scale * randn(b, d, T),
        "A": -a_scale * torch.rand(d, N, generator=g, dtype=torch.float64),
        "B": randn(b, N, T),
        "C": randn(b, N, T),
        "D": randn(d),
        "z": randn(b, d, T),
        "delta_bias": randn(d),
    }
    return {k: v.to(dtype).requires_grad_() for k, v in values.items()}


def scan_and_grads(
    inputs: dict[str, torch.Tensor], backend: str, *, softplus: bool = True, seed: int = 1, **kwargs
) -> dict[str, torch.Tensor]:
    """Output "y" and the gradient of <y, random> with respect to every input."""
    y = selective_scan(**inputs, delta_softplus=softplus, backend=backend, **kwargs)
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(y.dtype)
    grads = torch.autograd.grad(y, list(inputs.values()), gy)
    return {"y": y, **dict(zip(inputs, grads))}


def scaled_diff(a: torch.Tensor, ref: torch.Tensor) -> float:
    """max |a - ref| / max(1, max |ref|)."""
    assert a.shape == ref.shape and a.dtype == ref.dtype
    assert torch.isfinite(a).all() and torch.isfinite(ref).all()
    return ((a - ref).abs().max() / ref.abs().max().clamp(min=1)).item()


def assert_match(inputs: dict[str, torch.Tensor], tol: float = TOL, backend: str = "chunked", **kwargs) -> None:
    ref = scan_and_grads(inputs, "reference", **kwargs)
    out = scan_and_grads(inputs, backend, **kwargs)
    for name in ref:
        assert scaled_diff(out[name], ref[name]) <= tol, name


def loop_float64(u, delta, A, B, C, D, z, delta_bias) -> torch.Tensor:
    """The recurrence written out in float64, straight from the math (an independent oracle)."""
    u, delta, A, B, C, D, z, delta_bias = (t.double() for t in (u, delta, A, B, C, D, z, delta_bias))
    dt = F.softplus(delta + delta_bias[:, None])
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float64)
    ys = []
    for t in range(u.shape[2]):
        h = torch.exp(dt[:, :, t, None] * A) * h + (dt[:, :, t] * u[:, :, t])[:, :, None] * B[:, None, :, t]
        ys.append((h * C[:, None, :, t]).sum(-1))
    return (torch.stack(ys, -1) + D[:, None] * u) * F.silu(z)


# ---- the reference backend is transformers' scan --------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_reference_is_transformers_scan_bit_for_bit(dtype: torch.dtype) -> None:
    inputs = make_inputs(2, 5, 19, 4, seed=3, dtype=dtype)
    inputs["A"] = inputs["A"].detach().float().requires_grad_()  # as the mixer passes it
    ours = scan_and_grads(inputs, "reference")
    y = mamba_selective_scan(*list(inputs.values())[:5], D=inputs["D"], z=inputs["z"],
                             delta_bias=inputs["delta_bias"], delta_softplus=True)
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(y.dtype)
    theirs = {"y": y, **dict(zip(inputs, torch.autograd.grad(y, list(inputs.values()), gy)))}
    for name in theirs:
        assert torch.equal(ours[name], theirs[name]), name


# ---- chunked == reference --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "T, chunk_size, max_tile_elements",
    [
        (1, None, 1 << 23),  # a single token
        (37, None, 1 << 23),  # one tile, T not a multiple of the chunk
        (37, 5, 1 << 23),
        (37, 37, 1 << 23),  # one chunk
        (37, 64, 1 << 23),  # chunk longer than the sequence
        (37, 1, 1 << 23),  # chunks of one token
        (64, 8, 2000),  # two tiles of four chunks
        (64, 8, 480),  # tiles of one chunk: a plain sequential scan
        (64, 3, 6000),  # two tiles of 11 chunks, T not a multiple of the chunk
        (37, 5, 900),  # tiles of 3, 3 and 2 chunks: the last tile partial
    ],
)
def test_chunked_matches_reference(T: int, chunk_size: int | None, max_tile_elements: int) -> None:
    inputs = make_inputs(2, 6, T, 5, seed=T)
    assert_match(inputs, chunk_size=chunk_size, max_tile_elements=max_tile_elements)


@pytest.mark.parametrize(
    "delta_scale, delta_shift, a_scale",
    [
        (20.0, 30.0, 50.0),  # delta up to ~50 (after softplus) with A down to -50: decays underflow to 0
        (1e-3, -14.0, 1.0),  # tiny delta (softplus(-14) ~ 1e-6): decays ~1, states accumulate
        (30.0, 0.0, 50.0),  # a mix of both within one sequence
    ],
)
def test_chunked_exact_on_extreme_decays(delta_scale: float, delta_shift: float, a_scale: float) -> None:
    inputs = make_inputs(2, 8, 53, 6, seed=7, delta_scale=delta_scale, delta_shift=delta_shift, a_scale=a_scale)
    assert_match(inputs, chunk_size=8)
    assert_match(inputs, chunk_size=8, max_tile_elements=2000)
    assert_match(inputs, backend="fused")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_without_softplus_bias_d_or_z(backend: str) -> None:
    inputs = make_inputs(2, 4, 29, 3, seed=11)
    inputs["delta"] = inputs["delta"].detach().abs().requires_grad_()
    bare = {k: inputs[k] for k in ("u", "delta", "A", "B", "C")}
    assert_match(bare, softplus=False, chunk_size=6, backend=backend)


# ---- fused == reference ------------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1, 15, 16, 17, 37, 64, 100])  # around the kernel's 16-token chunks
@pytest.mark.parametrize("d", [1, 63, 64, 65, 130])  # around its 64-channel groups
def test_fused_matches_reference(T: int, d: int) -> None:
    inputs = make_inputs(2, d, T, 5, seed=T * 1000 + d, delta_scale=3.0)
    assert_match(inputs, backend="fused")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b=st.integers(1, 3), d=st.integers(1, 140), N=st.integers(1, 20), T=st.integers(1, 70),
       seed=st.integers(0, 2**16))
def test_fused_matches_reference_on_any_shape(b: int, d: int, N: int, T: int, seed: int) -> None:
    inputs = make_inputs(b, d, T, N, seed=seed, delta_scale=3.0)
    assert_match(inputs, backend="fused")


def test_fused_results_do_not_depend_on_the_thread_count() -> None:
    """Bit for bit: every output and gradient at 1 and at 2 threads (sums across channel groups are
    added in a fixed order)."""
    inputs = make_inputs(2, 200, 40, 6, seed=12)
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(scan_and_grads(inputs, "fused"))
    finally:
        torch.set_num_threads(before)
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name]), name


def test_fused_kernel_builds_where_there_is_a_compiler() -> None:
    """CI and the README's machines have a C compiler: there the kernel must build, not silently fall back."""
    assert shutil.which("cc") or shutil.which("gcc")
    assert kernels.available(), kernels.unavailable_reason()
    assert kernels.unavailable_reason() is None


def test_without_a_working_compiler_auto_falls_back_to_chunked(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HYBRIDC_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")
    library = kernels._Library()
    with pytest.warns(RuntimeWarning, match="slower PyTorch scan"):
        assert library.get() is None and "compiling mamba_kernels.c" in library.reason
    assert list(tmp_path.iterdir()) == []  # no half-written library left behind
    monkeypatch.setattr(kernels, "_LIBRARY", library)
    inputs = {k: v.detach() for k, v in make_inputs(1, 3, 17, 2).items()}
    auto = selective_scan(**inputs, delta_softplus=True)
    assert torch.equal(auto, selective_scan(**inputs, delta_softplus=True, backend="chunked"))
    with pytest.raises(RuntimeError, match="not available here: compiling"):
        selective_scan(**inputs, backend="fused")


def test_the_kernel_can_be_turned_off(monkeypatch) -> None:
    monkeypatch.setenv("HYBRIDC_FUSED_SCAN", "0")
    assert not kernels.available() and "HYBRIDC_FUSED_SCAN=0" in kernels.unavailable_reason()
    inputs = {k: v.detach() for k, v in make_inputs(1, 3, 17, 2).items()}
    assert torch.equal(selective_scan(**inputs, delta_softplus=True),
                       selective_scan(**inputs, delta_softplus=True, backend="chunked"))


def test_the_built_kernel_is_kept_and_reused(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HYBRIDC_KERNEL_CACHE", str(tmp_path))
    first = kernels.build()
    assert first.parent == tmp_path and first.exists()
    stamp = first.stat().st_mtime_ns
    assert kernels.build() == first and first.stat().st_mtime_ns == stamp
    # the library and its digest, no temporary files left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name, first.name + ".sha256"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    b=st.integers(1, 3),
    d=st.integers(1, 6),
    N=st.integers(1, 6),
    T=st.integers(1, 48),
    chunk_size=st.one_of(st.none(), st.integers(1, 50)),
    max_tile_elements=st.sampled_from([1, 300, 5000, 1 << 23]),
    seed=st.integers(0, 2**16),
)
def test_chunked_matches_reference_on_any_shape(
    b: int, d: int, N: int, T: int, chunk_size: int | None, max_tile_elements: int, seed: int
) -> None:
    inputs = make_inputs(b, d, T, N, seed=seed, delta_scale=3.0)
    assert_match(inputs, chunk_size=chunk_size, max_tile_elements=max_tile_elements)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_float64_matches_the_math(backend: str) -> None:
    """In float64 the chunked and fused scans agree with a float64 loop to rounding (the reference
    itself casts B and u to float32, so it can't serve as the float64 oracle)."""
    inputs = make_inputs(2, 5, 45, 4, seed=5, dtype=torch.float64, delta_scale=4.0, a_scale=10.0)
    y = selective_scan(**inputs, delta_softplus=True, backend=backend, chunk_size=7)
    expected = loop_float64(**inputs)
    assert (y - expected).abs().max().item() <= 1e-12 * expected.abs().max().item()


def test_chunked_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(0)
    b, d, T, N = 2, 3, 11, 2
    shapes = [(b, d, T), (b, d, T), (b, N, T), (b, N, T)]
    u, dt, B, C = (torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes)
    dt = dt.abs() + 0.1
    A = -torch.rand(d, N, generator=g, dtype=torch.float64)
    args = [t.requires_grad_() for t in (u, dt, A, B, C)]
    assert torch.autograd.gradcheck(lambda *a: chunked_scan(*a, chunk_size=3, max_tile_elements=30), args)


def test_fused_gradcheck_float64() -> None:
    """Across chunk (16 tokens) and channel-group (64) boundaries, with an initial state."""
    g = torch.Generator().manual_seed(0)
    b, d, T, N = 2, 66, 20, 2
    shapes = [(b, d, T), (b, d, T), (b, N, T), (b, N, T)]
    u, dt, B, C = (torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes)
    dt = dt.abs() + 0.1
    A = -torch.rand(d, N, generator=g, dtype=torch.float64)
    h0 = torch.randn(b, d, N, generator=g, dtype=torch.float64)
    args = [t.requires_grad_() for t in (u, dt, A, B, C, h0)]
    assert torch.autograd.gradcheck(lambda *a: FusedScan.apply(*a, None, None, None, False, True)[0], args)


def test_fused_gradcheck_float64_with_the_mixer_steps() -> None:
    """softplus(delta + bias), the D skip and the silu(z) gate inside the kernel; z read in place as a
    transposed slice of a wider token-major tensor (as the mixer's gate is). Across a channel-group boundary
    (64); chunk boundaries are covered by the float32 comparisons with the reference above."""
    g = torch.Generator().manual_seed(1)
    b, d, T, N = 2, 66, 5, 2
    u, delta = (torch.randn(b, d, T, generator=g, dtype=torch.float64) for _ in range(2))
    B, C = (torch.randn(b, N, T, generator=g, dtype=torch.float64) for _ in range(2))
    A = -torch.rand(d, N, generator=g, dtype=torch.float64)
    h0 = torch.randn(b, d, N, generator=g, dtype=torch.float64)
    D, bias = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    wide = torch.randn(b, T, d + 3, generator=g, dtype=torch.float64)
    args = [t.requires_grad_() for t in (u, delta, A, B, C, h0, D, wide, bias)]

    def run(u, delta, A, B, C, h0, D, wide, bias):
        return FusedScan.apply(u, delta, A, B, C, h0, D, wide[..., 3:].transpose(1, 2), bias, True, True)[0]

    assert torch.autograd.gradcheck(run, args)


# ---- dtypes, layouts, backends ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_dtypes_follow_the_reference(dtype: torch.dtype, backend: str) -> None:
    """Same output dtype as the reference; values close (the reference rounds its state to the
    input dtype at every token, the chunked scan keeps it in float32)."""
    inputs = make_inputs(2, 4, 21, 3, seed=2, dtype=dtype)
    inputs["A"] = inputs["A"].detach().float().requires_grad_()
    inputs["D"] = inputs["D"].detach().float().requires_grad_()
    ref = selective_scan(**inputs, delta_softplus=True, backend="reference")
    out = selective_scan(**inputs, delta_softplus=True, backend=backend)
    assert out.dtype == ref.dtype
    exact = loop_float64(**inputs)
    assert (out.double() - exact).abs().max() <= (ref.double() - exact).abs().max() + 1e-3


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_layout_does_not_matter(backend: str) -> None:
    """Token-major views (what the Mamba mixer passes) give the same result as contiguous inputs
    (to rounding: elementwise kernels may take vectorised or scalar paths by layout)."""
    inputs = make_inputs(2, 6, 33, 4, seed=4)
    token_major = {k: v.detach().transpose(1, 2).contiguous().transpose(1, 2) if v.dim() == 3 else v.detach()
                   for k, v in inputs.items()}
    a = selective_scan(**{k: v.detach() for k, v in inputs.items()}, delta_softplus=True, backend=backend)
    b = selective_scan(**token_major, delta_softplus=True, backend=backend)
    assert scaled_diff(b, a) <= 1e-6


def test_auto_is_fused_on_cpu() -> None:
    inputs = {k: v.detach() for k, v in make_inputs(1, 3, 17, 2).items()}
    auto = selective_scan(**inputs, delta_softplus=True)
    assert torch.equal(auto, selective_scan(**inputs, delta_softplus=True, backend="fused"))
    assert not torch.equal(auto, selective_scan(**inputs, delta_softplus=True, backend="chunked"))


def test_cuda_backend_needs_mamba_ssm_and_cuda() -> None:
    inputs = {k: v.detach() for k, v in make_inputs(1, 3, 5, 2).items()}
    with pytest.raises(RuntimeError, match="cuda"):
        selective_scan(**inputs, backend="cuda")


def test_bad_arguments_rejected() -> None:
    inputs = {k: v.detach() for k, v in make_inputs(1, 3, 5, 2).items()}
    with pytest.raises(ValueError, match="backend"):
        selective_scan(**inputs, backend="fast")
    with pytest.raises(ValueError, match="B must have shape"):
        selective_scan(**{**inputs, "B": inputs["B"][:, :1]})
    with pytest.raises(ValueError, match="chunk_size"):
        selective_scan(**inputs, chunk_size=0)


# ---- structure: causality, memory ------------------------------------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_causal_exactly(backend: str) -> None:
    """Changing token t changes no output before t, bit for bit (within a chunk too)."""
    inputs = {k: v.detach() for k, v in make_inputs(2, 4, 40, 3, seed=9).items()}
    y = selective_scan(**inputs, delta_softplus=True, chunk_size=8, backend=backend)
    for t in (0, 13, 39):
        changed = dict(inputs)
        for name in ("u", "delta", "B", "C", "z"):
            changed[name] = inputs[name].clone()
            changed[name][..., t] += 1.0
        y2 = selective_scan(**changed, delta_softplus=True, chunk_size=8, backend=backend)
        assert torch.equal(y[..., :t], y2[..., :t])
        assert not torch.equal(y[..., t:], y2[..., t:])


def saved_elements(fn) -> int:
    """Elements of the tensors autograd saves while ``fn()`` runs."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def test_chunked_saves_one_state_per_chunk_not_per_token() -> None:
    """The reference saves (b, d, T, N) tensors; the chunked scan saves per-token inputs plus one
    (b, d, N) state per chunk: memory linear in T, with the state cost divided by the chunk."""
    b, d, T, N, L = 2, 8, 64, 16, 8
    inputs = make_inputs(b, d, T, N)
    per_token = b * T * (4 * d + 2 * N)  # inputs and softplus/epilogue tensors, order of
    chunked = saved_elements(lambda: selective_scan(**inputs, delta_softplus=True, backend="chunked", chunk_size=L))
    reference = saved_elements(lambda: selective_scan(**inputs, delta_softplus=True, backend="reference"))
    assert chunked <= 3 * per_token + 2 * b * d * N * (T // L) + 2 * d * N
    assert reference >= b * d * T * N
    assert chunked * 4 < reference


def test_fused_saves_its_inputs_and_one_state_per_16_tokens() -> None:
    b, d, T, N = 2, 8, 64, 16
    inputs = make_inputs(b, d, T, N)
    per_token = b * T * (4 * d + 2 * N)
    fused = saved_elements(lambda: selective_scan(**inputs, delta_softplus=True, backend="fused"))
    assert fused <= 3 * per_token + b * d * N * (T // 16) + 2 * d * N
    with torch.no_grad():  # nothing is kept for a backward that will not come
        assert saved_elements(lambda: selective_scan(**inputs, delta_softplus=True, backend="fused")) == 0


def test_empty_sequence() -> None:
    inputs = {k: v.detach() for k, v in make_inputs(2, 3, 0, 2).items()}
    assert selective_scan(**inputs, delta_softplus=True).shape == (2, 3, 0)


def test_plan_chunks() -> None:
    assert plan_chunks(1, 100, None, 1 << 23) == (1, 1)
    L, G = plan_chunks(1024, 8 * 256 * 16, None, 1 << 23)
    assert L * G * 8 * 256 * 16 <= 1 << 23 and L > 1 and G > 1
    assert plan_chunks(10, 100, 4, 1) == (4, 1)  # at least one chunk per tile
    assert plan_chunks(10, 100, 40, 1 << 23) == (10, 1)  # chunk capped at T


# ---- the state after the last token (a cached prefill starts decoding from it) -------------------


def test_reference_last_state_is_transformers() -> None:
    inputs = {k: v.detach() for k, v in make_inputs(2, 5, 19, 4, seed=4).items()}
    _, ours = selective_scan(**inputs, delta_softplus=True, backend="reference", return_last_state=True)
    _, theirs = mamba_selective_scan(*list(inputs.values())[:5], D=inputs["D"], z=inputs["z"],
                                     delta_bias=inputs["delta_bias"], delta_softplus=True, return_last_state=True)
    assert torch.equal(ours, theirs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    b=st.integers(1, 3), d=st.integers(1, 6), N=st.integers(1, 5), T=st.integers(1, 60),
    chunk_size=st.one_of(st.none(), st.integers(1, 50)),
    max_tile_elements=st.sampled_from([1, 300, 5000, 1 << 23]),
    seed=st.integers(0, 2**16),
)
def test_chunked_and_fused_last_state_match_reference(
    b: int, d: int, N: int, T: int, chunk_size: int | None, max_tile_elements: int, seed: int
) -> None:
    inputs = {k: v.detach() for k, v in make_inputs(b, d, T, N, seed=seed, delta_scale=3.0).items()}
    y_ref, ref = selective_scan(**inputs, delta_softplus=True, backend="reference", return_last_state=True)
    y, last = selective_scan(**inputs, delta_softplus=True, backend="chunked", chunk_size=chunk_size,
                             max_tile_elements=max_tile_elements, return_last_state=True)
    assert last.shape == (b, d, N) and last.dtype == torch.float32
    assert scaled_diff(last, ref) <= TOL
    assert torch.equal(y, selective_scan(**inputs, delta_softplus=True, backend="chunked", chunk_size=chunk_size,
                                         max_tile_elements=max_tile_elements))
    y_f, last_f = selective_scan(**inputs, delta_softplus=True, backend="fused", return_last_state=True)
    assert last_f.shape == (b, d, N) and last_f.dtype == torch.float32
    assert scaled_diff(last_f, ref) <= TOL and scaled_diff(y_f, y_ref) <= TOL


def test_last_state_carries_no_gradient_and_the_output_still_does() -> None:
    inputs = make_inputs(1, 3, 10, 2, seed=2)
    y, last = selective_scan(**inputs, delta_softplus=True, return_last_state=True)
    assert not last.requires_grad
    (y.sum()).backward()
    assert inputs["u"].grad is not None


def test_empty_sequence_last_state_is_zero() -> None:
    inputs = {k: v.detach() for k, v in make_inputs(2, 3, 0, 2).items()}
    for backend in ("chunked", "fused", "reference"):
        y, last = selective_scan(**inputs, delta_softplus=True, backend=backend, return_last_state=True)
        assert y.shape == (2, 3, 0) and torch.equal(last, torch.zeros(2, 3, 2))


# ---- an initial state (several tokens after a generation cache's state) ----------------------------


def pieces_of(inputs: dict[str, torch.Tensor], cut: int) -> tuple[dict, dict]:
    """The scan inputs of tokens [0, cut) and [cut, T)."""
    timed = {"u", "delta", "B", "C", "z"}
    first = {k: (v[..., :cut] if k in timed else v) for k, v in inputs.items()}
    second = {k: (v[..., cut:] if k in timed else v) for k, v in inputs.items()}
    return first, second


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    b=st.integers(1, 3), d=st.integers(1, 6), N=st.integers(1, 5), T=st.integers(2, 60), data=st.data(),
    chunk_size=st.one_of(st.none(), st.integers(1, 50)),
    max_tile_elements=st.sampled_from([1, 300, 5000, 1 << 23]),
    seed=st.integers(0, 2**16),
)
def test_a_scan_in_two_pieces_equals_the_whole(
    b: int, d: int, N: int, T: int, data, chunk_size: int | None, max_tile_elements: int, seed: int
) -> None:
    cut = data.draw(st.integers(1, T - 1))
    inputs = {k: v.detach() for k, v in make_inputs(b, d, T, N, seed=seed, delta_scale=3.0).items()}
    options = dict(delta_softplus=True, return_last_state=True, chunk_size=chunk_size,
                   max_tile_elements=max_tile_elements)
    y, last = selective_scan(**inputs, backend="reference", **options)
    first, second = pieces_of(inputs, cut)
    for backend in ("reference", "chunked", "fused"):
        y1, h = selective_scan(**first, backend=backend, **options)
        y2, end = selective_scan(**second, backend=backend, initial_state=h, **options)
        assert scaled_diff(torch.cat([y1, y2], -1), y) <= TOL, backend
        assert scaled_diff(end, last) <= TOL, backend


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_initial_state_gradients_match_the_reference(backend: str) -> None:
    inputs = make_inputs(2, 4, 23, 3, seed=9, delta_scale=2.0)
    inputs["initial_state"] = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(2)).requires_grad_()
    ref = scan_and_grads(inputs, "reference")
    out = scan_and_grads(inputs, backend, chunk_size=5, max_tile_elements=300)
    for name in ref:
        assert scaled_diff(out[name], ref[name]) <= TOL, name
    assert ref["initial_state"].abs().max() > 0


def test_initial_state_is_checked_and_not_for_mamba_ssm() -> None:
    inputs = {k: v.detach() for k, v in make_inputs(1, 3, 5, 2).items()}
    with pytest.raises(ValueError, match="initial_state must have shape"):
        selective_scan(**inputs, initial_state=torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="takes no initial_state"):
        selective_scan(**inputs, backend="cuda", initial_state=torch.zeros(1, 3, 2))


# ---- inputs built to underflow; the scan's thread count ------------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "delta_scale, delta_shift, a_scale",
    [
        (1.0, 0.0, 1.0),
        (20.0, 30.0, 50.0),  # decays underflow to 0
        (1.0, 4.0, 22.0),  # dt A around -88..-100: decays and states pass through float32's subnormals
    ],
)
def test_the_scan_matches_the_reference_within_1e_6_on_underflowing_inputs(threads: int, delta_scale: float,
                                                                           delta_shift: float, a_scale: float,
                                                                           backend: str) -> None:
    inputs = make_inputs(2, 200, 45, 6, seed=3, delta_scale=delta_scale, delta_shift=delta_shift, a_scale=a_scale)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ref = scan_and_grads(inputs, "reference")
        out = scan_and_grads(inputs, backend, chunk_size=5, max_tile_elements=200 * 6 * 2 * 20)
    finally:
        torch.set_num_threads(before)
    for name in ref:
        assert scaled_diff(out[name], ref[name]) <= 1e-6, name


def test_inputs_built_to_underflow_do_underflow() -> None:
    """The subnormal case above really takes the decays through float32's subnormal range."""
    inputs = make_inputs(2, 200, 45, 6, seed=3, delta_shift=4.0, a_scale=22.0)
    dt = F.softplus(inputs["delta"] + inputs["delta_bias"][:, None]).detach()
    decay = torch.exp(dt[:, :, :, None] * inputs["A"].detach()[None, :, None, :])  # (b, d, T, N)
    tiny = torch.finfo(torch.float32).tiny
    assert ((decay > 0) & (decay < tiny)).any() and (decay == 0).any() and (decay > 0.5).any()
