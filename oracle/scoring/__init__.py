"""Credit scoring: a points scorecard trained on the German Credit data, and the limit policy."""

from oracle.scoring.scorecard import Scorecard, ScoreBreakdown, UnknownAttribute, load_scorecard

__all__ = ["ScoreBreakdown", "Scorecard", "UnknownAttribute", "load_scorecard"]
