"""Bring-up of fuse-ros: one node-graph description shared by the launch files and the runner."""
