"""Microscope sites: every channel of a model's layers with its visualizations, dataset
examples and strongest inputs, as static pages (`plan`, `jobs`, `examples`, `pages`)."""
