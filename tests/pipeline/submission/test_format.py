"""The submission format: value text, prediction columns and image locations."""

import pytest

from pipeline.submission.format import format_value, parse_location, prediction_columns


def test_format_value_is_compact():
    assert format_value(0.5) == "0.5"
    assert format_value(-0.00001) == "0"
    assert format_value(1.0) == "1"
    assert format_value(-0.123456) == "-0.1235"
    assert format_value(1e-7, 4) == "0"


def test_prediction_columns_and_locations():
    assert prediction_columns("expr") == ["expression"]
    assert parse_location("va", "2-25-854x480_left/00012.jpg") == ("2-25-854x480_left", 12)
    assert parse_location("ah", "p/V/x.mp4/frame-0.jpg") == ("p/V/x.mp4", 1)
    with pytest.raises(ValueError):
        parse_location("va", "00012.jpg")
