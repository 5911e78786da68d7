"""Roofline of the nonlinear reproduction (issue #33), as an asv suite.

Per experiment: FLOP per training step of one model (``torch.utils.flop_counter``), the float32
GEMM peak of the machine measured in the same run, the achieved GFLOP/s, and the ratio of the
measured step to the FLOP bound (``benchmarks/scripts/roofline.py`` prints the same rows as a
table, with the experiments' bounds and estimated training). Needs torch, which asv's own
environments do not install (the wheel alone): there the suite is skipped; run it in a checkout's
environment with ``asv run --python=same --bench Roofline``.
"""
import importlib.util
import os

import numpy as np

_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "roofline.py")


def _roofline():
    spec = importlib.util.spec_from_file_location("linvae_roofline_script", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


class Roofline:
    params = ["fig2b", "fig2c", "fig3a relu", "fig3a cnn", "fig3b", "table2", "table4", "fig5",
              "theory_vs_nonlinear", "app_recon"]
    param_names = ["experiment"]
    timeout = 900
    #: timed training steps per experiment (after a warm-up fit)
    steps = 3

    def setup_cache(self):
        torch = _torch()
        if torch is None:
            return None
        from linvae._malloc import keep_freed_memory

        keep_freed_memory()                   # as the experiments' runner does before it trains
        script = _roofline()
        peak = script.gemm_peak(torch)
        rng = np.random.default_rng(0)
        return {"peak": peak, **{name: script.measure(torch, name, self.steps, peak, rng) for name in self.params}}

    def setup(self, cache, experiment):
        if cache is None:
            raise NotImplementedError("torch is not installed in this environment (asv run --python=same)")

    def track_ratio_to_bound(self, cache, experiment):
        return cache[experiment]["ratio"]

    track_ratio_to_bound.unit = "measured step / FLOP bound"

    def track_gflops(self, cache, experiment):
        return cache[experiment]["gflops"]

    track_gflops.unit = "GFLOP/s"

    def track_mflop_per_step(self, cache, experiment):
        return cache[experiment]["flop"] / 1e6

    track_mflop_per_step.unit = "MFLOP per model step"

    def track_ratio_to_gemm_floor(self, cache, experiment):
        return cache[experiment]["ratio_to_floor"]

    track_ratio_to_gemm_floor.unit = "measured step / the step's GEMMs alone"

    def track_gemm_floor_to_bound(self, cache, experiment):
        return cache[experiment]["floor_ratio"]

    track_gemm_floor_to_bound.unit = "the step's GEMMs alone / FLOP bound"

    def track_gemm_peak(self, cache, experiment):
        return cache["peak"] / 1e9

    track_gemm_peak.unit = "GFLOP/s (1024² float32 matmul, same run)"
