"""A ready pipeline: lab, subject and session schemas activating element-pose."""
