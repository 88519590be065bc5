"""Schema ``subject``: research subjects, keyed as in element-animal."""

from element_pose.db.config import import_datajoint

dj = import_datajoint()
schema = dj.Schema()


@schema
class Subject(dj.Manual):
    """An animal. Species in Latin (or an NCBI taxon URL); sex M, F, O or U (as DANDI)."""

    definition = """
    subject: varchar(32)
    ---
    subject_nickname = '': varchar(64)
    sex: enum('M', 'F', 'O', 'U')
    subject_birth_date = null: date
    species = '': varchar(255)        # e.g. Mus musculus
    subject_description = '': varchar(1000)
    """

    class Lab(dj.Part):
        """The lab a subject belongs to."""

        definition = """
        -> master
        -> Lab
        """
