"""Command-line overrides: typing, validation and the errors a user sees."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from config import Config, ConfigError, apply_overrides, from_dict, to_dict
from helpers import SRC
from main import main, show_warning

# Runs main.py as `python src/main.py ARGS` does, then says whether torch was loaded.
TORCH_LOADED = f"""
import runpy
import sys

sys.path.insert(0, {str(SRC)!r})
sys.argv = ["main.py", *sys.argv[1:]]
try:
    runpy.run_path({str(SRC / "main.py")!r}, run_name="__main__")
finally:
    print("torch loaded:", "torch" in sys.modules, file=sys.stderr)
"""


def test_overrides_are_typed_from_the_fields() -> None:
    cfg = apply_overrides(Config(), ["lr=1", "epochs=7", "amp=off", "experiment=ablation"])
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.epochs == 7 and isinstance(cfg.epochs, int)
    assert cfg.amp == "off"
    assert cfg.experiment == "ablation"


def test_only_the_first_equals_sign_splits() -> None:
    assert apply_overrides(Config(), ["data_dir=runs/a=b"]).data_dir == "runs/a=b"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lrr=0.1", "unknown config key 'lrr'. Did you mean 'lr'?"),
        ("lr", "overrides look like key=value"),
        ("epochs=ten", "epochs must be an integer, got 'ten'"),
        ("epochs=1.5", "epochs must be an integer"),
        ("lr=nan", "lr must be a finite number"),
        ("amp=maybe", "amp must be one of auto, off, bf16, fp16"),
        ("epochs=0", "epochs must be >= 1, got 0"),
        ("lr=0", "lr must be > 0, got 0"),
        ("lr=-1e-3", "lr must be > 0"),
        ("batch_size=0", "batch_size must be >= 1"),
        ("accumulate_steps=0", "accumulate_steps must be >= 1"),
        ("optimizer=rmsprop", "optimizer must be one of adam, adamw, sgd; got 'rmsprop'"),
        ("scheduler=linear", "scheduler must be one of none, step, cosine, onecycle, plateau"),
        ("device=tpu", "device must be one of auto, cpu, cuda, mps"),
{% if cookiecutter.dataset not in ("mnist", "cifar10") %}
        ("val_fraction=0.9", "val_fraction + test_fraction must leave samples to train on"),
{% endif %}
        ("experiment=../elsewhere", "experiment must be a plain folder name"),
        ("run_name=.hidden", "run_name must be a plain folder name: a letter or digit first"),
        ("run_name=-x", "a letter or digit first, then letters, digits, '.', '_' and '-'"),
        ("fold=2", "fold=2 does not exist with folds=1"),
        ("folds=0", "folds must be >= 1, got 0"),
        (f"batch_size={sys.maxsize + 1}", "batch_size must be <= 2147483647"),
    ],
)
def test_bad_overrides_name_the_problem(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        apply_overrides(Config(), [override])


@pytest.mark.parametrize("scheduler", ["onecycle", "plateau"])
def test_warmup_is_refused_with_schedules_that_cannot_take_it(scheduler: str) -> None:
    with pytest.raises(ConfigError, match=f"does not combine with scheduler={scheduler}"):
        apply_overrides(Config(), [f"scheduler={scheduler}", "warmup_steps=10"])


def test_more_workers_than_this_machine_holds_are_refused(workdir, tiny, capsys) -> None:
    assert main([*tiny, "num_workers=100000"]) == 2
    err = capsys.readouterr().err
    assert "num_workers=100000 would start that many processes" in err and "Traceback" not in err


def test_unknown_key_lists_the_valid_keys() -> None:
    with pytest.raises(ConfigError) as error:
        apply_overrides(Config(), ["learning_rate=0.1"])
    assert "Valid keys are: " in str(error.value)
    assert "batch_size" in str(error.value) and "lr" in str(error.value)


def test_main_exits_2_without_traceback_and_writes_nothing(workdir, capsys) -> None:
    assert main(["epochs=0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: epochs must be >= 1, got 0")
    assert "Traceback" not in err
    assert [p.name for p in workdir.iterdir()] == ["data"]  # nothing written


def test_the_projects_warnings_are_one_line_and_others_keep_their_origin(capsys) -> None:
    show_warning(UserWarning("collect more of it"), UserWarning, str(SRC / "modes.py"), 298)
    show_warning(UserWarning("deprecated"), UserWarning, "/lib/torch/overrides.py", 5)
    err = capsys.readouterr().err
    assert err.startswith("warning: collect more of it\n")  # no file, line or code
    assert "/lib/torch/overrides.py:5: UserWarning: deprecated" in err


def test_cuda_without_cuda_is_an_error_not_a_fallback(workdir, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["device=cuda"]) == 2
    assert "device=cuda was asked for" in capsys.readouterr().err
    assert [p.name for p in workdir.iterdir()] == ["data"]


def test_help_lists_every_key(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for key in to_dict(Config()):
        assert f"  {key}=" in out


def test_config_round_trips_through_plain_data() -> None:
    cfg = apply_overrides(Config(), ["lr=0.01", "run_name=x"])
    assert from_dict(to_dict(cfg), "here") == cfg
    with pytest.raises(ConfigError, match="here holds a config with keys this project does not"):
        from_dict({**to_dict(cfg), "colour": "red"}, "here")
    with pytest.raises(ConfigError, match="here holds a config this project refuses: epochs must"):
        from_dict({**to_dict(cfg), "epochs": -1}, "here")  # a value edited by hand


@pytest.mark.parametrize(
    ("args", "exit_code"),
    [
        *((["--help"], 0), (["--runs"], 0), (["--runs", "--config", "x.json"], 0)),
        *((["wdth=3"], 2), (["--no-such-mode"], 2)),
        (["--overfit-batch", "x=1"], 2),
    ],
)
def test_help_runs_and_mistakes_answer_before_torch_is_loaded(workdir, args, exit_code) -> None:
    """torch takes seconds to load: --help, --runs, a mistyped key or flag answer without it."""
    (workdir / "results" / "logs").mkdir(parents=True)  # as in a new project
    probe = [sys.executable, "-c", TORCH_LOADED, *args]
    done = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    assert done.returncode == exit_code, done.stderr
    assert "torch loaded: False" in done.stderr
    if args == ["wdth=3"]:
        assert "unknown config key 'wdth'" in done.stderr
