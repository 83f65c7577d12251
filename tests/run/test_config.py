"""configs/*.yaml profiles: each parses into valid PipelineOptions; the command line wins."""

from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import (
    DirectOptions,
    FlinkRunnerOptions,
    GoogleCloudOptions,
    PipelineOptions,
    SparkRunnerOptions,
    StandardOptions,
)
from conftest import code_file, make_tree, run_cli

from beam_pipeline.run.config import ConfigError, expand_config, profile_flags
from beam_pipeline.run.options import unknown_flags

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name,runner", [
    ("local", "DirectRunner"), ("multiprocess", "DirectRunner"), ("flink", "FlinkRunner"),
    ("spark", "SparkRunner"), ("dataflow", "DataflowRunner"),
])
def test_every_profile_parses_into_valid_pipeline_options(name, runner):
    flags = profile_flags(CONFIGS / f"{name}.yaml")
    assert unknown_flags(flags) == []
    options = PipelineOptions(flags)
    assert options.view_as(StandardOptions).runner == runner


def test_remote_profiles_name_what_the_user_must_fill_in():
    checks = {
        "flink": (FlinkRunnerOptions, "flink_master", ["flink_master"]),
        "spark": (SparkRunnerOptions, "spark_master_url", ["spark_master_url"]),
        "dataflow": (GoogleCloudOptions, "project", ["project", "region", "temp_location"]),
    }
    for name, (view, attribute, must_fill) in checks.items():
        text = (CONFIGS / f"{name}.yaml").read_text()
        fill_line = next(line for line in text.splitlines() if "FILL IN" in line)
        assert all(option in fill_line for option in must_fill), name
        assert getattr(PipelineOptions(profile_flags(CONFIGS / f"{name}.yaml")).view_as(view),
                       attribute)


def test_command_line_flags_override_the_profile():
    argv = expand_config(["index", "src", "--output", "out", "--config",
                          str(CONFIGS / "multiprocess.yaml"), "--direct_num_workers=1"])
    assert argv[0] == "index" and "--config" not in argv
    direct = PipelineOptions(argv[1:]).view_as(DirectOptions)
    assert direct.direct_running_mode == "multi_processing"
    assert direct.direct_num_workers == 1


def test_bad_profiles_are_clear_usage_errors(tmp_path):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "broken.yaml").write_text("runner: [unclosed\n")
    (tmp_path / "unknown.yaml").write_text("no_such_option: 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        profile_flags(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        profile_flags(tmp_path / "broken.yaml")
    proc = run_cli("index", tmp_path, "--output", tmp_path / "out", "--config",
                   tmp_path / "unknown.yaml")
    assert proc.returncode == 2 and "unknown option(s): --no_such_option=1" in proc.stderr
    proc = run_cli("index", tmp_path, "--output", tmp_path / "out", "--config",
                   tmp_path / "missing.yaml")
    assert proc.returncode == 2 and "cannot read config" in proc.stderr


def test_the_local_profile_runs(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 10)})
    proc = run_cli("index", src, "--output", tmp_path / "out", "-q", "--config",
                   CONFIGS / "local.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "files indexed   1" in proc.stderr
