"""Microphone pipeline without ROS: sources, a sample ring buffer and the log-mel spectrogram."""
