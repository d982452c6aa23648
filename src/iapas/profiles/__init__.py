"""Profiles: which stages produce the score map (paper, offline, fused). See DESIGN.md §2."""
