"""Roofline of the nonlinear reproduction: FLOP per step, the machine's GEMM peak, achieved GFLOP/s.

``python benchmarks/scripts/roofline.py [--steps 20] [--only fig2b fig2c] [--results results/full]``

For each nonlinear experiment at full size (the networks, stack sizes B, batch sizes and step
counts its code uses), in one run with nothing else on the machine:

- the forward + backward FLOP of one training step of one model (``torch.utils.flop_counter``);
- the float32 GEMM peak of this machine, measured in the same run (one 1024² ``torch.matmul``
  on all torch threads);
- the measured time of a :class:`linvae.nn.BatchedTrainer` step of the experiment's stack
  (Adam, clipping, the per-model batches and noise included), its GFLOP/s and the ratio of that
  time to the FLOP bound (FLOP ÷ peak);
- the distinct trainings (models counted once across experiments, as the model store trains
  them) and the experiment's FLOP bound in seconds;
- the **GEMM floor**: the GEMMs and convolutions of one recorded training step (every ``mm``,
  ``addmm``, ``bmm``, ``baddbmm``, ``convolution`` and ``convolution_backward`` call, with its
  shapes and strides, forward and backward), replayed alone on fresh operands of the same layout.
  It is what the step would cost with every other operation free, at the rate these shapes reach
  on this machine (often well below the 1024² peak: 128-row GEMMs whose operands come from memory).

Evaluation (the per-example KL and the importance-sampled log-likelihood) is not in these
figures: it is a forward pass only, measured with the experiments' own wall time.

``--results DIR`` (a full run's output, e.g. ``results/full``; with a bare ``--only``, nothing else
is timed) adds the measured side: per
experiment found there, its ``meta.json`` ``cost.seconds_all_sessions`` (training + evaluation,
every session) beside the FLOP bound of the trainings it did itself (each record of
``training.per_training``: models trained × steps × FLOP per step of its network ÷ the peak of this
run), and their ratio; models it loaded from the store count where they were trained.
"""
import argparse
import time

import numpy as np

#: experiment -> (architecture label, model factory, data kind, B per stack, batch, steps, distinct models)
#: distinct models: the experiment's models minus those an earlier experiment of the run order trained
#: (fig3b: 15 of 75 are fig2c's; app_recon: all 3 are fig2b's; theory_vs_nonlinear: 39 of 45)
#: cases measured only when named with --only (outside the issue's total)
OPTIONAL = ("app_cnn_mhvae reduced",)


def _cases():
    from linvae.nn import TanhMHVAE, TwoBranchCVAE, VAE, authors_vae

    cvae16 = lambda: TwoBranchCVAE(arch="relu", hidden=16)  # noqa: E731
    mhvae = lambda: TanhMHVAE()  # noqa: E731
    return {
        "fig2b": ("two-branch ReLU CVAE h=16", cvae16, "cvae", 21, 128, 46_912, 21),
        "fig2c": ("tanh MHVAE 784-256-16", mhvae, "x", 10, 128, 46_912, 30),
        "fig3a relu": ("two-branch ReLU CVAE h=100", lambda: TwoBranchCVAE(arch="relu", hidden=100), "cvae", 3, 128,
                       4_704, 9),
        "fig3a cnn": ("two-branch CNN CVAE", lambda: TwoBranchCVAE(arch="cnn", hidden=16), "cvae", 3, 128, 4_704, 9),
        "fig3b": ("tanh MHVAE 784-256-16", mhvae, "x", 5, 128, 46_912, 60),
        "table2": ("ReLU VAE 784-256-16", lambda: authors_vae(), "x", 3, 128, 46_912, 12),  # 4 arms × 3 seeds
        "table4": ("two-branch ReLU CVAE 128/128 h=128",
                   lambda: TwoBranchCVAE(128, 128, 128, arch="relu", hidden=128), "pairs", 3, 16, 63_000, 15),
        "fig5": ("ResNet-18 VAE", lambda: VAE(784, 16, arch="resnet18"), "x", 1, 64, 10_080, 6),  # to convergence: ≤ 160 epochs
        "theory_vs_nonlinear": ("CVAE h=16 / tanh MHVAE", cvae16, "cvae", 10, 128, 46_912, 6),
        "app_recon": ("two-branch ReLU CVAE h=16", cvae16, "cvae", 3, 128, 46_912, 0),
        # without a GPU: the reduced run (β₁ = 1 row and β₂ = 1 column, 9 cells × 3 seeds, one model per record);
        # not one of the nine experiments, so select it with --only
        "app_cnn_mhvae reduced": ("CNN MHVAE", lambda: TanhMHVAE(arch="cnn"), "x", 1, 128, 46_904, 27),
    }


def gemm_peak(torch, n=1024, reps=10, rounds=5):
    """The float32 GEMM peak: the best of ``rounds`` timings of ``reps`` 1024² ``torch.matmul``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, time.perf_counter() - began)
    return 2 * n**3 * reps / best


#: the aten calls the GEMM floor replays
_GEMM_OPS = ("mm", "addmm", "bmm", "baddbmm", "convolution", "convolution_backward")


def record_gemms(torch, run):
    """The GEMM and convolution calls ``run()`` makes: a list of (op, args, kwargs) with each tensor
    argument replaced by its (shape, stride, dtype)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    ops = {getattr(torch.ops.aten, name).default for name in _GEMM_OPS}
    calls = []

    def spec(a):
        return ("tensor", tuple(a.shape), tuple(a.stride()), a.dtype) if isinstance(a, torch.Tensor) else a

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in ops:
                calls.append((func, [spec(a) for a in args], {k: spec(v) for k, v in kwargs.items()}))
            return func(*args, **kwargs)

    with Recorder():
        run()
    return calls


def gemm_floor(torch, calls, reps=5):
    """Seconds of the recorded calls replayed alone (best of ``reps``), each on its own fresh
    operands of the recorded shapes and strides."""
    def make(a):
        if isinstance(a, tuple) and a and a[0] == "tensor":
            return torch.empty_strided(a[1], a[2], dtype=a[3]).normal_()
        return a

    operands = [(f, [make(a) for a in args], {k: make(v) for k, v in kw.items()}) for f, args, kw in calls]
    best = float("inf")
    with torch.no_grad():
        for _ in range(reps):
            began = time.perf_counter()
            for f, args, kw in operands:
                f(*args, **kw)
            best = min(best, time.perf_counter() - began)
    return best


def _data(kind, n, rng):
    if kind == "pairs":
        return (rng.random((n, 128)).astype(np.float32), rng.random((n, 128)).astype(np.float32))
    X = rng.random((n, 784)).astype(np.float32)
    return (X[:, :196].copy(), X[:, 196:].copy()) if kind == "cvae" else (X,)


def step_flop(torch, model, batch):
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(*[torch.as_tensor(b) for b in batch])["loss"].backward()
    return counter.get_total_flops()


#: the network of each ``training.per_training`` record of an experiment's meta.json, in record
#: order (a name of :func:`_cases` or :func:`_record_networks`); one name: every record
RECORDS = {
    "fig2b": "fig2b", "fig2c": "fig2c", "fig3b": "fig3b", "table2": "table2", "table4": "table4",
    "fig5": "fig5", "app_recon": "app_recon", "app_cnn_mhvae": "app_cnn_mhvae reduced",
    "fig3a": ("fig3a linear", "fig3a relu", "fig3a cnn") * 3,             # per digit 1, 9, 7: one training per arm
    "theory_vs_nonlinear": ("theory_vs_nonlinear",) * 6 + ("theory mhvae",) * 3,  # CVAE β, η_dec; MHVAE β₂ × 3 seeds
}


def _record_networks():
    """Networks of meta.json records that the roofline table has no row of: name → (factory, data kind, batch)."""
    from linvae.nn import TanhMHVAE, TwoBranchCVAE

    return {"fig3a linear": (lambda: TwoBranchCVAE(arch="linear", hidden=16), "cvae", 128),
            "theory mhvae": (lambda: TanhMHVAE(), "x", 128)}


def regenerated(torch, results, peak, rng):
    """Rows ``(experiment, cost seconds, FLOP bound seconds, models trained, models loaded)`` of
    the full-size experiments in the directory ``results`` (see the module docstring)."""
    import json
    import os

    cases, extra = _cases(), _record_networks()
    flop_of = {}

    def flop(name):
        if name not in flop_of:
            make, kind, batch = extra[name] if name in extra else (cases[name][1], cases[name][2], cases[name][4])
            flop_of[name] = step_flop(torch, make(), [d[:batch] for d in _data(kind, batch, rng)])
        return flop_of[name]

    rows = []
    for exp, names in RECORDS.items():
        path = os.path.join(results, exp, "meta.json")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("quick") or "cost" not in meta:
            continue
        records = (meta.get("training") or {}).get("per_training", [])
        records = [r for r in records if not r.get("evaluation_only")]
        names = [names] * len(records) if isinstance(names, str) else list(names)
        if len(names) != len(records):
            raise ValueError(f"{path}: {len(records)} training records, the roofline knows {len(names)}")
        per_epoch = meta["steps"] / meta["epochs"]       # records from before they kept their steps: one plan
        bound = sum(flop(n) * r.get("trained", r["models"]) * r.get("steps", r["epochs"] * per_epoch)
                    for n, r in zip(names, records))
        rows.append((exp, meta["cost"]["seconds_all_sessions"], bound / peak,
                     meta["training"]["models_trained"], meta["training"]["models_loaded"]))
    return rows


def measure(torch, name, steps, peak, rng):
    """One experiment's roofline row: FLOP per step per model, measured seconds per step per
    model (a warm-up fit first), GFLOP/s, the ratio to the FLOP bound, and the experiment's bound
    and estimated training over its distinct models."""
    from linvae.nn import BatchedTrainer, Trainer

    label, make, kind, B, batch, total_steps, distinct = _cases()[name]
    data = _data(kind, batch * steps, rng)
    flop = step_flop(torch, make(), [d[:batch] for d in data])
    models = [make() for _ in range(B)]
    if B == 1:
        trainer = Trainer(models[0], epochs=1, batch_size=batch, device="cpu")
    else:
        trainer = BatchedTrainer(models, seeds=list(range(B)), epochs=1, batch_size=batch, clip=0.1)
    trainer.fit(*[d[:batch * 2] for d in data])                         # warm-up (allocator, first calls)
    began = time.perf_counter()
    trainer.fit(*data)
    per_model = (time.perf_counter() - began) / steps / B
    bound = flop / peak
    one_step = [d[:batch] for d in data]
    floor = gemm_floor(torch, record_gemms(torch, lambda: trainer.fit(*one_step))) / B
    return {"label": label, "B": B, "batch": batch, "flop": flop, "seconds_per_model_step": per_model,
            "gflops": flop / per_model / 1e9, "ratio": per_model / bound, "distinct": distinct, "steps": total_steps,
            "bound_seconds": bound * total_steps * distinct, "estimated_seconds": per_model * total_steps * distinct,
            "gemm_floor_seconds_per_model_step": floor, "floor_ratio": floor / bound,
            "ratio_to_floor": per_model / floor, "path": getattr(trainer, "path", "Trainer")}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="training steps timed per experiment (after one epoch)")
    p.add_argument("--only", nargs="*", default=None,
                   help="time only these experiments (no names: none, e.g. with --results)")
    p.add_argument("--results", default=None, metavar="DIR",
                   help="also compare each full experiment's measured cost in DIR (e.g. results/full) with its FLOP bound")
    args = p.parse_args(argv)
    import torch

    try:
        from linvae._malloc import keep_freed_memory
    except ImportError:                       # a linvae from before it (a "before" column)
        pass
    else:
        keep_freed_memory()                   # as the experiments' runner does before it trains
    rng = np.random.default_rng(0)
    peak = gemm_peak(torch)
    print(f"torch threads {torch.get_num_threads()}, float32 GEMM peak {peak / 1e9:.1f} GFLOP/s (1024² matmul)")
    selected = [name for name in _cases() if name in args.only] if args.only is not None else \
        [name for name in _cases() if name not in OPTIONAL]          # `--only` with no names: no step timings
    if selected:
        print("| experiment | network | path | B | batch | FLOP/step/model (M) | ms/step/model | GFLOP/s | "
              "ratio to bound | GEMM floor ms/step/model | floor / bound | step / floor | distinct models × steps | "
              "FLOP bound (s) | estimated training (s) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    total_bound = total_est = total_floor = 0.0
    for name in selected:
        r = measure(torch, name, args.steps, peak, rng)
        total_bound += r["bound_seconds"]
        total_est += r["estimated_seconds"]
        total_floor += r["bound_seconds"] * r["floor_ratio"]
        print(f"| {name} | {r['label']} | {r['path']} | {r['B']} | {r['batch']} | {r['flop'] / 1e6:.1f} | "
              f"{r['seconds_per_model_step'] * 1e3:.2f} | {r['gflops']:.1f} | {r['ratio']:.2f} | "
              f"{r['gemm_floor_seconds_per_model_step'] * 1e3:.2f} | {r['floor_ratio']:.2f} | "
              f"{r['ratio_to_floor']:.2f} | {r['distinct']} × {r['steps']} | {r['bound_seconds']:.0f} | "
              f"{r['estimated_seconds']:.0f} |")
    if total_bound:
        print(f"\ntotal FLOP bound {total_bound:.0f} s, GEMM floor {total_floor:.0f} s "
              f"({total_floor / total_bound:.2f} × the bound), estimated training {total_est:.0f} s "
              f"(ratio {total_est / total_bound:.2f} to the bound, {total_est / total_floor:.2f} to the floor)")
    if args.results:
        rows = regenerated(torch, args.results, peak, rng)
        print(f"\nmeasured cost of the full runs in {args.results} (meta.json cost.seconds_all_sessions: training + "
              "evaluation, every session) against the FLOP bound of the trainings each did itself\n")
        print("| experiment | models trained | models loaded | cost (s) | FLOP bound (s) | cost / bound |")
        print("|---|---|---|---|---|---|")
        for exp, cost, bound, trained, loaded in rows:
            ratio = f"{cost / bound:.2f}" if bound else "—"
            print(f"| {exp} | {trained} | {loaded} | {cost:.0f} | {bound:.0f} | {ratio} |")
        cost, bound = sum(r[1] for r in rows), sum(r[2] for r in rows)
        if bound:
            print(f"\ntotal cost {cost:.0f} s, FLOP bound {bound:.0f} s, ratio {cost / bound:.2f}")


if __name__ == "__main__":
    main()
