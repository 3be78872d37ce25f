"""WidowX 250s arm: kinematics, the command safety filter and the arm backends."""
