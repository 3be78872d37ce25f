from setuptools import setup

package_name = 'fuse_nodes'

# One executable per node; `ros2 run fuse_nodes <name>` and the launch files use these names.
NODES = [
    'camera_node', 'digit_node', 'audio_node', 'imu_node',
    'sync_node', 'policy_node', 'arm_node', 'bag_player_node', 'recorder_node',
    'robot_state_node', 'viewer_node',
    'world_node', 'expert_node',
    'teleop_node', 'episodes_node', 'episode_keys',
]

# Name, version and dependencies are in setup.cfg.
setup(
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    entry_points={
        'console_scripts': [f'{n} = {package_name}.{n}:main' for n in NODES],
    },
)
