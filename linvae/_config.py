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
PARALLEL_MAX_WORK : float
    Use the ``prange``-over-configurations kernels only when one configuration's products are
    smaller than this many multiply-adds per step; larger problems run configurations one after
    the other and let the multithreaded BLAS inside each product use the cores (nesting both
    oversubscribes the cores and can be many times slower).
PARALLEL_MIN_TOTAL_WORK : float
    ... and only when all configurations together need at least this many multiply-adds per
    step: below it the serial loop finishes before the parallel variant would have compiled.
COLLAPSE_KL_TOL : float
    A trained latent dim counts as collapsed when its data-mean KL is below this (nats).
TRAINED_GAP_WARN : float
    ``fit`` / ``sweep`` with ``solver="gd"`` or ``"adam"`` warn when a trained loss ends this far
    (relative) above the closed form's global minimum.
DIVERGENCE_FACTOR : float
    Gradient training raises ``TrainingDivergedError`` when a loss rises above
    ``L₀ + DIVERGENCE_FACTOR·max(|L₀|, 1)`` (``L₀``: the loss at the initialization).
ROUNDOFF_FACTOR : int
    An eigenvalue of an exactly equilibrated ``d × d`` second moment at or below
    ``ROUNDOFF_FACTOR·d·eps·max`` is round-off: float64 does not resolve its direction
    (``stats.resolved_eigh``, the CVAE's x-range).
PSD_TOL : float
    User-given second moments (``Moments.from_matrices``) must be symmetric to this relative
    tolerance and have no eigenvalue of the equilibrated matrix below ``−PSD_TOL·max``.
SYMMETRY_ATOL : float
    ... with an absolute symmetry tolerance of ``SYMMETRY_ATOL·max(1, max|S|)``.
OVERFLOW_MARGIN : int
    Data whose mean square exceeds ``float64 max / (OVERFLOW_MARGIN·width)`` is refused (the
    losses add ``width`` such terms).
PRIOR_SIGMA_RTOL : float
    A dead latent dim counts as collapsed to the prior when its σ equals η_enc to this relative
    tolerance (SPEC P2).
ROUNDOFF_RTOL : float
    Two computed values that agree to this relative tolerance are the same number up to
    round-off (an ω with and without a dropped θ; the (1 − δ)·n example count of a collapse
    metric).
ADAM_LR, ADAM_LR_DECAY : float
    Default step of full-batch Adam on the moments (whitened coordinates, where parameters are
    O(1)) and its ``lr_t = lr / (1 + decay·t)`` decay: a constant-step Adam hovers around the
    optimum instead of converging.
MINIBATCH_LR : float
    Default step of the minibatch Adam on raw data (the paper's scripts' 1e-3; constant).
ADAM_B1, ADAM_B2, ADAM_EPS : float
    Adam's moment decays and denominator guard.
GD_ADAPT, GD_MOMENTUM : float
    Full-batch GD: the bold driver's growth ``1 + adapt`` after a step that lowered the loss,
    and the heavy-ball momentum μ.
ARRAY_SYNC_EVERY : int
    The NumPy/CuPy step loop asks whether any configuration still runs (a host sync on the GPU)
    every this many steps.
"""
RANK_RTOL = 1e-10
FASTMATH = False
PARALLEL = True
PARALLEL_MAX_WORK = 2e5
PARALLEL_MIN_TOTAL_WORK = 1e6
GPU_THREADS_PER_BLOCK = 256
COLLAPSE_KL_TOL = 1e-6
#: relative excess of a gradient-trained loss over the closed form's global minimum above which
#: ``fit``/``sweep`` warn that training did not reach the optimum (converged fits end near 1e-9)
TRAINED_GAP_WARN = 1e-4
DIVERGENCE_FACTOR = 1e3
ROUNDOFF_FACTOR = 64
PSD_TOL = 1e-10
SYMMETRY_ATOL = 1e-12
OVERFLOW_MARGIN = 64
PRIOR_SIGMA_RTOL = 1e-12
ROUNDOFF_RTOL = 1e-9
ADAM_LR = 3e-2
ADAM_LR_DECAY = 1e-2
MINIBATCH_LR = 1e-3
ADAM_B1 = 0.9
ADAM_B2 = 0.999
ADAM_EPS = 1e-8
GD_ADAPT = 0.01
GD_MOMENTUM = 0.9
ARRAY_SYNC_EVERY = 32

#: Gradient training rescales VAE/CVAE data by a power of two when its RMS lies outside
#: [1/TRAIN_SCALE_WINDOW, TRAIN_SCALE_WINDOW] (see ``train._NormalizedVAEProblem``).
TRAIN_SCALE_WINDOW = 16.0

#: float32 training (``dtype="float32"``): floors of the stopping tolerances and the KL (nats)
#: below which a trained dim counts as collapsed (float32 round-off leaves ~1e-6 nats).
FLOAT32_TOL = 1e-7
FLOAT32_GTOL = 1e-5
COLLAPSE_KL_TOL_FLOAT32 = 1e-4
