"""Pure wire formats shared by drivers and emulators (frames, fixed-point scaling)."""
