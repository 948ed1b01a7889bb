"""The profile step's aggregation of py-spy's raw output (the profile itself needs a traced child)."""

from benchmarks.profile_step import aggregate

ROOT = "_main (multiprocessing/spawn.py:135);_child_main (harness/engine/pool.py:62)"
RAW = "\n".join([
    f"{ROOT} 60",
    f"{ROOT};_schedule (harness/engine/loadgen.py:260) 25",
    f"{ROOT};send_batch (benchmarks/produce_driver.py:40);produce (confluent_kafka/__init__.py:1) 10",
    f"{ROOT};sleep (asyncio/tasks.py:640) 5",
])


def test_self_time_is_counted_per_function_and_per_area() -> None:
    funcs, areas, total = aggregate(RAW)
    assert total == 100
    assert funcs["_schedule (loadgen.py)"] == 25
    assert areas == {"event loop": 65, "harness": 25, "librdkafka client": 10}


def test_time_on_the_loop_running_frame_is_the_event_loops() -> None:
    funcs, _, _ = aggregate(RAW)
    assert funcs["uvloop (C: task steps, callbacks, timers, epoll) (pool.py)"] == 60


def test_lines_that_are_not_stacks_are_skipped() -> None:
    assert aggregate("no count here\n\n")[2] == 0
