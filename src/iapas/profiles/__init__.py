"""Profiles: which stages produce the score map. Each is a `base.Profile` registered by name
(`registry.register_profile`); the registry imports the built-in ones on first lookup."""
