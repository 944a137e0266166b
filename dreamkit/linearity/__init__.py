"""Linearity probes: how close is each layer of a network to a linear function, measured with
fair baselines and confidence intervals (`probes`, `baselines`, `objects`, `superposition`,
`stats`; `measure` puts them together per network, `report` over networks, `plot` draws;
`job.linearity` is the one call that writes a report)."""

from dreamkit.linearity.job import Measured, linearity
from dreamkit.linearity.measure import KS, TS, Options, Row, measure
from dreamkit.linearity.report import (
    Report,
    partners,
    run_report,
    sample_photos,
    tables,
    write_table,
)

__all__ = ["KS", "TS", "Measured", "Options", "Report", "Row", "linearity", "measure",
           "partners", "run_report", "sample_photos", "tables", "write_table"]
