"""Throughput of the EventStream decoders, side by side, over the same bytes.

Contenders: the compiled decoder (``kiro2api._eventstream``), the pure-Python twin,
botocore's ``EventStreamBuffer`` and bare ``zlib.crc32`` over the same chunks. The CRC is
the floor: every decoder has to checksum every byte.

Workloads:
  (a) upstream-like: 10,000 ``assistantResponseEvent`` frames with 20-200 byte JSON
      payloads and the three usual headers, fed in 4 KiB chunks;
  (b) bulk: 256 frames with 64 KiB payloads, fed in 64 KiB chunks.

Each contender runs ``--repeat`` times per workload (interleaved, so drift hits everyone
alike); the best run is reported, the median is shown beside it.

Usage: ``python benchmarks/bench_eventstream.py [--quick] [--repeat N]``. ``--quick`` runs a
tiny version that only checks the script still works (CI).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiro2api import _eventstream_py
from kiro2api.eventstream import encode_message

HEADERS = {
    ":event-type": "assistantResponseEvent",
    ":content-type": "application/json",
    ":message-type": "event",
}

Runner = Callable[[list[bytes]], int]


def upstream_stream(frames: int, seed: int = 7) -> bytes:
    """``frames`` assistantResponseEvent frames with 20-200 byte JSON payloads."""
    rnd = random.Random(seed)
    words = ["the", "proxy", "streams", "tokens", "快速", "back", "to", "Claude", "Code", "\\n"]
    out = []
    for _ in range(frames):
        size = rnd.randint(20, 200)
        text = ""
        while len(text) < size - 14:
            text += rnd.choice(words) + " "
        payload = ('{"content":"' + text[: size - 14] + '"}').encode()
        out.append(encode_message(HEADERS, payload))
    return b"".join(out)


def bulk_stream(frames: int) -> bytes:
    """``frames`` frames with 64 KiB payloads."""
    payload = random.Random(1).randbytes(64 * 1024)
    return b"".join(encode_message(HEADERS, payload) for _ in range(frames))


def chunked(data: bytes, size: int) -> list[bytes]:
    """``data`` in ``size``-byte chunks."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def decoder_runner(module: object) -> Runner:
    """Feed every chunk to a fresh decoder of ``module``; return the message count."""
    decoder_class = module.Decoder  # type: ignore[attr-defined]

    def run(chunks: list[bytes]) -> int:
        decoder = decoder_class()
        count = 0
        for chunk in chunks:
            count += len(decoder.feed(chunk))
        return count

    return run


def botocore_runner(chunks: list[bytes]) -> int:
    """botocore's buffer, used as botocore itself uses it (add_data, then iterate)."""
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    count = 0
    for chunk in chunks:
        buffer.add_data(chunk)
        for _ in buffer:
            count += 1
    return count


def crc_runner(chunks: list[bytes]) -> int:
    """The floor: zlib.crc32 over the same chunks, nothing else."""
    crc = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc)
    return 0


def contenders() -> dict[str, Runner]:
    """Everything that can run here, compiled decoder first."""
    found: dict[str, Runner] = {}
    try:
        from kiro2api import _eventstream

        found["compiled"] = decoder_runner(_eventstream)
    except ImportError:
        print("warning: kiro2api._eventstream is not built; run setup.py build_ext --inplace")
    found["python twin"] = decoder_runner(_eventstream_py)
    try:
        import botocore.eventstream  # noqa: F401 - only probing for it

        found["botocore"] = botocore_runner
    except ImportError:
        print("warning: botocore is not installed; skipping it")
    found["zlib.crc32"] = crc_runner
    return found


def measure(
    runners: dict[str, Runner], chunks: list[bytes], frames: int, repeat: int
) -> dict[str, tuple[float, float]]:
    """Best and median seconds per contender, runs interleaved."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeat):
        for name, run in runners.items():
            gc.collect()
            started = time.perf_counter()
            count = run(chunks)
            times[name].append(time.perf_counter() - started)
            if name != "zlib.crc32" and count != frames:
                raise SystemExit(f"{name} decoded {count} messages, expected {frames}")
    return {name: (min(t), statistics.median(t)) for name, t in times.items()}


def report(
    title: str, results: dict[str, tuple[float, float]], frames: int, size: int
) -> dict[str, tuple[float, float]]:
    """Print one table; return name -> (messages/s, MB/s) of the best runs."""
    print(f"\n{title}: {frames:,} frames, {size / 1e6:.2f} MB")
    print(f"{'':14} {'messages/s':>14} {'MB/s':>9} {'median MB/s':>12} {'x botocore':>11}")
    rates = {n: (frames / best, size / best / 1e6) for n, (best, _) in results.items()}
    boto = rates.get("botocore", (0.0, 0.0))[0]
    for name, (_best, median) in results.items():
        msgs, mbs = rates[name]
        ratio = f"{msgs / boto:10.1f}x" if boto and name != "zlib.crc32" else f"{'':>11}"
        shown = "-" if name == "zlib.crc32" else f"{msgs:,.0f}"
        print(f"{name:14} {shown:>14} {mbs:9.0f} {size / median / 1e6:12.0f} {ratio}")
    return rates


def machine() -> str:
    """nproc, CPU model, Python and Cython versions."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import Cython

        cython = Cython.__version__
    except ImportError:
        cython = "not installed"
    return (
        f"{os.cpu_count()} CPUs ({cpu}); Python {platform.python_version()}; "
        f"Cython {cython}; zlib {zlib.ZLIB_RUNTIME_VERSION}"
    )


def main() -> None:
    """Run both workloads and check the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny run that checks the script")
    parser.add_argument("--repeat", type=int, default=7, help="runs per contender (default 7)")
    args = parser.parse_args()
    small_frames, big_frames, repeat = (200, 4, 1) if args.quick else (10_000, 256, args.repeat)

    print(machine())
    runners = contenders()
    small = upstream_stream(small_frames)
    rates_a = report(
        "(a) upstream-like, 4 KiB chunks",
        measure(runners, chunked(small, 4096), small_frames, repeat),
        small_frames,
        len(small),
    )
    big = bulk_stream(big_frames)
    rates_b = report(
        "(b) 64 KiB payloads, 64 KiB chunks",
        measure(runners, chunked(big, 64 * 1024), big_frames, repeat),
        big_frames,
        len(big),
    )
    if args.quick or "compiled" not in rates_a:
        return
    print()
    if "botocore" in rates_a:
        ratio = rates_a["compiled"][0] / rates_a["botocore"][0]
        verdict = "ok" if ratio >= 25 else "MISSED"
        print(f"target (a) compiled >= 25x botocore messages/s: {ratio:.1f}x {verdict}")
    share = rates_b["compiled"][1] / rates_b["zlib.crc32"][1]
    verdict = "ok" if share >= 0.6 else "MISSED"
    print(f"target (b) compiled >= 60% of zlib.crc32 MB/s: {share:.0%} {verdict}")


if __name__ == "__main__":
    main()
