from glob import glob

from setuptools import setup

package_name = 'fuse_bringup'

# Name, version, dependencies and the `fuse` command are in setup.cfg.
setup(
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        # launch/ is the repository's top-level launch/ folder (a symlink here).
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml') + glob('config/*.json')),
        ('share/' + package_name + '/config/calibration', glob('config/calibration/*.yaml')),
        ('share/' + package_name + '/web', glob('web/*')),
        # The shipped reference bundle and recording (symlinks to models/ and recordings/),
        # so an installed simulation finds them without the source tree.
        ('share/' + package_name + '/models/reference', glob('reference_bundle/*')),
        ('share/' + package_name + '/recordings/sim_synthetic', glob('sim_recording/*')),
    ],
)
