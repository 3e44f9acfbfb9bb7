"""A progress bar over all iterations of a sweep, with the estimated time left.

tqdm draws it when installed (pip install minits[progress]) and stderr is a
terminal; otherwise a plain line is printed every few seconds. Messages go
through bar.write so that they do not tear the bar.
"""

import sys
import time


def progress_bar(total, initial=0, enabled=True, desc="training"):
    """An object with update(k), write(message), close()."""
    if not enabled:
        return _Silent()
    if not sys.stderr.isatty():  # a log file or CI: a line every 10 s, not a bar redrawn
        return _Plain(total, initial, desc, every=10.0)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Plain(total, initial, desc)
    return tqdm(total=total, initial=initial, desc=desc, unit="it", dynamic_ncols=True,
                smoothing=0.05, file=sys.stderr)


def format_seconds(seconds):
    """3725 -> '1h02m05s'; 65 -> '1m05s'; 4.2 -> '4s'."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    return f"{m}m{s:02d}s" if m else f"{s}s"


class _Silent:
    def update(self, k=1):
        pass

    def write(self, message):
        print(message, file=sys.stderr, flush=True)

    def close(self):
        pass


class _Plain:
    """'training  45% 12345/27000 it  310 it/s  ETA 47s', every 5 seconds, on stderr."""

    def __init__(self, total, initial, desc, every=5.0):
        self.total, self.done, self.desc, self.every = total, initial, desc, every
        self.start_done = initial
        self.start = self.last = time.monotonic()

    def update(self, k=1):
        self.done += k
        now = time.monotonic()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            self._print(now)

    def _print(self, now):
        rate = (self.done - self.start_done) / max(now - self.start, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = format_seconds(left) if left == left else "?"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        print(f"{self.desc} {pct:5.1f}% {self.done}/{self.total} it  {rate:.0f} it/s  ETA {eta}",
              file=sys.stderr, flush=True)

    def write(self, message):
        print(message, file=sys.stderr, flush=True)

    def close(self):
        pass
