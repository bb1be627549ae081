"""The MFU denominator: exact GPU models with their datasheet dense bf16 peaks (one case per table
entry, written from the datasheets' with-sparsity figures halved where they give those), no
substring look-alikes, unknown GPUs measured and said so, and the CPU probe measured once per
machine identity and reused."""
import json

import pytest
import torch

from nanochat_core.common import flops_probe
from nanochat_core.common.peak_flops import GPU_BF16_DENSE_PEAKS, datasheet_peak, gpu_model, resolve_peak_flops

# torch.cuda.get_device_name() as each GPU reports itself -> dense bf16 TFLOP/s from its datasheet
DATASHEET_TFLOPS = {
    "NVIDIA H100 80GB HBM3": 1979 / 2,
    "NVIDIA H100 PCIe": 1513 / 2,
    "NVIDIA H100 NVL": 1671 / 2,
    "NVIDIA H200": 1979 / 2,
    "NVIDIA H200 NVL": 1671 / 2,
    "NVIDIA GH200 480GB": 1979 / 2,
    "NVIDIA A100-SXM4-40GB": 312,
    "NVIDIA A100-SXM4-80GB": 312,
    "NVIDIA A100-PCIE-40GB": 312,
    "NVIDIA A100 80GB PCIe": 312,
    "NVIDIA A800-SXM4-80GB": 312,
    "NVIDIA A10": 250 / 2,
    "NVIDIA L4": 242 / 2,
    "NVIDIA L40": 362.1 / 2,
    "NVIDIA L40S": 724.1 / 2,
    "NVIDIA B200": 2250,
    "NVIDIA GeForce RTX 4090": 330.4 / 2,
    "NVIDIA GeForce RTX 3090": 142 / 2,
}


@pytest.mark.parametrize("name, tflops", sorted(DATASHEET_TFLOPS.items()))
def test_each_gpu_gets_its_datasheet_peak(name, tflops):
    assert datasheet_peak(name) == pytest.approx(tflops * 1e12, rel=1e-3)


def test_every_table_entry_has_a_case():
    assert sorted(GPU_BF16_DENSE_PEAKS) == sorted({gpu_model(n) for n in DATASHEET_TFLOPS})


@pytest.mark.parametrize("name, not_this", [
    ("NVIDIA L40", "NVIDIA L4"), ("NVIDIA L40S", "NVIDIA L40"), ("NVIDIA H100 PCIe", "NVIDIA H100 80GB HBM3"),
    ("NVIDIA H100 NVL", "NVIDIA H100 80GB HBM3"), ("NVIDIA H200 NVL", "NVIDIA H200"),
])
def test_look_alike_names_are_different_gpus(name, not_this):
    assert datasheet_peak(name) != datasheet_peak(not_this)


@pytest.mark.parametrize("name", ["NVIDIA A10G", "NVIDIA H100", "NVIDIA L4 Max", "Tesla T4", "NVIDIA RTX A6000", ""])
def test_unknown_or_partial_names_are_not_guessed(name):
    assert datasheet_peak(name) is None


def test_unknown_gpu_says_so_and_is_measured(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A10G")
    monkeypatch.setattr(flops_probe, "machine_peak", lambda device, dtype: (1.5e14, "measured bf16 matmul peak"))
    peak, source = resolve_peak_flops(0.0, torch.device("cuda"), torch.bfloat16)
    assert peak == 1.5e14 and source == "NVIDIA A10G is not in the datasheet table; measured bf16 matmul peak"
    # a known GPU reads the table; another dtype than bf16 is measured (the table is bf16 only)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA L40S")
    assert resolve_peak_flops(0.0, torch.device("cuda"), torch.bfloat16) == (362.05e12, "NVIDIA L40S bf16 datasheet")
    assert resolve_peak_flops(0.0, torch.device("cuda"), torch.float32)[0] == 1.5e14
    assert resolve_peak_flops(3e11, torch.device("cuda"), torch.bfloat16) == (3e11, "--peak-flops")


@pytest.fixture
def quick_probes(monkeypatch):
    """Small probes (the same code, shorter), counted."""
    calls = []
    real = flops_probe.measure_matmul_peak

    def probe(device, dtype, seconds):
        calls.append(seconds)
        return real(device, dtype, seconds=0.05, size=128)

    monkeypatch.setattr(flops_probe, "measure_matmul_peak", probe)
    return calls


def test_cpu_peak_is_the_best_of_several_probes_recorded_once_and_reused(tmp_path, quick_probes, one_torch_thread):
    peak, source = flops_probe.machine_peak("cpu", torch.float32, folder=tmp_path)
    assert len(quick_probes) == flops_probe.PROBES and "best of 5 probes" in source
    [record_file] = tmp_path.glob("cpu_float32_1t_*.json")
    record = json.loads(record_file.read_text())
    assert record["peak_flops"] == peak == max(record["probes"]) and len(record["probes"]) == 5
    assert record["identity"]["torch_threads"] == 1 and record["identity"]["cpu"]
    assert 1e7 < peak < 1e13

    again, source = flops_probe.machine_peak("cpu", torch.float32, folder=tmp_path)
    assert again == peak and len(quick_probes) == 5 and f"recorded in {record_file}" in source  # reused

    torch.set_num_threads(2)  # another thread count is another measurement (one_torch_thread restores it)
    flops_probe.machine_peak("cpu", torch.float32, folder=tmp_path)
    assert len(quick_probes) == 10 and len(list(tmp_path.glob("cpu_float32_2t_*.json"))) == 1


def test_a_record_of_another_machine_is_not_reused(tmp_path, quick_probes):
    flops_probe.machine_peak("cpu", torch.float32, folder=tmp_path)
    [record_file] = tmp_path.glob("*.json")
    record = json.loads(record_file.read_text())
    record["identity"]["cpu"], record["peak_flops"] = "another CPU", 1.0
    record_file.write_text(json.dumps(record))  # same file name, another identity inside
    peak, _ = flops_probe.machine_peak("cpu", torch.float32, folder=tmp_path)
    assert peak > 1.0 and len(quick_probes) == 10
    record_file.write_text("{not json")  # unreadable: measured again and replaced
    assert flops_probe.machine_peak("cpu", torch.float32, folder=tmp_path)[0] > 1.0
    assert json.loads(record_file.read_text())["identity"]["cpu"] != "another CPU"
