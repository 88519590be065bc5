"""``python -m element_pose.cli``: the ``element-pose`` command."""

import sys

from element_pose.cli.app import main

sys.exit(main())
