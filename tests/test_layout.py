"""The package's shape: the data path runs without torch, imports run one way, deliberate errors are ours, tests
and the package never import the benchmarks, and the docs link only inside the repository."""

from __future__ import annotations

import ast
import builtins
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("fmstf_data", "pipelines", "fmstf_model")

#: what the build, the CLI and the workers import (everything except the loader and fmstf_model)
DATA_PATH_MODULES = (
    "pipelines.cli", "pipelines.build", "pipelines.pair_task", "pipelines.figures", "pipelines.verify",
    "pipelines.align_cli", "fmstf_data.manifest", "fmstf_data.video", "fmstf_data.align", "fmstf_data.extract",
    "fmstf_data.store", "fmstf_data.sources", "fmstf_data.synth", "fmstf_data.color", "fmstf_data.color.params",
)


def python_files(*tops: str) -> list[Path]:
    return sorted(path for top in tops for path in (ROOT / top).rglob("*.py"))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, including those inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_cli_help_and_the_data_path_do_not_import_torch():
    script = (
        "import sys\n"
        "from pipelines.cli import main\n"
        "for argv in (['--help'], ['build', '--help'], ['align', '--help'], ['probe', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"import importlib\nfor name in {DATA_PATH_MODULES!r}:\n    importlib.import_module(name)\n"
        "from pipelines.report import _versions\n"
        "assert _versions()['torch'] not in ('', None)\n"  # the report names torch's version without importing it
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", "torch was imported on the data path"


def test_the_loader_is_where_torch_comes_in():
    """The check above can fail: importing the loader does pull torch in."""
    script = "import sys, fmstf_data.loader; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "True", done.stderr


def test_imports_run_one_way():
    """pipelines -> fmstf_data <- fmstf_model; nothing in the packages imports the benchmarks or the tests."""
    forbidden = {"fmstf_data": ("pipelines", "fmstf_model", "bench", "tests"),
                 "fmstf_model": ("pipelines", "bench", "tests"),
                 "pipelines": ("fmstf_model", "bench", "tests")}
    problems = []
    for top, banned in forbidden.items():
        for path in python_files(top):
            for line, module in imported_modules(path):
                if module.split(".")[0] in banned:
                    problems.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not problems, problems


def test_tests_never_import_the_benchmarks():
    problems = [f"{path.relative_to(ROOT)}:{line} imports {module}" for path in python_files("tests")
                for line, module in imported_modules(path) if module.split(".")[0] == "bench"]
    assert not problems, problems


def builtin_raises(path: Path, root: Path = ROOT) -> list[str]:
    """``raise X(...)`` where X is a builtin exception class (AssertionError and NotImplementedError excepted)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = target.id if isinstance(target, ast.Name) else None
            if name and isinstance(getattr(builtins, name, None), type) and \
                    issubclass(getattr(builtins, name), BaseException) and \
                    name not in ("AssertionError", "NotImplementedError", "StopIteration", "KeyboardInterrupt"):
                found.append(f"{path.relative_to(root)}:{node.lineno} raises {name}")
    return found


def test_every_deliberate_error_is_an_fmstf_error():
    problems = [problem for path in python_files(*PACKAGES) for problem in builtin_raises(path)]
    assert not problems, problems


def test_the_error_check_can_fail(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f(x):\n    if x:\n        raise ValueError('bad')\n    raise RuntimeError\n")
    assert sorted(builtin_raises(sample, tmp_path)) == ["sample.py:3 raises ValueError", "sample.py:4 raises RuntimeError"]


def test_fmstf_data_shows_its_rooms():
    """Subpackages by concern, each stating its job; only a handful of modules at the top."""
    top_modules = sorted(path.name for path in (ROOT / "fmstf_data").glob("*.py"))
    assert top_modules == ["__init__.py", "errors.py"], top_modules
    for package in sorted(path.parent for path in (ROOT / "fmstf_data").glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert docstring and len(docstring) > 40, f"{package.name}/__init__.py does not say what it is for"


@pytest.mark.parametrize("path", sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
                                         *(ROOT / "manifests").glob("*.md")]), ids=lambda p: p.name)
def test_docs_link_only_inside_the_repository(path):
    text = path.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if re.match(r"[a-z]+://", target):
            continue
        resolved = (path.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{path.name} links outside the repository: {target}"
        assert resolved.exists(), f"{path.name} links to a missing file: {target}"
    assert "../shared" not in text, f"{path.name} points at files outside the repository"


def test_no_source_points_outside_the_repository():
    problems = [str(path.relative_to(ROOT)) for path in python_files(*PACKAGES, "bench", "manifests")
                if "../shared" in path.read_text() or "/shared/reference" in path.read_text()]
    assert not problems, problems
