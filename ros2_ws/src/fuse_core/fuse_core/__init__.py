"""ROS-free core of fuse-ros: everything that is not ROS plumbing."""

__version__ = '0.1.0'
