"""Cover images.

Procedural covers (:mod:`.procedural`), the interpretable attribute vector users respond to
(:mod:`.attributes`) and :class:`~covercast.generators.bank.CoverBank` need only numpy; the
learned generators (diffusion, VAE-IAT) need torch and are imported from their own modules.
"""
