"""Instrument drivers, one module per family, and (in ``emulation``) their emulated twins.

Drivers never import ``instruments.emulation`` and the emulation never imports a driver;
both may share the pure wire formats in ``instruments.wire``.
"""
