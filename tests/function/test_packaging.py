"""What Cloud Build installs for the function is what the tests ran it with."""

from __future__ import annotations

import ast

from stacks.config import PROJECT_ROOT

FUNCTION_DIR = PROJECT_ROOT / "function_src"


def pins(path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {n.lower(): v for n, v in (line.split("==") for line in lines if "==" in line)}


def test_the_functions_requirements_are_pinned_at_the_projects_versions():
    function, project = (
        pins(FUNCTION_DIR / "requirements.txt"),
        pins(PROJECT_ROOT / "requirements.txt"),
    )
    assert function, "function_src/requirements.txt pins nothing"
    assert {n: project.get(n) for n in function} == function


def test_the_deployed_code_imports_no_local_only_package_at_module_level():
    """DuckDB and sqlglot are not installed in the cloud: only the local adapter may use them."""
    for path in [FUNCTION_DIR / "main.py", *(FUNCTION_DIR / "ingestion").glob("*.py")]:
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
        assert not names & {"duckdb", "sqlglot", "pandas", "pyarrow"}, path.name
