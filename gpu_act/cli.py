"""The ``gpu-act`` command (also ``python -m gpu_act``).

    gpu-act selfcheck   every op on every available backend against a NumPy
                        float64 reference, printed as a table
    gpu-act bench       which backends are available, the same check, then
                        gpu_act against its peers: a table, a JSON file with
                        every figure and the machine, a PNG plot
    gpu-act bench-report FILE
                        the Markdown tables of a bench JSON file; with
                        --into MARKDOWN, written between that file's markers
                        (as bench/README.md holds bench/results/cpu.json)
"""

import argparse
import sys


def _names(text, known, what):
    names = []
    for part in text.split(","):
        part = part.strip()
        if part in known:
            names += known[part] if isinstance(known, dict) and isinstance(known[part], tuple) else [part]
        elif part:
            raise argparse.ArgumentTypeError(f"unknown {what} {part!r}; choose from {', '.join(known)}")
    return tuple(dict.fromkeys(names))


def _shapes(text):
    try:
        return tuple(tuple(int(v) for v in s.lower().split("x")) for s in text.split(",") if s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"shapes look like 4096x4096,256x32000; got {text!r}") from None


def _ops_arg(text):
    from .bench import ops

    groups = {
        "rowwise": tuple(o.name for o in ops.ROWWISE),
        "elementwise": tuple(o.name for o in ops.ELEMENTWISE),
        "forward": tuple(o.name for o in ops.ELEMENTWISE if not o.name.endswith("_backward")),
        "losses": tuple(o.name for o in ops.LOSSES),
        "family": tuple(o.name for o in ops.FAMILY),
        **{n: (n,) for n in ops.ALL},
    }
    return _names(text, groups, "op")


def _dtypes_arg(text):
    return _names(text, {n: (n,) for n in ("float16", "float32", "float64", "bfloat16")}, "dtype")


def _parser():
    p = argparse.ArgumentParser(prog="gpu-act", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("selfcheck", help="check every op on every available backend against a reference")
    s.add_argument("--dtypes", type=_dtypes_arg, default=("float16", "float32", "float64"))
    s.add_argument("--ops", type=_ops_arg, default=None, help="comma list of ops or groups (rowwise, elementwise, losses, family)")

    b = sub.add_parser("bench", help="benchmark gpu_act against its peers on this machine")
    b.add_argument("--ops", type=_ops_arg, default=None,
                   help="comma list of ops or groups: rowwise, elementwise, forward (elementwise forwards), losses, family")
    b.add_argument("--shapes", type=_shapes, default=None,
                   help="shapes of the ops on rows (rowwise, cross_entropy_capped), e.g. 4096x4096,256x32000 "
                   "(default: each op's own)")
    b.add_argument("--no-sweep", action="store_true", help="skip the row-length sweep (and the plot)")
    b.add_argument("--size", type=int, default=None,
                   help="elements of the flat inputs (elementwise, binary_cross_entropy_with_logits; default 2**24)")
    b.add_argument("--dtypes", type=_dtypes_arg, default=None, help="comma list (default float32)")
    b.add_argument("--peers", default="", help="comma list of peers to compare with (default: all available; gpu_act is always timed)")
    b.add_argument("--reps", type=int, default=None, help="timed repetitions per case (median; default 6)")
    b.add_argument("--full", action="store_true", help="float32 and float16, 15 repetitions")
    b.add_argument("--no-gpu", action="store_true", help="CPU only")
    b.add_argument("--no-cpu", action="store_true", help="GPU only: no CPU peers, no CPU backend")
    b.add_argument("--no-check", action="store_true", help="skip the correctness check")
    b.add_argument("--output", default="gpu_act_bench", help="path prefix of the .json and .png (default gpu_act_bench)")

    r = sub.add_parser("bench-report", help="the Markdown tables of a bench JSON file (gpu-act bench --output)")
    r.add_argument("file", help="a JSON file written by gpu-act bench, e.g. bench/results/cpu.json")
    r.add_argument("--into", metavar="MARKDOWN", default=None,
                   help="write the tables between the generated-section markers of this Markdown file instead of printing")
    return p


def _options(a):
    from .bench.run import FULL_DTYPES, Options

    o = Options()
    if a.full:
        o.dtypes, o.reps = FULL_DTYPES, 15
    for name in ("ops", "shapes", "size", "dtypes", "reps"):
        v = getattr(a, name)
        if v is not None:
            setattr(o, name, v)
    if a.no_sweep:
        o.sweep = ()
    o.peers = tuple(n for n in a.peers.split(",") if n)
    o.gpu = not a.no_gpu
    o.cpu = not a.no_cpu
    o.check = not a.no_check
    return o


def _selfcheck(a):
    import gpu_act as ga

    from .bench import check, ops, peers, report

    found = [p for p in peers.discover() if p.gpu_act]
    print(f"gpu_act {ga.__version__}: backends available here: {', '.join(ga.available_backends())}")
    rows = check.run(found, a.ops or tuple(ops.ALL), a.dtypes)
    print(report.checks_table(rows))
    return 0 if all(r["ok"] for r in rows) else 1


def _bench(a):
    import gpu_act as ga

    from .bench import report, run

    o = _options(a)
    print(f"gpu_act {ga.__version__}: backends available here: {', '.join(ga.available_backends())}", flush=True)
    data = run.run(o)
    if data["checks"]:
        print(report.checks_table(data["checks"]))
        print()
    print(report.table(data))
    report.write_json(data, a.output + ".json")
    print(f"\nwrote {a.output}.json")
    if report.plot(data, a.output + ".png"):
        print(f"wrote {a.output}.png")
    elif o.sweep:
        print("no plot: install matplotlib (pip install 'gpu_act[bench]')")
    return 0 if all(r["ok"] for r in data["checks"]) else 1


def _bench_report(a):
    import json

    from .bench import report

    with open(a.file, encoding="utf-8") as f:
        text = report.markdown(json.load(f))
    if a.into is None:
        print(text, end="")
        return 0
    with open(a.into, encoding="utf-8") as f:
        page = f.read()
    try:
        page = report.with_section(page, text)
    except ValueError as e:
        print(f"gpu-act bench-report: {a.into}: {e}", file=sys.stderr)
        return 2
    with open(a.into, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"wrote the tables of {a.file} into {a.into}")
    return 0


def main(argv=None):
    a = _parser().parse_args(argv)
    return {"selfcheck": _selfcheck, "bench": _bench, "bench-report": _bench_report}[a.command](a)


if __name__ == "__main__":
    sys.exit(main())
