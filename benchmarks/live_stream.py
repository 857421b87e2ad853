"""What the live page streams during ``hil run --live``, and how long its Stop takes.

``hil run --live 127.0.0.1:PORT`` runs the packaged benches on the packaged emulated bench;
a client (the page's protocol: server-sent events on ``/events``) connects as soon as the
page is served and counts for ``--seconds`` (6) of wall time:

- ``live_events_6s``: every event received (target ≥ 10; the ratio against it follows);
- ``live_readings_per_s``: unit-reading updates a second (the throttle: at most 5);
- ``live_event_kinds``: how many kinds of event came (steps, verdicts, readings …).

Then it presses Stop (``POST /stop``) and measures ``stop_to_run_end_s`` (until the
``run_end`` event, outcome INTERRUPTED, reaches the client) and ``stop_to_exit_s`` (until
``hil run`` exits, report built). Prints ``name value unit`` lines.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from live_child import LiveChild  # noqa: E402

from hil.live.client import EventStream  # noqa: E402
from hil.records import read_records  # noqa: E402

TARGET_EVENTS = 10


class Counter:
    """Reads the stream on a thread; keeps (arrival time, type, data) of every event."""

    def __init__(self, url: str) -> None:
        self.stream = EventStream(url, timeout=120.0)
        self.seen: list[tuple[float, str, dict[str, object]]] = []
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self.stream:
                kind = str(event.data["type"])
                self.seen.append((time.monotonic(), kind, event.data))
                if kind == "run_end":
                    break
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        command = ["-m", "hil.cli", "run", "--run-dir", str(run_dir), "--live", "127.0.0.1:0"]
        child = LiveChild(command, run_dir)
        try:
            url = child.wait_page()
            counter = Counter(url)
            started = time.monotonic()
            time.sleep(args.seconds)
            window = [s for s in counter.seen if s[0] - started <= args.seconds]
            readings = [s for s in window if s[1] == "readings"]
            print(f"live_events_{args.seconds:g}s {len(window)} events")
            print(f"live_events_ratio_vs_target {len(window) / TARGET_EVENTS:.2f} x")
            print(f"live_readings_per_s {len(readings) / args.seconds:.2f} 1/s")
            print(f"live_event_kinds {len({s[1] for s in window})} kinds")
            pressed = time.monotonic()
            answer = httpx.post(f"{url}stop", json={"confirm": True, "by": "benchmark"})
            answer.raise_for_status()
            counter.ended.wait(300)
            ends = [s for s in counter.seen if s[1] == "run_end"]
            if ends:
                print(f"stop_to_run_end_s {ends[0][0] - pressed:.3f} s")
            code = child.finish()
            print(f"stop_to_exit_s {time.monotonic() - pressed:.3f} s")
            end = read_records(run_dir).end or {}
            print(f"stop_exit_code {code} code")
            print(f"stop_outcome_interrupted {int(end.get('outcome') == 'INTERRUPTED')} bool")
            counter.stream.close()
        finally:
            child.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
