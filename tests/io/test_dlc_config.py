"""One validation of DeepLabCut config.yaml, with messages naming the file and the key."""

import pytest
import yaml

from element_pose import sample
from element_pose.io import dlc


@pytest.fixture
def config(tmp_path):
    return sample.make_dlc_project(tmp_path / "p", n_frames=8, n_labeled=2)


@pytest.fixture
def ma_config(tmp_path):
    return sample.make_dlc_project(tmp_path / "ma", n_frames=8, n_labeled=2, n_individuals=2)


def _write(path, **changes):
    cfg = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is KeyError:
            cfg.pop(key)
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


def _refused(path, *fragments):
    with pytest.raises(dlc.DLCFormatError) as err:
        dlc.read_config(path)
    message = str(err.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_valid_configs_pass(config, ma_config):
    assert dlc.config_bodyparts(dlc.read_config(config)) == list(sample.DEFAULT_BODYPARTS)
    assert dlc.config_individuals(dlc.read_config(ma_config)) == ["animal0", "animal1"]


def test_bodyparts_as_a_string_is_refused(config):
    _refused(_write(config, bodyparts="nose"), "'bodyparts'", "list of names", "'nose'")


def test_duplicate_null_and_long_names(config):
    _refused(_write(config, bodyparts=["nose", "tail", "nose"]), "'bodyparts'", "['nose']",
             "more than once")
    _refused(_write(config, bodyparts=["nose", None]), "'bodyparts'", "entry 1", "null")
    _refused(_write(config, bodyparts=["nose", "x" * 65]), "'bodyparts'", "entry 1", "64")
    _refused(_write(config, bodyparts=["nose", 3]), "'bodyparts'", "entry 1", "text")


def test_missing_keys(config):
    _refused(_write(config, Task=KeyError), "'Task'")
    _refused(_write(config, Task="demo", scorer=KeyError), "'scorer'")
    _refused(_write(config, scorer="me", bodyparts=KeyError), "no body parts")
    _refused(_write(config, bodyparts=["a"], Task="t" * 65), "'Task'", "64")


def test_other_keys(config):
    _refused(_write(config, TrainingFraction=[1.5]), "'TrainingFraction'")
    _refused(_write(config, TrainingFraction=[0.8], pcutoff=3), "'pcutoff'")
    _refused(_write(config, pcutoff=0.6, skeleton=[["nose"]]), "'skeleton'")
    _refused(_write(config, skeleton=[], bodyparts="MULTI!"), "'multianimalproject'")
    _refused(_write(config, bodyparts=["a"], multianimalproject="yes"), "'multianimalproject'")


def test_multi_animal_keys(ma_config):
    _refused(_write(ma_config, individuals=[]), "lists no individuals")
    _refused(_write(ma_config, individuals="animal0"), "'individuals'", "list of names")
    _refused(_write(ma_config, individuals=["a", "a"]), "'individuals'", "more than once")
    _refused(_write(ma_config, individuals=["a", "single"]), "'individuals'", "reserved")
    _refused(_write(ma_config, individuals=["a"], multianimalbodyparts=KeyError),
             "'multianimalbodyparts'")
    _refused(_write(ma_config, multianimalbodyparts=["nose", "tail"],
                    uniquebodyparts=["tail"]), "'uniquebodyparts'", "['tail']")
    _refused(_write(ma_config, uniquebodyparts=[None]), "'uniquebodyparts'", "entry 0")
