"""Exact global minimizers of the linear models (SPEC §3).

=================  ==========================================  ==============================
function           model                                       theorem
=================  ==========================================  ==============================
vae_learnable      linear VAE, learnable Σ                     Thm 4 (appendix)
vae_fixed          linear VAE, fixed Σ = diag(σ²)               Thm 1
cvae_learnable     linear CVAE, learnable Σ                    Thm 2
mhvae_sigma2_...   two-latent MHVAE, Σ₁ fixed, Σ₂ learnable    Thm 3
mhvae_fixed        two-latent MHVAE, Σ₁ and Σ₂ fixed           Thm 5 (appendix)
=================  ==========================================  ==============================

The MHVAE with both Σ₁ and Σ₂ learnable has no closed form; it can only be studied by
gradient descent.
"""
from .cvae import CVAEFit, cvae_basis, cvae_fits, cvae_learnable, cvae_spectra, thm2_spectra
from .mhvae import (MHVAEFit, mhvae_fits, mhvae_fixed, mhvae_sigma2_learnable, mhvae_spectra, thm3_sigma2,
                    thm3_spectra, thm5_spectra, z2_statistics)
from .vae import (VAEFit, dim_kl, prior_collapse, thm1_pairing, thm1_spectra, thm4_spectra, vae_basis, vae_fits,
                  vae_fixed, vae_learnable, vae_spectra)

__all__ = [
    "VAEFit", "CVAEFit", "MHVAEFit",
    "vae_learnable", "vae_fixed", "cvae_learnable", "mhvae_sigma2_learnable", "mhvae_fixed",
    "thm1_spectra", "thm2_spectra", "thm3_spectra", "thm4_spectra", "thm5_spectra",
    "thm1_pairing", "thm3_sigma2", "prior_collapse", "dim_kl", "z2_statistics",
    # the same closed forms over a hyperparameter grid (one decomposition, one vectorised pass)
    "vae_basis", "vae_spectra", "vae_fits", "cvae_basis", "cvae_spectra", "cvae_fits", "mhvae_spectra", "mhvae_fits",
]
