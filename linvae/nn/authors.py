"""The networks of the authors' nonlinear scripts (SPEC §5.1), as subclasses of the linvae models.

They keep the models' ``forward`` mapping (``loss``, ``recon``, ``kl``, ``kl_per_dim``, ``mu``,
``std``, …), their importance-sampled log-likelihood and :meth:`noise_shapes`, so the
:class:`~linvae.nn.Trainer`, the :class:`~linvae.nn.BatchedTrainer` and :mod:`linvae.metrics`
treat them like any other model.  The networks linvae used before (one MLP on ``[x, y]`` for the
CVAE, an MHVAE without tanh heads) remain available as :class:`~linvae.nn.CVAE` and
:class:`~linvae.nn.MHVAE`.
"""
import torch
from torch import nn

from .._validation import check_latent_dim, check_positive
from .models import CVAE, MHVAE, GaussianHead, _Base, _quadrant_perm

__all__ = ["TwoBranchCVAE", "TanhMHVAE", "authors_vae"]


def _act(arch):
    return nn.Identity() if arch == "linear" else nn.ReLU()


def _conv_features(size):
    """``1×size×size → conv(32, 4, s2) → conv(64, 4, s2)`` (ReLU after each), flattened."""
    out = ((size + 2 - 4) // 2 + 1 + 2 - 4) // 2 + 1
    net = nn.Sequential(nn.Unflatten(1, (1, size, size)), nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(),
                        nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Flatten())
    return net, 64 * out * out


class _Branch(nn.Module):
    """One input branch of the two-branch encoder: features, then linear heads for μ and σ."""

    def __init__(self, arch, in_dim, image_size, hidden, latent_dim):
        super().__init__()
        if arch == "cnn":
            self.features, width = _conv_features(image_size)
        else:
            self.features, width = nn.Sequential(nn.Linear(in_dim, hidden), _act(arch)), hidden
        self.mu = nn.Linear(width, latent_dim)
        self.sigma = nn.Linear(width, latent_dim)

    def forward(self, v):
        h = self.features(v)
        return self.mu(h), self.sigma(h)


class TwoBranchCVAE(CVAE):
    """The authors' CVAE: an x-branch and a y-branch encoder whose μ and σ heads are **summed**,
    and a decoder that sums an x-branch and a z-branch.

    ``q(z|x, y) = N(μ_x(x) + μ_y(y), diag((σ_x(x) + σ_y(y))²))`` with raw linear σ heads of any
    sign (variance σ²); ``p(y|z, x) = N(g_x(x) + g_z(z), η_dec² I)``.

    Parameters
    ----------
    x_dim, y_dim, latent_dim : int
        196, 588, 16 for the MNIST quadrant split; 128, 128, 128 for the synthetic table.
    arch : {"linear", "relu", "cnn"}
        ``"linear"``: the same network without activations (Fig 3a's linear arm, h = 16);
        ``"relu"``: ``Linear(·, h) → ReLU`` branches (Fig 2b: h = 16; Fig 3a: h = 100;
        Table 4: h = 128); ``"cnn"``: two stride-2 convolutions on the 14×14 x-image and on the
        28×28 y-image (x's quarter zeroed), a transposed-convolution z-branch decoder.
    hidden : int
    beta, eta_enc, eta_dec, kl_scale : float
        The scripts halve the KL only: ``kl_scale=0.5`` matches them (effective β = β/2).

    Notes
    -----
    SPEC §5.1 (the scripts' networks for Fig 2b, Fig 3a and Table 4).  The linear arm keeps the
    layers' biases, as the scripts do; the linear theory (Thm 2) has none.
    """

    def __init__(self, x_dim=196, y_dim=588, latent_dim=16, *, arch="relu", hidden=16, beta=1.0, eta_enc=1.0,
                 eta_dec=1.0, kl_scale=0.5):
        _Base.__init__(self)
        self.beta = check_positive(beta, "beta")
        self._common(eta_enc, eta_dec, kl_scale)
        self.latent_dim = check_latent_dim(latent_dim)
        self.x_dim, self.y_dim = check_latent_dim(x_dim, "x_dim"), check_latent_dim(y_dim, "y_dim")
        self.hidden = check_latent_dim(hidden, "hidden")
        if arch not in ("linear", "relu", "cnn"):
            raise ValueError(f"arch must be one of ['linear', 'relu', 'cnn'], got {arch!r}")
        if arch == "cnn" and (x_dim, y_dim) != (196, 588):
            raise ValueError("arch='cnn' needs the MNIST quadrant split: x_dim=196, y_dim=588")
        self.arch = arch
        self.head = GaussianHead(self.latent_dim, "signed")           # records the σ parameterisation
        self.enc_x = _Branch(arch, x_dim, 14, hidden, self.latent_dim)
        self.enc_y = _Branch(arch, y_dim, 28, hidden, self.latent_dim)
        if arch == "cnn":
            feats, width = _conv_features(14)
            self.dec_x = nn.Sequential(feats, nn.Linear(width, y_dim))
            self.dec_z = nn.Sequential(nn.Linear(self.latent_dim, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
                                       nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                                       nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Flatten())
        else:
            self.dec_x = nn.Sequential(nn.Linear(x_dim, hidden), _act(arch), nn.Linear(hidden, y_dim))
            self.dec_z = nn.Sequential(nn.Linear(self.latent_dim, hidden), _act(arch), nn.Linear(hidden, y_dim))
        self.architecture = (f"two-branch CVAE ({arch}, h = {hidden}): x- and y-branch encoders with summed μ "
                             f"and signed σ heads, x-branch + z-branch decoder (authors' scripts)")

    def _y_image(self, y):
        """The 28×28 image holding y with x's quarter zeroed (the CNN y-branch input)."""
        zeros = torch.zeros(y.shape[:-1] + (self.x_dim,), dtype=y.dtype)
        return self._full(zeros, y)

    def encode(self, x, y):
        """``(μ, σ)`` of ``q(z|x, y)``: the branches' heads summed, σ of any sign (std = |σ|)."""
        mx, sx = self.enc_x(x)
        my, sy = self.enc_y(self._y_image(y) if self.arch == "cnn" else y)
        signed = sx + sy
        return mx + my, torch.sqrt(signed * signed + 1e-12)

    def decode(self, z, x):
        """Mean of ``p(y|z, x)``: x-branch plus z-branch."""
        out = self.dec_z(z)
        if self.arch == "cnn":                         # the z-branch paints the full image; keep y's pixels
            out = out[..., _quadrant_perm()[self.x_dim:]]
        return self.dec_x(x) + out


class TanhMHVAE(MHVAE):
    """The authors' two-latent MHVAE with tanh means, a signed per-example tanh σ₂ head and a tanh output.

    ``μ₁ = tanh(f₁(x))`` with σ₁ fixed; ``μ₂ = tanh(·)``, ``σ₂ = tanh(·)`` (variance σ₂²) from one
    hidden layer on z₁; ``p(z₁|z₂)`` mean ``tanh(g₂(z₂))``; ``p(x|z₁)`` mean ``tanh(g₁(z₁))``.

    Parameters
    ----------
    input_dim : int
    latent_dims : (int, int)
    arch : {"mlp", "cnn"}
        ``"mlp"``: 784–256–16 z₁ encoder and 16–256–784 decoder (Fig 2c, 3b/4, Table 5);
        ``"cnn"``: two stride-2 convolutions (64, 32 channels) → Linear(1568, 16) → tanh, and a
        transposed-convolution decoder → tanh (the appendix CNN MHVAE, z₂ level h = 64).
    hidden, hidden2 : int
    beta1, beta2, eta_enc, eta_dec, sigma1, kl_scale
        The scripts use η_enc = η_dec = 0.5, σ₁ = 0.5 and halve the KL terms (``kl_scale=0.5``).

    Notes
    -----
    SPEC §5.1 (the scripts' MHVAE); the loss is that of :class:`~linvae.nn.MHVAE` (Thm 3's model
    with nonlinear maps).
    """

    def __init__(self, input_dim=784, latent_dims=(16, 16), *, arch="mlp", hidden=256, hidden2=None, beta1=1.0,
                 beta2=1.0, eta_enc=0.5, eta_dec=0.5, sigma1=0.5, kl_scale=0.5):
        _Base.__init__(self)
        self.beta1 = check_positive(beta1, "beta1")
        self.beta2 = check_positive(beta2, "beta2")
        self._common(eta_enc, eta_dec, kl_scale)
        d1, d2 = (check_latent_dim(latent_dims[0], "latent_dims[0]"), check_latent_dim(latent_dims[1], "latent_dims[1]"))
        self.latent_dims = (d1, d2)
        if arch not in ("mlp", "cnn"):
            raise ValueError(f"arch must be one of ['mlp', 'cnn'], got {arch!r}")
        if arch == "cnn" and input_dim != 784:
            raise ValueError(f"arch='cnn' needs 28×28 images (784 inputs), got {input_dim}")
        hidden2 = (64 if arch == "cnn" else hidden) if hidden2 is None else hidden2
        self.head1 = GaussianHead(d1, sigma1)
        self.head2 = GaussianHead(d2, "signed_tanh")
        if arch == "cnn":
            self.enc1 = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 64, 4, 2, 1), nn.ReLU(),
                                      nn.Conv2d(64, 32, 4, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(1568, d1),
                                      nn.Tanh())
            self.dec1 = nn.Sequential(nn.Linear(d1, 1568), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
                                      nn.ConvTranspose2d(32, 64, 4, 2, 1), nn.ReLU(),
                                      nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Flatten(), nn.Tanh())
        else:
            self.enc1 = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, d1), nn.Tanh())
            self.dec1 = nn.Sequential(nn.Linear(d1, hidden), nn.ReLU(), nn.Linear(hidden, input_dim), nn.Tanh())
        self.enc2 = nn.Sequential(nn.Linear(d1, hidden2), nn.ReLU(), nn.Linear(hidden2, 2 * d2))
        self.dec2 = nn.Sequential(nn.Linear(d2, hidden2), nn.ReLU(), nn.Linear(hidden2, d1), nn.Tanh())
        self.architecture = (f"tanh MHVAE ({arch}, h = {hidden}, z₂ level h = {hidden2}): tanh means, signed tanh "
                             f"σ₂ head, tanh output, σ₁ = {sigma1} fixed (authors' scripts)")


def authors_vae(input_dim=784, latent_dim=16, *, hidden=256, beta=1.0, eta_enc=1.0, eta_dec=1.0, kl_scale=0.5):
    """The authors' Table 2 ReLU VAE: 784–256–16 encoder with ReLU means, 16–256–784 decoder, one
    global learnable σ vector (SPEC §5.1).

    Returns
    -------
    VAE
    """
    from .models import VAE

    model = VAE(input_dim, latent_dim, arch="mlp", hidden=hidden, beta=beta, eta_enc=eta_enc, eta_dec=eta_dec,
                sigma="global", kl_scale=kl_scale, mean_activation="relu")
    model.architecture = (f"ReLU VAE {input_dim}–{hidden}–{latent_dim} (ReLU means), decoder "
                          f"{latent_dim}–{hidden}–{input_dim}, one global learnable σ (authors' Table 2)")
    return model
