"""Turn a run's figures into a table, a JSON file and a throughput plot.

Speed-ups are each peer's time over gpu_act's time for the same case in the
same run (above 1: gpu_act is faster); "of copy" is the time of a copy with the
same traffic over gpu_act's time (1: at the memory-bandwidth floor).
"""

import json
from collections import defaultdict


def _by_case(results):
    cases = defaultdict(dict)
    for r in results:
        key = (r["section"], r["op"], tuple(r["shape"]), r["dtype"], r["device"])
        cases[key][r["provider"]] = r
    return cases


def _shape(s):
    return "x".join(str(v) for v in s)


def _device_table(data, cases, device):
    """(head, rows, any page-faulted figure) of one device's table, or None."""
    keys = [k for k in cases if k[4] == device]
    if not keys:
        return None
    mine = [p for p in data["peers"] if data["peers"][p]["device"] == device and p.startswith("gpu_act")]
    others = [p for p in data["peers"] if data["peers"][p]["device"] == device and not p.startswith("gpu_act")]
    head = ["op", "shape", "dtype"] + [f"{p} GB/s" for p in mine + others] + ["copy GB/s"]
    head += [f"x {p}" for p in others] + ["of copy"]
    rows = []
    for key in keys:
        row = cases[key]
        base = row.get(mine[0]) if mine else None
        cells = [key[1], _shape(key[2]), key[3]]
        cells += [_gbps(row.get(p)) for p in mine + others + ["copy"]]
        cells += [_ratio(row.get(p), base) for p in others]
        cells.append(_ratio(base, row.get("copy"), invert=True))
        rows.append(cells)
    faulted = any((r.get("page_faulted") or 0) > 0.5 for r in data["results"] if r["device"] == device)
    return head, rows, faulted


def _overhead_table(data):
    """(head, rows) of the per-call times in microseconds."""
    provs = sorted({r["provider"] for r in data["overhead"]})
    rows = []
    for op in sorted({r["op"] for r in data["overhead"]}):
        got = {r["provider"]: r["seconds"] for r in data["overhead"] if r["op"] == op}
        rows.append([op] + [_fmt(got[p] * 1e6 if p in got else None) for p in provs])
    return ["op"] + provs, rows


def _md_rows(head, rows):
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(c) + " |" for c in rows]


_LEGEND = ("GB/s of minimum traffic; x PEER = peer time / gpu_act time (above 1: gpu_act is faster); of copy = "
           "copy time / gpu_act time (1 = at the bandwidth floor)")
_SPREAD = ("; in brackets the lowest and highest ratio of the rounds' medians (the providers take turns in every "
           "round)")


def _legend(data, device):
    # the brackets are explained where a run kept each round's medians
    spread = any(len(r.get("round_seconds") or ()) > 1 for r in data["results"] if r["device"] == device)
    return _LEGEND + (_SPREAD if spread else "")


_PF = ("pf: most timed calls of that provider took page faults on every try (its output got fresh pages from the "
       "allocator), so its figure includes them")


def table(data, sections=("shapes", "elementwise")):
    """A Markdown table per device: GB/s of each provider, gpu_act's speed-ups."""
    out = []
    cases = _by_case([r for r in data["results"] if r["section"] in sections])
    for device in ("cpu", "gpu"):
        got = _device_table(data, cases, device)
        if got is None:
            continue
        head, rows, faulted = got
        out.append(f"{device.upper()}: {_legend(data, device)}")
        out += _md_rows(head, rows)
        if faulted:
            out.append(_PF)
        out.append("")
    if data.get("overhead"):
        out.append("Per-call time on a 1024-element array (microseconds)")
        out += _md_rows(*_overhead_table(data))
    return "\n".join(out)


_CONDITIONS = ("Conditions: every call allocates its output, as users call these functions (on glibc freed memory "
               "stays in the heap, touched once up front: no provider pays page faults); inputs rotate through up "
               "to 4 sets, enough to exceed the caches; the providers take turns over 3 rounds, each warmed up "
               "after a pause; PyTorch runs on as many threads as Numba.")


def _machine(data):
    m, o = data["machine"], data.get("options", {})
    text = f"{m['cpu']}, {m['cores']} cores, {m['numba_threads']} Numba threads"
    if m.get("numba_threading_layer"):
        text += f" ({m['numba_threading_layer']})"
    if m.get("gpu"):
        text += f"; GPU: {m['gpu']}"
    text += f"; Python {m['python']}"
    versions = [f"{n} {v}" for n, v in m.get("versions", {}).items() if v]
    if versions:
        text += "; " + ", ".join(versions)
    if o.get("dtypes"):
        text += f". dtypes: {', '.join(o['dtypes'])}"
    if o.get("reps"):
        text += f"; {o['reps']} timed calls per case (median)"
    if o.get("size"):
        text += f"; elementwise inputs of {o['size']:,} elements"
    return text + "."


def markdown(data):
    """The Markdown of a results JSON (``gpu-act bench``'s output): the machine,
    the self-check, a table per device, the row-length sweep and the per-call
    times. bench/README.md holds this for ``bench/results/cpu.json`` between the
    markers ``BEGIN`` and ``END`` (``gpu-act bench-report FILE --into MARKDOWN``)."""
    out = [f"Machine: {_machine(data)}", "", _CONDITIONS, ""]
    if data.get("checks"):
        out += ["Self-check before timing (worst error as a multiple of the tolerance):", ""]
        out += [checks_table(data["checks"]), ""]
    named = (
        (("shapes", "elementwise"), "Row-wise shapes and elementwise ops"),
        (("sweep",), "Row-length sweep (the data of the plot)"),
    )
    for device in ("cpu", "gpu"):
        for sections, title in named:
            got = _device_table(data, _by_case([r for r in data["results"] if r["section"] in sections]), device)
            if got is None:
                continue
            head, rows, faulted = got
            out += [f"{title}, {device.upper()}: {_legend(data, device)}.", ""] + _md_rows(head, rows) + [""]
            out += [_PF + ".", ""] if faulted else []
        if any(r["device"] == device for r in data["results"]):
            if not any((r.get("page_faulted") or 0) > 0.5 for r in data["results"] if r["device"] == device):
                out += [f"No {device.upper()} figure needed the pf mark (page faults on every try).", ""]
    if data.get("overhead"):
        sizes = sorted({r.get("size") for r in data["overhead"] if r.get("size")})
        size = " or ".join(f"{s:,}" for s in sizes) if sizes else "a small"
        out += [f"Per-call time on a {size}-element array (µs):", ""] + _md_rows(*_overhead_table(data)) + [""]
    return "\n".join(out).rstrip("\n") + "\n"


BEGIN = "<!-- begin: generated by `gpu-act bench-report`; do not edit by hand -->"
END = "<!-- end: generated by `gpu-act bench-report` -->"


def section(text):
    """The generated part of a Markdown file: what lies between ``BEGIN`` and ``END``."""
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise ValueError(f"no generated section: the text lacks {BEGIN!r} followed by {END!r}")
    return text[start + len(BEGIN):stop].strip("\n") + "\n"


def with_section(text, body):
    """``text`` with its generated section replaced by ``body``."""
    section(text)  # raises when the markers are missing
    start, stop = text.find(BEGIN) + len(BEGIN), text.find(END)
    return text[:start] + "\n\n" + body.strip("\n") + "\n\n" + text[stop:]


def _gbps(r):
    if not r:
        return ""
    return _fmt(r.get("gbps")) + (" pf" if (r.get("page_faulted") or 0) > 0.5 else "")


def _fmt(v):
    if v is None:
        return ""
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _ratio(peer, base, invert=False):
    """peer time / base time (how many times faster base is), and the lowest and
    highest of that ratio between the two providers' medians of each round,
    where the run kept them (the providers took turns within each round)."""
    if not peer or not base or not peer.get("seconds") or not base.get("seconds"):
        return ""
    r = peer["seconds"] / base["seconds"]
    cell = f"{1 / r if invert else r:.2f}"
    pr, br = peer.get("round_seconds") or [], base.get("round_seconds") or []
    if len(pr) == len(br) > 1 and all(pr) and all(br):
        each = [p / b for p, b in zip(pr, br)]
        each = [1 / v for v in each] if invert else each
        cell += f" ({min(each):.2f}-{max(each):.2f})"
    return cell


def checks_table(rows):
    """The self-check as a table: one line per backend and dtype, failures listed."""
    out = ["| backend | dtype | ops checked | passed | worst error (x tolerance) |", "|---|---|---|---|---|"]
    groups = defaultdict(list)
    for r in rows:
        groups[(r["backend"], r["dtype"])].append(r)
    for (b, dt), rs in groups.items():
        worst = max(r["error"] for r in rs)
        out.append(f"| {b} | {dt} | {len(rs)} | {sum(r['ok'] for r in rs)} | {worst:.3g} |")
    bad = [r for r in rows if not r["ok"]]
    for r in bad:
        out.append(f"FAILED {r['backend']} {r['op']} {r['dtype']}: {r['message']}")
    return "\n".join(out)


def write_json(data, path):
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=_jsonable)


def _jsonable(v):
    if isinstance(v, tuple):
        return list(v)
    return str(v)


def plot(data, path):
    """GB/s against row length per provider for each swept op (Triton's
    perf_report style). Returns False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sweep = [r for r in data["results"] if r["section"] == "sweep" and r["gbps"]]
    panels = sorted({(r["op"], r["dtype"], r["device"]) for r in sweep})
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (op, dt, dev) in zip(axes[0], panels):
        lines = defaultdict(list)
        for r in sweep:
            if (r["op"], r["dtype"], r["device"]) == (op, dt, dev):
                lines[r["provider"]].append((r["shape"][-1], r["gbps"]))
        for prov, pts in sorted(lines.items()):
            pts.sort()
            style = "--" if prov == "copy" else "-"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", ms=3, label=prov)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("row length (columns)")
        ax.set_ylabel("GB/s")
        ax.set_title(f"{op} {dt} ({dev})")
        ax.grid(True, alpha=0.3)
        ax.legend()
    m = data["machine"]
    fig.suptitle(f"{m['cpu']}, {m['numba_threads']} threads" + (f"; {m['gpu']}" if m.get("gpu") else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
