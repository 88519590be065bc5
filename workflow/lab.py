"""Schema ``lab``: labs and devices (cameras), keyed as in element-lab."""

from element_pose.db.config import import_datajoint

dj = import_datajoint()
schema = dj.Schema()


@schema
class Lab(dj.Lookup):
    """A research lab."""

    definition = """
    lab: varchar(24)            # abbreviated lab name
    ---
    lab_name: varchar(255)
    institution = '': varchar(255)
    address = '': varchar(255)
    time_zone = 'UTC': varchar(64)  # IANA name, used for NWB session start times
    """


@schema
class Device(dj.Lookup):
    """A recording device; for element-pose, a camera."""

    definition = """
    device: varchar(32)
    ---
    modality = 'camera': varchar(64)
    manufacturer = '': varchar(255)
    description = '': varchar(1000)
    """
