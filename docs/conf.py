"""Sphinx configuration of the prunelimit documentation (``sphinx-build -W -b html docs <out>``)."""

from __future__ import annotations

import inspect
import os
import sys
from importlib import metadata

# The packages are importable from the repository root (also without an editable install).
sys.path.insert(0, os.path.abspath(".."))

project = "prunelimit"
author = "prunelimit developers"
copyright = "prunelimit developers"
try:
    release = metadata.version("prunelimit")
except metadata.PackageNotFoundError:  # building from a checkout that is not installed
    release = "0.1.0"
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

# MyST: $...$ and $$...$$ maths, amsmath environments, heading anchors for cross-file links (docs/math.md#…)
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 4

# autodoc: members in source order, signatures without the long type annotations (described in the text)
autodoc_member_order = "bysource"
autodoc_typehints = "none"
# Members defined in each module (``ignore-module-all``): a name a module re-exports through ``__all__`` is
# documented once, where it is defined.
autodoc_default_options = {"members": True, "ignore-module-all": True}
autodoc_preserve_defaults = True

# napoleon: numpy-style sections (the project style); Google-style ``Args:`` blocks (nets.grda.GRDA) are read
# too. ``Attributes`` entries become ``.. attribute::`` directives, which keep a shared entry such as
# ``rho_lower, rho_upper:`` in one piece; a property that is also listed there is skipped (``setup`` below).
napoleon_numpy_docstring = True
napoleon_use_ivar = False
napoleon_use_rtype = False

html_theme = "alabaster"
html_title = f"prunelimit {release}"
# mathjax is loaded by the reader's browser (the build itself needs no network).


def _listed_in_attributes_section(obj: object, name: str) -> bool:
    """Whether ``obj`` is a property whose class lists ``name`` in its numpy ``Attributes`` section."""
    fget = getattr(obj, "fget", None)
    if not isinstance(obj, property) or fget is None or "." not in fget.__qualname__:
        return False
    owner: object = sys.modules.get(fget.__module__)
    for part in fget.__qualname__.split(".")[:-1]:
        owner = getattr(owner, part, None)
    lines = inspect.cleandoc(getattr(owner, "__doc__", None) or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines[:-1])
                     if line.strip() == "Attributes" and set(lines[i + 1].strip()) == {"-"})
    except StopIteration:
        return False
    for line in lines[start + 2:]:
        if line.strip() and set(line.strip()) == {"-"}:  # the next section's underline
            break
        if line and not line[0].isspace() and ":" in line:
            if name in [n.strip() for n in line.split(":", 1)[0].split(",")]:
                return True
    return False


def _skip_member(app: object, what: str, name: str, obj: object, skip: bool, options: object) -> bool | None:
    # A property documented in its class's Attributes section would be a second description of one name.
    return True if what == "class" and _listed_in_attributes_section(obj, name) else None


def setup(app: object) -> None:
    app.connect("autodoc-skip-member", _skip_member)
