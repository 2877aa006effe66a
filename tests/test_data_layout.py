"""Path resolution: reference layout under --data-root, TOML config overrides, the registry."""

from __future__ import annotations

import pytest

from toc.data.layout import (
    AveAvvpPaths,
    AvePaths,
    load_config,
    resolve_paths,
)
from toc.data.vggsound import load_pretrain
from toc.errors import ConfigError
from toc.eval.tasks import TASKS, load_task
from toc.testing.datafixtures import write_ave, write_avvp, write_pretrain


def test_reference_layout(tmp_path):
    paths = resolve_paths("ave", data_root=tmp_path)
    assert isinstance(paths, AvePaths)
    assert paths.train_order == tmp_path / "AVE-ECCV18-master/data/train_order.h5"
    avvp = resolve_paths("avvp", data_root=tmp_path)
    assert avvp.audio_dir == tmp_path / "AVVP/feature/audio/zip"
    assert avvp.visual_csv == tmp_path / "AVVP/data/AVVP_eval_visual_checked_combined.csv"
    both = resolve_paths("ave-avvp", data_root=tmp_path)
    assert isinstance(both, AveAvvpPaths) and both.video_dir == avvp.video_dir
    assert both.order == tmp_path / "AVE_AVVP/ave_avvp_order.h5"
    ucf = resolve_paths("ucf-vggsound", data_root=tmp_path)
    assert ucf.vggsound_csv == tmp_path / "feature_extractor/feature_extractor/vggsound2ucf.csv"
    assert ucf.ucf_video_dir == tmp_path / "UCF101/feature/video/zip"


def test_pretrain_csv_prefers_the_corrected_copy(tmp_path):
    write_pretrain(tmp_path)
    extractor = tmp_path / "feature_extractor/feature_extractor/vggsound-avel40k.csv"
    assert resolve_paths("pretrain", data_root=tmp_path).csv == extractor
    corrected = tmp_path / "vggsound40k/data/vggsound-avel40k.csv"
    corrected.write_bytes(extractor.read_bytes())
    assert resolve_paths("pretrain", data_root=tmp_path).csv == corrected


def test_config_overrides_relative_to_its_folder_and_inherits(tmp_path):
    config = tmp_path / "conf" / "data.toml"
    config.parent.mkdir()
    config.write_text(
        'data_root = "../root"\n'
        "[ave]\n"
        'labels = "mine/labels.h5"\n'
        'visual_features = "/abs/visual.h5"\n'
        "[avvp]\n"
        'audio_dir = "zips/audio"\n'
    )
    ave = resolve_paths("ave", config=config)
    assert ave.labels == config.parent / "mine/labels.h5"
    assert ave.visual_features.as_posix() == "/abs/visual.h5"
    root = config.parent.resolve() / "../root"
    assert ave.audio_features == root / "AVE-ECCV18-master/data/audio_feature.h5"
    both = resolve_paths("ave-avvp", config=config)
    assert both.visual_features.as_posix() == "/abs/visual.h5"  # from [ave]
    assert both.audio_dir == config.parent / "zips/audio"  # from [avvp]
    # --data-root beats the config's data_root; explicit overrides beat everything.
    other = resolve_paths("ave", config=config, data_root=tmp_path / "x",
                          overrides={"labels": tmp_path / "cli.h5", "test_order": None})
    assert other.labels == tmp_path / "cli.h5"
    assert other.test_order == tmp_path / "x/AVE-ECCV18-master/data/test_order.h5"


@pytest.mark.parametrize(
    ("text", "needle"),
    [("[ave]\nlabel = 'x'\n", "unknown key 'ave.label'"),
     ("[aev]\nlabels = 'x'\n", "unknown key 'aev'"),
     ("[ave]\nlabels = 3\n", "must be a non-empty string"),
     ("ave = 'x'\n", "must be a table"),
     ("[ave\n", "invalid TOML")],
)
def test_config_errors(tmp_path, text, needle):
    config = tmp_path / "data.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_config(config)


def test_missing_root_and_unknown_names(tmp_path):
    with pytest.raises(ConfigError, match="no path for 'ave.visual_features'"):
        resolve_paths("ave")
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_paths("ave", config=tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="unknown path 'lables'"):
        resolve_paths("ave", data_root=tmp_path, overrides={"lables": "x"})
    with pytest.raises(ConfigError, match="unknown task"):
        load_task("avs", data_root=tmp_path)


def test_registry_loads_through_a_config_file(tmp_path):
    assert TASKS == ("ave", "avvp", "ave-avvp", "ucf-vggsound", "paired")
    write_ave(tmp_path / "data")
    write_avvp(tmp_path / "data")
    config = tmp_path / "data.toml"
    config.write_text('data_root = "data"\n')
    assert len(load_task("ave", config=config).sets["ave/audio"]) == 5
    assert len(load_task("avvp", config=config).sets["avvp/audio"]) == 3


def test_pretrain_from_explicit_options_only(tmp_path):
    write_pretrain(tmp_path / "d")
    d = tmp_path / "d"
    paths = resolve_paths("pretrain", overrides={
        "csv": d / "feature_extractor/feature_extractor/vggsound-avel40k.csv",
        "audio_dir": d / "vggsound40k/feature/audio/zip",
        "video_dir": d / "vggsound40k/feature/video/zip",
        "text_features": d / "vggsound40k/data/text_features.h5",
    })
    assert len(load_pretrain(paths)) == 4
