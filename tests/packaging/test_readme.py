"""The README's activation table is the registry's, row for row."""

import os

from gpu_act.registry import ACTIVATIONS
from helpers import ROOT


def test_every_activation_has_its_readme_row():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        rows = {line.split("|")[1].strip(): line for line in f if line.startswith("| `")}
    for act in ACTIVATIONS.values():
        line = rows.get(f"`{act.name}`")
        assert line is not None, f"README has no table row for {act.name}"
        assert act.formula in line and act.derivative_text in line, f"README row of {act.name} differs from the registry"
        for p in act.params:
            assert f"{p.name}=" in line, f"README row of {act.name} lacks parameter {p.name}"


def test_every_other_public_function_has_its_readme_row():
    # the row-wise functions and the losses: a table row that starts with the call
    from gpu_act import elementwise
    from gpu_act._public import FUNCTIONS

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        calls = {line.split("|")[1].strip().split("(")[0].strip("`") for line in f if line.startswith("| `")}
    own = set(elementwise.FUNCTIONS) | {"prelu", "prelu_backward", "rrelu", "rrelu_backward"}
    missing = sorted(set(FUNCTIONS) - own - calls)
    assert not missing, f"README has no table row for {missing}"


def test_readme_names_the_two_commands():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    assert "`bash tests/run.sh`" in text
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        assert "tests/run.sh" in f.read()


def test_readme_points_to_the_benchmark_page_and_holds_no_figures():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    assert "bench/README.md" in text and os.path.exists(os.path.join(ROOT, "bench", "README.md"))
    assert "GB/s |" not in text, "benchmark tables live in bench/README.md, not the README"
