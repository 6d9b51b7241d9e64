"""The documentation in ``docs/``: it builds with warnings as errors, every ``docs/<page>.md §N`` reference in the
code resolves to a numbered heading, no file of the repository cites a file outside it, and the API reference
covers every public module.

Heading convention (stated in ``docs/index.md``): a numbered heading starts with a section sign and its number,
``## §2 The pruning limit`` or ``### §2.2 The two pruning limits``; a reference is the page's path from the
repository root followed by the number, ``docs/math.md §2.2``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: where library code may cite the documentation (docstrings and comments)
CODE_DIRS = ("theory", "numerics", "nets", "proofs_check", "bench")
#: every folder whose files (docstrings, comments, markdown) must cite only files in the repository
SOURCE_DIRS = CODE_DIRS + ("tests",)

#: ``## §2.2 Title``: a markdown heading whose text starts with ``§`` and a dotted number
HEADING = re.compile(r"^#{1,6}[ \t]+§(?P<number>\d+(?:\.\d+)*)(?=[\s:.]|$)", re.MULTILINE)
#: ``docs/math.md §2.2`` (any whitespace, including a line break, between the path and the section sign)
REFERENCE = re.compile(r"docs/(?P<page>[A-Za-z0-9_-]+)\.md(?:\s*§\s*(?P<number>\d+(?:\.\d+)*))?")
#: citations of files outside the repository: the specification and style files the package was written from
#: (before docs/ existed), the folder that held them, the seed material, and absolute paths of the machine
OUTSIDE = re.compile(
    r"\b(?:MATH|EXPERIMENTS|STYLE)\.md\b"  # the former specification and style guide (now docs/math.md, ...)
    r"|(?:\.\./)+shared/|\bshared/(?:spec|seeds)\b"  # the folder beside the repository that held them
    r"|\bseeds/(?=\w)|\b\w+_(?:summary|reviews)\.txt\b|\bseed (?:summary|reviews?|files?)\b"  # the seed material
    r"|(?<![\w.])/(?:work|home|tmp)/(?=\w)"  # absolute paths of a machine
)


def numbered_headings(text: str) -> list[str]:
    """Section numbers of the numbered headings of a markdown page, in order.

    Fenced code blocks are skipped (a ``#`` line inside one is not a heading).
    """
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return [m.group("number") for m in HEADING.finditer("\n".join(lines))]


def unresolved_references(text: str, pages: dict[str, set[str]]) -> list[str]:
    """The references in ``text`` whose page is missing or has no heading with that number."""
    bad = []
    for m in REFERENCE.finditer(text):
        page, number = m.group("page"), m.group("number")
        if page not in pages or (number is not None and number not in pages[page]):
            bad.append(" ".join(m.group(0).split()))
    return bad


def _pages() -> dict[str, set[str]]:
    return {p.stem: set(numbered_headings(p.read_text(encoding="utf-8"))) for p in sorted(DOCS.glob("*.md"))}


def _code_files(dirs: tuple[str, ...] = CODE_DIRS) -> list[Path]:
    return sorted(f for d in dirs for f in (ROOT / d).rglob("*.py") if "__pycache__" not in f.parts)


def _repository_text_files() -> list[Path]:
    """The files whose text must not cite files outside the repository: the Python files of the packages,
    benchmarks and tests (docstrings, comments and strings), the markdown and configuration files at the root,
    and every page of docs/."""
    files = _code_files(SOURCE_DIRS)
    files += sorted(f for d in SOURCE_DIRS for f in (ROOT / d).rglob("*.md"))
    files += sorted(p for pattern in ("*.md", "*.cff", "*.toml", "*.txt") for p in ROOT.glob(pattern))
    files += sorted(DOCS.rglob("*.md")) + sorted(DOCS.glob("*.py"))
    return [f for f in files if "_build" not in f.relative_to(ROOT).parts]


def outside_citations(text: str) -> list[tuple[int, str]]:
    """``(line number, matched text)`` of every citation of a file outside the repository in ``text``."""
    return [(i, m.group(0)) for i, line in enumerate(text.splitlines(), 1) for m in OUTSIDE.finditer(line)]


# ----------------------------------------------------------------------------------------------------- parser
def test_heading_parser_reads_the_convention() -> None:
    text = (
        "# Title\n## §1 One\n### §1.1 Sub: with colon\n## Unnumbered\n### §1.2\n"
        "```text\n## §9 inside a code block\n```\n#### §10.2.3 Deep\n## §3x not a number\n"
    )
    assert numbered_headings(text) == ["1", "1.1", "1.2", "10.2.3"]


def test_reference_check_can_fail() -> None:
    pages = {"math": {"1", "2", "2.2"}}
    text = "see docs/math.md §2.2, docs/math.md\n    §2, docs/math.md §2.3, docs/guide.md §1 and docs/math.md"
    assert unresolved_references(text, pages) == ["docs/math.md §2.3", "docs/guide.md §1"]


def test_outside_citation_check_can_fail() -> None:
    """The scanner finds each kind of out-of-repository citation in a docstring, a comment and markdown, and
    leaves the in-repository equivalents alone. (The planted names are assembled so that this file itself does
    not cite them.)"""
    spec, exp, style = "MATH" + ".md", "EXPERIMENTS" + ".md", "STYLE" + ".md"
    planted = (
        f'"""Setting ({spec} §1)."""\n'
        f"x = 1  # {exp}, mistake 4\n"
        f"See {style} 15 and ../../{'shared'}/spec/ for details.\n"
        f"from the {'seed'} summary in {'seeds'}/pruning_limit_{'summary'}.txt\n"
        f"read /{'work'}/shared/x\n"
    )
    found = outside_citations(planted)
    assert [i for i, _ in found] == [1, 2, 3, 3, 4, 4, 4, 5]
    assert [m for _, m in found][:4] == [spec, exp, style, "../../" + "shared/"]
    fine = ("docs/math.md §1.2, docs/experiments.md §1.4, seeds=3, range(args.seeds), the seed's generator, "
            "tests/theory/test_width.py, https://example.org/work/x, out/shared/, tmp_path / 'a.txt'")
    assert outside_citations(fine) == []


# ----------------------------------------------------------------------------------------------------- pages
def test_numbered_headings_are_unique_and_nested() -> None:
    """Numbers are stable identifiers: each appears once per page, and §a.b sits under an existing §a."""
    for page in sorted(DOCS.glob("*.md")):
        numbers = numbered_headings(page.read_text(encoding="utf-8"))
        dupes = sorted({n for n in numbers if numbers.count(n) > 1})
        assert not dupes, f"{page.name}: section numbers used twice: {dupes}"
        orphans = [n for n in numbers if "." in n and n.rsplit(".", 1)[0] not in numbers]
        assert not orphans, f"{page.name}: subsections without their parent section: {orphans}"


def test_math_page_keeps_the_spec_numbering() -> None:
    """docs/math.md keeps the section numbers of the specification the package was written from, which the
    docstrings cite as ``docs/math.md §N``: they are stable identifiers."""
    numbers = set(numbered_headings((DOCS / "math.md").read_text(encoding="utf-8")))
    spec = {"1", "1.1", "1.2", "1.3", "1.4", "2", "2.1", "3", "4"}
    assert spec <= numbers, f"missing: {sorted(spec - numbers)}"


def test_every_docs_reference_in_the_code_resolves() -> None:
    pages = _pages()
    # this file's own examples (the parser tests) are not references
    tests = [f for f in _code_files(("tests",)) if f != Path(__file__).resolve()]
    files = _code_files() + tests + [ROOT / "README.md"] + sorted(DOCS.glob("*.md"))
    bad = [f"{f.relative_to(ROOT)}: {ref}"
           for f in files for ref in unresolved_references(f.read_text(encoding="utf-8"), pages)]
    assert not bad, "references to docs/ that do not resolve:\n" + "\n".join(bad)


def test_no_file_cites_a_file_outside_the_repository() -> None:
    """The repository carries its own documentation: no docstring, comment or page cites the specification,
    style guide or seed material it was written from, or a path of the machine (cite ``docs/math.md §N``,
    ``docs/experiments.md §N`` or a public source instead)."""
    files = _repository_text_files()
    assert any(f.suffix == ".md" for f in files) and any(f.parts[-2] == "tests" for f in files)
    bad = [f"{f.relative_to(ROOT)}:{i}: {m}" for f in files
           for i, m in outside_citations(f.read_text(encoding="utf-8"))]
    assert not bad, f"{len(bad)} citations of files outside the repository:\n" + "\n".join(bad[:40])


def test_api_reference_covers_every_public_module() -> None:
    """Every public module of the four packages has an ``automodule`` directive in docs/api/ (a new module must
    be added there, or listed here with the reason it is left out)."""
    left_out: dict[str, str] = {}  # module -> reason
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented |= set(re.findall(r"^\.\. automodule:: ([\w.]+)", page.read_text(encoding="utf-8"), re.MULTILINE))
    public = set()
    for pkg in ("theory", "numerics", "nets", "proofs_check"):
        for f in (ROOT / pkg).rglob("*.py"):
            parts = f.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if "__pycache__" in f.parts or any(p.startswith("_") for p in parts):
                continue
            public.add(".".join(parts))
    missing = sorted(public - documented - set(left_out))
    assert not missing, f"public modules missing from docs/api/: {missing}"
    stale = sorted(documented - public)
    assert not stale, f"docs/api/ documents modules that do not exist: {stale}"


# ----------------------------------------------------------------------------------------------------- build
@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(tmp_path: Path) -> None:
    """``sphinx-build -W --keep-going -b html docs`` succeeds: every docstring parses under autodoc + napoleon,
    every cross-reference and heading anchor resolves, every formula is well-formed markup."""
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-j", "1", "-q", "-b", "html",
           "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    assert out.returncode == 0, f"sphinx-build failed ({seconds:.0f} s):\n{out.stderr[-6000:]}"
    assert (tmp_path / "html" / "math.html").is_file()
    assert (tmp_path / "html" / "api" / "theory.html").is_file()


def test_code_names_in_the_docs_exist() -> None:
    """Every dotted name of the package that the pages mention (such as ``nets.limit.actual_limit``) exists:
    the docs follow renames."""
    import dataclasses
    import importlib

    names = set()
    for page in list(DOCS.glob("*.md")) + list((DOCS / "api").glob("*.md")):
        names |= set(re.findall(r"`((?:theory|numerics|nets|proofs_check)(?:\.\w+)+)", page.read_text(encoding="utf-8")))
    missing = []
    for name in sorted(names):
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj: object = importlib.import_module(".".join(parts[:i]))
                break
            except ImportError:
                continue
        for attr in parts[i:]:
            fields = {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set()
            if attr in fields and not hasattr(obj, attr):  # a dataclass field without a class-level default
                obj = None
                continue
            if obj is None or not hasattr(obj, attr):
                missing.append(name)
                break
            obj = getattr(obj, attr)
    assert not missing, f"names in docs/ that the package does not define: {missing}"
