"""Shared steps of the refinement-loop tests: a session to record in, and a person's
corrections saved as napari-deeplabcut saves them."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd


def make_session(pipeline, name: str, lab: str, lab_name: str, device: str,
                 description: str = "open field") -> dict:
    """A lab, a camera, a subject ``name`` and its session 1; the session key."""
    pipeline.lab.Lab.insert1({"lab": lab, "lab_name": lab_name, "institution": "Uni",
                              "time_zone": "Europe/Zurich"}, skip_duplicates=True)
    pipeline.lab.Device.insert1({"device": device, "description": "top view"},
                                skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": name, "sex": "F", "species": "Mus musculus",
                                      "subject_birth_date": datetime.date(2025, 9, 1)})
    pipeline.subject.Subject.Lab.insert1({"subject": name, "lab": lab})
    key = {"subject": name, "session_id": 1}
    pipeline.session.Session.insert1({**key, "session_datetime":
                                      datetime.datetime(2026, 3, 1, 9, 30),
                                      "session_description": description})
    return key


def relabel_as_napari(pipeline, selection, truth) -> Path:
    """The truth of every chosen frame saved into the labelling set's
    ``CollectedData_<scorer>.h5`` (key ``df_with_missing``) and ``.csv``."""
    refine = pipeline.refine
    folder = refine.LabellingSet.folder_path(selection)
    images = (refine.LabellingSet.Image & selection).to_dicts(order_by="frame_index")
    collected = sorted(folder.glob("labeled-data/*/CollectedData_*.h5"))
    assert len(collected) == 1, collected
    target = collected[0]
    scorer = target.stem.removeprefix("CollectedData_")
    columns = pd.MultiIndex.from_product([[scorer], truth.keypoints, ["x", "y"]],
                                         names=["scorer", "bodyparts", "coords"])
    index = pd.MultiIndex.from_tuples([tuple(i["frame_id"].split("/")) for i in images])
    rows = np.array([truth.position[i["frame_index"], 0].reshape(-1) for i in images])
    table = pd.DataFrame(rows.astype(float), index=index, columns=columns)
    table.to_hdf(target, key="df_with_missing", mode="w")
    table.to_csv(target.with_suffix(".csv"))
    return target
