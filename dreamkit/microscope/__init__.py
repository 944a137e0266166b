"""Microscope sites: every channel of a model's layers with its visualizations, dataset
examples and strongest inputs, as static pages (`plan`, `jobs`, `examples`, `pages`;
`build.microscope` is the one call that makes a site)."""

from dreamkit.microscope.build import Built, microscope

__all__ = ["Built", "microscope"]
