"""lake.quality: suites build, and GX results turn into per-row verdicts (no Spark needed)."""

from __future__ import annotations

import pytest

from lake.quality import SUITES, GateError, build_suite, verdict_of


@pytest.mark.parametrize("name", SUITES)
def test_suites_build_with_row_level_expectations(name):
    import great_expectations as gx

    gx.get_context(mode="ephemeral")  # suites belong to a context
    suite = build_suite(name)
    assert suite.name == name and len(suite.expectations) >= 5
    assert all("column" in e.configuration.kwargs for e in suite.expectations)


def test_verdict_names_each_failing_row_once_per_expectation():
    result = {
        "success": False,
        "results": [
            {
                "success": False,
                "expectation_config": {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "image_id"}},
                "result": {"unexpected_count": 2, "unexpected_index_list": [{"image_id": "a"}, {"image_id": "a"}]},
            },
            {
                "success": False,
                "expectation_config": {"type": "expect_column_values_to_be_between", "kwargs": {"column": "width"}},
                "result": {"unexpected_count": 1, "unexpected_index_list": [{"image_id": "b", "width": 0}]},
            },
            {
                "success": True,
                "expectation_config": {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "split"}},
                "result": {},
            },
        ],
    }
    v = verdict_of("silver_images", result, rows=3)
    assert not v.success and v.rows == 3
    assert v.failed == {
        "a": ["expect_column_values_to_be_unique(image_id)"] * 2,
        "b": ["expect_column_values_to_be_between(width)"],
    }
    assert [e["unexpected_count"] for e in v.expectations] == [2, 1, 0]
    assert v.summary()["failed_rows"] == 2


def test_gold_rows_are_named_by_image_and_caption():
    result = {
        "success": False,
        "results": [
            {
                "success": False,
                "expectation_config": {
                    "type": "expect_column_value_lengths_to_be_between",
                    "kwargs": {"column": "caption"},
                },
                "result": {"unexpected_index_list": [{"image_id": "x", "caption": ""}]},
            }
        ],
    }
    assert list(verdict_of("gold_training_examples", result, rows=1).failed) == ["x|"]


def test_an_expectation_that_raised_stops_the_gate():
    """GX reports an expectation that could not run as a failure naming no rows: never a pass."""
    result = {
        "success": False,
        "results": [
            {
                "success": False,
                "expectation_config": {"type": "expect_column_values_to_be_between", "kwargs": {"column": "width"}},
                "result": {},
                "exception_info": {"raised_exception": True, "exception_message": "no column width"},
            }
        ],
    }
    with pytest.raises(GateError, match="no column width"):
        verdict_of("silver_images", result, rows=1)
