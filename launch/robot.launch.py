"""The real robot: cameras, DIGITs, microphone, IMU, sync, policy and the arm on a WidowX 250s.

    ros2 launch fuse_bringup robot.launch.py bundle:=/path/to/bundle instruction:='pick up the cup' \
        camera_primary_device:=/dev/video0 camera_wrist_device:=/dev/video2 \
        digit_left_serial:=D20001 digit_right_serial:=D20002 imu_port:=/dev/ttyUSB0 \
        [robot_model:=wx250s] [start_driver:=true] [dry_run:=false] [record:=/data/bags] \
        [motion_services:=false] [keystore:=$ROS_SECURITY_KEYSTORE] [view:=false] \
        [collect:=keyboard|spacemouse|gamepad|scripted episodes:=N operator:=NAME record:=/data/episodes
         modalities:=/data/modalities.yaml]
        [eval:=true task:='pick up the cup' operator:=NAME record:=reports/NAME/episodes]

The fuse-ros nodes and their parameter files come from fuse_bringup.graph (shared with
sim.launch.py and `./run.sh`), so the robot and the simulation use the same YAML files.
The Interbotix driver is included from interbotix_xsarm_control unless start_driver:=false
(use an already running driver; the arm node checks its namespace).
motion_services:=true lets the arm serve reset_estop / move_to_start / move_to_pose (off by
default: anyone on the DDS domain could call them). keystore:=DIR (an SROS2 keystore made by
`python -m fuse_bringup.security --keystore DIR`) runs every node in its enclave /fuse/<node>
with security enforced.
collect:=<teleop device> runs demonstration collection instead of the policy: the teleop node
commands the arm, the episode manager (node episodes) resets to the start pose and captures the
DIGIT backgrounds, the recorder writes one bag per episode under record:= (default ./episodes).
modalities:=FILE (YAML/JSON: instruction or task -> {combination: text}, e.g. tactile: "pick up
the sponge that feels soft") gives FuSe's modality-specific instructions of the episodes whose
instruction (else task) it names; they are recorded in each episode's metadata.
The keyboard device reads its terminal: run `ros2 run fuse_nodes teleop_node` in a terminal of
its own for it (launch gives nodes no terminal).
eval:=true runs the policy for operator-marked trials (fuse_bringup.evaluate_robot): the episode
manager resets to the start pose and captures the DIGIT backgrounds, the policy commands only
while a trial records, the recorder writes one bag per trial under record:= (none without it).
The trials are marked, and the report written, by `fuse eval --world robot --attach ...` in a
terminal of its own (it runs the keys front end there).
view:=true also starts the Foxglove viewer (ws://127.0.0.1:8765, layout config/foxglove_layout.json),
as in sim.launch.py.
"""

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, GroupAction, IncludeLaunchDescription, OpaqueFunction,
                            SetEnvironmentVariable)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from fuse_bringup import graph
from fuse_bringup.launch_nodes import to_launch_node
from fuse_bringup.preflight import check_robot_arguments
from fuse_bringup.security import ENCLAVE_ROOT, environment

# launch argument -> (node name, parameter name) for the device of each sensor
DEVICE_ARGUMENTS = {
    'camera_primary_device': ('camera_primary', 'video_device'),
    'camera_wrist_device': ('camera_wrist', 'video_device'),
    'digit_left_serial': ('digit_left', 'serial'),
    'digit_right_serial': ('digit_right', 'serial'),
    'audio_device': ('audio', 'device'),
    'imu_port': ('imu', 'port'),
    'imu_protocol': ('imu', 'protocol'),
}


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context) or None

    bundle = arg('bundle') or graph.default_bundle_path()
    devices = {name: arg(name) for name in DEVICE_ARGUMENTS}
    check_robot_arguments(bundle, {k: v for k, v in devices.items() if k != 'imu_protocol'})
    overrides = {}
    for launch_arg, (node, param) in DEVICE_ARGUMENTS.items():
        if devices[launch_arg]:
            overrides.setdefault(node, {})[param] = devices[launch_arg]
    specs = graph.robot_graph(
        bundle_path=bundle, instruction=arg('instruction'), robot_model=arg('robot_model'),
        dry_run=(arg('dry_run') or 'false').lower() == 'true', record=arg('record') is not None,
        record_dir=arg('record'), sensor_overrides=overrides,
        motion_services=(arg('motion_services') or 'false').lower() == 'true',
        collect=arg('collect'), episodes=int(arg('episodes') or 0), operator=arg('operator') or '',
        view=(arg('view') or 'false').lower() == 'true', modalities=arg('modalities'),
        evaluate=(arg('eval') or 'false').lower() == 'true', task=arg('task'))
    keystore = arg('keystore')
    actions = [SetEnvironmentVariable(k, v) for k, v in environment(keystore).items()] if keystore else []
    return actions + [to_launch_node(spec, f'{ENCLAVE_ROOT}/{spec.name}' if keystore else None)
                      for spec in specs]


def _driver(context, driver):
    keystore = LaunchConfiguration('keystore').perform(context)
    if not keystore:
        return [driver]
    # The driver's launch file takes no ROS arguments: its process gets the enclave by override.
    env = [SetEnvironmentVariable(k, v) for k, v in environment(keystore).items()]
    return [GroupAction(env + [SetEnvironmentVariable('ROS_SECURITY_ENCLAVE_OVERRIDE', f'{ENCLAVE_ROOT}/xs_sdk'),
                               driver], scoped=True)]


def generate_launch_description():
    driver = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([
            FindPackageShare('interbotix_xsarm_control'), 'launch', 'xsarm_control.launch.py'])),
        launch_arguments={'robot_model': LaunchConfiguration('robot_model'),
                          'robot_name': LaunchConfiguration('robot_model'),
                          'use_rviz': LaunchConfiguration('use_rviz')}.items(),
        condition=IfCondition(LaunchConfiguration('start_driver')))
    return LaunchDescription([
        DeclareLaunchArgument('robot_model', default_value='wx250s', description='Interbotix arm model (6-DoF wx250s)'),
        DeclareLaunchArgument('start_driver', default_value='true', choices=['true', 'false'],
                              description='include the Interbotix xs_sdk driver; false = use a running one'),
        DeclareLaunchArgument('use_rviz', default_value='false', choices=['true', 'false'],
                              description='start RViz with the driver'),
        DeclareLaunchArgument('bundle', default_value='', description='model bundle directory'),
        DeclareLaunchArgument('instruction', default_value='', description='language instruction'),
        DeclareLaunchArgument('dry_run', default_value='false', choices=['true', 'false'],
                              description='run the policy but only log arm commands'),
        DeclareLaunchArgument('record', default_value='', description='record the run to this directory'),
        DeclareLaunchArgument('collect', default_value='',
                              choices=['', 'keyboard', 'spacemouse', 'gamepad', 'scripted'],
                              description='collect demonstrations with this teleop device instead of the policy'),
        DeclareLaunchArgument('episodes', default_value='0', description='collect: stop after N episodes'),
        DeclareLaunchArgument('operator', default_value='', description='collect: who collects; eval: who marks'),
        DeclareLaunchArgument('eval', default_value='false', choices=['true', 'false'],
                              description='operator-marked trials of the policy (marked with `fuse eval --world '
                                          'robot --attach`); not with collect'),
        DeclareLaunchArgument('task', default_value='', description='eval: what the trials do (free text)'),
        DeclareLaunchArgument('modalities', default_value='',
                              description='collect: modality-specific instructions file (YAML/JSON: '
                                          'instruction or task -> {combination: text})'),
        DeclareLaunchArgument('motion_services', default_value='false', choices=['true', 'false'],
                              description='arm serves reset_estop / move_to_start / move_to_pose'),
        DeclareLaunchArgument('keystore', default_value=EnvironmentVariable('ROS_SECURITY_KEYSTORE', default_value=''),
                              description='SROS2 keystore (fuse_bringup.security); empty = no DDS security'),
        DeclareLaunchArgument('view', default_value='false', choices=['true', 'false'],
                              description='also start the Foxglove viewer (ws://127.0.0.1:8765, '
                                          'layout config/foxglove_layout.json)'),
        *[DeclareLaunchArgument(name, default_value='', description=f'{node} {param}')
          for name, (node, param) in DEVICE_ARGUMENTS.items()],
        OpaqueFunction(function=_driver, args=[driver]),
        OpaqueFunction(function=_nodes),
    ])
