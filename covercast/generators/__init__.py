"""Cover images from learned generators.

The diffusion model, VAE-IAT, the DCGAN baseline and the cover encoder need torch and are
imported from their own modules. The cover vocabulary they share with the simulator (the
attribute vector, :class:`~covercast.covers.bank.CoverBank`, procedural covers and the default
bank) lives in :mod:`covercast.covers`.
"""
