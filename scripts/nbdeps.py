"""Notebook dependencies for make: which memkit modules and which other outputs each paper notebook uses.

    python scripts/nbdeps.py --out build/nbdeps.mk      # `make` regenerates it when notebooks or src change
    python scripts/nbdeps.py --affected src/memkit/mechanisms/curvature.py   # notebooks that rerun after an edit

Library files: a static import analysis (`ast`, nothing is imported or executed). Every `import` and
`from ... import` anywhere in a file counts -- module level, inside functions (lazy imports), under
`if TYPE_CHECKING` -- and relative imports are resolved against the importing module. A module name
maps to `src/memkit/<path>.py` or to a package's `__init__.py`; importing `memkit.a.b` also runs
`memkit/__init__.py` and `memkit/a/__init__.py`, so those count too. Two dynamic forms are followed:
string literals naming a memkit module inside a package `__init__.py` (memkit's lazy `_EXPORTS`
table, read by `importlib`), and attribute chains on the top-level package (`memkit.mia.mia_scores`
imports `memkit.mia` on first use). The closure is transitive over memkit's own modules. A file whose
only statements are a docstring and `from __future__` imports (most package `__init__.py`) cannot change
what a notebook computes: it stays in the closure but is not listed, so editing a package's docstring
reruns nothing.

Data files a module reads: a module-level `READS = ("configs/models-cpu.yml", ...)` of string literals
(project-relative paths) makes those files prerequisites of every notebook whose closure holds the module
(memkit.paper.nb reads the model catalogs this way).

Not followed: model-source names in `core.models.SPEC_RESOLVERS` (`"zoo:" -> "memkit.organisms.zoo"`
is named, never imported). A notebook that loads `zoo:` models declares the `zoo` input instead, and
the zoo stamp depends on the zoo's own import closure.

Inputs that are other notebooks' results are data, declared in notebooks/deps.yml (see there and
CONTRIBUTING.md):
- `after: [nb, ...]`  -- shares a result cache with nb (e.g. Table 1's cached clean runs): runs after
  nb, so a parallel build never computes the same cache entry twice; an order-only prerequisite,
  so rerunning nb does not by itself rerun this notebook;
- `reads: [zoo | bench | <file>, ...]` -- reads that output: a normal prerequisite (it reruns when
  the output changes). `zoo` is the paper zoo's stamp, `bench` the paper's build/bench/bench.csv.

The generated makefile names targets through make variables (`$(NBDIR)`, `$(ZOO_STAMP)`,
`$(BENCH_CSV)`), so one file serves every profile (PROFILE=gpu executes into build/gpu/notebooks).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "memkit"
NAMED_MODULE = re.compile(r"^(memkit(?:\.\w+)+)(?::\w+)?$")
#: `reads:` aliases -> (make variable of the target, module whose import closure builds it).
ALIASES = {"zoo": ("$(ZOO_STAMP)", "memkit.organisms.zoo"), "bench": ("$(BENCH_CSV)", "memkit.paper.bench")}


def module_files(src: Path) -> dict[str, Path]:
    """{module name: file} for every module and package of src/<PACKAGE>."""
    files = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def direct_imports(path: Path, module: str | None, modules: dict[str, Path]) -> set[str]:
    """memkit modules that the file at `path` (module `module`, None for a notebook) imports, anywhere."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def add(name: str) -> None:
        # the longest prefix that is a known module; parent packages are added by the closure
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if module is None:
                    continue  # a relative import in a notebook cannot name memkit
                package = module if is_package else module.rpartition(".")[0]
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if origin.split(".")[0] != PACKAGE:
                continue
            add(origin)
            for alias in node.names:  # `from memkit.paper import report`: report is a module
                if f"{origin}.{alias.name}" in modules:
                    found.add(f"{origin}.{alias.name}")
        elif isinstance(node, ast.Attribute):  # memkit.mia.x: the package's __getattr__ imports memkit.mia
            chain = []
            while isinstance(node, ast.Attribute):
                chain.append(node.attr)
                node = node.value
            if isinstance(node, ast.Name) and node.id == PACKAGE:
                add(".".join([PACKAGE, *reversed(chain)]))
        elif is_package and isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = NAMED_MODULE.match(node.value)
            if match and match.group(1) in modules:  # lazy export tables read by importlib
                found.add(match.group(1))
    return found


def declared_reads(path: Path) -> list[str]:
    """The string literals of a module-level `READS = (...)` (project-relative data files), else []."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "READS" for t in targets):
            value = ast.literal_eval(node.value)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise SystemExit(f"{path}: READS must be a tuple or list of path strings")
            return list(value)
    return []


def inert(path: Path) -> bool:
    """True when the file holds nothing but a docstring and `from __future__` imports (or nothing)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        return False
    return True


class Graph:
    def __init__(self, src: Path):
        self.src = src
        self.modules = module_files(src)
        self._direct = {name: direct_imports(path, name, self.modules) for name, path in self.modules.items()}
        self._reads = {name: declared_reads(path) for name, path in self.modules.items()}

    def closure(self, roots: set[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo += [p for p in _parents(name) if p in self.modules]
            todo += self._direct.get(name, ())
        return seen

    def files(self, roots: set[str]) -> list[Path]:
        """The closure's files that can change a result (`inert` files left out)."""
        return sorted(path for path in (self.modules[name] for name in self.closure(roots)) if not inert(path))

    def notebook_files(self, notebook: Path) -> list[Path]:
        return self.files(direct_imports(notebook, None, self.modules))

    def notebook_reads(self, notebook: Path) -> list[str]:
        """The data files (`READS`) declared by the modules of the notebook's closure, sorted."""
        closure = self.closure(direct_imports(notebook, None, self.modules))
        return sorted({r for name in closure for r in self._reads[name]})


def load_declared(path: Path) -> dict[str, dict[str, list[str]]]:
    """notebooks/deps.yml: {notebook: {"after": [...], "reads": [...]}}, checked."""
    import yaml

    if not path.exists():
        return {}
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    table = {}
    for nb, entry in raw.items():
        entry = entry or {}
        unknown = set(entry) - {"after", "reads"}
        if unknown:
            raise SystemExit(f"{path}: {nb}: unknown keys {sorted(unknown)} (use after:, reads:)")
        table[nb] = {key: list(entry.get(key) or []) for key in ("after", "reads")}
    return table


def notebooks_in(nbdir: Path, names: list[str] | None) -> list[str]:
    return names or sorted(p.stem for p in nbdir.glob("*.py"))


def render(root: Path, names: list[str] | None = None, src: Path | None = None, deps: Path | None = None) -> str:
    """The makefile text (paths relative to `root`)."""
    src = src or root / "src"
    nbdir = root / "notebooks"
    graph = Graph(src)
    declared = load_declared(deps or nbdir / "deps.yml")
    names = notebooks_in(nbdir, names)
    missing = sorted((set(declared) | {d for e in declared.values() for d in e["after"]}) - set(notebooks_in(nbdir, None)))
    if missing:
        raise SystemExit(f"notebooks/deps.yml names notebooks that do not exist: {missing}")

    def rel(paths) -> str:
        return " ".join(str(Path(p).relative_to(root)) for p in paths)

    lines = ["# Generated by scripts/nbdeps.py from notebooks/*.py, src/memkit and notebooks/deps.yml -- do not edit.", ""]
    for alias, (target, module) in ALIASES.items():
        if module in graph.modules:
            lines.append(f"{target}: {rel(graph.files({module}))}")
    lines.append("")
    for nb in names:
        target = f"$(NBDIR)/{nb}.ipynb"
        lines.append(f"{target}: {rel(graph.notebook_files(nbdir / f'{nb}.py'))}")
        entry = declared.get(nb, {"after": [], "reads": []})
        reads = [ALIASES[r][0] if r in ALIASES else r for r in entry["reads"]]
        reads += [r for r in graph.notebook_reads(nbdir / f"{nb}.py") if r not in reads]
        if reads:
            lines.append(f"{target}: {' '.join(reads)}")
        if entry["after"]:
            lines.append(f"{target}: | {' '.join(f'$(NBDIR)/{a}.ipynb' for a in entry['after'])}")
    return "\n".join(lines) + "\n"


def affected(root: Path, changed: Path, src: Path | None = None) -> list[str]:
    """Notebooks whose make target lists `changed` (a library file) directly."""
    graph = Graph(src or root / "src")
    changed = changed.resolve()
    return [nb for nb in notebooks_in(root / "notebooks", None)
            if changed in [p.resolve() for p in graph.notebook_files(root / "notebooks" / f"{nb}.py")]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names (default: every notebooks/*.py)")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path, help="write the makefile here (default: stdout)")
    parser.add_argument("--affected", type=Path, metavar="FILE", help="list the notebooks that import FILE")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.affected:
        print("\n".join(affected(root, args.affected)))
        return 0
    text = render(root, args.notebooks or None)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
