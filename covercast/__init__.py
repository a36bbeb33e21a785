"""covercast: a simulator for *when* to send a push notification and *with which cover image*.

The package is split in seven parts (see ``DESIGN`` in the README):

* :mod:`covercast.covers` -- the cover vocabulary: attributes, ``CoverBank``, procedural covers
  and the default bank (numpy only);
* :mod:`covercast.simulators` -- the user population (numpy/scipy/pandas/simpy, never torch);
* :mod:`covercast.generators` -- learned cover generators (torch);
* :mod:`covercast.envs` -- Gymnasium environments;
* :mod:`covercast.agents` -- scheduling and style policies;
* :mod:`covercast.ope` -- off-policy evaluation;
* :mod:`covercast.experiments` -- CLI, reports, benchmarks.
"""

__version__ = "0.1.0"


def _register() -> None:
    # Registers the Gymnasium ids (string entry points: no environment module is imported).
    from covercast.envs.registration import register_envs

    register_envs()


_register()
