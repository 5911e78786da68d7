"""The defaults written in the numpydoc Parameters sections match the signatures.

A parameter whose type line says ``default V`` must have ``V`` as its default in the signature;
``sweep`` and ``predict_collapse`` document most parameters as "see :func:`fit`", so their
defaults must equal the ones :func:`linvae.fit` documents. Every parameter of the signature is
documented.
"""
import ast
import inspect
import re

import numpy as np
import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc

import linvae

pytest.importorskip("sklearn")
from linvae.estimators import LinearCVAE, LinearMHVAE, LinearVAE  # noqa: E402

_DEFAULT = re.compile(r"\bdefault[:=]?\s+(?P<value>.+?)\s*$")


def _params(doc):
    """``{name: (type line, description)}`` of a numpydoc Parameters section (groups split)."""
    out = {}
    for p in doc["Parameters"]:
        for name in p.name.split(","):
            out[name.strip()] = (p.type, " ".join(p.desc))
    return out


def _documented_default(type_line):
    m = _DEFAULT.search(type_line)
    if m is None:
        return inspect.Parameter.empty
    return ast.literal_eval(m.group("value"))


def _same(documented, actual):
    return type(documented) is type(actual) and documented == actual or (
        isinstance(documented, (int, float)) and isinstance(actual, float) and float(documented) == actual)


def _signature_defaults(obj):
    return {n: p.default for n, p in inspect.signature(obj).parameters.items() if n != "self"}


FIT_DOC = _params(FunctionDoc(linvae.fit))


def _check(obj, doc_params):
    sig = _signature_defaults(obj)
    undocumented = sorted(set(sig) - set(doc_params))
    assert not undocumented, f"{obj.__qualname__}: parameters missing from the docstring: {undocumented}"
    checked = 0
    for name, (type_line, _) in doc_params.items():
        assert name in sig, f"{obj.__qualname__} documents {name!r}, which is not in its signature"
        if type_line.startswith("see :func:`fit`"):
            type_line = FIT_DOC[name][0]      # the meaning (and default) documented by fit
        documented = _documented_default(type_line)
        if documented is inspect.Parameter.empty:
            continue
        assert _same(documented, sig[name]), (f"{obj.__qualname__}({name}=...): the docstring says default "
                                              f"{documented!r}, the signature has {sig[name]!r}")
        checked += 1
    return checked


@pytest.mark.parametrize("func", [linvae.fit, linvae.sweep, linvae.predict_collapse], ids=lambda f: f.__name__)
def test_documented_defaults_of_the_public_functions_match_their_signatures(func):
    checked = _check(func, _params(FunctionDoc(func)))
    # fit documents a default for each of its optional scalar settings; the others mostly refer to fit
    assert checked >= {"fit": 20, "sweep": 15, "predict_collapse": 4}[func.__name__]


@pytest.mark.parametrize("cls", [LinearVAE, LinearCVAE, LinearMHVAE], ids=lambda c: c.__name__)
def test_documented_defaults_of_the_estimators_match_init(cls):
    assert _check(cls.__init__, _params(ClassDoc(cls))) >= 4


def test_estimators_default_to_the_defaults_of_fit():
    fit_sig = _signature_defaults(linvae.fit)
    # the two documented differences, scikit-learn's PCA conventions: the latent size is
    # n_components (latent_dim / latent_dims its alias, None as in fit), and the data are centred
    pca_style = {"n_components": None, "center": True}
    for cls in (LinearVAE, LinearCVAE, LinearMHVAE):
        for name, default in _signature_defaults(cls.__init__).items():
            expected = pca_style[name] if name in pca_style else fit_sig[name]
            assert _same(default, expected), (cls.__name__, name, default, expected)


def test_documented_adam_learning_rate_is_the_one_used():
    """fit's docstring once said lr 1e-2 for Adam while the code used 3e-2."""
    from linvae import train

    desc = FIT_DOC["lr"][1]
    m = re.search(r"default:\s*([0-9.e+-]+) for Adam", desc)
    assert m, desc
    used = train._default_lr(None, np.ones((1, 3)), "adam")
    assert np.all(used == float(m.group(1)))


def test_the_builder_and_the_training_options_default_to_the_defaults_of_fit():
    """fit, sweep and _spec.build repeat their keywords, and TrainOptions its defaults: they must agree."""
    import dataclasses

    from linvae import _spec
    from linvae.train import TrainOptions

    fit_sig = _signature_defaults(linvae.fit)
    build_sig = _signature_defaults(_spec.build)
    shared = set(fit_sig) - {"X", "Y"}
    assert shared <= set(build_sig), sorted(shared - set(build_sig))
    for name in sorted(shared):
        assert _same(build_sig[name], fit_sig[name]), ("_spec.build", name, build_sig[name], fit_sig[name])
    options = {f.name: f.default for f in dataclasses.fields(TrainOptions)}
    compared = 0
    for name in sorted(set(options) & shared):
        if name in ("solver", "backend", "lr_decay"):      # resolved per call (see _spec._training_options)
            continue
        assert _same(options[name], fit_sig[name]), ("TrainOptions", name, options[name], fit_sig[name])
        compared += 1
    assert compared >= 10
