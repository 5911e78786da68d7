"""PyTorch backend for the nonlinear experiments (``pip install "linvae[torch]"``).

Models return a mapping with ``loss``, ``recon``, ``kl``, ``kl_per_dim`` (per example, never
summed over dims), ``mu`` and ``std``, so :mod:`linvae.metrics` works on any of them.
"""
from .._deps import import_optional

import_optional("torch")

from .models import CVAE, MHVAE, VAE, LinearTorchVAE  # noqa: E402
from .networks import (CNNDecoder, CNNEncoder, ResNet18CifarDecoder, ResNet18CifarEncoder, ResNet18Decoder,  # noqa: E402
                       ResNet18Encoder, mlp)
from .trainer import Trainer  # noqa: E402
from .batched import BatchedTrainer  # noqa: E402
from .authors import TanhMHVAE, TwoBranchCVAE, authors_vae  # noqa: E402

__all__ = ["VAE", "CVAE", "MHVAE", "LinearTorchVAE", "TwoBranchCVAE", "TanhMHVAE", "authors_vae", "Trainer",
           "BatchedTrainer", "mlp", "CNNEncoder", "CNNDecoder",
           "ResNet18Encoder", "ResNet18Decoder", "ResNet18CifarEncoder", "ResNet18CifarDecoder"]
