"""The evaluation loop, at its old address: it lives in :mod:`covercast.agents.evaluate`
(below the learners that evaluate themselves while training); this module re-exports it."""

from covercast.agents.evaluate import *  # noqa: F403
from covercast.agents.evaluate import __all__  # noqa: F401
