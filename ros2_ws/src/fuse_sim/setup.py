from setuptools import find_packages, setup

package_name = 'fuse_sim'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy', 'mujoco'],
    zip_safe=True,
    maintainer='fuse-ros maintainers',
    maintainer_email='maintainers@fuse-ros.dev',
    description='ROS-free MuJoCo digital twin of the WidowX 250s workcell.',
    license='Apache-2.0',
)
