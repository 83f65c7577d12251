"""Where the workers run, decided from the runner alone; runners that lose data and paths the
workers cannot see are refused with one line."""

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from conftest import make_tree, run_cli

from beam_pipeline import run_index
from beam_pipeline.layout.schema import CURRENT_FILE
from beam_pipeline.run.pipeline import spill_folder
from beam_pipeline.run.runners import RunnerRefused, check_paths, place


@pytest.mark.parametrize("flags, local, in_process, direct", [
    ([], True, True, True),
    (["--runner=DirectRunner"], True, True, True),
    (["--runner=direct"], True, True, True),
    (["--runner=FnApiRunner", "--direct_running_mode=multi_threading"], True, True, True),
    (["--direct_running_mode=multi_processing"], True, False, True),
    (["--runner=BundleBasedDirectRunner"], True, True, True),
    (["--runner=PortableRunner", "--environment_type=LOOPBACK"], True, False, False),
    (["--runner=FlinkRunner", "--environment_type=LOOPBACK"], True, False, False),
    (["--runner=PrismRunner"], True, False, False),  # Prism's default environment: LOOPBACK
    (["--runner=PortableRunner", "--environment_type=EXTERNAL"], False, False, False),
    (["--runner=PortableRunner"], False, False, False),  # DOCKER by default
    (["--runner=FlinkRunner"], False, False, False),
    (["--runner=SparkRunner", "--environment_type=PROCESS"], False, False, False),
    (["--runner=DataflowRunner"], False, False, False),
    (["--runner=beam_pipeline.testing.runners.NoMetricsRunner"], True, True, True),
])
def test_placement_follows_the_runner(flags, local, in_process, direct):
    placement = place(PipelineOptions(flags))
    assert (placement.local, placement.in_process, placement.direct) == \
        (local, in_process, direct)
    assert place(flags) == placement  # a list of flags is placed the same


def test_the_in_process_engine_samples_state_often():
    """Beam's SDK worker joins its state sampler at every bundle's end, and the sampler sleeps
    a whole period: the in-process engine shortens it (runners._shorten_state_sampling)."""
    from apache_beam.runners.worker.statesampler import StateSampler
    from apache_beam.utils.counters import CounterFactory

    from beam_pipeline.run.runners import SAMPLING_PERIOD_MS, select_runner

    select_runner(PipelineOptions([]))
    assert StateSampler("s", CounterFactory()).sampling_period_ms == SAMPLING_PERIOD_MS < 200


@pytest.mark.parametrize("name", ["DaskRunner", "dask",
                                  "apache_beam.runners.dask.dask_runner.DaskRunner"])
def test_the_dask_runner_is_refused_with_its_reason(name):
    with pytest.raises(RunnerRefused, match="loses data.*finish_bundle") as err:
        place(PipelineOptions([f"--runner={name}"]))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name, says", [
    ("NoSuchRunner", "unknown runner 'NoSuchRunner'.*full dotted path"),
    ("no_such_pkg.mod.SomeRunner", "cannot load runner no_such_pkg.mod.SomeRunner"),
    ("beam_pipeline.run.runners.NoSuchRunner", "has no NoSuchRunner"),
    ("beam_pipeline.run.runners.PATHS_FLAG", "is not a class"),
])
def test_runner_names_beam_cannot_resolve_get_a_clear_answer(name, says):
    with pytest.raises(RunnerRefused, match=says) as err:
        place(PipelineOptions([f"--runner={name}"]))
    assert "\n" not in str(err.value)


def test_local_paths_are_refused_for_distributed_workers_unless_mounted():
    flink = place(PipelineOptions(["--runner=FlinkRunner", "--environment_type=EXTERNAL"]))
    with pytest.raises(RunnerRefused, match="SOURCE /repo is a local path.*"
                       "--local-paths-on-workers"):
        check_paths(flink, "/repo", "s3://bucket/index")
    with pytest.raises(RunnerRefused, match="OUT /index is a local path"):
        check_paths(flink, "gs://bucket/repo", "/index")
    check_paths(flink, "s3://bucket/repo", "s3://bucket/index")
    check_paths(flink, "/repo", "/index", mounted_on_workers=True)
    check_paths(place(PipelineOptions([])), "/repo", "/index")  # a local mode


def test_run_index_refuses_before_touching_the_output(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": "x = 1\n"})
    with pytest.raises(RunnerRefused):
        run_index(src, tmp_path / "out", pipeline_options=["--runner=DaskRunner"])
    with pytest.raises(RunnerRefused, match="SOURCE"):
        run_index(src, tmp_path / "out", pipeline_options=[
            "--runner=PortableRunner", "--environment_type=EXTERNAL",
            "--environment_config=localhost:1"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, says", [
    (["--runner=DaskRunner"], "DaskRunner loses data"),
    (["--runner=Nope"], "unknown runner 'Nope'"),
    (["--runner=SparkRunner", "--environment_type=EXTERNAL"], "SOURCE"),
])
def test_the_cli_answers_a_refused_runner_in_one_line(tmp_path, flags, says):
    src = make_tree(tmp_path / "src", {"a.py": "x = 1\n"})
    done = run_cli("index", src, "--output", tmp_path / "out", *flags)
    assert done.returncode == 2
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "out" / CURRENT_FILE).exists()


def test_spill_files_only_where_every_worker_shares_this_disk():
    local = place(PipelineOptions(["--direct_running_mode=multi_processing"]))
    loopback = place(PipelineOptions(["--runner=FlinkRunner", "--environment_type=LOOPBACK"]))
    remote = place(PipelineOptions(["--runner=FlinkRunner", "--environment_type=EXTERNAL"]))
    assert spill_folder(local, "/out/.staging/x", "/tmp/s") == "/out/.staging/x/_spill"
    assert spill_folder(loopback, "s3://b/i/.staging/x", "/tmp/s") == "/tmp/s/_spill"
    assert spill_folder(local, "/out/.staging/x", "/tmp/s", wanted=False) is None
    # A local OUT does not make a distributed runner's workers share this disk.
    assert spill_folder(remote, "/out/.staging/x", "/tmp/s") is None
    assert spill_folder(remote, "s3://b/i/.staging/x", "/tmp/s") is None
