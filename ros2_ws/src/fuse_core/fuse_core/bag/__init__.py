"""rosbag2-compatible MCAP recordings: write, read, validate and schedule replay (bytes only)."""

from fuse_core.bag.definitions import MessageDefinitions
from fuse_core.bag.metadata import BagMetadata, TopicInfo
from fuse_core.bag.qos import QosProfile
from fuse_core.bag.reader import BagReader, BagMessage
from fuse_core.bag.writer import BagWriter
from fuse_core.errors import BagError

__all__ = ['BagError', 'BagMessage', 'BagMetadata', 'BagReader', 'BagWriter',
           'MessageDefinitions', 'QosProfile', 'TopicInfo']
