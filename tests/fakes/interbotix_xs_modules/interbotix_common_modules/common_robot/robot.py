"""Fake global-node management of the Interbotix API; records every call (tests only)."""

from interbotix_xs_modules import record


class FakeInterbotixNode:
    def __init__(self, node_name, namespace=None):
        self.node_name, self.namespace = node_name, namespace
        self.destroyed = False

    def destroy_node(self):
        record('node.destroy_node')
        self.destroyed = True


def create_interbotix_global_node(node_name='interbotix_robot_manipulation', namespace=None):
    global _global_node
    record('create_interbotix_global_node', node_name=node_name, namespace=namespace)
    if '_global_node' in globals():
        raise RuntimeError('Tried to create an Interbotix global node but one already exists.')
    _global_node = FakeInterbotixNode(node_name, namespace)
    return _global_node


def get_interbotix_global_node():
    # Like the real module, this raises NameError until a node was created.
    return _global_node


def robot_startup(node=None):
    record('robot_startup', node=node)


def robot_shutdown(node=None):
    record('robot_shutdown', node=node)


def forget_global_node():
    """Test helper: drop the global node between tests."""
    globals().pop('_global_node', None)
