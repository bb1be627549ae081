"""The automation sensor: evaluates the assets' automation conditions (eager on new upstream data
or a code version change). Off by default: turn it on in the UI (Automation tab) when wanted."""
from __future__ import annotations

import dagster as dg


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "nanochat_automation_sensor", target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.STOPPED)
