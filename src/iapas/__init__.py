"""iapas: zero-shot industrial anomaly segmentation with image-aware prompts (IAP-AS)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
