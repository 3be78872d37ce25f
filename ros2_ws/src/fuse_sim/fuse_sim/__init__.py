"""MuJoCo digital twin of the WidowX 250s workcell (ROS-free)."""
