"""The cover vocabulary shared by the simulator and the generators (numpy only, never torch).

The interpretable attribute vector users respond to and the default styles and topics
(:mod:`.attributes`), :class:`~covercast.covers.bank.CoverBank` (:mod:`.bank`) and the
procedural covers with the default bank (:mod:`.procedural`). This package imports nothing of
covercast but :mod:`covercast._io`: :mod:`covercast.simulators` and
:mod:`covercast.generators` both build on it.
"""
