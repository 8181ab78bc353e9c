"""Window statistics of drgrpo_cli.metrics (the per-run numbers of summary.json, summary.csv and plot).
"""

from __future__ import annotations

from drgrpo_cli.metrics import length_growth, tail_mean, window_size

def test_windows_and_growth():
    assert window_size(200, 0.1) == 20 and window_size(200, 0.2) == 40
    assert window_size(10, 0.1) == 1 and window_size(2, 0.1) == 1 and window_size(0, 0.1) == 0
    assert window_size(15, 0.1) == 2  # ceil
    s = [float(i) for i in range(1, 11)]
    assert tail_mean(s, 0.1) == 10.0
    assert length_growth(s) == 9.5 - 1.0
    assert length_growth([None, 2.0, None, 4.0, None], 0.2, 0.4) is None  # first window has no value
    assert length_growth([None] * 5) is None
    assert length_growth([1.0, None, 3.0, float("nan"), 5.0], 0.4, 0.4) == 5.0 - 1.0
