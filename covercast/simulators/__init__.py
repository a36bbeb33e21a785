"""The simulated user population: numpy, scipy, pandas and simpy only (never torch)."""

from covercast.simulators.params import PopulationParams, Segment, default_params

__all__ = ["PopulationParams", "Segment", "default_params"]
