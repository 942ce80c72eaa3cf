"""Crash messages quote the worker's last meaningful stderr line, never a progress bar."""

from __future__ import annotations

from core.logtail import is_progress_line, last_meaningful_line, meaningful_tail

# As read from a worker's stderr pipe: tqdm redraws with carriage returns (and ANSI codes when it
# thinks it has a terminal); datasets and transformers both draw bars.
LOADING = ("\rLoading weights:   0%|          | 0/39 [00:00<?, ?it/s]"
           "\rLoading weights: 100%|██████████| 39/39 [00:00<00:00, 15862.86it/s]\n")
MAP = "Map: 100%|##########| 1000/1000 [00:00<00:00, 5412.31 examples/s]"
MAP_NO_TOTAL = "Map: 1000 examples [00:00, 5412.31 examples/s]"
ANSI_BAR = "\x1b[A\rWriting model shards: 100%|\x1b[32m██████████\x1b[0m| 1/1 [00:00<00:00, 273.49it/s]"
CRASH = [
    "Traceback (most recent call last):",
    '  File "/work/core/worker.py", line 88, in main',
    "RuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
    "you tried to allocate 2147483648 bytes.",
]


def test_progress_bars_of_tqdm_datasets_and_transformers_are_recognised() -> None:
    for line in (LOADING, MAP, MAP_NO_TOTAL, ANSI_BAR, "  37%|###7      | 15/40 [00:01<00:02,  9.10it/s]"):
        assert is_progress_line(line), line
    for line in [*CRASH, "fine-tuning: epoch 1/3", "Killed", "step 2/5 [prune] done in 0:01:02", ""]:
        assert not is_progress_line(line), line


def test_the_crash_line_is_quoted_not_the_bar_after_it() -> None:
    lines = [MAP, *CRASH, LOADING, "", ANSI_BAR]
    assert last_meaningful_line(lines) == CRASH[-1]
    assert meaningful_tail(lines) == CRASH
    assert meaningful_tail(lines, keep=2) == CRASH[-2:]


def test_only_bars_leave_nothing_to_quote() -> None:
    assert last_meaningful_line([LOADING, MAP]) == ""
    assert meaningful_tail([]) == []


def test_a_redrawn_line_shows_what_the_terminal_showed() -> None:
    assert meaningful_tail(["\rworking\rMemoryError\n", "\x1b[31mKilled\x1b[0m"]) == ["MemoryError", "Killed"]
