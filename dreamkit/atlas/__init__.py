"""Activation atlases: a layer's activation vectors over a folder of photos laid out in 2-D,
cut into a grid of cells, each cell rendered from its mean direction, for the whole layer and
for chosen classes, on a static page (`collect`, `layout`, `plan`, `jobs`, `measure`, `page`;
`build.atlas` is the one call that makes a site)."""

from dreamkit.atlas.build import Atlas, atlas

__all__ = ["Atlas", "atlas"]
