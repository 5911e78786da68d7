"""Training kernels: Numba CPU (:mod:`.cpu`) and, later, CuPy GPU twins with the same signatures."""
