from setuptools import setup

package_name = 'fuse_core'

# Name, version and dependencies are in setup.cfg.
setup(
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
)
