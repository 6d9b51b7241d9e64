"""nets.resources: one thread per physical core the process may use (affinity mask, hyperthread siblings, cgroup
quota, torchrun's local processes), explicit choices first; applied and restored; host memory."""

from __future__ import annotations

import pytest
import torch

import nets.resources as res
from nets.resources import ThreadChoice, choose_threads, library_threads, physical_cores, use_threads


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("OMP_NUM_THREADS", "PRUNELIMIT_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(res, "cgroup_cpu_limit", lambda: None)
    return monkeypatch


def _fake_sysfs(root, cores):
    """cpu i -> (package, core) topology files under root."""
    for cpu, (pkg, core) in cores.items():
        d = root / f"cpu{cpu}" / "topology"
        d.mkdir(parents=True)
        (d / "physical_package_id").write_text(f"{pkg}\n")
        (d / "core_id").write_text(f"{core}\n")


def test_hyperthread_siblings_count_once(tmp_path, clean_env):
    # 8 logical CPUs: 2 packages x 2 cores x 2 hyperthreads
    _fake_sysfs(tmp_path, {c: (c // 4, (c // 2) % 2) for c in range(8)})
    clean_env.setattr(res, "_SYS_CPU", tmp_path)
    assert physical_cores(set(range(8))) == 4
    assert physical_cores({0, 1}) == 1  # two siblings of one core
    clean_env.setattr(res, "allowed_cpus", lambda: {0, 1, 2, 3, 4, 5, 6, 7})
    assert choose_threads() == ThreadChoice(4, "physical-cores", 8, 4)
    clean_env.setattr(res, "allowed_cpus", lambda: {0, 2, 4})  # an affinity mask: 3 distinct cores
    assert choose_threads().threads == 3


def test_the_affinity_mask_quota_and_local_processes_bound_it(tmp_path, clean_env):
    _fake_sysfs(tmp_path, {c: (0, c) for c in range(16)})  # 16 cores, no hyperthreads
    clean_env.setattr(res, "_SYS_CPU", tmp_path)
    clean_env.setattr(res, "allowed_cpus", lambda: set(range(16)))
    assert choose_threads().threads == 16
    clean_env.setattr(res, "cgroup_cpu_limit", lambda: 2.5)  # a container's quota of 2.5 CPUs
    assert choose_threads().threads == 2
    clean_env.setattr(res, "cgroup_cpu_limit", lambda: None)
    clean_env.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun started 4 processes on this node
    c = choose_threads()
    assert (c.threads, c.local_processes) == (4, 4)
    clean_env.setenv("LOCAL_WORLD_SIZE", "32")
    assert choose_threads().threads == 1


def test_explicit_choices_win_in_order(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "3")
    assert (choose_threads().threads, choose_threads().source) == (3, "OMP_NUM_THREADS")
    clean_env.setenv("PRUNELIMIT_THREADS", "5")
    assert (choose_threads().threads, choose_threads().source) == (5, "PRUNELIMIT_THREADS")
    assert (choose_threads(2).threads, choose_threads(2).source) == (2, "explicit")
    assert choose_threads(small_problem=True).threads == 5  # the environment beats the small-problem rule
    clean_env.delenv("PRUNELIMIT_THREADS")
    clean_env.delenv("OMP_NUM_THREADS")
    assert choose_threads(small_problem=True).source == "small-problem"


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_a_bad_environment_value_is_named(clean_env, bad):
    clean_env.setenv("PRUNELIMIT_THREADS", bad)
    with pytest.raises(ValueError, match=f"PRUNELIMIT_THREADS must be a positive integer, got PRUNELIMIT_THREADS='{bad}'"):
        choose_threads()


def test_use_threads_restores_after_an_exception():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with use_threads(1) as c:
            assert torch.get_num_threads() == 1 and c.source == "explicit"
            raise RuntimeError("x")
    assert torch.get_num_threads() == before


def test_library_threads_caps_an_oversubscribed_setting_and_keeps_a_lower_one(clean_env):
    clean_env.setattr(res, "choose_threads", lambda *a, **k: ThreadChoice(2, "physical-cores", 2, 2))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        with library_threads() as c:
            assert torch.get_num_threads() == 2 and c.source == "capped (physical-cores)"
        assert torch.get_num_threads() == 4
        torch.set_num_threads(1)
        with library_threads() as c:
            assert torch.get_num_threads() == 1 and c.source == "caller"
    finally:
        torch.set_num_threads(before)


def test_an_explicit_choice_survives_library_calls(clean_env):
    """The CLI's --threads (a use_threads block) is kept by the library's guard, even above the rule's count."""
    clean_env.setattr(res, "choose_threads", lambda *a, **k: ThreadChoice(1, "physical-cores", 1, 1))
    before = torch.get_num_threads()
    with use_threads(ThreadChoice(3, "explicit", 1, 1)):
        with library_threads() as c:
            assert torch.get_num_threads() == 3 and c.source == "explicit"
        torch.set_num_threads(5)  # changed by the caller inside the block: the guard caps it again
        with library_threads() as c:
            assert torch.get_num_threads() == 1 and c.source == "capped (physical-cores)"
    assert torch.get_num_threads() == before


def test_omp_list_form_takes_the_first_level(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "2,1")
    assert choose_threads().threads == 2 and choose_threads().source == "OMP_NUM_THREADS"


def test_the_pipeline_records_its_threads(clean_env):
    from torch import nn

    from nets.limit import LimitConfig, MeasureConfig, OracleConfig, SpectrumConfig, estimate_pruning_limit

    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(64, 4, generator=g), torch.randint(0, 2, (64,), generator=g)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    cfg = LimitConfig(spectrum=SpectrumConfig(steps=8, n_probes=2), oracle=OracleConfig(enabled=False),
                      measurement=MeasureConfig(fundamental=False, grid_step=0.1))
    before = torch.get_num_threads()
    r = estimate_pruning_limit(model, (X, y), config=cfg)
    assert r.config["used"]["threads"]["threads"] <= before and torch.get_num_threads() == before
    assert r.config["used"]["world_size"] == 1


def test_host_memory_is_positive_or_unknown():
    m = res.host_memory_available()
    assert m is None or m > 0
