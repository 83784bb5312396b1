"""Benchmarks (pytest-benchmark), not part of the test suite: `make bench`.

Each benchmark is paired with a baseline measured in the same run; the ratio is
printed at the end, since absolute numbers depend on the machine.
"""

from __future__ import annotations

import pytest

RESULTS: dict[str, float] = {}
RATIOS: list[tuple[str, str, str, str]] = []  # (label, numerator, denominator, unit)


def record(name: str, benchmark) -> None:
    RESULTS[name] = benchmark.stats.stats.mean


def ratio(label: str, numerator: str, denominator: str, how: str = "x") -> None:
    RATIOS.append((label, numerator, denominator, how))


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("funnel benchmark figures")
    for name, mean in RESULTS.items():
        tr.write_line(f"{name:<48} {mean * 1000:10.2f} ms (mean)")
    for label, num, den, how in RATIOS:
        if num in RESULTS and den in RESULTS:
            tr.write_line(f"{label:<48} {RESULTS[num] / RESULTS[den]:10.2f} {how}")


@pytest.fixture(scope="session")
def results():
    return RESULTS
