"""Dataset export: episode bags -> steps with the sync node's preprocessing -> RLDS / LeRobotDataset."""
