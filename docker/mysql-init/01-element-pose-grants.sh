#!/bin/bash
# Runs once, when the `db` service initialises an empty data directory: lets DJ_USER
# (created by the image from MYSQL_USER/MYSQL_PASSWORD) create and use every
# element-pose schema, <prefix>lab, <prefix>subject, ... (prefix ELEMENT_POSE_SCHEMA_PREFIX).
set -euo pipefail
prefix="${ELEMENT_POSE_SCHEMA_PREFIX:-pose_}"
mysql --protocol=socket -uroot -p"${MYSQL_ROOT_PASSWORD}" <<SQL
GRANT ALL PRIVILEGES ON \`${prefix//_/\\_}%\`.* TO '${MYSQL_USER}'@'%';
FLUSH PRIVILEGES;
SQL
