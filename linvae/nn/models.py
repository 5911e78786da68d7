"""VAE, CVAE and two-latent MHVAE in PyTorch with the paper's hyperparameter names.

All models share the conventions of the linear theory: prior ``N(0, η_enc² I)``,
Gaussian decoders with standard deviation ``η_dec``, encoder standard deviations σ that are
``"learnable"`` (predicted per example by the encoder), ``"global"`` (learned, independent of
the input — the linear theory's Σ) or fixed to a number.  ``forward`` returns

``loss`` (scalar, mean over the batch of ``recon + kl_scale·β·kl``), ``recon`` (per example
``−log p(x|z)`` for one sample z), ``kl`` (per example, summed), ``kl_per_dim`` (per example and
dim, never summed), ``mu``, ``std`` (of the latent that collapses) and ``elbo`` (per example,
β = 1).  ``kl_scale=0.5`` reproduces the authors' scripts, which halve the KL but not the
reconstruction term; the default 1 is the true β-ELBO.
"""
import math

import numpy as np
import torch
from torch import nn

from .._validation import check_latent_dim, check_positive
from ..metrics import gaussian_kl_terms
from .networks import CNNEncoder, build_decoder, build_encoder, mlp

__all__ = ["VAE", "CVAE", "MHVAE", "LinearTorchVAE"]

_LOG_2PI = math.log(2 * math.pi)
ARCHS = ("mlp", "cnn", "resnet18", "resnet18_cifar", "linear")
PER_EXAMPLE = ("learnable", "signed", "signed_tanh")
_SIGNED_FLOOR = 1e-12


def _check_arch(arch, allowed=ARCHS):
    if arch not in allowed:
        raise ValueError(f"arch must be one of {list(allowed)}, got {arch!r}")
    return arch


class GaussianHead(nn.Module):
    """Turns encoder outputs into (μ, σ) under a variance mode.

    Parameters
    ----------
    latent_dim : int
    sigma : "learnable", "signed", "signed_tanh", "global", float or sequence of floats
        Per-example (the encoder predicts log σ²); per-example as the authors' scripts build it
        (``"signed"``: a raw linear head σ of any sign, variance σ²; ``"signed_tanh"``: μ = tanh(·)
        and σ = tanh(·)); learned but shared by all inputs; or fixed.
    """

    def __init__(self, latent_dim, sigma="learnable", init_std=1.0):
        super().__init__()
        self.latent_dim = latent_dim
        self.mode = sigma if isinstance(sigma, str) else "fixed"
        if self.mode not in PER_EXAMPLE + ("global", "fixed"):
            raise ValueError(f"sigma must be 'learnable', 'signed', 'signed_tanh', 'global' or a positive number, "
                             f"got {sigma!r}")
        if self.mode == "global":
            self.log_std = nn.Parameter(torch.full((latent_dim,), math.log(init_std)))
        elif self.mode == "fixed":
            arr = np.broadcast_to(np.asarray(sigma, dtype=float), (latent_dim,))
            if np.any(~(arr > 0)) or np.any(~np.isfinite(arr)):
                raise ValueError(f"sigma must contain only finite values > 0, got {sigma!r}")
            self.register_buffer("fixed_std", torch.tensor(arr, dtype=torch.get_default_dtype()))

    @property
    def out_features(self):
        """Size of the encoder output this head consumes."""
        return 2 * self.latent_dim if self.mode in PER_EXAMPLE else self.latent_dim

    def forward(self, h):
        if self.mode == "learnable":
            mu, logvar = h.chunk(2, dim=-1)
            return mu, torch.exp(0.5 * logvar.clamp(-60.0, 60.0))
        if self.mode in ("signed", "signed_tanh"):
            mu, signed = h.chunk(2, dim=-1)
            if self.mode == "signed_tanh":
                mu, signed = torch.tanh(mu), torch.tanh(signed)
            # the scripts use σ of any sign with variance σ²; the floor keeps log σ² finite at σ = 0
            return mu, torch.sqrt(signed * signed + _SIGNED_FLOOR)
        std = torch.exp(self.log_std) if self.mode == "global" else self.fixed_std
        return h, std.expand_as(h)



def _log(value):
    """``log`` of a hyperparameter: a Python float, or a 0-d tensor when configurations are
    trained batched (:class:`~linvae.nn.BatchedTrainer` sets them per configuration)."""
    return torch.log(value) if torch.is_tensor(value) else math.log(value)


def _nll(target, mean, eta_dec, keepdim=False):
    """Per-example ``−log N(target; mean, η_dec² I)`` (with a trailing axis of 1 when ``keepdim``).

    The training losses keep that axis: per-example terms then broadcast against
    hyperparameters of shape (B, 1, 1) when :class:`~linvae.nn.BatchedTrainer` runs B models as
    one stacked model (leading axis B), as they do against plain floats."""
    d = target.shape[-1]
    # mse_loss: the squared residual in one fused kernel each way (this is most of a step's memory traffic)
    mean, target = torch.broadcast_tensors(mean, target)       # (S, n, d) means beside (n, d) data
    sq = torch.nn.functional.mse_loss(mean, target, reduction="none").sum(-1, keepdim=keepdim)
    return 0.5 * sq / eta_dec**2 + 0.5 * d * (_LOG_2PI + 2 * _log(eta_dec))


def _kl(mu, std, eta_enc):
    log_prior_var = 2 * _log(eta_enc)
    if not torch.is_tensor(log_prior_var):
        log_prior_var = torch.tensor(log_prior_var, dtype=mu.dtype)
    return gaussian_kl_terms(mu, 2 * torch.log(std), log_prior_var, torch)


def _mean_over_examples(per_example):
    """The batch loss from per-example terms of shape (..., n, 1): a scalar, or (B,) for a stack."""
    return per_example.mean(-2).squeeze(-1)


def _draw(noise, index, like):
    """The reparameterization noise: given (batched training passes it) or drawn now."""
    return torch.randn_like(like) if noise is None else noise[index]


def _log_normal(x, mean, std):
    return -0.5 * ((((x - mean) / std) ** 2) + 2 * torch.log(std) + _LOG_2PI).sum(-1)


def _records_arguments(cls, init):
    """``init`` wrapped so that the constructor arguments land in ``self.init_arguments``.

    The outermost constructor of an instance finishes last, so its arguments win (a subclass
    calling ``super().__init__`` with other values records its own). Arguments that are not
    plain JSON data leave ``init_arguments`` None (the model then cannot be rebuilt from a
    checkpoint).
    """
    import functools
    import inspect
    import json

    signature = inspect.signature(init)

    @functools.wraps(init)
    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        try:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = {}
            for name, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_POSITIONAL:
                    raise TypeError("*args")
                if kind is inspect.Parameter.VAR_KEYWORD:
                    arguments.update(value)
                else:
                    arguments[name] = value
            arguments = json.loads(json.dumps(arguments, allow_nan=False))
        except (TypeError, ValueError):
            arguments = None
        self.__dict__["init_arguments"] = arguments

    recording._records_arguments = True
    return recording


class _Base(nn.Module):
    #: scalar hyperparameters that :class:`~linvae.nn.BatchedTrainer` may set per configuration
    #: (as 0-d tensors) while it trains several configurations as one batched model
    HYPERPARAMETERS = ("beta", "eta_enc", "eta_dec", "kl_scale")
    #: a short description recorded in experiment metadata
    architecture = ""
    #: the constructor's arguments (JSON data; None when not plain data), stored in checkpoints
    #: so that :meth:`linvae.nn.Trainer.load_model` can rebuild the model
    init_arguments = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_records_arguments", False):
            cls.__init__ = _records_arguments(cls, init)

    def noise_shapes(self, n):
        """Shapes of the reparameterization noise one forward pass on ``n`` examples draws, in order."""
        return [(n, self.latent_dim)]

    def _common(self, eta_enc, eta_dec, kl_scale):
        self.eta_enc = check_positive(eta_enc, "eta_enc")
        self.eta_dec = check_positive(eta_dec, "eta_dec")
        self.kl_scale = check_positive(kl_scale, "kl_scale")

    def _outputs(self, recon, mu, std):
        """The forward mapping of a one-latent model from the per-example reconstruction term
        (``recon`` with a trailing axis of 1, see :func:`_nll`)."""
        kl_dim = _kl(mu, std, self.eta_enc)
        kl = kl_dim.sum(-1, keepdim=True)
        loss = _mean_over_examples(recon + self.kl_scale * self.beta * kl)
        return {"loss": loss, "recon": recon.squeeze(-1), "kl": kl.squeeze(-1), "kl_per_dim": kl_dim, "mu": mu,
                "std": std, "elbo": -(recon + kl).squeeze(-1)}

    def log_likelihood(self, X, Y=None, n_samples=1000, batch_size=None, seed=0, progress=False):
        """Importance-sampled per-example log-likelihood (see :func:`linvae.metrics.log_likelihood_is`)."""
        from ..metrics import log_likelihood_is

        X_t = torch.as_tensor(np.asarray(X), dtype=torch.get_default_dtype())
        Y_t = None if Y is None else torch.as_tensor(np.asarray(Y), dtype=torch.get_default_dtype())

        def weights(rng, s):
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            with torch.no_grad():
                return self.log_importance_weights(X_t, Y_t, s, gen).double().cpu().numpy()

        was = self.training
        self.eval()
        try:
            return log_likelihood_is(self, X_t, n_samples=n_samples, batch_size=batch_size, seed=seed,
                                     progress=progress, log_weights=weights)
        finally:
            self.train(was)


class VAE(_Base):
    """Gaussian VAE.

    Parameters
    ----------
    input_dim : int
    latent_dim : int
    arch : {"mlp", "cnn", "resnet18", "resnet18_cifar", "linear"}
        ``"linear"`` has no bias and no hidden layer (the linear model of the theory).
    hidden : int
        Hidden width of the MLP (the paper uses 784–256–16 style networks).
    beta, eta_enc, eta_dec : float
    sigma : "learnable", "signed", "global" or float
    kl_scale : float
        1 for the true β-ELBO, 0.5 to match the authors' scripts.
    mean_activation : {None, "relu"}
        ``"relu"`` passes the encoder means through a ReLU, as the authors' Table 2 VAE does.
    """

    def __init__(self, input_dim=784, latent_dim=16, *, arch="mlp", hidden=256, beta=1.0, eta_enc=1.0,
                 eta_dec=1.0, sigma="learnable", kl_scale=1.0, mean_activation=None):
        super().__init__()
        self.beta = check_positive(beta, "beta")
        self._common(eta_enc, eta_dec, kl_scale)
        self.latent_dim = check_latent_dim(latent_dim)
        self.input_dim = check_latent_dim(input_dim, "input_dim")
        self.head = GaussianHead(self.latent_dim, sigma, init_std=self.eta_enc)
        self.encoder = build_encoder(_check_arch(arch), input_dim, self.head.out_features, hidden)
        self.decoder = build_decoder(arch, self.latent_dim, input_dim, hidden)
        if mean_activation not in (None, "relu"):
            raise ValueError(f"mean_activation must be None or 'relu', got {mean_activation!r}")
        self.mean_activation = mean_activation
        layers = f"{input_dim}→{latent_dim}" if arch.startswith("resnet") else f"{input_dim}–{hidden}–{latent_dim}"
        self.architecture = (f"VAE {arch} {layers}, σ {self.head.mode}"
                             + (", ReLU means" if mean_activation else ""))

    def encode(self, x):
        """``(μ, σ)`` of ``q(z|x)``."""
        mu, std = self.head(self.encoder(x))
        return (torch.relu(mu), std) if self.mean_activation == "relu" else (mu, std)

    def decode(self, z):
        """Mean of ``p(x|z)``."""
        return self.decoder(z)

    def forward(self, x, y=None, noise=None):
        """Loss terms for a batch; ``noise`` (a sequence shaped as :meth:`noise_shapes`) replaces the draws."""
        mu, std = self.encode(x)
        z = mu + std * _draw(noise, 0, mu)
        return self._outputs(_nll(x, self.decode(z), self.eta_dec, keepdim=True), mu, std)

    def log_importance_weights(self, x, y, n_samples, generator=None):
        """``log p(x|z) + log p(z) − log q(z|x)`` for ``n_samples`` draws: tensor (S, n)."""
        mu, std = self.encode(x)
        eps = torch.randn((n_samples,) + mu.shape, generator=generator, dtype=mu.dtype)
        z = mu + std * eps
        mean = self.decode(z.reshape(-1, mu.shape[-1])).reshape(n_samples, len(x), -1)
        prior = torch.ones_like(std) * self.eta_enc
        return (-_nll(x, mean, self.eta_dec) + _log_normal(z, torch.zeros_like(mu), prior)
                - _log_normal(z, mu, std))

    def sample(self, n, generator=None):
        """Decoder means for ``n`` prior draws."""
        z = self.eta_enc * torch.randn((n, self.latent_dim), generator=generator)
        return self.decode(z)


class LinearTorchVAE(VAE):
    """The linear VAE of the theory in torch (no bias, Σ learned globally, or fixed).

    The bridge between the two worlds: trained with :class:`~linvae.nn.Trainer` it must reach
    the closed form of Thm 4 (or Thm 1 with a fixed σ).
    """

    def __init__(self, input_dim, latent_dim, *, beta=1.0, eta_enc=1.0, eta_dec=1.0, sigma="global", kl_scale=1.0):
        super().__init__(input_dim, latent_dim, arch="linear", beta=beta, eta_enc=eta_enc, eta_dec=eta_dec,
                         sigma=sigma, kl_scale=kl_scale)

    def matrices(self):
        """``(W, U, σ)`` as NumPy arrays in data coordinates."""
        with torch.no_grad():
            W = self.encoder.weight.double().cpu().numpy()
            U = self.decoder.weight.double().cpu().numpy()
            std = self.head(torch.zeros(1, self.latent_dim))[1][0].double().cpu().numpy()
        return W, U, std


_QUADRANT_ORDER = None


def _quadrant_perm():
    """Index map from concat(x, y) (quadrant split) to row-major 28×28 pixels."""
    global _QUADRANT_ORDER
    if _QUADRANT_ORDER is None:
        from ..data.mnist import reassemble_quadrants

        idx = np.arange(784, dtype=float)
        full = reassemble_quadrants(idx[None, :196], idx[None, 196:])[0]
        _QUADRANT_ORDER = torch.as_tensor(full.astype(np.int64))
    return _QUADRANT_ORDER


class CVAE(_Base):
    """Gaussian CVAE ``q(z|x, y)``, ``p(y|z, x)``, prior ``N(0, η_enc² I)`` (independent of x).

    Parameters
    ----------
    x_dim, y_dim, latent_dim : int
        The paper's MNIST split: x = bottom-left quarter (196), y = the rest (588).
    arch : {"mlp", "cnn", "linear"}
        ``"cnn"`` (the per-digit CNN CVAE) encodes the reassembled full image with a CNN and
        conditions the decoder on CNN features of the masked image (x in its quarter, zeros
        elsewhere); it needs x_dim = 196 and y_dim = 588.
    hidden, beta, eta_enc, eta_dec, sigma, kl_scale
        As for :class:`VAE` (the paper's ReLU CVAE uses hidden = 16 or 128).
    """

    def __init__(self, x_dim=196, y_dim=588, latent_dim=16, *, arch="mlp", hidden=256, beta=1.0, eta_enc=1.0,
                 eta_dec=1.0, sigma="learnable", kl_scale=1.0):
        super().__init__()
        self.beta = check_positive(beta, "beta")
        self._common(eta_enc, eta_dec, kl_scale)
        self.latent_dim = check_latent_dim(latent_dim)
        self.x_dim, self.y_dim = check_latent_dim(x_dim, "x_dim"), check_latent_dim(y_dim, "y_dim")
        self.arch = _check_arch(arch, ("mlp", "cnn", "linear"))
        self.architecture = f"CVAE single network on [x, y], {arch}, h = {hidden}, σ {sigma}"
        self.head = GaussianHead(self.latent_dim, sigma, init_std=self.eta_enc)
        if arch == "cnn":
            if (x_dim, y_dim) != (196, 588):
                raise ValueError("arch='cnn' needs the MNIST quadrant split: x_dim=196, y_dim=588")
            self.encoder = CNNEncoder(self.head.out_features)
            self.condition = CNNEncoder(hidden)
            self.decoder = mlp(self.latent_dim + hidden, hidden, y_dim)
        else:
            self.encoder = build_encoder(arch, x_dim + y_dim, self.head.out_features, hidden)
            self.condition = None
            self.decoder = build_decoder(arch, self.latent_dim + x_dim, y_dim, hidden)

    def _full(self, x, y):
        return torch.cat([x, y], dim=-1)[..., _quadrant_perm()]

    def encode(self, x, y):
        """``(μ, σ)`` of ``q(z|x, y)``."""
        return self.head(self.encoder(self._full(x, y) if self.arch == "cnn" else torch.cat([x, y], -1)))

    def decode(self, z, x):
        """Mean of ``p(y|z, x)``."""
        if self.arch == "cnn":
            masked = self._full(x, torch.zeros(x.shape[:-1] + (self.y_dim,), dtype=x.dtype))
            return self.decoder(torch.cat([z, self.condition(masked)], -1))
        return self.decoder(torch.cat([z, x], -1))

    def forward(self, x, y, noise=None):
        """Loss terms for a batch; ``noise`` (a sequence shaped as :meth:`noise_shapes`) replaces the draws."""
        mu, std = self.encode(x, y)
        z = mu + std * _draw(noise, 0, mu)
        return self._outputs(_nll(y, self.decode(z, x), self.eta_dec, keepdim=True), mu, std)

    def log_importance_weights(self, x, y, n_samples, generator=None):
        """``log p(y|z, x) + log p(z) − log q(z|x, y)``: tensor (S, n)."""
        mu, std = self.encode(x, y)
        z = mu + std * torch.randn((n_samples,) + mu.shape, generator=generator, dtype=mu.dtype)
        xs = x.expand(n_samples, *x.shape).reshape(-1, x.shape[-1])
        mean = self.decode(z.reshape(-1, mu.shape[-1]), xs).reshape(n_samples, len(x), -1)
        return (-_nll(y, mean, self.eta_dec) + _log_normal(z, torch.zeros_like(mu), torch.ones_like(std) * self.eta_enc)
                - _log_normal(z, mu, std))


class MHVAE(_Base):
    """Two-latent Markovian hierarchical VAE.

    ``q(z₁|x)``, ``q(z₂|z₁)``, ``p(z₁|z₂) = N(·, η_dec² I)``, ``p(x|z₁) = N(·, η_dec² I)``,
    ``p(z₂) = N(0, η_enc² I)``; β₁ weights ``log q(z₁|x) − log p(z₁|z₂)`` and β₂ the KL of z₂.

    Parameters
    ----------
    input_dim : int
    latent_dims : (int, int)
        (d₁, d₂); the paper uses 16 and 16.
    arch : {"mlp", "cnn", "linear"}
        Architecture of ``q(z₁|x)`` and ``p(x|z₁)``; the z₁ ↔ z₂ maps are MLPs.
    hidden, hidden2 : int
        Widths of the x ↔ z₁ and z₁ ↔ z₂ networks (784–256–16 in the paper).
    beta1, beta2, eta_enc, eta_dec : float
    sigma1 : float or "learnable"/"global"
        σ₁, fixed to 0.5 in the paper's experiments.
    sigma2 : "learnable", "global" or float
    kl_scale : float
    """

    def __init__(self, input_dim=784, latent_dims=(16, 16), *, arch="mlp", hidden=256, hidden2=256, beta1=1.0,
                 beta2=1.0, eta_enc=1.0, eta_dec=1.0, sigma1=0.5, sigma2="learnable", kl_scale=1.0):
        super().__init__()
        self.beta1 = check_positive(beta1, "beta1")
        self.beta2 = check_positive(beta2, "beta2")
        self._common(eta_enc, eta_dec, kl_scale)
        d1, d2 = (check_latent_dim(latent_dims[0], "latent_dims[0]"), check_latent_dim(latent_dims[1], "latent_dims[1]"))
        self.latent_dims = (d1, d2)
        self.head1 = GaussianHead(d1, sigma1, init_std=self.eta_dec)
        self.head2 = GaussianHead(d2, sigma2, init_std=self.eta_enc)
        arch = _check_arch(arch, ("mlp", "cnn", "linear"))
        self.enc1 = build_encoder(arch, input_dim, self.head1.out_features, hidden)
        self.dec1 = build_decoder(arch, d1, input_dim, hidden)
        inner = "linear" if arch == "linear" else "mlp"
        self.architecture = f"MHVAE {arch} {input_dim}–{hidden}–{d1}, z₂ MLP h = {hidden2}, no tanh heads"
        self.enc2 = build_encoder(inner, d1, self.head2.out_features, hidden2)
        self.dec2 = build_decoder(inner, d2, d1, hidden2)

    def encode(self, x):
        """``(μ₁, σ₁)`` of ``q(z₁|x)``."""
        return self.head1(self.enc1(x))

    def encode_z2(self, z1):
        """``(μ₂, σ₂)`` of ``q(z₂|z₁)``."""
        return self.head2(self.enc2(z1))

    def decode(self, z1):
        """Mean of ``p(x|z₁)``."""
        return self.dec1(z1)

    HYPERPARAMETERS = ("beta1", "beta2", "eta_enc", "eta_dec", "kl_scale")

    def noise_shapes(self, n):
        return [(n, self.latent_dims[0]), (n, self.latent_dims[1])]

    def forward(self, x, y=None, noise=None):
        """Loss terms for a batch; ``noise`` (a sequence shaped as :meth:`noise_shapes`) replaces the draws."""
        mu1, s1 = self.encode(x)
        z1 = mu1 + s1 * _draw(noise, 0, mu1)
        mu2, s2 = self.encode_z2(z1)
        z2 = mu2 + s2 * _draw(noise, 1, mu2)
        recon = _nll(x, self.decode(z1), self.eta_dec, keepdim=True)
        mean1 = self.dec2(z2)
        # single-sample estimate of log q(z₁|x) − log p(z₁|z₂), per dim
        term1 = (0.5 * ((z1 - mean1) / self.eta_dec) ** 2 + _log(self.eta_dec)
                 - 0.5 * ((z1 - mu1) / s1) ** 2 - torch.log(s1))
        kl2 = _kl(mu2, s2, self.eta_enc)
        t1, k2 = term1.sum(-1, keepdim=True), kl2.sum(-1, keepdim=True)
        loss = _mean_over_examples(recon + self.kl_scale * (self.beta1 * t1 + self.beta2 * k2))
        return {"loss": loss, "recon": recon.squeeze(-1), "kl": k2.squeeze(-1), "kl_per_dim": kl2, "mu": mu2,
                "std": s2, "kl1_per_dim": term1, "mu1": mu1, "std1": s1, "elbo": -(recon + t1 + k2).squeeze(-1)}

    def log_importance_weights(self, x, y, n_samples, generator=None):
        """``log p(x|z₁) + log p(z₁|z₂) + log p(z₂) − log q(z₁|x) − log q(z₂|z₁)``: tensor (S, n)."""
        mu1, s1 = self.encode(x)
        z1 = mu1 + s1 * torch.randn((n_samples,) + mu1.shape, generator=generator, dtype=mu1.dtype)
        flat = z1.reshape(-1, mu1.shape[-1])
        mu2, s2 = self.encode_z2(flat)
        z2 = mu2 + s2 * torch.randn(mu2.shape, generator=generator, dtype=mu2.dtype)
        mean_x = self.decode(flat).reshape(n_samples, len(x), -1)
        mean1 = self.dec2(z2)
        shape = (n_samples, len(x))
        ed = torch.ones_like(flat) * self.eta_dec
        return (-_nll(x, mean_x, self.eta_dec) + _log_normal(flat, mean1, ed).reshape(shape)
                + _log_normal(z2, torch.zeros_like(z2), torch.ones_like(z2) * self.eta_enc).reshape(shape)
                - _log_normal(z1, mu1, s1) - _log_normal(z2, mu2, s2).reshape(shape))
