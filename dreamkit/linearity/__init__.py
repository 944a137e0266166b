"""Linearity probes: how close is each layer of a network to a linear function, measured with
fair baselines and confidence intervals (`probes`, `baselines`, `objects`, `superposition`,
`stats`; `measure` puts them together per network, `report` over networks, `plot` draws)."""

from dreamkit.linearity.measure import KS, TS, Options, Row, measure
from dreamkit.linearity.report import (
    Report,
    partners,
    run_report,
    sample_photos,
    tables,
    write_table,
)

__all__ = ["KS", "TS", "Options", "Report", "Row", "measure", "partners", "run_report",
           "sample_photos", "tables", "write_table"]
