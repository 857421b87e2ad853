"""Emulated instruments: plant physics, protocol servers, instrument models, control channel."""
