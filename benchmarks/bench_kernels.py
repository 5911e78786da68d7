"""Training kernels: compile time, one batched step, full convergence, minibatch epochs (asv)."""
import os
import subprocess
import sys
import warnings

import numpy as np

import linvae
from linvae.kernels import cpu
from linvae.kernels.contract import KernelOptions, KernelProblem, TrainState, size

from ._data import spectrum_data

warnings.simplefilter("ignore", linvae.ConvergenceWarning)


ADAM = KernelOptions.of(adam=True)          # Adam, lr 1e-3 below, no stopping test (tol = gtol = 0)


def _compile_time_module():
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "compile_time.py")
    spec = importlib.util.spec_from_file_location("_linvae_compile_time", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Compile:
    """Cold first use: a fresh interpreter with an empty ``NUMBA_CACHE_DIR`` (it compiles what that
    call needs, nothing else), per model kind; see ``benchmarks/scripts/compile_time.py``."""

    params = (["vae_gd", "vae_adam", "cvae_adam", "mhvae_adam", "minibatch"],)
    param_names = ["case"]
    timeout = 300
    number = 1
    repeat = 1
    warmup_time = 0

    def setup(self, case):
        import tempfile

        self.tmp = tempfile.mkdtemp(prefix="linvae-asv-compile-")
        self.env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(self.tmp, "numba"),
                        LINVAE_CACHE_DIR=os.path.join(self.tmp, "data"))
        mod = _compile_time_module()
        self.code = mod.SNIPPET.format(code=mod.CASES[case][1])

    def teardown(self, case):
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)

    def _run(self):
        subprocess.run([sys.executable, "-c", self.code], check=True, capture_output=True, env=self.env)

    def time_first_use(self, case):
        self._run()


class CompileWarm(Compile):
    """The same call in a later process: the on-disk cache written by a first run is loaded."""

    def setup(self, case):
        Compile.setup(self, case)
        self._run()                                    # cold run, fills the cache


class Step:
    params = ([1, 16, 256], [16, 64, 196, 784], ["vae", "mhvae"])
    param_names = ["B", "d", "model"]
    timeout = 300

    def setup(self, B, d, model):
        k = min(d, 16)
        rng = np.random.default_rng(0)
        self.Z = np.diag(np.sort(rng.uniform(0.05, 3, d))[::-1])
        if model == "vae":
            self.dims = np.array([d, k, d, 0], np.int64)
            P = size("vae", self.dims)
            self.hyper = np.column_stack([np.linspace(0.5, 2, B), np.ones(B), np.ones(B)])
            self.run, self.learn = cpu.train_vae, np.array([True])
        else:
            self.dims = np.array([d, k, d, k], np.int64)
            P = size("mhvae", self.dims)
            self.hyper = np.column_stack([np.ones(B), np.linspace(0.5, 2, B), np.ones(B), np.ones(B)])
            self.run, self.learn = cpu.train_mhvae, np.array([False, True])
        self.problem = KernelProblem.build("vae" if model == "vae" else "mhvae", self.Z, self.hyper, self.dims,
                                           self.learn)
        self.params0 = 0.1 * rng.normal(size=(B, P))
        self.B, self.P = B, P
        self.time_ten_adam_steps(B, d, model)                 # compile once

    def time_ten_adam_steps(self, B, d, model):
        self.run(self.problem, TrainState.start(self.params0.copy(), 1e-3), ADAM, 10)


class StepPrecision:
    """One batched Adam step of the linear VAE kernel in float64 vs float32 (``dtype="float32"``)."""

    params = ([1, 16], [64, 784], ["float64", "float32"])
    param_names = ["B", "d", "dtype"]
    timeout = 300

    def setup(self, B, d, dtype):
        k = min(d, 16)
        rng = np.random.default_rng(0)
        dt = np.dtype(dtype)
        self.Z = np.diag(np.sort(rng.uniform(0.05, 3, d))[::-1]).astype(dt)
        self.dims = np.array([d, k, d, 0], np.int64)
        P = size("vae", self.dims)
        self.hyper = np.column_stack([np.linspace(0.5, 2, B), np.ones(B), np.ones(B)]).astype(dt)
        self.problem = KernelProblem.build("vae", self.Z, self.hyper, self.dims, [True], dtype=dt)
        self.params0 = (0.1 * rng.normal(size=(B, P))).astype(dt)
        self.dt, self.B, self.P = dt, B, P
        self.time_ten_adam_steps(B, d, dtype)                 # compile once

    def time_ten_adam_steps(self, B, d, dtype):
        cpu.train_vae(self.problem, TrainState.start(self.params0.copy(), 1e-3), ADAM, 10)


class Convergence:
    params = ([1, 16], [16, 64])
    param_names = ["B", "d"]
    timeout = 300

    def setup(self, B, d):
        self.X = spectrum_data(4 * d, d)
        self.beta = np.linspace(0.2, 3, B)
        linvae.sweep(self.X, beta=self.beta, latent_dim=8, solver="gd", max_iter=2)

    def time_gd_to_convergence(self, B, d):
        linvae.sweep(self.X, beta=self.beta, latent_dim=8, solver="gd", max_iter=20000)

    def track_distance_to_closed_form(self, B, d):
        tr = linvae.sweep(self.X, beta=self.beta, latent_dim=8, solver="gd", max_iter=20000)
        cf = linvae.sweep(self.X, beta=self.beta, latent_dim=8, solver="closed_form")
        return max(abs(a.loss - b.loss) / abs(b.loss) for a, b in zip(tr, cf))

    track_distance_to_closed_form.unit = "relative loss gap"


class MinibatchEpoch:
    params = [64, 784]
    param_names = ["d"]

    def setup(self, d):
        self.X = spectrum_data(5_000, d)
        linvae.fit(self.X[:256], latent_dim=8, solver="minibatch", epochs=1)

    def time_minibatch_epoch(self, d):
        linvae.fit(self.X, latent_dim=8, solver="minibatch", epochs=1)


class LargeSweepMemory:
    def setup(self):
        self.X = spectrum_data(2_000, 784)

    def peakmem_sweep_64_configs_d784(self):
        linvae.sweep(self.X, beta=np.linspace(0.1, 5, 64), latent_dim=16, solver="adam", max_iter=5)
