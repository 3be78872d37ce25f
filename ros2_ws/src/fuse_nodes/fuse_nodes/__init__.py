"""rclpy nodes of fuse-ros: thin shells over fuse_core."""
