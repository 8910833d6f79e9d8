"""Sphinx configuration of the skphys documentation.

Build (from the repository root)::

    pip install torch==2.13.0 -e ".[docs]" && sphinx-build -W -b html docs docs/_build/html

``-D plot_gallery=0`` skips running the gallery examples (seconds instead of minutes).
"""

import os
import re
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this checkout, not another installed copy
os.environ.setdefault("MPLBACKEND", "Agg")

import skphys  # noqa: E402

project = "skphys"
author = "skphys developers"
copyright = "skphys developers"
release = version = skphys.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "gallery/README.rst", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "**/*.codeobj.json", "sg_execution_times.rst"]

# -- API reference -------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # the numpydoc Parameters sections carry the types
numpydoc_show_class_members = False  # the class template lists the methods itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
add_module_names = False



def _skip_member(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated metadata-routing setters (``set_fit_request``...)."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return skip


# Plain-text shapes and fitted-attribute names in docstrings, such as ``(n, T, *space, C)`` or
# ``n_features_in_``, are markup in reStructuredText (an unclosed emphasis, a hyperlink
# reference). Docstrings are written to be read in a terminal as well, so instead of escaping
# them in every source file, render them literally: a lone ``*`` opening a word is escaped and a
# bare name ending in ``_`` becomes inline code. Literal text, doctest lines, ``::`` blocks and
# real ``*emphasis*`` are left alone.
_LITERAL = re.compile(r"(``.*?``|`[^`]*`_{0,2})")
_EMPHASIS = re.compile(r"(\*[^\s*](?:[^*]*?[^\s\\])?\*(?!\w))")
_LONE_STAR = re.compile(r"(?<![\\*\w])\*(?=[^\s*])")
_PARAM_HEADER = re.compile(r"^(\s*\*{0,2}\w+(?:, \*{0,2}\w+)*)(?= : |$)")
_TRAILING_UNDERSCORE = re.compile(r"(?<![\w`:.~<|-])([A-Za-z][A-Za-z0-9_]*[A-Za-z0-9]_)(?![\w`])")


def _plain_text(segment):
    parts = _EMPHASIS.split(segment)
    for i in range(0, len(parts), 2):
        parts[i] = _TRAILING_UNDERSCORE.sub(r"``\1``", _LONE_STAR.sub(r"\\*", parts[i]))
    return "".join(parts)


def _render_plain_text(app, what, name, obj, options, lines):
    block_indent = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if not stripped or indent > block_indent:
                continue
            block_indent = None
        if stripped.startswith((">>>", "...")) or not stripped:
            continue
        header = _PARAM_HEADER.match(line)  # numpydoc "name : type": names stay as written
        head, line = (header.group(1), line[header.end(1):]) if header else ("", line)
        parts = _LITERAL.split(line)
        # ". " inside inline code would end autosummary's one-sentence summary mid-literal
        lines[i] = head + "".join(p.replace(". ", ".\u200b ") if j % 2 else _plain_text(p)
                                  for j, p in enumerate(parts))
        if stripped.endswith("::"):
            block_indent = indent


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-docstring", _render_plain_text, priority=100)  # before numpydoc


# -- Markdown user guide ---------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 4  # the guide links to "#section" anchors

# -- Gallery ---------------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["gallery"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "abort_on_example_error": True,
    "show_memory": False,
    "min_reported_time": 1,
    "backreferences_dir": "generated/backreferences",
    "doc_module": ("skphys",),
    "inspect_global_variables": False,
}
warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib is currently using agg")

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skphys {version}"
html_static_path = ["_static"]
html_css_files = ["skphys.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_sidebars = {"index": [], "api": [], "auto_examples/*": [], "auto_examples/index": []}
