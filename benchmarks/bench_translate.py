"""The proxy's per-event hot path in one process: EventStream bytes in, SSE bytes out.

Runs exactly the code a streaming request runs between the socket reads and writes:
``Decoder.feed`` → ``frames_to_events`` → ``AnthropicStreamTranslator.feed`` (and the OpenAI
translator), over the simulator's own frames, in 16 KiB reads. The end-to-end harness is noisy
on a shared machine; this isolates the CPU cost per upstream event so each optimisation of the
translator can be measured on its own. Best of ``--repeat`` runs, interleaved.

    .venv/bin/python benchmarks/bench_translate.py [--events 5000] [--repeat 15] [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import _bootstrap  # noqa: F401  (first: puts the checkout on sys.path)

from kiro2api.convert.anthropic_stream import AnthropicStreamTranslator
from kiro2api.convert.events import UpstreamEventParser
from kiro2api.convert.openai_stream import OpenAIStreamTranslator
from kiro2api.eventstream import IMPLEMENTATION, Decoder
from kiro2api.simulator._frames import event_frame, text_frame
from kiro2api.upstream import frames_to_events

_READ = 16 * 1024


def text_stream(events: int, size: int) -> bytes:
    """A text answer of ``events`` frames of ``size`` characters, then the usage frames."""
    words = ("lorem ", "ipsum ", "dolor ", "sit ", "amet, ", "über ", "naïve ", "“quoted” ")
    frames = [
        text_frame("".join(words[(i + k) % len(words)] for k in range(8))[:size])
        for i in range(events)
    ]
    frames.append(
        event_frame("meteringEvent", {"unit": "credit", "unitPlural": "credits", "usage": 0.5})
    )
    frames.append(event_frame("contextUsageEvent", {"contextUsagePercentage": 1.5}))
    return b"".join(frames)


def tool_stream(size: int, fragment: int) -> bytes:
    """One tool call whose JSON input of about ``size`` bytes comes in ``fragment``-sized parts."""
    body = '{"file_path": "/tmp/x.txt", "content": "' + ("abcdefghij" * (size // 10)) + '"}'
    frames = [event_frame("toolUseEvent", {"name": "Write", "toolUseId": "tooluse_bench"})]
    for i in range(0, len(body), fragment):
        frames.append(
            event_frame(
                "toolUseEvent",
                {"name": "Write", "toolUseId": "tooluse_bench", "input": body[i : i + fragment]},
            )
        )
    frames.append(
        event_frame("toolUseEvent", {"name": "Write", "toolUseId": "tooluse_bench", "stop": True})
    )
    frames.append(event_frame("contextUsageEvent", {"contextUsagePercentage": 1.5}))
    return b"".join(frames)


def _anthropic() -> AnthropicStreamTranslator:
    t = AnthropicStreamTranslator(
        model="claude-sonnet-4-5",
        message_id="msg_bench",
        input_tokens=10,
        context_window=200_000,
        tool_names={},
    )
    t.message_start()
    return t


def _openai() -> OpenAIStreamTranslator:
    return OpenAIStreamTranslator(
        model="claude-sonnet-4-5",
        completion_id="chatcmpl-bench",
        created=0,
        include_usage=True,
        input_tokens=10,
        context_window=200_000,
        tool_names={},
    )


def translate(data: bytes, make: Callable[[], Any]) -> tuple[float, int]:
    """Seconds to turn ``data`` into SSE, and the SSE size (to check the work was done)."""
    started = time.perf_counter()
    translator = make()
    decoder = Decoder()
    parser = UpstreamEventParser()
    out = 0
    for i in range(0, len(data), _READ):
        messages = decoder.feed(data[i : i + _READ])
        if messages:
            out += len(translator.feed(frames_to_events(parser, messages)))
    out += len(translator.finish())
    return time.perf_counter() - started, out


def main() -> int:
    """Print µs per upstream event for each workload and translator."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.events, args.repeat = 200, 2
    workloads = {
        f"text {args.events} x 16 chars": (text_stream(args.events, 16), args.events + 2),
        "tool 200 KB in 64-char fragments": (tool_stream(200_000, 64), 200_000 // 64 + 4),
    }
    makers = {"anthropic": _anthropic, "openai": _openai}
    best: dict[tuple[str, str], float] = {}
    sizes: dict[tuple[str, str], int] = {}
    for _ in range(args.repeat):
        for wname, (data, _count) in workloads.items():
            for mname, make in makers.items():
                seconds, size = translate(data, make)
                key = (wname, mname)
                best[key] = min(best.get(key, seconds), seconds)
                sizes[key] = size
    print(f"codec: {IMPLEMENTATION}; best of {args.repeat}")
    for (wname, mname), seconds in best.items():
        count = workloads[wname][1]
        print(
            f"{wname:34} {mname:10} {seconds * 1e3:8.2f} ms  {seconds / count * 1e6:6.2f} µs/event"
            f"  {sizes[(wname, mname)]:>9,} SSE bytes"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
