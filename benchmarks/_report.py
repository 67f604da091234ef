"""Turn a benchmark run into ratios, a markdown report, a PNG chart and the JSON result file.

Every proxy figure is set against the direct-to-simulator figure of the same run (same
scenario, concurrency and upstream transport), because on a shared two-core machine only
ratios from one run are comparable; absolute numbers move with the neighbours' load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

__all__ = ["add_ratios", "markdown", "targets", "write_chart", "write_outputs"]

_README = Path(__file__).resolve().parent / "README.md"
_BEGIN, _END = "<!-- bench:begin -->", "<!-- bench:end -->"
_TITLES = {
    "nonstream": "1. non-streaming",
    "stream200": "2. stream 200 ev",
    "stream5000": "3. stream 5,000 ev",
    "tool200k": "4. tool 200 KB",
}


def _key(row: dict[str, Any]) -> tuple[str, str, int]:
    return (row["upstream"], row["scenario"], row["concurrency"])


def _div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def add_ratios(report: dict[str, Any]) -> None:
    """Add ``ratios`` (proxy ÷ direct) and the TTFB difference to every proxy row."""
    direct = {_key(r): r for r in report["runs"] if r["target"] == "direct"}
    for row in report["runs"]:
        base = direct.get(_key(row))
        if row["target"] != "proxy" or base is None:
            continue
        row["ratios"] = {
            "rps": _div(row["rps"], base["rps"]),
            "ttfb_p50": _div(row["ttfb_ms"]["p50"], base["ttfb_ms"]["p50"]),
            "ttfb_p99": _div(row["ttfb_ms"]["p99"], base["ttfb_ms"]["p99"]),
            "total_p50": _div(row["total_ms"]["p50"], base["total_ms"]["p50"]),
            "total_p99": _div(row["total_ms"]["p99"], base["total_ms"]["p99"]),
            "cpu_per_req": _div(row["server_cpu_s_per_req"], base["server_cpu_s_per_req"]),
            "peak_rss": _div(row["server_peak_rss_mib"], base["server_peak_rss_mib"]),
        }
        if row["ttfb_ms"]["p50"] is not None and base["ttfb_ms"]["p50"] is not None:
            row["ttfb_p50_added_ms"] = round(row["ttfb_ms"]["p50"] - base["ttfb_ms"]["p50"], 3)


def _find(report: dict[str, Any], **match: Any) -> dict[str, Any] | None:
    rows: list[dict[str, Any]] = report["runs"]
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Where each target stands, per proxy configuration that has the figure."""
    out: list[dict[str, Any]] = []
    configs = sorted({r["config"] for r in report["runs"] if r["target"] == "proxy"})

    def add(name: str, config: str, value: float | None, limit: float, upper: bool) -> None:
        met = None if value is None else (value <= limit if upper else value >= limit)
        out.append({"target": name, "config": config, "value": value, "limit": limit, "met": met})

    for config in configs:
        for scenario in ("nonstream", "stream200"):
            row = _find(report, config=config, target="proxy", scenario=scenario, concurrency=1)
            if row is not None:
                add(
                    f"TTFB p50 added at c=1, {scenario} (ms)",
                    config,
                    row.get("ttfb_p50_added_ms"),
                    2.0,
                    upper=True,
                )
        row = _find(report, config=config, target="proxy", scenario="stream5000", concurrency=1)
        if row is not None and "ratios" in row:
            add(
                "5,000-event stream total p50, × direct",
                config,
                row["ratios"]["total_p50"],
                1.15,
                True,
            )
        row = _find(report, config=config, target="proxy", scenario="nonstream", concurrency=16)
        if row is not None and "ratios" in row:
            add("non-streaming req/s at c=16, × direct", config, row["ratios"]["rps"], 0.5, False)
        row = _find(report, config=config, target="proxy", scenario="slow_streams")
        if row is not None:
            add("RSS per open stream (KiB)", config, row.get("rss_per_stream_kib"), 64.0, True)
            add("errors with all streams open", config, row["errors"], 0, True)
    return out


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _pair(d: float | None, p: float | None, digits: int = 1) -> str:
    return f"{_fmt(d, digits)} → {_fmt(p, digits)}"


def _main_table(report: dict[str, Any], config: str) -> list[str]:
    lines = [
        "| scenario | c | req/s direct → proxy | × | TTFB p50 ms | Δ ms | TTFB p99 ms "
        "| total p50 ms | × | total p99 ms | × | proxy CPU ms/req | × sim | proxy peak RSS MiB "
        "| errors | loadgen CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    direct = {_key(r): r for r in report["runs"] if r["target"] == "direct"}
    for row in report["runs"]:
        if row["config"] != config or row["target"] != "proxy" or row["scenario"] not in _TITLES:
            continue
        base = direct.get(_key(row), {})
        ratios = row.get("ratios", {})
        bt, bq = base.get("ttfb_ms", {}), base.get("total_ms", {})
        errors = row["errors"] + base.get("errors", 0)
        load = max(row["loadgen_cpu_util"], base.get("loadgen_cpu_util", 0.0))
        lines.append(
            f"| {_TITLES[row['scenario']]} | {row['concurrency']} "
            f"| {_pair(base.get('rps'), row['rps'])} | {_fmt(ratios.get('rps'), 2)} "
            f"| {_pair(bt.get('p50'), row['ttfb_ms']['p50'], 2)} "
            f"| {_fmt(row.get('ttfb_p50_added_ms'), 2)} "
            f"| {_pair(bt.get('p99'), row['ttfb_ms']['p99'], 2)} "
            f"| {_pair(bq.get('p50'), row['total_ms']['p50'])} "
            f"| {_fmt(ratios.get('total_p50'), 2)} "
            f"| {_pair(bq.get('p99'), row['total_ms']['p99'])} "
            f"| {_fmt(ratios.get('total_p99'), 2)} "
            f"| {_fmt(row['server_cpu_s_per_req'] * 1000, 2)} "
            f"| {_fmt(ratios.get('cpu_per_req'), 2)} | {_fmt(row['server_peak_rss_mib'])} "
            f"| {errors} | {load:.2f} |"
        )
    return lines


def _count_tokens_table(report: dict[str, Any]) -> list[str]:
    rows = [r for r in report["runs"] if r.get("scenario_group") == "count_tokens"]
    if not rows:
        return []
    lines = [
        "| config | route | calls/s | burst of 26 p50 ms | burst p99 ms | call p50 ms "
        "| call p99 ms | proxy CPU ms/call | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        burst = r.get("burst_ms", {})
        lines.append(
            f"| {r['config']} | {r['scenario']} | {_fmt(r['rps'])} | {_fmt(burst.get('p50'), 2)} "
            f"| {_fmt(burst.get('p99'), 2)} | {_fmt(r['total_ms']['p50'], 2)} "
            f"| {_fmt(r['total_ms']['p99'], 2)} | {_fmt(r['server_cpu_s_per_req'] * 1000, 3)} "
            f"| {r['errors']} |"
        )
    return lines


def _streams_table(report: dict[str, Any]) -> list[str]:
    rows = [r for r in report["runs"] if r["scenario"] == "slow_streams"]
    if not rows:
        return []
    lines = [
        "| config | target | streams | open at once | errors | RSS idle MiB | RSS all open MiB "
        "| RSS per stream KiB | TTFB p50 ms | TTFB p99 ms | CPU s total | accept-queue drops |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        server = "proxy" if r["target"] == "proxy" else "simulator"
        lines.append(
            f"| {r['config']} | {server} | {r['concurrency']} | {r.get('max_open_streams', '–')} "
            f"| {r['errors']} | {_fmt(r.get('baseline_rss_mib'))} "
            f"| {_fmt(r.get('rss_all_open_mib'))} "
            f"| {_fmt(r.get('rss_per_stream_kib'))} | {_fmt(r['ttfb_ms']['p50'], 2)} "
            f"| {_fmt(r['ttfb_ms']['p99'], 2)} "
            f"| {_fmt(r['server_cpu_s_per_req'] * r['requests'], 2)} "
            f"| {r.get('listen_overflows', '–')} |"
        )
    return lines


def _h2load_table(report: dict[str, Any]) -> list[str]:
    if not report["h2load"]:
        return [f"h2load: {report['machine']['h2load']}; no h2load runs."]
    lines = [
        "| config | target | scenario | protocol | clients | req/s | TTFB mean ms "
        "| total p50 ms | total p99 ms | errors |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for h in report["h2load"]:
        lines.append(
            f"| {h['config']} | {h['target']} | {h['scenario']} | {h['protocol']} | {h['clients']} "
            f"| {_fmt(h.get('rps'))} | {_fmt(h.get('ttfb_mean_ms'), 2)} "
            f"| {_fmt(h['total_ms']['p50'], 2)} | {_fmt(h['total_ms']['p99'], 2)} | {h['errors']} |"
        )
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The whole report as markdown (tables only; the README adds the reading)."""
    m = report["machine"]
    out = [
        f"Run of {report['started']}{' (quick)' if report['quick'] else ''}, "
        f"{report['elapsed_s']} s, **{report['errors_total']} errors**. "
        f"Machine: {m['cores']} cores, "
        f"`{m['cpu_model']}`, Python {m['python']}, Cython {m['cython']}, compiled codec "
        f"{'yes' if m['compiled_codec'] else 'no'}, load average at start "
        f"{', '.join(map(str, m['loadavg_at_start']))}; {m['h2load']}.",
        "",
        "Targets:",
        "",
        "| target | config | measured | limit | met |",
        "|---|---|---:|---:|---|",
    ]
    for t in targets(report):
        met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
        out.append(
            f"| {t['target']} | {t['config']} | {_fmt(t['value'], 2)} | {t['limit']} | {met} |"
        )
    configs = list(dict.fromkeys(r["config"] for r in report["runs"] if r["target"] == "proxy"))
    for config in configs:
        table = _main_table(report, config)
        if len(table) > 2:
            out += [
                "",
                f"Proxy `{config}` against the simulator directly (`{_upstream(report, config)}`):",
                "",
            ]
            out += table
    if ct := _count_tokens_table(report):
        out += [
            "",
            "`count_tokens`, bursts of 26 concurrent calls, against `/healthz` as the floor:",
            "",
        ]
        out += ct
    if st := _streams_table(report):
        out += ["", "Slow streams held open together (memory per open stream):", ""]
        out += st
    out += ["", "h2load (nghttp2), same requests:", "", *_h2load_table(report)]
    return "\n".join(out) + "\n"


def _upstream(report: dict[str, Any], config: str) -> str:
    for row in report["runs"]:
        if row["config"] == config:
            return str(row["upstream"])
    return "?"


def write_chart(report: dict[str, Any], path: Path) -> None:
    """Ratios (proxy ÷ direct) and latency percentiles, as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    proxied = [r for r in report["runs"] if r["target"] == "proxy" and "ratios" in r]
    configs = list(dict.fromkeys(r["config"] for r in proxied))
    labels = list(dict.fromkeys(f"{r['scenario']}\nc={r['concurrency']}" for r in proxied))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(10, len(labels) * 0.9), 9))
    width = 0.8 / max(1, len(configs) * 2)
    for i, config in enumerate(configs):
        rows = {
            f"{r['scenario']}\nc={r['concurrency']}": r for r in proxied if r["config"] == config
        }
        for j, (metric, hatch) in enumerate((("total_p50", ""), ("rps", "//"))):
            xs = [k + (i * 2 + j) * width for k in range(len(labels))]
            ys = [(rows[lab]["ratios"][metric] or 0) if lab in rows else 0 for lab in labels]
            top.bar(xs, ys, width, label=f"{config} {metric}", hatch=hatch, color=f"C{i}")
    top.axhline(1.0, color="black", linewidth=0.8)
    top.set_xticks([k + 0.4 - width / 2 for k in range(len(labels))], labels, fontsize=7)
    top.set_ylabel("proxy ÷ direct")
    top.set_title("Ratios: total time p50 (plain) and requests/s (hatched)")
    top.legend(fontsize=7, ncol=3)
    base = [
        r
        for r in report["runs"]
        if r["scenario"] in _TITLES and r["config"] in ("h1", configs[0] if configs else "h1")
    ]
    names = list(dict.fromkeys(f"{r['scenario']}\nc={r['concurrency']}" for r in base))
    for k, (target, pct, style) in enumerate(
        (
            ("direct", "p50", "o-"),
            ("direct", "p99", "o--"),
            ("proxy", "p50", "s-"),
            ("proxy", "p99", "s--"),
        )
    ):
        rows = {f"{r['scenario']}\nc={r['concurrency']}": r for r in base if r["target"] == target}
        ys = [rows[n]["total_ms"][pct] if n in rows else None for n in names]
        bottom.plot(
            range(len(names)),
            [y if y is not None else float("nan") for y in ys],
            style,
            label=f"{target} total {pct}",
            color=f"C{k}",
        )
    bottom.set_yscale("log")
    bottom.set_xticks(range(len(names)), names, fontsize=7)
    bottom.set_ylabel("ms (log)")
    bottom.set_title(f"Total time percentiles, {base[0]['config'] if base else ''} upstream")
    bottom.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _update_readme(md: str, chart: Path) -> None:
    text = _README.read_text()
    block = f"{_BEGIN}\n![benchmark chart](results/{chart.name})\n\n{md}{_END}"
    if _BEGIN in text and _END in text:
        text = re.sub(
            re.escape(_BEGIN) + r".*?" + re.escape(_END), lambda _: block, text, flags=re.S
        )
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    _README.write_text(text)


def write_outputs(report: dict[str, Any], out: Path, *, update_readme: bool) -> list[Path]:
    """Write ``<stamp>.json``, ``latest.json``, ``latest.md`` and ``latest.png`` into ``out``."""
    add_ratios(report)
    report["targets"] = targets(report)
    out.mkdir(parents=True, exist_ok=True)
    prefix = "quick" if report["quick"] else "latest"
    stamp = report["started"].replace("-", "").replace(":", "").rstrip("Z")
    data = orjson.dumps(report, option=orjson.OPT_INDENT_2)
    paths = [out / f"{prefix}.json", out / f"{prefix}.md", out / f"{prefix}.png"]
    paths[0].write_bytes(data)
    if not report["quick"]:
        (out / f"run-{stamp}.json").write_bytes(data)
    md = markdown(report)
    paths[1].write_text(md)
    write_chart(report, paths[2])
    if update_readme:
        _update_readme(md, paths[2])
    return paths
