"""Chart data: the spectrum follows HdrHistogram's percentiles; long series are capped honestly."""

from __future__ import annotations

import re

import numpy as np
from report_fixtures import new_hist, record_many

from reports import charts
from reports.charts import Line
from reports.hdr import Counts, layout_for


def _counts(values: np.ndarray) -> tuple[Counts, object]:
    h = new_hist()
    record_many(h, values)
    layout = layout_for(1, 3_600_000_000, 3)
    return Counts(layout, np.ctypeslib.as_array(h.counts).astype(np.int64)), h


def test_spectrum_reads_hdrhistogram_percentiles_at_the_ticks() -> None:
    counts, h = _counts(np.random.default_rng(1).lognormal(9, 1.0, 20_000).astype(np.int64) + 1)
    x, y = charts.spectrum_points(counts, charts.spectrum_decades([counts.total]))
    for p in (90.0, 99.0, 99.9):
        i = int(np.argmin(np.abs(x - 1 / (1 - p / 100))))
        assert y[i] == h.get_value_at_percentile(100 * (1 - 1 / x[i]))
    assert y[-1] == h.get_max_value()
    assert np.all(np.diff(y) >= 0)


def test_spectrum_axis_reaches_past_the_sample_count() -> None:
    assert charts.spectrum_decades([100]) == 5  # always out to 99.999 %
    assert charts.spectrum_decades([6_000_000]) == 8


def test_decimate_keeps_peaks_with_max() -> None:
    y = np.zeros(10_000)
    y[4321] = 7.0
    x, out = charts.decimate(np.arange(10_000.0), y, "max", cap=100)
    assert out.size == x.size == 100
    assert out.max() == 7.0


def test_decimate_keeps_rates_with_mean() -> None:
    y = np.tile([100.0, 300.0], 5000)
    _, out = charts.decimate(np.arange(10_000.0), y, "mean", cap=1000)
    assert np.allclose(out, 200.0)


def test_short_series_are_not_touched() -> None:
    x, y = np.arange(5.0), np.arange(5.0)
    assert charts.decimate(x, y, "mean") == (x, y)


def test_long_series_is_drawn_with_capped_points() -> None:
    n = 20_000
    svg = charts.line_svg([Line("rate", np.arange(float(n)), np.random.default_rng(2).random(n))], "ops/s")
    path = re.search(r'<g id="c\d+-series-0">\s*<path d="([^"]+)"', svg)
    assert path is not None
    vertices = len(re.findall(r"[ML]", path.group(1)))
    assert vertices <= charts.MAX_POINTS


def test_chart_ids_get_a_unique_prefix() -> None:
    a = charts.line_svg([Line("a", [0, 1], [1, 2])], "y")
    b = charts.line_svg([Line("a", [0, 1], [1, 2])], "y")
    ids_a = set(re.findall(r'id="([^"]+)"', a))
    ids_b = set(re.findall(r'id="([^"]+)"', b))
    assert ids_a and not ids_a & ids_b


def test_dollar_signs_in_labels_are_not_math() -> None:
    svg = charts.line_svg([Line("cost $x$ and $", [0, 1], [1, 2])], "y")
    assert "<svg" in svg


def test_percentile_tick_labels_keep_all_their_nines() -> None:
    assert [charts.pct_label(100 * (1 - 10.0**-k)) for k in (1, 2, 4, 9)] == [
        "90%", "99%", "99.99%", "99.9999999%"
    ]
