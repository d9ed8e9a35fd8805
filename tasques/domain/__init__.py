"""The domain layer: plain typed models and rules. No I/O and no clock reads: time is passed in."""
