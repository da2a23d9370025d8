"""MLflow, in one place: where runs go (`uri`), what identifies a run and what it records (`runs`), the logged and
registered model (`model`), pictures shaped for MLflow's image cards (`images`) and the analysis stage's
logging into the model's run (`analysis`). Imports mlflow only inside functions, and nothing of seg but
`seg.config` and `seg.files`.

Telemetry is switched off by `configure()`, which the command-line entry points call once, before any MLflow
import; importing this package changes nothing in the environment.
"""

from __future__ import annotations

import os

QUIET_ENVIRONMENT = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1"}


def configure() -> None:
    """MLflow telemetry and DVC analytics off, unless the user's environment says otherwise."""
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
