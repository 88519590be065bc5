"""One labelled set for both engines: SLEAP .slp/.pkg.slp <-> LabelSet <-> DeepLabCut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sleap_io as sio
from PIL import Image

from element_pose import sample
from element_pose.core.labels import LabelSet, LabelSetError
from element_pose.engines.deeplabcut import validate_labeled_data
from element_pose.io.dlc_labels_write import write_dlc_labels, write_dlc_project
from element_pose.io.labels import LabelFormatError, read_label_set
from element_pose.io.sleap_labels import SlpLabelError, default_images_folder, write_slp


def _project(tmp_path, n_individuals=2):
    config = sample.make_dlc_project(tmp_path / "p", n_frames=10, n_labeled=4,
                                     n_individuals=n_individuals)
    return read_label_set(config)


def _same(a: LabelSet, b: LabelSet, skeleton: bool = True) -> None:
    assert a.keypoints == b.keypoints and a.individuals == b.individuals
    assert a.skeleton == b.skeleton or not skeleton
    assert np.array_equal(a.xy, b.xy, equal_nan=True)
    for fa, fb in zip(a.frames, b.frames, strict=True):
        assert np.array_equal(np.asarray(Image.open(a.image(fa))),
                              np.asarray(Image.open(b.image(fb))))


@pytest.mark.parametrize("name, embed", [("set.pkg.slp", True), ("set.slp", False)])
def test_slp_round_trip_keeps_positions_nodes_edges(tmp_path, name, embed):
    labels = _project(tmp_path)
    labels.xy[1, 0, 2] = np.nan  # an unlabelled point stays unlabelled
    path = write_slp(labels, tmp_path / name, embed=embed)
    loaded = sio.load_slp(str(path))
    assert loaded.skeleton.node_names == labels.keypoints
    assert [tuple(e) for e in loaded.skeleton.edge_names] == labels.skeleton
    assert [t.name for t in loaded.tracks] == labels.individuals
    assert len(loaded.user_labeled_frames) == labels.n_frames
    first = loaded.labeled_frames[0].user_instances[0].numpy()
    assert np.array_equal(first, labels.xy[0, 0].astype(np.float32))
    for video in loaded.videos:  # embedded frames, or the image files
        assert video.filename == str(path) if embed else isinstance(video.filename, list)
    back = read_label_set(path, images_to=tmp_path / "images")
    assert back.frames == labels.frames  # DeepLabCut ids survive the trip
    assert back.root == tmp_path / "images"
    _same(back, labels)
    assert np.isnan(back.xy[1, 0, 2]).all()
    assert default_images_folder(path).name == "set.images"


def test_slp_predictions_for_a_labelling_set(tmp_path):
    labels = _project(tmp_path)
    guess = np.concatenate([labels.xy + 1.0, np.full((*labels.xy.shape[:3], 1), 0.25)], -1)
    labels.xy[2:] = np.nan  # frames 2, 3 are to be labelled: predictions only
    path = write_slp(labels, tmp_path / "todo.pkg.slp", predictions=guess)
    loaded = sio.load_slp(str(path))
    assert len(loaded.user_labeled_frames) == 2
    assert len(loaded.suggestions) == 2
    predicted = [i for lf in loaded.labeled_frames for i in lf.predicted_instances]
    assert len(predicted) == 8
    assert np.allclose(predicted[0].numpy(), guess[0, 0, :, :2])
    assert np.allclose(predicted[0].points["score"], 0.25) and predicted[0].score == 0.25
    back = read_label_set(path)  # predictions are not labels
    assert back.n_frames == 2
    with pytest.raises(SlpLabelError, match="predictions have shape"):
        write_slp(labels, tmp_path / "bad.slp", predictions=guess[:, :, :, :2])


def _video_slp(tmp_path, skeletons=1, user=True):
    """A SLEAP file as SLEAP writes it: an external mp4, untracked instances."""
    truth = sample.make_video(tmp_path / "mouse.mp4", 8, 30.0, 64, 48, ("a", "b", "c"), 1)
    video = sio.Video.from_filename(str(tmp_path / "mouse.mp4"))
    sk = [sio.Skeleton(nodes=["a", "b", "c"], edges=[["a", "b"]], name=f"s{k}")
          for k in range(skeletons)]
    frames = []
    for k, f in enumerate((1, 5)):
        kind = sio.Instance if user else sio.PredictedInstance
        frames.append(sio.LabeledFrame(video=video, frame_idx=f, instances=[
            kind.from_numpy(truth.position[f, 0], skeleton=sk[k % skeletons])]))
    labels = sio.Labels(labeled_frames=frames, videos=[video], skeletons=sk)
    path = tmp_path / "mouse.slp"
    sio.save_slp(labels, str(path))
    return path, truth


def test_sleap_video_labels_to_dlc_project_and_back(tmp_path):
    path, truth = _video_slp(tmp_path)
    labels = read_label_set(path)
    assert labels.frames == ["mouse/img000001.png", "mouse/img000005.png"]
    assert labels.individuals == ["individual_0"] and labels.skeleton == [("a", "b")]
    assert labels.root == tmp_path / "mouse.images" and labels.image(labels.frames[0]).is_file()
    assert np.array_equal(labels.xy[:, 0], truth.position[[1, 5], 0].astype(np.float32))
    config = write_dlc_project(labels, tmp_path / "dlc", "me")
    assert validate_labeled_data(config).n_images == 2
    back = read_label_set(config)
    assert back.frames == ["labeled-data/mouse/img000001.png", "labeled-data/mouse/img000005.png"]
    _same(back, labels)
    # and through a .pkg.slp again
    again = read_label_set(write_slp(back, tmp_path / "again.pkg.slp"))
    _same(again, labels)


def test_dlc_round_trip_and_machine_labels(tmp_path):
    labels = _project(tmp_path)
    guess = np.concatenate([labels.xy + 1.0, np.full((*labels.xy.shape[:3], 1), 0.5)], -1)
    guess[0] = np.nan
    written = write_dlc_labels(labels, tmp_path / "out", "ann", machine=guess)
    assert written.frames == labels.frames and written.root == tmp_path / "out"
    folder = tmp_path / "out" / "labeled-data" / "demo_video0"
    table = pd.read_hdf(folder / "CollectedData_ann.h5", key="df_with_missing")
    assert list(table.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    # a lone CollectedData (no config.yaml above it) has no skeleton
    _same(read_label_set(folder / "CollectedData_ann.h5"), labels, skeleton=False)
    _same(read_label_set(folder / "CollectedData_ann.csv"), labels, skeleton=False)
    machine = pd.read_hdf(folder / "machinelabels-iter0.h5", key="df_with_missing")
    assert len(machine) == 3 and "likelihood" in machine.columns.get_level_values("coords")
    assert (folder / "machinelabels.csv").is_file()
    assert np.allclose(machine.xs("likelihood", level="coords", axis=1).to_numpy(), 0.5)
    single = _project(tmp_path / "s", n_individuals=1)
    config = write_dlc_project(single, tmp_path / "single", "ann")
    assert validate_labeled_data(config).n_images == 4
    _same(read_label_set(config), single)


def test_refusals_name_the_file(tmp_path):
    path, _ = _video_slp(tmp_path, skeletons=2)
    with pytest.raises(SlpLabelError, match=r"mouse\.slp: user instances use 2 skeletons"):
        read_label_set(path)
    (tmp_path / "p").mkdir()
    path, _ = _video_slp(tmp_path / "p", user=False)
    with pytest.raises(SlpLabelError, match=r"mouse\.slp has no user-labelled frames"):
        read_label_set(path)
    fake = tmp_path / "fake.slp"
    fake.write_text("nope")
    with pytest.raises(SlpLabelError, match=r"fake\.slp is not a SLEAP labels file"):
        read_label_set(fake)
    labels = _project(tmp_path / "q")
    labels.root = None
    with pytest.raises(LabelFormatError, match="no root folder"):
        write_dlc_labels(labels, tmp_path / "x", "me")


def test_check_slp_lists_external_media(tmp_path):
    from element_pose.io.sleap_labels import check_slp

    path, _ = _video_slp(tmp_path)
    assert check_slp(path) == [tmp_path / "mouse.mp4"]
    labels = read_label_set(path)
    assert check_slp(write_slp(labels, tmp_path / "emb.pkg.slp")) == []
    plain = check_slp(write_slp(labels, tmp_path / "plain.slp", embed=False))
    assert plain == [labels.image(f) for f in labels.frames]
    with pytest.raises(SlpLabelError, match="no user-labelled frames"):
        (tmp_path / "q").mkdir()
        check_slp(_video_slp(tmp_path / "q", user=False)[0])


def test_sleap_nn_trains_on_a_written_labelling_set(tmp_path):
    """The .pkg.slp is what sleap-nn trains on (predictions and suggestions included)."""
    from sleap_nn.train import train

    config = sample.make_dlc_project(tmp_path / "p", n_frames=12, n_labeled=8, width=64,
                                     height=64)
    labels = read_label_set(config)
    guess = np.concatenate([labels.xy + 1.0, np.full((*labels.xy.shape[:3], 1), 0.5)], -1)
    labels.xy[-1] = np.nan  # one frame to label: prediction and suggestion only
    path = write_slp(labels, tmp_path / "train.pkg.slp", predictions=guess)
    train(train_labels_path=[str(path)], validation_fraction=0.25,
          head_configs="single_instance", max_epochs=1, train_steps_per_epoch=2,
          min_train_steps_per_epoch=1, trainer_accelerator="cpu", enable_progress_bar=False,
          save_ckpt=True, ckpt_dir=str(tmp_path / "ck"), run_name="r", geometry_aug=None)
    assert (tmp_path / "ck" / "r" / "best.ckpt").is_file()
    seen = sio.load_slp(str(tmp_path / "ck" / "r" / "labels_gt.train.0.slp"))
    assert seen.skeleton.node_names == labels.keypoints
    val = sio.load_slp(str(tmp_path / "ck" / "r" / "labels_gt.val.0.slp"))
    used = [lf.frame_idx for lf in [*seen.user_labeled_frames, *val.user_labeled_frames]]
    assert 7 not in used and len(used) >= 6  # labelled frames (split rounding may drop one)


def test_slp_made_by_sleap_io_from_dlc_keeps_dlc_frame_ids(tmp_path):
    """sleap-io's DeepLabCut reader links the project video as the image sequence's
    source; frame ids still come from the images (whose indices the frames count)."""
    config = sample.make_dlc_project(tmp_path / "p", n_frames=12, n_labeled=4,
                                     n_individuals=2)
    csv = next(config.parent.glob("labeled-data/*/CollectedData_*.csv"))
    converted = sio.load_dlc(str(csv))
    assert converted.videos[0].source_video is not None
    for name, embed in (("plain.slp", False), ("packed.pkg.slp", True)):
        sio.save_slp(converted, str(tmp_path / name), embed=embed)
        back = read_label_set(tmp_path / name, images_to=tmp_path / f"{name}.img")
        ours = read_label_set(config)
        assert back.frames == ours.frames and back.individuals == ours.individuals
        # sleap-io orders the nodes alphabetically; the positions agree by name
        order = [back.keypoints.index(k) for k in ours.keypoints]
        np.testing.assert_allclose(back.xy[:, :, order], ours.xy, atol=1e-4)


def test_sleap_package_of_a_video_and_untracked_instances(tmp_path):
    """A .pkg.slp SLEAP made from a video keeps the video's frame ids; untracked
    instances are individuals by their place in the frame."""
    path, truth = _video_slp(tmp_path)
    from_video = read_label_set(path)
    labels = sio.load_slp(str(path))
    package = tmp_path / "mouse.pkg.slp"
    sio.save_slp(labels, str(package), embed="user")
    packed = read_label_set(package)
    assert packed.frames == from_video.frames == ["mouse/img000001.png", "mouse/img000005.png"]
    assert packed.root == tmp_path / "mouse.images"  # default folder, shared by both names
    _same(packed, from_video)
    # two untracked instances in a frame: individual_0, individual_1
    lf = labels.labeled_frames[0]
    lf.instances.append(sio.Instance.from_numpy(truth.position[1, 0] + 3.0,
                                                skeleton=labels.skeleton))
    sio.save_slp(labels, str(tmp_path / "two.slp"))
    two = read_label_set(tmp_path / "two.slp")
    assert two.individuals == ["individual_0", "individual_1"]
    assert np.array_equal(two.xy[0, 1], (truth.position[1, 0] + 3.0).astype(np.float32))
    assert np.isnan(two.xy[1, 1]).all()


def test_dlc_unique_bodyparts_round_trip(tmp_path):
    """A multi-animal set whose `single` individual labels the last body parts is
    written as DeepLabCut's unique body parts and reads back equal."""
    from element_pose.io.dlc_labels_write import unique_bodyparts

    folder = tmp_path / "imgs" / "cage"
    folder.mkdir(parents=True)
    frames = []
    for f in (2, 9):
        Image.fromarray(np.full((20, 30, 3), f, np.uint8)).save(folder / f"img{f:04d}.png")
        frames.append(f"cage/img{f:04d}.png")
    xy = np.full((2, 3, 3, 2), np.nan)
    xy[:, :2, :2] = np.arange(16, dtype=float).reshape(2, 2, 2, 2) + 1.5
    xy[:, 2, 2] = [[5.0, 6.0], [7.0, 8.0]]
    labels = LabelSet(frames=frames, keypoints=["nose", "tail", "feeder"],
                      individuals=["m1", "m2", "single"], xy=xy,
                      skeleton=[("nose", "tail")], root=tmp_path / "imgs")
    assert unique_bodyparts(labels) == ["feeder"]
    config = write_dlc_project(labels, tmp_path / "proj", "jane")
    table = pd.read_hdf(next((tmp_path / "proj").glob("labeled-data/cage/*.h5")))
    assert ("jane", "single", "feeder", "x") in table.columns
    assert ("jane", "single", "nose", "x") not in table.columns
    assert validate_labeled_data(config).n_images == 2
    back = read_label_set(config)
    assert back.frames == ["labeled-data/cage/img0002.png", "labeled-data/cage/img0009.png"]
    _same(back, labels)


def test_slp_with_its_video_gone_reads_positions_without_root(tmp_path, caplog):
    path, truth = _video_slp(tmp_path)
    (tmp_path / "mouse.mp4").unlink()
    labels = read_label_set(path)
    assert labels.root is None and "not available" in caplog.text
    assert np.array_equal(labels.xy[:, 0], truth.position[[1, 5], 0].astype(np.float32))
    with pytest.raises(LabelSetError, match="no root folder"):
        labels.image(labels.frames[0])
    with pytest.raises(SlpLabelError, match="no root folder"):
        write_slp(labels, tmp_path / "x.slp")


def test_multi_animal_project_of_one_individual_gets_the_multi_animal_layout(tmp_path):
    """The layout is the project config's (``multianimalproject``), not the number of
    individuals: one animal of a multi-animal project is written with the
    ``individuals`` level (labels and machine labels), named as the config names it."""
    from element_pose.io.dlc import read_config, write_config

    single = _project(tmp_path / "s", n_individuals=1)
    project = tmp_path / "ma"
    cfg = read_config(write_dlc_project(single, project, "ann"))
    cfg.update(multianimalproject=True, identity=False, individuals=["mouse1"],
               uniquebodyparts=[], multianimalbodyparts=list(single.keypoints),
               bodyparts="MULTI!")
    config = write_config(cfg, project / "config.yaml")
    guess = np.concatenate([single.xy + 1.0, np.full((*single.xy.shape[:3], 1), 0.5)], -1)
    write_dlc_labels(single, project, "ann", machine=guess)
    for folder in (project / "labeled-data").iterdir():
        for name in ("CollectedData_ann.h5", "machinelabels-iter0.h5"):
            table = pd.read_hdf(folder / name, key="df_with_missing")
            assert list(table.columns.names) == ["scorer", "individuals", "bodyparts",
                                                 "coords"], name
            assert set(table.columns.get_level_values("individuals")) == {"mouse1"}
    assert validate_labeled_data(config).n_images == 4
    back = read_label_set(config)
    assert back.individuals == ["mouse1"]
    assert np.array_equal(back.xy, single.xy, equal_nan=True)
    # a single-animal project keeps the single-animal layout
    write_dlc_labels(single, tmp_path / "sa_again", "ann")
    table = pd.read_hdf(next((tmp_path / "sa_again" / "labeled-data").iterdir())
                        / "CollectedData_ann.h5", key="df_with_missing")
    assert list(table.columns.names) == ["scorer", "bodyparts", "coords"]
