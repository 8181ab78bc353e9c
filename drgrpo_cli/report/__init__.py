"""``drgrpo plot``'s library: runs found, paired statistics, curves, figures, the report (:mod:`.plot` is the
entry point). The two names the command's ``--help`` shows live here, so the CLI imports nothing heavier."""

from pathlib import Path

#: Figure formats ``--format`` accepts.
FORMATS = ("png", "svg", "pdf")
#: Default output folder when the inputs are not exactly one sweep folder (relative to the working dir).
DEFAULT_MULTI_OUT = Path("drgrpo-plot")
