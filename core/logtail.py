"""The last lines of a worker's stderr worth showing in a crash message.

Libraries draw progress bars on stderr (tqdm: "Loading weights: 100%|████| 39/39 [00:00<00:00,
1.2kit/s]", datasets' "Map: 100%|..."), redrawn with carriage returns and ANSI escapes. When a
worker dies, the line before the end is often such a bar, which says nothing about the crash.
Pure functions, no imports beyond ``re``: both the CLI's and the window's worker clients use them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# tqdm's bar "37%|####   |" or "100%|██████████|", and its counter/timer "12/40 [00:01<00:03, 9.1it/s]".
_BAR = re.compile(r"\d{1,3}%\|[^|]*\|")
_TIMER = re.compile(r"\[\d+:\d{2}(?::\d{2})?(?:<[\d:?]+)?(?:,\s*[^\]]*)?\]\s*$")
_COUNT = re.compile(r"\b\d+(?:\.\d+)?[kMG]?(?:/\d+(?:\.\d+)?[kMG]?)?\s+\S*")


def _visible(line: str) -> str:
    """What a terminal would end up showing: after the last carriage return, without ANSI codes."""
    line = _ANSI.sub("", line.rstrip("\r\n"))
    parts = [p for p in line.split("\r") if p.strip()]
    return parts[-1].rstrip() if parts else ""


def is_progress_line(line: str) -> bool:
    """True for a progress-bar line (tqdm and look-alikes), however it was redrawn."""
    text = _visible(line)
    return bool(_BAR.search(text)) or bool(_TIMER.search(text) and _COUNT.search(text))


def meaningful_tail(lines: Iterable[str], keep: int | None = None) -> list[str]:
    """``lines`` without progress bars and blank lines, as displayed; the last ``keep`` when given."""
    out = [_visible(line) for line in lines if not is_progress_line(line)]
    out = [line for line in out if line.strip()]
    return out[-keep:] if keep else out


def last_meaningful_line(lines: Iterable[str]) -> str:
    """The last line worth quoting in a one-line crash message ("" when there is none)."""
    tail = meaningful_tail(lines, keep=1)
    return tail[0] if tail else ""
