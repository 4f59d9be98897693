"""Detector modules (BaseDetector subclasses), discovered by the module registry."""
