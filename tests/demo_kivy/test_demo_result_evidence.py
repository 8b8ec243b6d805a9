"""The result screen's evidence lines (issue 15): identity evidence and expression rises against thresholds."""

from __future__ import annotations

import pytest

pytest.importorskip("kivy")

from facelivenet.demo_kivy.screen_result import evidence_lines, step_lines  # noqa: E402


def test_evidence_lines_show_each_piece_against_its_threshold():
    outcome = {"identity": {"aggregate": 0.991, "aggregate_threshold": 0.983, "neutral_frames": 6,
                            "min_continuity": 0.97, "continuity_threshold": 0.958, "min_score": 0.85,
                            "floor_threshold": 0.84},
               "expression": {"margin_threshold": 1.8, "margins": [2.5, None]}}
    text = evidence_lines(outcome)
    assert "0.991 (>= 0.983, 6 frames)" in text and "0.970 (>= 0.958)" in text and "floor 0.840" in text
    assert "+2.50, -" in text and ">= 1.80" in text
    assert evidence_lines({"decision": "reject", "reasons": ["LOCKED_OUT"]}) == ""  # refused before any frame


def test_step_lines_add_the_rise_of_expression_steps():
    steps = [{"expected": "neutral", "passed": True, "duration_s": 0.3, "best_probability": 0.5,
              "min_identity": 0.9, "margin": None},
             {"expected": "happy", "passed": False, "duration_s": None, "best_probability": 0.4,
              "min_identity": None, "margin": 0.7}]
    lines = step_lines(steps).splitlines()
    assert "rise" not in lines[0] and lines[1].endswith("rise +0.70")
