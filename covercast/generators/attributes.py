"""The cover attribute space users respond to.

Every cover image, whichever generator made it, is summarised by a small interpretable vector:
five image statistics (:data:`ATTRIBUTE_NAMES`) followed by its style probabilities (one per
style of the bank). User taste vectors live in that space, so a taste keeps its meaning across
generators. Only numpy is needed here.
"""

from __future__ import annotations

#: Image statistics, in this order, each standardised so that procedural covers have roughly
#: zero mean and unit spread (see :func:`cover_attributes` for the exact definitions).
ATTRIBUTE_NAMES: tuple[str, ...] = ("brightness", "saturation", "warmth", "contrast", "complexity")

#: The styles of the default (procedural) cover bank.
DEFAULT_STYLES: tuple[str, ...] = ("minimal", "vivid", "pastel", "noir", "retro")

#: The content topics of the default population and cover bank.
DEFAULT_TOPICS: tuple[str, ...] = ("news", "sports", "music", "food", "travel", "tech")


def feature_names(styles: tuple[str, ...] | list[str]) -> list[str]:
    """Names of the full cover feature vector: the attributes, then ``style:<name>`` per style."""
    return list(ATTRIBUTE_NAMES) + [f"style:{s}" for s in styles]
