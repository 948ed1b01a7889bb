"""Charts: the spectrum follows HdrHistogram's percentiles, long series are capped honestly, legends
and labels stay off the data and on the canvas, and every log axis carries several labelled ticks."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.transforms import Bbox
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


# -- layout: legends beside the data, never on it; every label on the canvas ------------------------


def _boxes(fig: Figure) -> tuple[Bbox, list[Bbox], Bbox]:
    """(figure box, plot boxes, legend box) in display units, after a real draw."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    return fig.bbox, [ax.get_window_extent(renderer) for ax in fig.axes], legend.get_window_extent(renderer)


def _many_lines(n: int) -> list[Line]:
    t = np.arange(60.0)
    return [Line(f"kind-{i:02d} p99", t, 20 + i + np.sin(t + i)) for i in range(n)]


def test_legend_of_eighteen_entries_sits_outside_the_plot() -> None:
    fig = charts.line_figure(_many_lines(18), "latency", ms=True, shade_until=5)
    try:
        canvas, (plot,), legend = _boxes(fig)
        assert not legend.overlaps(plot)
        assert legend.y0 >= plot.y1
        assert canvas.contains(legend.x0, legend.y0) and canvas.contains(legend.x1 - 1, legend.y1 - 1)
    finally:
        plt.close(fig)


def test_a_longer_legend_adds_height_above_the_plot_without_shrinking_it() -> None:
    small = charts.line_figure(_many_lines(2), "latency")
    large = charts.line_figure(_many_lines(18), "latency")
    try:
        (plot_small,), (plot_large,) = _boxes(small)[1], _boxes(large)[1]
        assert plot_large.height == pytest.approx(plot_small.height, abs=1)
        assert large.get_figheight() > small.get_figheight()
    finally:
        plt.close(small)
        plt.close(large)


def test_spectrum_legend_with_goals_sits_outside_the_plot() -> None:
    counts, _ = _counts(np.random.default_rng(3).lognormal(9, 1.0, 5_000).astype(np.int64) + 1)
    curves = [charts.Curve(f"response: kind {i}", counts) for i in range(9)]
    fig = charts.spectrum_figure(curves, [charts.Goal("p99 goal", 99.0, 50.0, False)])
    try:
        _, (plot,), legend = _boxes(fig)
        assert not legend.overlaps(plot)
    finally:
        plt.close(fig)


def test_date_axis_label_is_drawn_inside_the_canvas() -> None:
    days = [datetime(2026, 11, d, 12, tzinfo=UTC) for d in range(1, 9)]
    fig = charts.line_figure([Line("echo-http", days, np.linspace(40, 70, 8), marker="o")], "p99 response",
                             ms=True, xlabel="run start (UTC)", title="p99 over 8 runs")
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        label = ax.xaxis.label.get_window_extent(renderer)
        assert ax.xaxis.label.get_text() == "run start (UTC)"
        assert label.y0 >= 0 and fig.bbox.contains(label.x0, label.y0)
        ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
        assert len(ticks) >= 3 and all(t.y0 > label.y1 - 1 for t in ticks)  # above the label, not on it
    finally:
        plt.close(fig)


# -- log axes: several labelled ticks whatever the span -----------------------------------------------


def test_log_ticks_label_a_span_of_less_than_one_decade_four_times() -> None:
    assert charts.log_ticks(20.0, 90.0) == [20.0, 30.0, 50.0, 70.0]


def test_log_ticks_are_decades_when_the_span_is_wide() -> None:
    assert charts.log_ticks(1.0, 10_000.0) == [1.0, 10.0, 100.0, 1000.0, 10_000.0]


def test_log_ticks_skip_every_other_decade_over_ten_decades() -> None:
    assert charts.log_ticks(1e-3, 1e7) == [1e-3, 1e-1, 10.0, 1e3, 1e5, 1e7]


def test_log_ticks_in_a_span_too_narrow_for_round_steps_are_evenly_spaced() -> None:
    ticks = charts.log_ticks(20.1, 20.9)
    assert len(ticks) >= 3
    assert all(20.1 <= t <= 20.9 for t in ticks)
    assert len(set(np.round(np.diff(ticks), 9))) == 1


def _labelled(axis: matplotlib.axis.Axis) -> list[str]:
    lo, hi = sorted(axis.get_view_interval())
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text() and lo <= t.get_position()[
        0 if axis.axis_name == "x" else 1] <= hi]


def test_latency_over_time_within_one_decade_has_three_labelled_ticks() -> None:
    t = np.arange(60.0)
    fig = charts.line_figure([Line("p99", t, 25 + 40 * (t % 7) / 7)], "latency", log_y=True, ms=True)
    try:
        fig.canvas.draw()
        assert len(_labelled(fig.axes[0].yaxis)) >= 3
        assert _labelled(fig.axes[0].yaxis)[0].endswith(" ms")
    finally:
        plt.close(fig)


def test_spectrum_latency_axis_within_one_decade_has_three_labelled_ticks() -> None:
    counts, _ = _counts(np.random.default_rng(4).uniform(20_000, 80_000, 5_000).astype(np.int64))
    fig = charts.spectrum_figure([charts.Curve("response time", counts)])
    try:
        fig.canvas.draw()
        assert len(_labelled(fig.axes[0].yaxis)) >= 3
    finally:
        plt.close(fig)


def test_distribution_latency_axis_within_one_decade_has_three_labelled_ticks() -> None:
    counts, _ = _counts(np.random.default_rng(5).uniform(20_000, 80_000, 5_000).astype(np.int64))
    fig = charts.distribution_figure([charts.Curve("response time", counts)])
    try:
        fig.canvas.draw()
        assert len(_labelled(fig.axes[0].xaxis)) >= 3
    finally:
        plt.close(fig)


def test_millisecond_labels_switch_to_seconds_and_microseconds() -> None:
    assert [charts.MS(v, 0) for v in (0.5, 30.0, 1500.0)] == ["500 µs", "30 ms", "1.5 s"]


# -- small multiples ----------------------------------------------------------------------------------


def _panels(n: int) -> list[charts.Panel]:
    t = np.arange(30.0)
    return [charts.Panel(f"kind-{i}", [Line("p99", t, 20.0 * (i + 1) + t, color="#1f77b4"),
                                       Line("max", t, 40.0 * (i + 1) + t, color="#d62728", style=":")])
            for i in range(n)]


def test_small_multiples_draw_one_titled_panel_per_kind() -> None:
    fig = charts.small_multiples_figure(_panels(8), "response time")
    try:
        assert [ax.get_title(loc="left") for ax in fig.axes] == [f"kind-{i}" for i in range(8)]
    finally:
        plt.close(fig)


def test_small_multiples_share_one_latency_scale() -> None:
    fig = charts.small_multiples_figure(_panels(5), "response time")
    try:
        fig.canvas.draw()
        assert len({ax.get_ylim() for ax in fig.axes}) == 1
        assert {ax.get_yscale() for ax in fig.axes} == {"log"}
    finally:
        plt.close(fig)


def test_small_multiples_give_a_statistic_the_same_colour_in_every_panel() -> None:
    fig = charts.small_multiples_figure(_panels(4), "response time")
    try:
        colours = {ax.get_lines()[0].get_color() for ax in fig.axes}
        assert colours == {"#1f77b4"}
        assert fig.legends[0].texts[0].get_text() == "p99" and len(fig.legends[0].texts) == 2
    finally:
        plt.close(fig)


def test_small_multiples_legend_sits_above_every_panel() -> None:
    fig = charts.small_multiples_figure(_panels(6), "response time", shade_until=5)
    try:
        _, plots, legend = _boxes(fig)
        assert all(not legend.overlaps(p) and legend.y0 > p.y1 for p in plots)
    finally:
        plt.close(fig)


def test_all_zero_series_have_no_signal() -> None:
    assert not charts.has_signal([Line("errors", [0, 1, 2], [0, 0, 0]), Line("timeouts", [], [])])
    assert charts.has_signal([Line("errors", [0, 1, 2], [0, 3, 0])])


def test_a_panel_title_wider_than_its_panel_is_cut_in_the_middle() -> None:
    long = "inventory_reservation_release_after_payment_timeout_compensation"
    fig = charts.small_multiples_figure([charts.Panel(long, _panels(1)[0].lines), *_panels(2)], "latency")
    try:
        fig.canvas.draw()
        title = fig.axes[0].get_title(loc="left")
        renderer = fig.canvas.get_renderer()
        width, _, _ = renderer.get_text_width_height_descent(title, FontProperties(size=9), ismath=False)
        assert title.startswith("inventory_res") and title.endswith("compensation") and "…" in title
        assert width <= fig.axes[0].get_window_extent(renderer).width
    finally:
        plt.close(fig)


def test_a_short_title_is_kept_whole() -> None:
    fig = plt.figure()
    try:
        assert charts.fit_text(fig, "checkout", 2.0, 9.0) == "checkout"
    finally:
        plt.close(fig)
