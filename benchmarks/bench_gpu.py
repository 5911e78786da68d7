"""GPU suites; skipped (NotImplementedError in setup) where CuPy or a GPU is missing."""
import numpy as np

import linvae

from ._data import cvae_data


def _require_gpu():
    from linvae.kernels.gpu import cupy_available

    if not cupy_available():
        raise NotImplementedError("no CuPy / NVIDIA GPU")


class GPUSweep:
    params = ([1, 64, 1024], [64, 784])
    param_names = ["B", "d"]
    timeout = 600

    def setup(self, B, d):
        _require_gpu()
        self.x, self.y = cvae_data(4_000, d // 4, d - d // 4)
        self.beta = np.linspace(0.1, 5, B)

    def time_cupy_adam_sweep_500_steps(self, B, d):
        linvae.sweep(self.x, self.y, beta=self.beta, latent_dim=16, solver="adam", backend="cupy", max_iter=500)
