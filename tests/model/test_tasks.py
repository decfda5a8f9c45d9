"""The task table: every task's neutral value fits its label columns, range and the stated conventions."""

import pytest

from model.tasks import EXPR_NAMES, TASKS


@pytest.mark.parametrize("task", list(TASKS))
def test_neutral_value_has_one_entry_per_label_column_inside_the_range(task):
    spec = TASKS[task]
    assert len(spec.neutral) == len(spec.label_columns)
    lo, hi = spec.value_range
    assert all(lo <= v <= hi for v in spec.neutral)


def test_neutral_values_are_the_stated_ones():
    assert TASKS["va"].neutral == (0.0, 0.0)
    assert set(TASKS["au"].neutral) == {0.0}
    assert EXPR_NAMES[int(TASKS["expr"].neutral[0])] == "Neutral"
    assert TASKS["ah"].neutral == (0.0,)
    assert TASKS["emi"].neutral == (0.5,) * 6
