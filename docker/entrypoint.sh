#!/bin/bash
# Source ROS 2, the Interbotix stack and fuse-ros, set the DDS exposure, then run the command.
#   FUSE_NETWORK=1        reach other hosts (UDP on every interface); default: this machine only
#   ROS_DOMAIN_ID         default 42 (never 0, where every default ROS 2 install talks)
#   /keystore/enclaves    an SROS2 keystore (python3 -m fuse_bringup.security --keystore DIR)
#                         mounted there turns DDS security on, enforced, one enclave per node
set -e
. "/opt/ros/${ROS_DISTRO}/setup.bash"
. /opt/interbotix/setup.bash
. /opt/fuse/setup.bash
config=/opt/fuse/share/fuse_bringup/config
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
case "${FUSE_NETWORK:-0}" in
    1|true|yes|on)
        export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$config/fastdds_profile_network.xml}"
        export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-SUBNET}" ;;
    *)
        export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$config/fastdds_profile.xml}"
        export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}" ;;
esac
if [ -d /keystore/enclaves ]; then
    export ROS_SECURITY_KEYSTORE=/keystore ROS_SECURITY_ENABLE=true ROS_SECURITY_STRATEGY=Enforce
    echo "fuse-ros: DDS security enforced with the keystore in /keystore" >&2
elif [ "${FUSE_NETWORK:-0}" != 0 ]; then
    echo "fuse-ros: WARNING: networked without DDS security: anyone on domain ${ROS_DOMAIN_ID} can command the arm" >&2
fi
echo "fuse-ros: ROS_DOMAIN_ID=${ROS_DOMAIN_ID} discovery ${ROS_AUTOMATIC_DISCOVERY_RANGE}" >&2
exec "$@"
