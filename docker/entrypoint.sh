#!/bin/bash
# Source ROS 2, the Interbotix stack and fuse-ros, then run the command.
set -e
. "/opt/ros/${ROS_DISTRO}/setup.bash"
. /opt/interbotix/setup.bash
. /opt/fuse/setup.bash
exec "$@"
