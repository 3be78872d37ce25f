"""WidowX 250s arm: kinematics, the command safety filter, the mock backend and the arm node's logic (controller)."""
