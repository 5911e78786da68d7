"""Sphinx configuration of the linvae documentation (``sphinx-build -W docs docs/_build``)."""
import os
import sys

sys.path.insert(0, os.environ.get("LINVAE_ROOT", os.path.abspath("..")))

import linvae  # noqa: E402

project = "linvae"
author = "linvae developers"
copyright = "2024-2026, the linvae developers"
release = linvae.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "myst_nb",
]

# notebooks are rendered from their stored outputs: no kernel is started
nb_execution_mode = "off"
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

autosummary_generate = True
autodoc_typehints = "none"            # numpydoc's Parameters sections carry the types
# scikit-learn generates the metadata-routing setters on each estimator class; their docstrings
# link into scikit-learn's own glossary
autodoc_default_options = {
    "members": True,
    # show linvae's own inherited methods (score, to_dict, ...), not those of scikit-learn or builtins
    "inherited-members": "BaseEstimator, TransformerMixin, ClassNamePrefixFeaturesOutMixin, _SetOutputMixin, "
                         "_MetadataRequester, _HTMLDocumentationLinkMixin, BaseException, Exception, "
                         "ValueError, AttributeError, FloatingPointError, ImportError, UserWarning, Warning, "
                         "RuntimeError, object",
    "exclude-members": "set_fit_request, set_score_request, set_transform_request, "
                       "set_inverse_transform_request, set_predict_request, set_elbo_score_request",
}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

intersphinx_mapping = {}

html_theme = "pydata_sphinx_theme"
html_title = f"linvae {release}"
html_theme_options = {"navigation_with_keys": False}
suppress_warnings = ["mystnb.unknown_mime_type"]
