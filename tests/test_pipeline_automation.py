"""Automation conditions: with the (off by default) sensor's logic evaluated, scaling_results
refreshes by itself once a base_model cell finishes."""
import dagster as dg
import pytest

from helpers import DATA_ASSETS, materialize, tiny_defs, write_tiny_preset

pytestmark = pytest.mark.slow


def scaling_requested(result) -> int:
    return result.get_num_requested(dg.AssetKey("scaling_results"))


def test_sensor_is_off_by_default(tmp_base_dir, tmp_path):
    defs, _ = tiny_defs(write_tiny_preset(tmp_path))
    sensor = defs.get_sensor_def("nanochat_automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED


def test_scaling_results_refreshes_after_a_cell_finishes(tmp_base_dir, tmp_path):
    defs, _ = tiny_defs(write_tiny_preset(tmp_path))
    with dg.instance_for_test() as instance:
        assert materialize(defs, instance, DATA_ASSETS).success
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert scaling_requested(quiet) == 0  # nothing new upstream: no refresh
        assert materialize(defs, instance, ["base_model"], "d1|2e9").success
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=quiet.cursor)
        assert scaling_requested(after) == 1
