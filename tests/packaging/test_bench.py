"""Plumbing of ``gpu-act bench`` and ``gpu-act selfcheck`` (never timings)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from gpu_act import cli
from gpu_act.bench import check, ops, peers, report, run, timer
from helpers import ROOT


def test_tiny_bench_writes_json_and_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    prefix = tmp_path / "b"
    argv = ["bench", "--ops", "softmax,relu,relu_backward,cross_entropy", "--shapes", "8x96", "--size", "1000",
            "--reps", "1", "--no-gpu", "--peers", "numpy", "--output", str(prefix)]
    o = cli._options(cli._parser().parse_args(argv))
    o.sweep, o.overhead_reps = (64, 256), 3
    data = run.run(o)
    report.write_json(data, f"{prefix}.json")
    assert report.plot(data, f"{prefix}.png")
    loaded = json.loads((tmp_path / "b.json").read_text())
    assert loaded["machine"]["cores"] >= 1 and loaded["machine"]["versions"]["numpy"] == np.__version__
    provs = {r["provider"] for r in loaded["results"]}
    assert provs == {"gpu_act", "numpy", "copy"}
    timed = [r for r in loaded["results"] if r["seconds"] is not None]
    assert all(r["seconds"] > 0 and r["gbps"] > 0 for r in timed)
    assert {r["section"] for r in loaded["results"]} == {"shapes", "sweep", "elementwise"}
    assert all(c["ok"] for c in loaded["checks"]) and len(loaded["checks"]) == 4
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.table(loaded)
    assert "| softmax | 8x96 | float32 |" in text and "x numpy" in text


def test_traffic_counts_inputs_and_outputs_once():
    n = 4 * 100 * 7
    assert ops.ALL["softmax"].traffic((100, 7), "float32") == 2 * n
    assert ops.ALL["softmax_backward"].traffic((100, 7), "float32") == 3 * n
    assert ops.ALL["gelu_backward"].traffic((700,), "float32") == 3 * n
    assert ops.ALL["cross_entropy"].traffic((100, 7), "float32") == 2 * n + 8 * 100
    assert ops.ALL["cross_entropy_capped"].traffic((100, 7), "float32") == 2 * n + 8 * 100 + 4 * 7
    assert ops.ALL["binary_cross_entropy_with_logits"].traffic((700,), "float32") == 3 * n


def test_every_registry_activation_is_an_op():
    from gpu_act.registry import PLAIN

    assert {n for n in PLAIN} | {n + "_backward" for n in PLAIN} <= set(ops.ALL)


@pytest.mark.parametrize("op", [o.name for o in ops.LOSSES])
def test_every_cpu_peer_of_a_loss_passes_the_check(op):
    found = [p for p in peers.discover(device_peers=False) if p.impl(op) is not None]
    assert {"gpu_act", "numpy"} <= {p.name for p in found}
    for p in found:
        for dt in (np.float32, np.float16):
            r = check.check(p, op, dt, np.random.default_rng(0))
            assert r["ok"], (p.name, np.dtype(dt).name, r)


@pytest.mark.parametrize("op", [o.name for o in ops.FAMILY])
def test_family_ops_pass_the_check_on_gpu_act_and_torch(op):
    found = {p.name: p for p in peers.discover(device_peers=False) if p.impl(op) is not None}
    assert {"gpu_act", "numpy"} <= set(found)
    for name in {"gpu_act", "torch"} & set(found):
        for dt in (np.float32, np.float64):
            r = check.check(found[name], op, dt, np.random.default_rng(1))
            assert r["ok"], (name, np.dtype(dt).name, r)


def test_named_shapes_replace_only_the_shapes_of_their_rank():
    o = run.Options(ops=("softmax", "swiglu_step"), dtypes=("float32",), shapes=((8, 96),), sweep_ops=())
    assert [(c.op, c.shape) for c in run.cases(o, "cpu")] == [("softmax", (8, 96)), ("swiglu_step", ops.SWIGLU_SHAPES[0])]


def test_losses_run_on_their_shapes_and_the_largest_on_gpus_only():
    o = run.Options(ops=("cross_entropy_capped", "binary_cross_entropy_with_logits"), dtypes=("float32",))
    got = {d: [(c.op, c.shape, c.section) for c in run.cases(o, d)] for d in ("cpu", "gpu")}
    assert got["cpu"] == [("cross_entropy_capped", (4096, 32000), "shapes"),
                          ("binary_cross_entropy_with_logits", (ops.ELEMENTWISE_SIZE,), "elementwise")]
    assert got["gpu"] == got["cpu"][:1] + [("cross_entropy_capped", (8192, 128256), "shapes")] + got["cpu"][1:]
    o.shapes = ((8192, 128256),)  # named: timed on the CPU too
    assert [c.shape for c in run.cases(o, "cpu")] == [(8192, 128256), (ops.ELEMENTWISE_SIZE,)]


def test_tiny_bench_of_the_losses_times_every_cpu_peer():
    argv = ["bench", "--ops", "losses", "--shapes", "8x96", "--size", "1000", "--reps", "1", "--no-gpu",
            "--no-sweep"]
    o = cli._options(cli._parser().parse_args(argv))
    o.overhead_reps = 3
    data = run.run(o)
    assert all(c["ok"] for c in data["checks"]) and len(data["checks"]) == 2
    timed = {(r["op"], r["provider"]) for r in data["results"] if r["seconds"]}
    providers = {"gpu_act", "numpy", "copy"} | ({"torch"} if "torch" in data["peers"] else set())
    assert timed == {(op, p) for op in ("cross_entropy_capped", "binary_cross_entropy_with_logits") for p in providers}
    assert not [r for r in data["results"] if r.get("error")]


def test_check_catches_a_wrong_result():
    good = next(p for p in peers.discover(device_peers=False) if p.name == "gpu_act")
    rng = np.random.default_rng(0)
    assert check.check(good, "silu", np.float32, rng)["ok"]
    bad = peers.Peer("bad", "cpu", "0", good.to, lambda op: (lambda x: good.impl(op)(x) * np.float32(1.001)))
    r = check.check(bad, "silu", np.float32, rng)
    assert not r["ok"] and r["error"] > 1


def test_bad_arguments_are_rejected_with_what_is_accepted(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--ops", "softmaxx"])
    assert "unknown op 'softmaxx'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["bench", "--shapes", "4096by4096"])
    assert "shapes look like" in capsys.readouterr().err


def test_selfcheck_command_prints_a_table():
    out = subprocess.run([sys.executable, "-m", "gpu_act", "selfcheck", "--dtypes", "float64", "--ops", "softmax,tanh"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "| gpu_act | float64 | 2 | 2 |" in out.stdout


class _FakeClock:
    """Each call takes the next (seconds, faulted) pair of the script."""

    settle = 0.0

    def __init__(self, script):
        self.script, self.faulted = list(script), False

    def time(self, call):
        call()
        t, self.faulted = self.script.pop(0)
        return t


def test_calls_take_turns_and_faulted_calls_are_retried():
    seen = []
    calls = {"a": (lambda: seen.append("a"), [()]), "b": (lambda: seen.append("b"), [()])}
    # per round and call: warm-up, then 1 timed call (reps 2 over 2 rounds); b's first
    # timed call faults twice, then runs clean
    script = [(9, False), (1.0, False), (9, False), (5, True), (5, True), (2.0, False),
              (9, False), (3.0, False), (9, False), (4.0, False)]
    got = timer.median_seconds(calls, reps=2, clock=_FakeClock(script), rounds=2, slow=100)
    assert seen == ["a", "a", "b", "b", "b", "b", "a", "a", "b", "b"]
    assert got == {"a": (2.0, 0.0, (1.0, 3.0)), "b": (3.0, 0.0, (2.0, 4.0))}  # and each round's median
    always = _FakeClock([(9, False)] + [(7.0, True)] * 3)
    assert timer.median_seconds({"c": (lambda: None, [()])}, 1, always, rounds=1, slow=100) == {"c": (7.0, 1.0, (7.0,))}


def test_ratio_cells_show_the_spread_over_rounds():
    base = {"seconds": 2.0, "round_seconds": [1.0, 2.0, 4.0]}
    peer = {"seconds": 3.0, "round_seconds": [1.5, 4.0, 4.0]}
    # peer/base per round: 1.5, 2.0, 1.0
    assert report._ratio(peer, base) == "1.50 (1.00-2.00)"
    assert report._ratio(base, peer, invert=True) == "1.50 (1.00-2.00)"
    # a run (or a committed file) without the rounds: the ratio alone
    assert report._ratio({"seconds": 3.0}, {"seconds": 2.0}) == "1.50"


def test_bench_readme_tables_are_generated_from_the_committed_results():
    """bench/README.md's generated section is what `gpu-act bench-report
    bench/results/cpu.json --into bench/README.md` writes: the committed figures,
    never numbers typed by hand."""
    page = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    data = json.loads((ROOT / "bench" / "results" / "cpu.json").read_text(encoding="utf-8"))
    assert report.section(page) == report.markdown(data), (
        "bench/README.md's tables differ from bench/results/cpu.json; run "
        "`gpu-act bench-report bench/results/cpu.json --into bench/README.md`"
    )
    assert report.table(data) in (ROOT / "bench" / "results" / "cpu.txt").read_text(encoding="utf-8")


def test_bench_report_command_prints_and_writes_between_markers(tmp_path, capsys):
    results = ROOT / "bench" / "results" / "cpu.json"
    expected = report.markdown(json.loads(results.read_text(encoding="utf-8")))
    assert cli.main(["bench-report", str(results)]) == 0
    assert capsys.readouterr().out == expected
    assert "| softmax | 4096x4096 | float32 |" in expected and "Per-call time on a 1,024-element array" in expected
    page = tmp_path / "page.md"
    page.write_text(f"# before\n\n{report.BEGIN}\nstale\n{report.END}\n\nafter\n", encoding="utf-8")
    assert cli.main(["bench-report", str(results), "--into", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# before\n\n") and text.endswith(f"{report.END}\n\nafter\n") and "stale" not in text
    assert report.section(text) == expected
    assert report.with_section(text, expected) == text  # writing again changes nothing
    unmarked = tmp_path / "plain.md"
    unmarked.write_text("no markers\n", encoding="utf-8")
    assert cli.main(["bench-report", str(results), "--into", str(unmarked)]) == 2
    assert unmarked.read_text(encoding="utf-8") == "no markers\n"


def test_tiny_bench_in_bfloat16_checks_and_times_every_cpu_peer():
    pytest.importorskip("ml_dtypes")
    argv = ["bench", "--ops", "softmax,gelu,gelu_backward", "--dtypes", "bfloat16", "--shapes", "8x96", "--size", "1000",
            "--reps", "1", "--no-gpu", "--no-sweep"]
    o = cli._options(cli._parser().parse_args(argv))
    o.overhead_reps = 3
    data = run.run(o)
    assert all(c["ok"] for c in data["checks"]) and {c["dtype"] for c in data["checks"]} == {"bfloat16"}
    timed = {(r["op"], r["provider"]) for r in data["results"] if r["seconds"]}
    assert {("softmax", "gpu_act"), ("gelu", "gpu_act"), ("gelu_backward", "gpu_act")} <= timed
    if "torch" in data["peers"]:
        assert {("softmax", "torch"), ("gelu", "torch"), ("gelu_backward", "torch")} <= timed
