"""Package-wide numerical settings.

Every tolerance and compiler flag used by the package lives here so that a user (or a test)
can change it in one place.  Kernels read these values; they never hard-code their own.

Attributes
----------
RANK_RTOL : float
    Relative tolerance used to decide the numerical range of a second-moment matrix: an
    eigenvalue ``φ`` is kept when ``φ > RANK_RTOL * φ_max``.  Eigen-directions below it (e.g.
    MNIST pixels that are zero in every image, or the null space when ``N < d``) are dropped,
    which is exact for the losses of SPEC §2 (the data has no energy there); nothing is added
    to the spectrum.  ``1e-10`` keeps condition numbers up to 1e10 and discards round-off
    (``~1e-16 * φ_max``).
FASTMATH : bool or set
    ``fastmath`` flag passed to every Numba kernel.
PARALLEL : bool
    Allow the parallel (``prange``) kernel variants.
GPU_THREADS_PER_BLOCK : int
    Thread-block size of the CuPy raw kernels.
COLLAPSE_KL_TOL : float
    A trained latent dim counts as collapsed when its data-mean KL is below this (nats).
"""
RANK_RTOL = 1e-10
FASTMATH = False
PARALLEL = True
GPU_THREADS_PER_BLOCK = 256
COLLAPSE_KL_TOL = 1e-6
