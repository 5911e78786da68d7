"""The ``linvae`` command line."""
import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import zipfile

import numpy as np

from ._backend import CHOICES
from ._version import __version__

logger = logging.getLogger("linvae")


def _load_array_file(data, model):
    """(X, None, description) from an ``.npy`` or ``.csv`` file holding X (VAE and MHVAE only)."""
    import os

    if not os.path.exists(data):
        raise SystemExit(f"error: --data file {data!r} does not exist (expected 'mnist', an .npz with X "
                         "(and Y), or an .npy/.csv file holding X)")
    from ._models import is_conditional

    if is_conditional(model):
        raise SystemExit(f"error: --model cvae needs X and Y; an {os.path.splitext(data)[1]} file holds one "
                         "array: save both with numpy.savez(path, X=X, Y=Y) and pass the .npz")
    if data.endswith(".npy"):
        X = np.load(data, allow_pickle=False)
    else:
        with open(data) as f:
            first = f.readline()
        try:
            [float(v) for v in first.strip().split(",") if v.strip()]
            skip = 0
        except ValueError:
            skip = 1                      # a header line of column names
        X = np.loadtxt(data, delimiter=",", skiprows=skip, ndmin=2)
    return X, None, data


def _write_table(table, fmt):
    """The collapse table as text: the aligned table, CSV (one row per configuration) or JSON."""
    if fmt == "json":
        import json

        return json.dumps(table.to_dict(json_safe=True), indent=1) + "\n"
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        d = table.collapsed.shape[1]
        names = list(table.columns)
        per_dim = [("kl", table.kl_per_dim), ("collapsed", table.collapsed)]
        if table.sigma is not None:
            per_dim.insert(1, ("sigma", table.sigma))
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(names + [f"{n}_{i}" for n, _ in per_dim for i in range(d)])
        for r in range(len(table)):
            row = [table.columns[n][r].item() for n in names]
            row += [a[r, i].item() for _, a in per_dim for i in range(d)]
            writer.writerow([repr(v) if isinstance(v, float) else v for v in row])
        return buf.getvalue()
    return f"{table}\n"


def _load(data, model):
    """Return (X, Y or None, description) for ``--data``."""
    from ._models import is_conditional

    if data.endswith((".npy", ".csv")):
        return _load_array_file(data, model)
    if data == "mnist":
        from .data import load_mnist_subset, quadrant_split

        images, _, meta = load_mnist_subset()
        if is_conditional(model):
            x, y = quadrant_split(images)
            return x, y, f"{meta['source']}: x = bottom-left quarter (196 px), y = other quarters (588 px)"
        return images, None, meta["source"]
    if not data.endswith(".npz"):
        raise ValueError(f"--data must be 'mnist' or a path to an .npz file, got {data!r}")
    try:
        with np.load(data) as f:
            arrays = {k: f[k] for k in f if k in ("X", "Y")}
            names = list(f)
    except FileNotFoundError:
        raise ValueError(f"--data file {data!r} does not exist") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:    # truncated or not an npz
        raise ValueError(f"--data file {data!r} is not a readable .npz: {_one_line(exc)}") from None
    if "X" not in arrays:
        raise ValueError(f"{data} must contain an array named 'X' (and 'Y' for the CVAE); found {names}")
    X, Y = arrays["X"], arrays.get("Y")
    if is_conditional(model) and Y is None:
        raise ValueError(f"--model cvae needs an array 'Y' in {data}")
    if not is_conditional(model):
        Y = None
    return X, Y, data


def _cmd_predict(args):
    from ._spec import build
    from .api import _predict

    X, Y, desc = _load(args.data, args.model)
    # every hyperparameter flag goes to the specification; it reads the ones of --model
    spec = build(X, Y, entry="predict", model=args.model, beta=args.beta, beta1=args.beta1, beta2=args.beta2,
                 sigma1=args.sigma1, eta_enc=args.eta_enc, eta_dec=args.eta_dec, latent_dim=args.latent_dim,
                 center=args.center)
    table = _predict(spec)
    if getattr(args, "format", "table") != "table":
        sys.stdout.write(_write_table(table, args.format))
        return 0
    sys.stdout.write(f"data: {desc}; N = {len(X)}\n{table}\n")
    return 0


class _StageProgress:
    """A tqdm bar for one experiment: its stages, and the elapsed time refreshed every second."""

    def __init__(self, target, enabled):
        from ._deps import import_optional

        try:
            tqdm = import_optional("tqdm.auto").tqdm
        except ImportError:
            tqdm = None
        self.bar = None if tqdm is None else tqdm(total=2, desc=f"reproduce {target}", unit="stage",
                                                  disable=None if enabled is None else not enabled,
                                                  bar_format="{desc}: stage {n}/{total}{postfix} [{elapsed}]")
        self._stop = threading.Event()
        if self.bar is not None and not self.bar.disable:
            self.bar.set_postfix_str("computing")
            threading.Thread(target=self._tick, daemon=True).start()

    def _tick(self):
        while not self._stop.wait(1.0):
            self.bar.refresh()

    def advance(self, what):
        if self.bar is not None:
            self.bar.set_postfix_str(what, refresh=False)
            self.bar.update(1)

    def close(self):
        self._stop.set()
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def _stage_lines(args):
    """Without a terminal on stderr (a log file, CI) and without ``--progress`` there is no bar:
    the experiments' stage lines (logger ``linvae.experiments``, INFO) go to stderr instead, one
    line per stage with its time, so a long run is never silent. Restored on exit."""
    if args.progress or args.verbose or sys.stderr.isatty():
        yield
        return
    log = logging.getLogger("linvae.experiments")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s linvae reproduce: %(message)s", "%H:%M:%S"))
    handler.setLevel(logging.INFO)
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def _cmd_reproduce(args):
    with _stage_lines(args):
        return _reproduce(args)


def _reproduce(args):
    from . import experiments

    if args.list or args.target is None:
        listed = experiments.list_experiments()
        width = max(len(exp_id) for exp_id, _ in listed)
        for exp_id, title in listed:
            sys.stdout.write(f"{exp_id:{width}s}  {title}\n")
        return 0
    if args.target == "report":
        if not os.path.isdir(args.out):
            raise ValueError(f"--out {args.out!r} does not exist; run `linvae reproduce all --out {args.out}` first")
        path = experiments.write_report(args.out)
        sys.stdout.write(f"report: {path}\n")
        return 0
    data = args.data
    if data is not None:
        from .data import load_mnist

        try:                                                   # fail now, not after the first experiment
            load_mnist(data, split="train")
        except Exception as exc:                               # noqa: BLE001 - any unreadable file
            raise ValueError(f"--data {data!r} is not usable: {_one_line(exc)}") from None
    if args.target == "all":
        ids = [e for e, v in experiments.REGISTRY.items() if args.only is None or v[3] == args.only]
        ran = experiments.run_all(args.out, quick=args.quick, seed=args.seed, backend=args.backend, data=data,
                                  overwrite=args.overwrite, progress=args.progress, ids=ids,
                                  scheduler=args.scheduler, jobs=args.jobs)
        skipped = [e for e in ids if e not in ran]
        if skipped and not args.overwrite:
            sys.stdout.write(f"kept existing results of {len(skipped)} experiments (use --overwrite to redo)\n")
        path = experiments.write_report(args.out)
        sys.stdout.write(f"ran {len(ran)} experiments; report: {path}\n")
        return 0
    stages = _StageProgress(args.target, True if args.progress else None)
    try:
        try:
            directory = experiments.run_experiment(args.target, args.out, quick=args.quick, seed=args.seed,
                                                   backend=args.backend, data=data, overwrite=args.overwrite,
                                                   jobs=args.jobs)
        except FileExistsError as exc:
            raise SystemExit(f"linvae reproduce: error: {_one_line(exc)}") from None
        stages.advance("writing the report")
        report = experiments.write_report(args.out)
        stages.advance("done")
    finally:
        stages.close()
    import json

    with open(os.path.join(directory, "meta.json")) as f:
        meta = json.load(f)
    sys.stdout.write(f"{args.target}: {meta['title']} ({'quick' if args.quick else 'full'}, "
                     f"{meta['wall_time_s']:.1f} s)\n")
    for c in meta["claims"]:
        sys.stdout.write(f"  [{c['verdict']}] {c['claim']}\n      theory: {c['prediction']}\n"
                         f"      measured: {c['measured']}\n")
    sys.stdout.write(f"figure: {os.path.join(directory, 'figure.png')}\nreport: {report}\n")
    return 0


def _cmd_doctor(args):
    from .doctor import diagnose, format_report

    sys.stdout.write(format_report(diagnose(check_kernels=not args.no_check)) + "\n")
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something: not for flags (off unless given), not for
    options without one, and not where the help text already states it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def build_parser():
    from ._models import MODELS

    parser = argparse.ArgumentParser(
        prog="linvae", formatter_class=_HelpFormatter,
        description="Predict, train, measure and reproduce posterior collapse in VAEs "
                    "(Dang et al., ICLR 2024).",
    )
    parser.add_argument("--version", action="version", version=f"linvae {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="predict which latent dims collapse (closed form, no training)",
                       formatter_class=_HelpFormatter)
    p.add_argument("--data", default="mnist",
                   help="'mnist' (the embedded 5,000-image subset), an .npz with X (and Y), or an "
                        ".npy / .csv file holding X")
    p.add_argument("--model", choices=MODELS, default="vae")
    p.add_argument("--beta", type=float, nargs="+", default=[1.0], help="β values (VAE, CVAE)")
    p.add_argument("--beta1", type=float, nargs="+", default=[1.0], help="β₁ values (MHVAE)")
    p.add_argument("--beta2", type=float, nargs="+", default=[1.0], help="β₂ values (MHVAE)")
    p.add_argument("--sigma1", type=float, nargs="+", default=[0.5], help="fixed σ₁ (MHVAE)")
    p.add_argument("--eta-enc", type=float, nargs="+", default=[1.0], help="prior std η_enc")
    p.add_argument("--eta-dec", type=float, nargs="+", default=[1.0], help="decoder std η_dec")
    p.add_argument("--latent-dim", type=int, default=None, help="latent size (None: the data dimension)")
    p.add_argument("--center", action="store_true", help="centre the data first")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table",
                   help="output: an aligned table, CSV (one row per configuration, kl_i/sigma_i/collapsed_i "
                        "per latent dim) or JSON (CollapseTable.to_dict)")
    p.set_defaults(func=_cmd_predict)

    from .experiments import SHAREABLE

    r = sub.add_parser("reproduce", help="reproduce the paper's figures and tables",
                       formatter_class=_HelpFormatter,
                       description="Run one experiment (e.g. fig2a), 'all', or 'report' (rebuild REPORT.md).")
    r.add_argument("target", nargs="?", help="experiment id, 'all' or 'report' (see --list)")
    r.add_argument("--list", action="store_true", help="list the experiments")
    r.add_argument("--quick", action="store_true", help="small sizes: every experiment in seconds to a minute")
    r.add_argument("--out", default="results", help="output directory")
    r.add_argument("--data", default=None, help="directory with the MNIST IDX files or an .npz (default: embedded subset)")
    r.add_argument("--seed", type=int, default=0,
                   help="first seed: an experiment with several seeds uses seed, seed + 1, ...")
    r.add_argument("--backend", default="auto", choices=list(CHOICES),
                   help="kernels of the linear experiments' gradient training: numba (CPU), numpy, cupy (GPU); auto "
                        "is numba (cupy only for data already on the GPU)")
    r.add_argument("--overwrite", action="store_true",
                   help="replace the files linvae wrote in existing results (files you added are kept)")
    r.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="processes that share the batched trainings of " + ", ".join(SHAREABLE)
                   + " (each on cores/N torch threads), each training done once by whichever process claims it")
    r.add_argument("--progress", action="store_true",
                   help="always show progress bars (by default they show when stderr is a terminal)")
    r.add_argument("--only", choices=["linear", "torch", "plot"], default=None,
                   help="with 'all': run only the experiments of this kind (linear ones take seconds to minutes)")
    r.add_argument("--scheduler", default=None,
                   help="with 'all': run the experiments as Dask tasks: 'threads', 'processes', 'local' "
                        "(a LocalCluster) or a scheduler address tcp://host:port (needs linvae[distributed])")
    r.set_defaults(func=_cmd_reproduce)

    d = sub.add_parser("doctor", help="versions, threading, GPU and optional packages (attach to bug reports)",
                       formatter_class=_HelpFormatter)
    d.add_argument("--no-check", action="store_true", help="skip the kernel self-check (a short fit)")
    d.set_defaults(func=_cmd_doctor)
    return parser


def main(argv=None):
    """Entry point of the ``linvae`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from ._deps import MissingDependencyError
    from .exceptions import OutputLockedError

    previous = _terminate_as_interrupt()
    out = getattr(args, "out", None)
    created = out is not None and not os.path.exists(out)
    try:
        return args.func(args)
    except (ValueError, TypeError, KeyError) as exc:            # the command line asked for something invalid
        _remove_if_empty(out if created else None)
        parser.exit(2, f"linvae {args.command}: error: {_one_line(exc)}\n")
    except (MissingDependencyError, OutputLockedError, OSError, RuntimeError, ArithmeticError) as exc:
        _remove_if_empty(out if created else None)                # the run itself failed: exit status 1
        raise SystemExit(f"linvae {args.command}: error: {_one_line(exc)}") from None
    except Exception as exc:                                    # noqa: BLE001 - never a traceback
        _remove_if_empty(out if created else None)
        logger.debug("traceback", exc_info=True)
        raise SystemExit(f"linvae {args.command}: error: {type(exc).__name__}: {_one_line(exc)} "
                         "(run with -v for details)") from None
    except KeyboardInterrupt:
        _remove_if_empty(out if created else None)
        parser.exit(130, f"linvae {args.command}: interrupted; finished results were kept, run the same "
                         "command again to resume\n")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _one_line(exc):
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    text = " ".join(str(text).split()) or type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, FileExistsError) and exc.filename and \
            str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return text


def _remove_if_empty(directory):
    """Remove an output directory this command created when a failed run left it empty."""
    if directory is not None:
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def _terminate_as_interrupt():
    """Make SIGTERM raise KeyboardInterrupt (so locks are released and temporaries removed)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
