"""The build: notebook dependencies (scripts/nbdeps.py, notebooks/deps.yml), the Makefile under -j2, the bench table."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("nbdeps", ROOT / "scripts" / "nbdeps.py")
nbdeps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nbdeps)


def makefile_notebooks() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    block = re.search(r"^NOTEBOOKS := ((?:.*\\\n)*.*)$", text, re.M).group(1)
    return block.replace("\\\n", " ").split()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


# -- the import analysis on a synthetic package ----------------------------------------------------
@pytest.fixture
def synthetic(tmp_path):
    """src/memkit with a lazy export table, relative, lazy and attribute imports; three notebooks."""
    src = tmp_path / "src" / "memkit"
    write(src / "__init__.py", '_EXPORTS = {"load": "memkit.core.models"}\n')
    write(src / "errors.py", "")
    write(src / "core" / "__init__.py", '"""docstring only"""\n')
    write(src / "core" / "models.py", 'from ..errors import E\nRESOLVERS = {"zoo:": "memkit.organisms.zoo:f"}\n')
    write(src / "core" / "decode.py", "from . import models\n")
    write(src / "organisms" / "__init__.py", "")
    write(src / "organisms" / "zoo.py", "from ..core.decode import x\n")
    write(src / "mechanisms" / "__init__.py", "")
    write(src / "mechanisms" / "curvature.py", "def fit():\n    from ..core import decode\n")
    write(src / "mechanisms" / "lens.py", "import memkit.core.models\n")
    write(src / "paper" / "__init__.py", "")
    write(src / "paper" / "report.py", "import os\n")
    nbs = tmp_path / "notebooks"
    write(nbs / "nb_edit.py", "# %%\nimport numpy\nfrom memkit.paper import report\n\n"
                               "def later():\n    from memkit.mechanisms.curvature import fit\n")
    write(nbs / "nb_lens.py", "# %%\nimport memkit\nmemkit.mechanisms.lens.run()\n")
    write(nbs / "nb_plain.py", "# %%\nimport pandas\n")
    write(nbs / "deps.yml", "nb_lens: {after: [nb_plain], reads: [zoo, data/x.csv]}\n")
    return tmp_path


def rel(root, paths):
    return {str(p.relative_to(root / "src")) for p in paths}


def test_closure_follows_lazy_relative_and_package_imports(synthetic):
    graph = nbdeps.Graph(synthetic / "src")
    edit = rel(synthetic, graph.notebook_files(synthetic / "notebooks" / "nb_edit.py"))
    assert edit == {"memkit/__init__.py", "memkit/paper/report.py",
                    "memkit/mechanisms/curvature.py",                                    # lazy, in a function
                    "memkit/core/decode.py",                                             # relative, in a function
                    "memkit/core/models.py"}                                             # transitively
    # empty or docstring-only files (the three package __init__s, errors.py here) are followed, not listed
    lens = rel(synthetic, graph.notebook_files(synthetic / "notebooks" / "nb_lens.py"))
    assert "memkit/mechanisms/lens.py" in lens  # memkit.mechanisms.lens.run(): attribute chain
    assert "memkit/core/models.py" in lens      # the lazy export table of memkit/__init__.py
    assert "memkit/core/decode.py" not in lens
    # a model-source name in a plain module is named, not imported
    assert all("organisms" not in f for f in edit | lens)
    assert rel(synthetic, graph.notebook_files(synthetic / "notebooks" / "nb_plain.py")) == set()


def test_inert_files_hold_only_a_docstring_and_future_imports(tmp_path):
    for text, expected in (("", True), ('"""doc"""\nfrom __future__ import annotations\n', True),
                           ('"""doc"""\nX = 1\n', False), ("import os\n", False), ("from . import a\n", False)):
        write(tmp_path / "m.py", text)
        assert nbdeps.inert(tmp_path / "m.py") is expected, text
    assert nbdeps.affected(ROOT, ROOT / "src/memkit/paper/__init__.py") == []  # a docstring edit reruns nothing


def test_render_declares_library_files_and_data_inputs(synthetic):
    text = nbdeps.render(synthetic)
    lines = text.splitlines()
    edit = next(line for line in lines if line.startswith("$(NBDIR)/nb_edit.ipynb: src/"))
    assert "src/memkit/mechanisms/curvature.py" in edit and "lens.py" not in edit
    assert "$(NBDIR)/nb_lens.ipynb: $(ZOO_STAMP) data/x.csv" in lines
    assert "$(NBDIR)/nb_lens.ipynb: | $(NBDIR)/nb_plain.ipynb" in lines   # order only
    assert "$(NBDIR)/nb_plain.ipynb: " in lines
    zoo = next(line for line in lines if line.startswith("$(ZOO_STAMP):"))
    assert "src/memkit/organisms/zoo.py" in zoo and "src/memkit/core/decode.py" in zoo
    assert nbdeps.affected(synthetic, synthetic / "src/memkit/mechanisms/curvature.py",
                           synthetic / "src") == ["nb_edit"]


def test_modules_declare_the_data_files_they_read(synthetic):
    write(synthetic / "src/memkit/core/models.py", 'from ..errors import E\nREADS = ("configs/models.yml",)\n')
    lines = nbdeps.render(synthetic).splitlines()
    assert "$(NBDIR)/nb_lens.ipynb: $(ZOO_STAMP) data/x.csv configs/models.yml" in lines  # via memkit.core.models
    assert "$(NBDIR)/nb_edit.ipynb: configs/models.yml" in lines                          # via curvature -> decode
    assert "$(NBDIR)/nb_plain.ipynb: " in lines                                           # imports no memkit
    write(synthetic / "src/memkit/core/models.py", 'READS = "configs/models.yml"\n')
    with pytest.raises(SystemExit, match="READS must be"):
        nbdeps.render(synthetic)
    real = nbdeps.render(ROOT).splitlines()  # the paper notebooks rerun when a model catalog changes
    assert any(line.startswith("$(NBDIR)/fig_phase.ipynb: ") and "configs/models-gpu.yml" in line for line in real)


def test_deps_yml_rejects_unknown_keys_and_notebooks(synthetic):
    write(synthetic / "notebooks" / "deps.yml", "nb_lens: {needs: [nb_plain]}\n")
    with pytest.raises(SystemExit, match="unknown keys"):
        nbdeps.render(synthetic)
    write(synthetic / "notebooks" / "deps.yml", "nb_lens: {after: [nb_gone]}\n")
    with pytest.raises(SystemExit, match="nb_gone"):
        nbdeps.render(synthetic)


# -- the real tree ----------------------------------------------------------------------------------
def test_one_module_edit_reruns_only_its_notebooks():
    assert "fig_editing" in nbdeps.affected(ROOT, ROOT / "src/memkit/mechanisms/curvature.py")
    assert "tab_attractors" not in nbdeps.affected(ROOT, ROOT / "src/memkit/mechanisms/curvature.py")
    lens = nbdeps.affected(ROOT, ROOT / "src/memkit/mechanisms/lens.py")
    assert "fig_lens" in lens and "tab_attractors" not in lens and "fig_phase" not in lens
    assert "tab_attractors" in nbdeps.affected(ROOT, ROOT / "src/memkit/core/decode.py")
    text = nbdeps.render(ROOT, makefile_notebooks())
    assert all(f"$(NBDIR)/{nb}.ipynb: " in text for nb in makefile_notebooks())


def test_declared_inputs_match_the_code():
    """deps.yml against the notebooks: zoo users read the zoo, build/ paths in params are declared."""
    declared = nbdeps.load_declared(ROOT / "notebooks" / "deps.yml")
    graph = nbdeps.Graph(ROOT / "src")
    for nb in makefile_notebooks():
        entry = declared.get(nb, {"after": [], "reads": []})
        reach = graph.closure(nbdeps.direct_imports(ROOT / "notebooks" / f"{nb}.py", None, graph.modules))
        params = yaml.safe_load((ROOT / "notebooks" / "params" / f"{nb}.yml").read_text())
        if params.get("profile", params.get("zoo_profile")) is not None:  # paper settings use the paper zoo
            assert "zoo" in entry["reads"], nb
        if "zoo" in entry["reads"]:
            assert "memkit.organisms.zoo" in reach, nb
        build_paths = {v for v in params.values() if isinstance(v, str) and v.startswith("build/")}
        reads = {"build/bench/bench.csv" if r == "bench" else r for r in entry["reads"]}
        assert build_paths <= reads, nb
        assert set(entry["after"]) <= set(makefile_notebooks()), nb


# -- make -j2 paper with stub tools: order, one zoo, threads, what an edit reruns --------------------
STUB_LOG = 'echo "$(date +%s.%N) $*" >> "$STUB_ROOT/log"\n'


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_j2_paper_order_and_threads(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    for name in ("notebooks", "scripts", "src", "configs"):  # configs: the model catalogs nb.py READS
        (root / name).symlink_to(ROOT / name)
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, root / name)
    bindir, fake = root / ".venv" / "bin", root / "fakebin"
    stubs = {
        bindir / "python": f'if [ "$1" = scripts/nbdeps.py ]; then exec {sys.executable} "$@"; fi\n'
                           'if [ "$2" = memkit.paper.bench ]; then mkdir -p build/bench; touch build/bench/bench.csv; '
                           'log=bench; else log=models; fi\n'
                           f'{STUB_LOG.replace("$*", "start $log")}sleep 0.2\n{STUB_LOG.replace("$*", "end $log")}',
        bindir / "papermill": 'nb=$(basename "$5" .run.ipynb)\n'
                              f'{STUB_LOG.replace("$*", "start $nb OMP=$OMP_NUM_THREADS W=$PYTHONWARNINGS")}'
                              f'sleep 0.3; touch "$5"\n{STUB_LOG.replace("$*", "end $nb")}',
        bindir / "jupytext": 'touch "$5"\n',
        bindir / "memkit": f'{STUB_LOG.replace("$*", "start zoo")}sleep 0.5\n{STUB_LOG.replace("$*", "end zoo")}',
        fake / "latexmk": f'{STUB_LOG.replace("$*", "start latex")}touch main.pdf\n',
        fake / "bible": "",
    }
    for path, body in stubs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/bash\n" + body)
        path.chmod(0o755)
    (root / ".venv" / ".memkit-installed").touch()
    (root / "paper").mkdir()
    for name in ("main.tex", "refs.bib"):
        (root / "paper" / name).write_text("x")
    env = {**os.environ, "STUB_ROOT": str(root), "PATH": f"{fake}:{os.environ['PATH']}"}
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    done = subprocess.run(["make", "-j2", "paper"], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

    events = [line.split(" ", 2)[1:] for line in (root / "log").read_text().splitlines()]
    start = {what.split()[0]: i for i, (kind, what) in enumerate(events) if kind == "start"}
    end = {what.split()[0]: i for i, (kind, what) in enumerate(events) if kind == "end"}
    notebooks = makefile_notebooks()
    assert set(start) == {*notebooks, "zoo", "bench", "models", "latex"}
    assert events.count(["start", "zoo"]) == 1  # the zoo is built once
    declared = nbdeps.load_declared(ROOT / "notebooks" / "deps.yml")
    for nb in notebooks:
        entry = declared.get(nb, {"after": [], "reads": []})
        assert end["models"] < start[nb]
        assert all(end[before] < start[nb] for before in entry["after"]), nb
        assert ("zoo" not in entry["reads"]) or end["zoo"] < start[nb], nb
        assert ("bench" not in entry["reads"]) or end["bench"] < start[nb], nb
        assert end[nb] < start["latex"]
    running, most = 0, 0
    for kind, what in events:
        if what.split()[0] != "latex":
            running += 1 if kind == "start" else -1
            most = max(most, running)
    assert most == 2  # independent notebooks did run in parallel, never more than -j2
    assert all("OMP=1 W=ignore" in what for kind, what in events if kind == "start" and what.split()[0] in notebooks)

    edited = subprocess.run(["make", "-n", "-W", "src/memkit/mechanisms/curvature.py", "paper"], cwd=root, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert re.findall(r"papermill .* build/notebooks/(\w+)\.input\.ipynb", edited) == ["fig_editing"]
    serial = subprocess.run(["make", "-n", "-W", "notebooks/params/fig_lens.yml", "paper"], cwd=root, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert "OMP_NUM_THREADS" not in serial and "PYTHONWARNINGS=ignore" in serial  # serial: torch's default threads


def test_make_test_keeps_warnings_on():
    makefile = (ROOT / "Makefile").read_text()
    assert not re.search(r"^export PYTHONWARNINGS", makefile, re.M)
    recipe = re.search(r"^test: .*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "PYTHONWARNINGS" not in recipe


# -- the bench table ----------------------------------------------------------------------------------
def test_bench_scaled_rows_say_so(tiny_model_dir):
    from memkit.paper.bench import bench_model

    rows = bench_model(str(tiny_model_dir), 3, 4, 4, 2, 1, 1)
    read_by_appendix = {"model", "workload", "method", "seconds", "x_floor", "x_generate",
                        "tokens_identical_to_generate"}
    assert all(read_by_appendix <= set(row) for row in rows)
    for row in rows:
        if row["method"] == "generate_nocache":
            assert row["scaled"] and row["timed_samples"] == 1 and "timed on 1 of 3" in row["note"]
            assert row["seconds"] == pytest.approx(3 * row["seconds_per_sample"], abs=0.02)
        else:
            assert not row["scaled"] and row["timed_samples"] == row["samples"] == 3
