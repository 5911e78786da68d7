"""The ``linvae`` command line."""
import argparse
import logging
import sys

import numpy as np

from ._version import __version__

logger = logging.getLogger("linvae")


def _load(data, model):
    """Return (X, Y or None, description) for ``--data``."""
    if data == "mnist":
        from .data import load_mnist_subset, quadrant_split

        images, _, meta = load_mnist_subset()
        if model == "cvae":
            x, y = quadrant_split(images)
            return x, y, f"{meta['source']}: x = bottom-left quarter (196 px), y = other quarters (588 px)"
        return images, None, meta["source"]
    if not data.endswith(".npz"):
        raise SystemExit(f"error: --data must be 'mnist' or a path to an .npz file, got {data!r}")
    try:
        with np.load(data) as f:
            if "X" not in f:
                raise SystemExit(f"error: {data} must contain an array named 'X' (and 'Y' for the CVAE); found {list(f)}")
            X = f["X"]
            Y = f["Y"] if "Y" in f else None
    except FileNotFoundError:
        raise SystemExit(f"error: --data file {data!r} does not exist") from None
    if model == "cvae" and Y is None:
        raise SystemExit(f"error: --model cvae needs an array 'Y' in {data}")
    if model != "cvae":
        Y = None
    return X, Y, data


def _cmd_predict(args):
    from .api import predict_collapse

    X, Y, desc = _load(args.data, args.model)
    kwargs = dict(beta=args.beta, eta_enc=args.eta_enc, eta_dec=args.eta_dec, center=args.center)
    if args.model == "mhvae":
        kwargs = dict(beta1=args.beta1, beta2=args.beta2, sigma1=args.sigma1, eta_enc=args.eta_enc,
                      eta_dec=args.eta_dec, center=args.center)
        if args.latent_dim is not None:
            kwargs["latent_dim"] = args.latent_dim
    elif args.latent_dim is not None:
        kwargs["latent_dim"] = args.latent_dim
    table = predict_collapse(X, Y, model=args.model, **kwargs)
    sys.stdout.write(f"data: {desc}; N = {len(X)}\n{table}\n")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="linvae",
        description="Predict, train, measure and reproduce posterior collapse in VAEs "
                    "(Dang et al., ICLR 2024).",
    )
    parser.add_argument("--version", action="version", version=f"linvae {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="predict which latent dims collapse (closed form, no training)")
    p.add_argument("--data", default="mnist",
                   help="'mnist' (embedded 5,000-image subset; needs linvae[data]) or an .npz with X (and Y)")
    p.add_argument("--model", choices=["vae", "cvae", "mhvae"], default="vae")
    p.add_argument("--beta", type=float, nargs="+", default=[1.0], help="β values (VAE, CVAE)")
    p.add_argument("--beta1", type=float, nargs="+", default=[1.0], help="β₁ values (MHVAE)")
    p.add_argument("--beta2", type=float, nargs="+", default=[1.0], help="β₂ values (MHVAE)")
    p.add_argument("--sigma1", type=float, nargs="+", default=[0.5], help="fixed σ₁ (MHVAE)")
    p.add_argument("--eta-enc", type=float, nargs="+", default=[1.0], help="prior std η_enc")
    p.add_argument("--eta-dec", type=float, nargs="+", default=[1.0], help="decoder std η_dec")
    p.add_argument("--latent-dim", type=int, default=None, help="latent size (default: data dim)")
    p.add_argument("--center", action="store_true", help="centre the data first")
    p.set_defaults(func=_cmd_predict)
    return parser


def main(argv=None):
    """Entry point of the ``linvae`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from ._deps import MissingDependencyError

    try:
        return args.func(args)
    except (ValueError, TypeError, MissingDependencyError) as exc:
        parser.exit(2, f"linvae {args.command}: error: {exc}\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
