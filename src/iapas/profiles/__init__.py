"""Profiles: which stages produce the score map. Each is a `base.Profile` registered by name
(`registry.register_profile`); importing this package registers the built-in ones."""
from iapas.profiles import fused, offline, paper  # noqa: F401  (registers the built-in profiles)
