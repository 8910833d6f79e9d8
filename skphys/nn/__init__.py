"""Plain ``torch.nn`` modules used by the skphys estimators (no scikit-learn, no numpy inputs)."""
