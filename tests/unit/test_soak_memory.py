"""The soak judge: memory that stays is growth, a backend that lives seconds is not."""

from benchmarks.soak_memory import rolling_median


def test_a_short_spike_leaves_the_rolling_median_flat() -> None:
    values = [100] * 40 + [150] * 5 + [100] * 40
    assert max(rolling_median(values, 31)) == 100


def test_memory_that_stays_shows_in_the_rolling_median() -> None:
    values = [100] * 40 + [150] * 40
    assert max(rolling_median(values, 31)) == 150


def test_a_series_shorter_than_the_window_is_judged_as_it_is() -> None:
    assert rolling_median([1, 2, 3], 31) == [1, 2, 3]
