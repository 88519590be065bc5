"""The ``model`` and ``train`` tables of release 0 (commit 33e3c62), frozen for the
migration test (``tests/test_migrate.py``): definitions only, no behaviour.

Declare them with :func:`activate` on a fresh schema prefix; ``Session`` and
``Device`` come from :mod:`support.release0_link`.  Only the tables that the
migrated tables are and those that reference them are here; ``PoseEstimation`` is
its master only (its arrays are not touched by the migration).
"""

from element_pose.db.config import import_datajoint
from support import release0_link
from support.release0_link import Device, Session  # noqa: F401  (definitions use them)

__all__ = ["BodyPart", "Model", "ModelEvaluation", "ModelTraining", "PoseEstimation",
           "PoseEstimationTask", "TrainingParamSet", "TrainingTask", "VideoRecording",
           "VideoSet", "activate", "schema_model", "schema_train"]

dj = import_datajoint()
schema_model = dj.Schema()
schema_train = dj.Schema()


def activate(prefix: str) -> None:
    """Declare the linking tables and release 0's ``model`` and ``train`` tables."""
    release0_link.activate(prefix)
    schema_model.activate(f"{prefix}model", add_objects=release0_link.__dict__)
    schema_train.activate(f"{prefix}train")


@schema_model
class VideoRecording(dj.Manual):
    """A recording."""

    definition = """
    -> Session
    recording_id: int32
    ---
    -> Device
    recording_description = '': varchar(1000)
    """

    class File(dj.Part):
        """A file of a recording."""

        definition = """
        -> master
        file_id: int16
        ---
        file_path: varchar(1000)   # relative to a root data directory
        """


@schema_model
class BodyPart(dj.Lookup):
    """A body part."""

    definition = """
    body_part: varchar(64)
    ---
    body_part_description = '': varchar(1000)
    """


@schema_model
class Model(dj.Manual):
    """A model (DeepLabCut-shaped in this release)."""

    definition = """
    model_name: varchar(64)
    ---
    engine = 'deeplabcut': varchar(32)  # element_pose.engines name of the engine
    task: varchar(64)                   # DeepLabCut project Task (else the source's name)
    project_date: varchar(16)           # DeepLabCut project date
    iteration: int32
    shuffle: int32
    trainingsetindex: int32
    train_fraction: float64
    snapshot = 'best': varchar(255)     # 'best', 'last', an epoch number or a file name
    scorer = '': varchar(255)           # prefix of output names; '' accepts a single output
    net_type = '': varchar(64)
    multi_animal: bool
    project_path: varchar(1000)         # model files (DLC: project folder), relative to a root
    config_template: json               # the model's configuration at registration
    model_description = '': varchar(1000)
    """

    class BodyPart(dj.Part):
        """Body parts of a model."""

        definition = """
        -> master
        -> BodyPart
        ---
        body_part_index: int16
        """


@schema_model
class ModelEvaluation(dj.Computed):
    """An evaluation."""

    definition = """
    -> Model
    ---
    evaluated_snapshot: varchar(255)
    training_epochs = null: int32
    train_rmse = null: float64          # pixels
    test_rmse = null: float64
    train_rmse_pcutoff = null: float64
    test_rmse_pcutoff = null: float64
    train_map = null: float64
    test_map = null: float64
    train_mar = null: float64
    test_mar = null: float64
    pcutoff: float64
    evaluation_time: float64            # seconds
    results_file: varchar(1000)         # relative to a root
    """

    class BodyPartError(dj.Part):
        """Per body part errors."""

        definition = """
        -> master
        -> Model.BodyPart
        ---
        train_error = null: float64
        test_error = null: float64
        """


@schema_model
class PoseEstimationTask(dj.Manual):
    """A pose estimation task."""

    definition = """
    -> VideoRecording
    -> Model
    ---
    task_mode = 'load': enum('load', 'trigger')  # load existing outputs, or run inference
    output_dir = '': varchar(1000)  # relative to the processed root; '' = inferred
    pose_estimation_params = null: json  # engine options (batch_size, device, ...)
    """


@schema_model
class PoseEstimation(dj.Computed):
    """A pose estimation (master only: its arrays are not migrated)."""

    definition = """
    -> PoseEstimationTask
    ---
    pose_estimation_time: datetime     # when the outputs were made (trigger) or loaded
    nframes: int64
    scorer: varchar(255)
    engine_version = '': varchar(64)   # e.g. deeplabcut 3.0.2
    run_duration = null: float64       # seconds of inference (trigger mode)
    processing_fps = null: float64     # frames per second of inference (trigger mode)
    device = '': varchar(64)           # cpu, cuda:0, ... (trigger mode)
    batch_size = null: int32
    output_files: json                 # output files, relative to a root
    output_checksum: char(32)          # sha256 (128 bits) of the output files (older rows: md5)
    """


@schema_train
class VideoSet(dj.Manual):
    """A set of labelled files."""

    definition = """
    video_set_id: int32
    ---
    video_set_description = '': varchar(1000)
    video_sets = null: json   # video_sets to train with, relative to the project; null: config's
    """

    class File(dj.Part):
        """A labelled file."""

        definition = """
        -> master
        file_path: varchar(767)   # relative to a root data directory
        """


@schema_train
class TrainingParamSet(dj.Lookup):
    """Training parameters."""

    definition = """
    paramset_idx: int16
    ---
    paramset_desc: varchar(1000)
    param_set_hash: char(32)   # md5 of the canonical JSON of params
    params: json
    unique index (param_set_hash)
    """


@schema_train
class TrainingTask(dj.Manual):
    """A training task."""

    definition = """
    -> VideoSet
    -> TrainingParamSet
    training_id: int32
    ---
    model_prefix = '': varchar(32)
    project_path: varchar(1000)   # folder of the source config.yaml, relative to a root
    """


@schema_train
class ModelTraining(dj.Computed):
    """A training run."""

    definition = """
    -> TrainingTask
    ---
    training_dir: varchar(1000)      # the task's project copy, relative to the processed root
    config_path: varchar(1000)       # its config.yaml, relative to the processed root
    shuffle: int32
    trainingsetindex: int32
    best_snapshot: varchar(255)      # file name
    latest_snapshot: varchar(255)    # file name
    train_time: float64              # seconds
    device: varchar(64)
    engine_versions: json            # e.g. {"deeplabcut": "3.0.2", "torch": "2.x"}
    learning_stats = null: json      # per-epoch losses and metrics, as columns
    pytorch_config = null: json      # effective training configuration
    """

    class Snapshot(dj.Part):
        """A snapshot of a run."""

        definition = """
        -> master
        snapshot_name: varchar(255)
        ---
        epoch: int32
        snapshot_path: varchar(1000)   # relative to the processed root
        """
