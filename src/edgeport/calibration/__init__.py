"""Calibration set and int8 quantization for every format."""
